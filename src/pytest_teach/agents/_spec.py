"""Model specs: ``scripted:NAME``, ``openai:MODEL``, ``hf:PATH_OR_ID``, ``replay:FILE``.

:func:`parse_model_spec` checks the syntax; :func:`check_model_spec` also checks, offline and
without loading anything heavy, that the spec can name a model here: a registered scripted
baseline, an existing ``hf:`` directory (a hub id passes: only the hub can tell), a readable
``replay:`` file. The plugin runs it before any test, so a typo is one error, not one per test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._util import NOISY_PREFIX, noise_level
from ._providers import PROVIDERS

if TYPE_CHECKING:
    from ._chat import ChatModel

#: The scripted baselines of each bundled scenario family (``noisy-P``: any ``P`` in [0, 1]).
#: Each family builds its own policy from these names; :func:`register_scripted` adds a family.
SCRIPTED_AGENTS: dict[str, tuple[str, ...]] = {
    "tool_selection": ("oracle", "keyword", "noisy-P"),
    "browser": ("oracle", "noisy-P"),
    "minigrid": ("oracle", "noisy-P"),
    "stories": ("accessible", "div-soup"),
}


class ModelSpecError(ValueError):
    """A model spec that can't be parsed."""


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec."""

    provider: str
    name: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}"


def parse_model_spec(text: str) -> ModelSpec:
    """Parse ``PROVIDER:NAME``; raise :class:`ModelSpecError` naming what is wrong."""
    raw = (text or "").strip()
    provider, sep, name = raw.partition(":")
    if not sep or not provider or not name.strip():
        raise ModelSpecError(
            f"model spec {text!r} is not PROVIDER:NAME (for example scripted:oracle, "
            "openai:gpt-4o-mini or hf:./models/tiny)"
        )
    if provider not in PROVIDERS:
        raise ModelSpecError(
            f"model spec {text!r}: unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}"
        )
    return ModelSpec(provider, name.strip())


def register_scripted(family: str, *names: str) -> None:
    """Declare the scripted baselines of a scenario family of your own, so that
    ``--model scripted:NAME`` accepts them (``noisy-P`` stands for any ``P`` in [0, 1]).

    Call it where pytest reads it before the run starts: a ``conftest.py`` at the rootdir or
    a plugin module.
    """
    if not family or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError("register_scripted(family, *names) needs a family and non-empty names")
    known = SCRIPTED_AGENTS.get(family, ())
    SCRIPTED_AGENTS[family] = (*known, *(n.strip() for n in names if n.strip() not in known))


def scripted_names() -> list[str]:
    """Every registered scripted name, sorted (``noisy-P`` as written)."""
    return sorted({n for names in SCRIPTED_AGENTS.values() for n in names})


def _check_scripted(name: str) -> None:
    names = scripted_names()
    if name in names:
        return
    if name.startswith(NOISY_PREFIX) and f"{NOISY_PREFIX}P" in names:
        try:
            noise_level(name)
        except ValueError as exc:
            raise ModelSpecError(f"model spec {exc}") from None
        return
    raise ModelSpecError(
        f"model spec scripted:{name}: no scenario family has a scripted agent {name!r}; "
        f"scripted names: {', '.join(names)}"
    )


def check_model_spec(text: str | ModelSpec) -> ModelSpec:
    """Parse a spec and check it can name a model on this machine, before anything runs.

    ``scripted:NAME`` must be a registered baseline (:data:`SCRIPTED_AGENTS`); ``hf:PATH`` a
    model or adapter directory that exists, unless it reads as a hub id such as
    ``Qwen/Qwen2-0.5B`` (``/``, ``./``, ``../`` and ``~`` paths must exist); ``replay:FILE`` a
    file. ``openai:MODEL`` is not checked: only the server knows its models. Nothing is loaded.

    Raises:
        ModelSpecError: one line naming the spec and what is wrong with it.
    """
    spec = text if isinstance(text, ModelSpec) else parse_model_spec(text)
    if spec.provider == "scripted":
        _check_scripted(spec.name)
    elif spec.provider == "hf":
        from ._hf import resolve_hf_model

        try:
            resolve_hf_model(spec.name)
        except ValueError as exc:
            message = str(exc) if str(exc).startswith(str(spec)) else f"{spec}: {exc}"
            raise ModelSpecError(f"model spec {message}") from None
    elif spec.provider == "replay":
        from ._replay import POOL_NAME

        if spec.name != POOL_NAME and not Path(spec.name).is_file():
            raise ModelSpecError(
                f"model spec {spec}: the completion file {spec.name} does not exist"
                if not Path(spec.name).exists()
                else f"model spec {spec}: {spec.name} is not a file"
            )
    return spec


@dataclass(frozen=True)
class Agent:
    """The model behind the ``agent`` fixture. Scenario families adapt it to their own policy."""

    spec: ModelSpec
    seed: int = 0
    cache: str = "off"  # --teach-cache: off | record | replay
    cache_dir: str | None = None

    @property
    def provider(self) -> str:
        """``scripted``, ``openai``, ``hf`` or ``replay``."""
        return self.spec.provider

    @property
    def name(self) -> str:
        """The part after the provider: ``oracle``, ``noisy-0.3``, a model id or a path."""
        return self.spec.name

    def chat(self) -> ChatModel:
        """The chat model behind an ``openai:``, ``hf:`` or ``replay:`` spec, with the run's
        ``--teach-cache`` mode: ``agent.chat().complete(messages)`` returns a
        :class:`~pytest_teach.agents.Completion` (text, tokens, latency, cost).

        Raises:
            ValueError: a ``scripted:`` spec; scripted agents are the test's own baselines.
        """
        from ._chat import chat_model

        return chat_model(self.spec, cache=self.cache, cache_dir=self.cache_dir)

    def __str__(self) -> str:
        return str(self.spec)
