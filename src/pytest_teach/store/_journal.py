"""Per-process journals: how the plugin records cheaply without giving up crash safety.

Each finished test is appended to the process's journal with a single ``write`` (it survives
the process being killed), and episodes reach SQLite in batches. After a batch is committed the
journal is emptied. A journal left behind by a killed worker is replayed into the store by the
controller at the end of the session, or by the next session; replay is idempotent, so nothing
is ever stored twice, and a half-written last line (the test in flight) is dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._codec import dumps
from ._models import Episode, Label, Step
from ._store import ArtifactRef, Store

SUFFIX = ".journal"
#: Tries to create a journal whose folder other processes keep removing (see Journal.close).
_OPEN_ATTEMPTS = 20


def journal_dir(store: Store) -> Path:
    """Where the journals of ``store`` live: ``<db>.journals/`` beside a SQLite file; for a
    PostgreSQL store, a folder of this machine's cache named after the database (never after
    its password)."""
    if store.path is not None:
        return store.path.with_name(store.path.name + ".journals")
    import hashlib

    import platformdirs

    key = hashlib.sha256(store.location.encode("utf-8")).hexdigest()[:16]
    return platformdirs.user_cache_path("pytest-teach") / "journals" / key


def _to_record(episode: Episode, artifacts: Sequence[ArtifactRef]) -> dict[str, Any]:
    # fields already hold JSON-ready values, so a shallow copy suffices (asdict deep-copies)
    data = dict(vars(episode))
    data["steps"] = [vars(s) for s in episode.steps]
    data["labels"] = [vars(lb) for lb in episode.labels]
    data["feedback"] = []
    return {"episode": data, "artifacts": [list(a) for a in artifacts]}


def _from_record(record: dict[str, Any]) -> tuple[Episode, list[ArtifactRef]]:
    data = dict(record["episode"])
    data["steps"] = [Step(**s) for s in data.get("steps", [])]
    data["labels"] = [Label(**lb) for lb in data.get("labels", [])]
    data["feedback"] = []
    return Episode(**data), [ArtifactRef(*a) for a in record.get("artifacts", [])]


class Journal:
    """One process's append-only journal file."""

    def __init__(self, store: Store, session_id: str, worker: str | None) -> None:
        directory = journal_dir(store)
        self.path = directory / f"{session_id}-{worker or 'main'}-{os.getpid()}{SUFFIX}"
        for attempt in range(_OPEN_ATTEMPTS):
            try:
                directory.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                break
            except (FileNotFoundError, FileExistsError):
                # another process closed the folder's last journal and removed the folder
                # while we made it or opened our journal in it: make it again
                if attempt == _OPEN_ATTEMPTS - 1:
                    raise

    def append(self, episode: Episode, artifacts: Sequence[ArtifactRef]) -> None:
        """Append one episode in a single write."""
        line = dumps(_to_record(episode, artifacts)) + "\n"
        os.write(self._fd, line.encode("utf-8"))

    def clear(self) -> None:
        """Empty the journal once its episodes are committed to the store."""
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        """Close and remove the journal (call after the last commit)."""
        os.close(self._fd)
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # other processes may still have journals there
            self.path.parent.rmdir()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def replay(store: Store, *, session_id: str | None = None) -> int:
    """Replay journals into ``store``: this session's, and any whose process is gone.

    Returns the number of episodes that were new to the store. Each replayed journal is removed.
    """
    directory = journal_dir(store)
    if not directory.is_dir():
        return 0
    recovered = 0
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        stem = path.name[: -len(SUFFIX)]
        owner, _, pid_text = stem.rpartition("-")
        ours = session_id is not None and owner.startswith(f"{session_id}-")
        if not ours and pid_text.isdigit() and _pid_alive(int(pid_text)):
            continue  # a live run elsewhere is still writing it
        episodes: list[Episode] = []
        artifacts: list[ArtifactRef] = []
        with path.open("rb") as fh:
            for raw in fh:
                try:
                    episode, refs = _from_record(json.loads(raw))
                except (ValueError, TypeError, KeyError):
                    continue  # the line being written when the process died
                episodes.append(episode)
                artifacts.extend(refs)
        if episodes:
            recovered += store.write_episodes(episodes, artifacts)
        path.unlink(missing_ok=True)
    return recovered
