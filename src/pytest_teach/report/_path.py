"""Where a report may be written: never over a file that pytest-teach did not write."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPORT_GENERATOR", "ReportPathError", "check_report_path", "is_report"]

#: the tag every report carries in its ``<head>``; only a file holding it is ever replaced
REPORT_GENERATOR = b'<meta name="generator" content="pytest-teach">'
_SUFFIXES = (".html", ".htm")


class ReportPathError(ValueError):
    """A report path that must not be written; ``kind`` is ``directory``, ``suffix``,
    ``foreign`` (an existing file that is not a report) or ``parent`` (a file in the way)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def is_report(path: Path) -> bool:
    """Whether ``path`` is a file a pytest-teach report was written to (its generator tag)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError:
        return False
    return path.is_file() and REPORT_GENERATOR in head


def check_report_path(value: str | os.PathLike[str]) -> Path:
    """``value`` as an absolute path a report may be written to.

    Raises:
        ReportPathError: a directory, a path not ending in ``.html``, an existing file that is
            not a pytest-teach report, or a parent that is a file (one line naming it).
    """
    path = Path(os.path.expanduser(value)).resolve()
    if path.is_dir():
        raise ReportPathError(
            f"{path} is a directory; give a file such as {Path(value) / 'report.html'}",
            "directory",
        )
    if path.suffix.lower() not in _SUFFIXES:
        raise ReportPathError(f"{path}: the report path must end in .html", "suffix")
    if path.exists() and not is_report(path):
        raise ReportPathError(
            f"{path} exists and is not a pytest-teach report; it is never overwritten: "
            "choose another path or remove it",
            "foreign",
        )
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ReportPathError(f"{blocker} is a file, not a directory", "parent")
    return path
