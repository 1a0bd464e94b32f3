"""Model specs: ``scripted:NAME``, ``openai:MODEL``, ``hf:PATH_OR_ID``."""

from __future__ import annotations

from dataclasses import dataclass

PROVIDERS = ("scripted", "openai", "hf", "replay")


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


@dataclass(frozen=True)
class Agent:
    """The model behind the ``agent`` fixture. Scenario families adapt it to their own policy."""

    spec: ModelSpec
    seed: int = 0
    cache: str = "off"  # --teach-cache: off | record | replay
    cache_dir: str | None = None

    @property
    def provider(self) -> str:
        """``scripted``, ``openai`` or ``hf``."""
        return self.spec.provider

    @property
    def name(self) -> str:
        """The part after the provider: ``oracle``, ``noisy-0.3``, a model id or a path."""
        return self.spec.name

    def __str__(self) -> str:
        return str(self.spec)
