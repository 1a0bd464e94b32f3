"""Exports: the store's episodes as training data (openai, sft, dpo, grpo, interventions,
stories)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..redaction import redact_value
from ..store import Store
from ._empty import closest_scenarios, why_empty
from ._formats import (
    EXPORTERS,
    Exporter,
    ExportError,
    ExportResult,
    NothingToExport,
    atomic_write_text,
)
from ._steps import BAD_RATING, GOOD_RATING, corrections, prompt_of, reply_of, text_of, verdict
from ._steps import _run_rating as run_rating
from ._stories import StoriesExporter

EXPORTERS[StoriesExporter.name] = StoriesExporter

__all__ = [
    "BAD_RATING",
    "EXPORTERS",
    "ExportError",
    "ExportResult",
    "Exporter",
    "GOOD_RATING",
    "NothingToExport",
    "atomic_write_text",
    "closest_scenarios",
    "corrections",
    "export",
    "prompt_of",
    "reply_of",
    "run_rating",
    "text_of",
    "verdict",
]


def export(
    store: Store, fmt: str, out: str | Path, *, allow_empty: bool = True, **filters: Any
) -> ExportResult:
    """Export the episodes matching ``filters`` (see :meth:`Store.episodes`) as ``fmt`` to ``out``.

    Episodes whose outcome is ``error`` (infrastructure failures) are left out unless
    ``include_errors=True``.

    Raises:
        NothingToExport: no rows and ``allow_empty`` is false; ``out`` is left as it was and the
            message says why (an empty store, the filters, or the scenario names nearest a glob
            that matched none).
    """
    if fmt not in EXPORTERS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORTERS)}")
    exporter = EXPORTERS[fmt]()
    chosen = {k: v for k, v in filters.items() if v is not None}
    chosen.setdefault("include_errors", False)
    merged = {**exporter.default_filters, **chosen}
    context = redact_value(
        {"db": store.location, "filters": {k: str(v) for k, v in chosen.items()}}
    )
    try:
        return exporter.write(store.episodes(**merged), Path(out), context, allow_empty=allow_empty)
    except NothingToExport as exc:
        raise NothingToExport(f"{exc}: {why_empty(store, fmt, merged)}") from None
