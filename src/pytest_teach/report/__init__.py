"""The HTML report: run summary, dataset balance, A/B verdict, per-scenario table, charts and
failure details in one self-contained, offline file; and the store's counts and feedback as
terminal text.

Import it lazily (the pytest plugin does): it loads jinja2.
"""

from ..redaction import REDACTED, redact
from ._html import BALANCE_BAND, build_report, write_report
from ._html import _as_text as as_text
from ._html import _clip as clip
from ._html import _finalize as finalize
from ._html import _media_type as image_media_type
from ._path import REPORT_GENERATOR, ReportPathError, check_report_path, is_report
from ._store import StoreReport, report_store
from ._text import render_feedback, render_stats
from ._title import RUN_NAME_CHARS, run_name

__all__ = [
    "BALANCE_BAND",
    "REDACTED",
    "REPORT_GENERATOR",
    "RUN_NAME_CHARS",
    "ReportPathError",
    "StoreReport",
    "as_text",
    "build_report",
    "check_report_path",
    "clip",
    "finalize",
    "image_media_type",
    "is_report",
    "redact",
    "render_feedback",
    "render_stats",
    "report_store",
    "run_name",
    "write_report",
]
