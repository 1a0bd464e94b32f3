"""The HTML report: run summary, dataset balance, A/B verdict, per-scenario table, charts and
failure details in one self-contained, offline file.

Import it lazily (the pytest plugin does): it loads jinja2.
"""

from ..redaction import REDACTED, redact
from ._html import BALANCE_BAND, build_report, write_report

__all__ = ["BALANCE_BAND", "REDACTED", "build_report", "redact", "write_report"]
