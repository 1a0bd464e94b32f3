"""Atomic file writes (a temporary file beside the target, renamed into place) and the JSON
Lines row writer."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "NothingWritten",
    "WriteError",
    "atomic_write_dir",
    "atomic_write_lines",
    "atomic_write_text",
    "json_line",
]


class WriteError(OSError):
    """A file could not be written; what was there before is left as it was."""


class NothingWritten(ValueError):
    """There were no lines and an empty file was not allowed; nothing was written."""


_LINE_BREAKS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(
    row: Any, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None
) -> str:
    """One compact JSON Lines row, newline included. Unicode stays readable, but the characters
    that ``str.splitlines`` and some JSONL readers treat as line breaks (U+0085, U+2028,
    U+2029) are escaped, so one row is always one line. ``sort_keys`` and ``default`` are
    :func:`json.dumps`'s."""
    text = json.dumps(
        row, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys, default=default
    )
    return text.translate(_LINE_BREAKS) + "\n"


def _temp_beside(target: Path, *, directory: bool = False) -> Path:
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        if directory:
            return Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        return Path(name)
    except OSError as exc:
        raise WriteError(f"cannot write {target}: {exc.strerror or exc}") from None


def atomic_write_lines(target: Path, lines: Iterable[str], *, allow_empty: bool = True) -> int:
    """Write ``lines`` to a temporary file beside ``target`` (synced), then rename it into
    place; return how many lines were written.

    Raises:
        NothingWritten: there were no lines and ``allow_empty`` is false (``target`` is left as
            it was).
        WriteError: ``target`` can't be written (it is a directory, its folder is read-only,
            the disk is full ...); ``target`` is left as it was.
    """
    target = Path(target)
    if target.is_dir():
        raise WriteError(f"cannot write {target}: it is a directory")
    tmp = _temp_beside(target)
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line)
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        if count == 0 and not allow_empty:
            raise NothingWritten(f"nothing written to {target}")
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise WriteError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
    return count


def atomic_write_text(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically.

    Raises:
        WriteError: ``target`` can't be written; it is left as it was.
    """
    atomic_write_lines(Path(target), [text])


def atomic_write_dir(target: Path, files: Mapping[str, str]) -> None:
    """Write a directory of text files (``{name: text}``); an existing ``target`` directory is
    replaced only once every file is written.

    Raises:
        WriteError: ``target`` exists and is not a directory, or can't be written; it is left
            as it was.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise WriteError(f"cannot write {target}: it exists and is not a directory")
    tmp = _temp_beside(target, directory=True)
    old: Path | None = None
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
            os.replace(target, old)
        os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            os.replace(old, target)
        raise WriteError(f"cannot write {target}: {exc.strerror or exc}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
