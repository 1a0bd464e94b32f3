"""Agents under test, chosen by a model spec such as ``scripted:oracle``.

A spec is ``PROVIDER:NAME``. ``scripted`` agents are the deterministic or seeded-noisy baselines
that ship with each scenario family; each family turns an :class:`Agent` into its own policy.
``openai:MODEL``, ``hf:PATH[+ADAPTER]`` and ``replay:FILE`` specs become :class:`ChatModel`
providers through :func:`chat_model` (registry :data:`CHAT_PROVIDERS`), or ``agent.chat()``.
:func:`check_model_spec` checks a spec before a run; :func:`register_scripted` declares the
scripted baselines of a family of one's own. Importing this package stays light: the
``openai`` client, ``torch`` and ``transformers`` load on a provider's first call.
"""

from ._cache import CachedChat
from ._chat import PROVIDERS as CHAT_PROVIDERS
from ._chat import ChatModel, Completion, ModelCallError, chat_model
from ._hf import HFChat
from ._openai import OpenAIChat
from ._replay import ReplayChat
from ._spec import (
    PROVIDERS,
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
    "CHAT_PROVIDERS",
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
    "ReplayChat",
    "chat_model",
    "check_model_spec",
    "parse_model_spec",
    "register_scripted",
    "scripted_names",
]
