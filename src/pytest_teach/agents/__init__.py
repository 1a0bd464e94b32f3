"""Agents under test, chosen by a model spec such as ``scripted:oracle``.

A spec is ``PROVIDER:NAME``. ``scripted`` agents are the deterministic or seeded-noisy baselines
that ship with each scenario family; each family turns an :class:`Agent` into its own policy.
``openai:MODEL``, ``hf:PATH[+ADAPTER]`` and ``replay:FILE`` specs become :class:`ChatModel`
providers through :func:`chat_model`, or ``agent.chat()``. :data:`PROVIDERS` maps each prefix
to where its class lives (:func:`model_provider` adds one), so nothing is imported before a spec
names it. :func:`check_model_spec` checks a spec before a run; :func:`register_scripted`
declares the scripted baselines of a family of one's own. Importing this package stays light:
the providers' modules load when a spec names them, and the ``openai`` client, ``torch`` and
``transformers`` on a provider's first call.
"""

from .._lazy import lazy_exports
from ._chat import ChatModel, Completion, ModelCallError, chat_model
from ._providers import PROVIDERS, Provider, model_provider
from ._spec import (
    SCRIPTED_AGENTS,
    Agent,
    ModelSpec,
    ModelSpecError,
    check_model_spec,
    parse_model_spec,
    register_scripted,
    scripted_names,
)

__all__ = [
    "POOL_NAME",
    "POOL_SLOT",
    "PROVIDERS",
    "SCRIPTED_AGENTS",
    "Agent",
    "CachedChat",
    "ChatModel",
    "Completion",
    "HFChat",
    "ModelCallError",
    "ModelSpec",
    "ModelSpecError",
    "OpenAIChat",
    "PromptCaptured",
    "Provider",
    "ReplayChat",
    "ReplaySlot",
    "chat_model",
    "check_model_spec",
    "decode_replies",
    "encode_replies",
    "model_provider",
    "parse_model_spec",
    "register_scripted",
    "resolve_hf_model",
    "scripted_names",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "_cache": ("CachedChat",),
        "_hf": ("HFChat", "resolve_hf_model"),
        "_openai": ("OpenAIChat",),
        "_replay": (
            "POOL_NAME",
            "POOL_SLOT",
            "PromptCaptured",
            "ReplayChat",
            "ReplaySlot",
            "decode_replies",
            "encode_replies",
        ),
    },
)
