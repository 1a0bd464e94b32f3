"""The model providers, by the prefix of a model spec, each mapped to where its class lives.

A provider registers a loader whose body imports its class, so the registry imports nothing
until a spec is built (``openai`` → ``from ._openai import OpenAIChat``). ``scripted`` has no
chat class: scripted agents come from each scenario family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._chat import ChatModel

__all__ = ["PROVIDERS", "Provider", "model_provider"]

Loader = Callable[[], "type[ChatModel]"]


@dataclass(frozen=True)
class Provider:
    """A spec prefix and the loader of its :class:`~pytest_teach.agents.ChatModel` class
    (``None`` for ``scripted``, whose agents are each family's own)."""

    name: str
    loader: Loader | None = None

    @property
    def chat(self) -> bool:
        """Whether the provider builds a chat model (every one but ``scripted``)."""
        return self.loader is not None

    def load(self) -> type[ChatModel]:
        """Import and return the provider's chat-model class.

        Raises:
            ValueError: a provider without a chat model (``scripted``).
        """
        if self.loader is None:
            raise ValueError(f"the {self.name} provider has no chat model")
        return self.loader()


#: Every spec prefix, in the order the docs list them: ``scripted``, ``openai``, ``hf``,
#: ``replay``.
PROVIDERS: dict[str, Provider] = {"scripted": Provider("scripted")}


def model_provider(name: str) -> Callable[[Loader], Loader]:
    """Register the decorated loader as the chat provider behind ``NAME:`` specs.

    The loader takes no argument and returns the provider's
    :class:`~pytest_teach.agents.ChatModel` subclass, importing it in its body so that nothing
    is loaded before a spec asks for it::

        @model_provider("mine")
        def mine() -> type[ChatModel]:
            from my_package.chat import MyChat

            return MyChat
    """
    if not name or ":" in name or name != name.strip():
        raise ValueError(f"a provider name is a non-empty word without ':'; got {name!r}")

    def register(loader: Loader) -> Loader:
        PROVIDERS[name] = Provider(name, loader)
        return loader

    return register


@model_provider("openai")
def _openai() -> type[ChatModel]:
    from ._openai import OpenAIChat

    return OpenAIChat


@model_provider("hf")
def _hf() -> type[ChatModel]:
    from ._hf import HFChat

    return HFChat


@model_provider("replay")
def _replay() -> type[ChatModel]:
    from ._replay import ReplayChat

    return ReplayChat
