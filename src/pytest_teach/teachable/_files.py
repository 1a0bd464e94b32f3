"""Reading and writing the teachable phases' files: JSONL rows checked field by field (errors
name the file, line and field), outputs written atomically, and the per-snapshot checkpoint
that labeling appends to.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .._util import atomic_write_lines, atomic_write_text, json_line

__all__ = [
    "TeachableError",
    "append_checkpoint",
    "clear_output_folder",
    "read_checkpoint",
    "read_json",
    "read_rows",
    "require",
    "resume_checkpoint",
    "write_csv",
    "write_json",
    "write_rows",
]


class TeachableError(ValueError):
    """Bad input to a teachable phase; the message names the file, line and field."""


def clear_output_folder(path: Path, *, force: bool) -> None:
    """Make way for a phase that fills the folder ``path``: a missing or empty folder is left
    alone; a folder with files in it is removed with ``force``, else refused.

    Raises:
        TeachableError: ``path`` holds files and ``force`` is false.
    """
    if path.exists() and any(path.iterdir()):
        if not force:
            raise TeachableError(f"--output {path} is not empty; pass --force to replace it")
        shutil.rmtree(path)


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write JSONL rows atomically (a temporary file renamed into place); return the count."""
    return atomic_write_lines(path, (json_line(r, sort_keys=True) for r in rows))


def write_csv(path: Path, header: list[str], rows: Iterable[dict[str, Any]]) -> int:
    """Write a CSV table atomically (floats to 4 decimals, ``None`` empty); return the rows."""
    import csv
    import io

    def cell(value: Any) -> Any:
        if value is None:
            return ""
        return f"{value:.4f}" if isinstance(value, float) else value

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow([cell(row.get(k)) for k in header])
        count += 1
    atomic_write_text(path, buffer.getvalue())
    return count


def write_json(path: Path, data: Any) -> None:
    """Write a JSON document atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    """A JSON document; :class:`TeachableError` naming the file when missing or malformed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TeachableError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TeachableError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise TeachableError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None


def read_rows(path: Path, *, what: str = "rows") -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for each non-blank line (``where`` is ``"FILE line N"``).

    Raises:
        TeachableError: a missing file, a line that isn't a JSON object, or no rows at all.
    """
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise TeachableError(f"{path}: no such file") from None
    except OSError as exc:
        raise TeachableError(f"{path}: cannot read ({exc.strerror or exc})") from None
    seen = False
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TeachableError(
                    f"{where}: not JSON ({exc.msg} at column {exc.colno})"
                ) from None
            if not isinstance(row, dict):
                raise TeachableError(f"{where}: expected a JSON object, got {type(row).__name__}")
            seen = True
            yield where, row
    if not seen:
        raise TeachableError(f"{path}: no {what}")


def require(row: dict[str, Any], field: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``row[field]``, checked to be of ``kind`` (``bool`` is never taken for a number)."""
    if field not in row:
        raise TeachableError(f"{where}: missing field {field!r}")
    value = row[field]
    numeric = kind in (int, float) or (isinstance(kind, tuple) and float in kind)
    if (isinstance(value, bool) and numeric) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TeachableError(f"{where}: field {field!r} must be {names}, got {value!r}"[:300])
    return value


def append_checkpoint(path: Path, row: dict[str, Any]) -> None:
    """Append one finished row to a checkpoint file and make it durable before returning."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json_line(row, sort_keys=True))
        fh.flush()
        os.fsync(fh.fileno())


def read_checkpoint(path: Path) -> list[dict[str, Any]]:
    """The rows of a checkpoint. A torn last line (an interrupted append) is cut off the file;
    a malformed line before it is an error naming the line."""
    if not path.exists():
        return []
    data = path.read_bytes()
    rows: list[dict[str, Any]] = []
    good = 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            good += len(line) + 1
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except ValueError:
            if number == len(lines):  # the last, unterminated line: an interrupted write
                with path.open("r+b") as fh:
                    fh.truncate(good)
                break
            raise TeachableError(f"{path} line {number}: corrupt checkpoint row") from None
        rows.append(row)
        good += len(line) + 1
    return rows


def resume_checkpoint(
    checkpoint: Path, config_file: Path, config: dict[str, Any], *, restart: bool, what: str
) -> list[dict[str, Any]]:
    """The rows a checkpoint already holds, when they were made with ``config`` (kept in
    ``config_file``); ``restart`` discards them first.

    Raises:
        TeachableError: the checkpoint holds ``what`` made with other settings.
    """
    if restart:
        checkpoint.unlink(missing_ok=True)
    done = read_checkpoint(checkpoint)
    if done and config_file.exists():
        before = read_json(config_file)
        changed = sorted(k for k in set(before) | set(config) if before.get(k) != config.get(k))
        if changed:
            raise TeachableError(
                f"{checkpoint} holds {len(done)} {what} made with other settings "
                f"({', '.join(changed)}); pass --restart to start over or another --output"
            )
    config_file.parent.mkdir(parents=True, exist_ok=True)
    write_json(config_file, config)
    return done
