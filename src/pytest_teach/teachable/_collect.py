"""Phase 0's rollouts: the gridworld suite run by pytest with ``--collect-training-data``.

Each run is a fresh ``python -m pytest`` process (the run a user would type, offline, its
output kept in a log), and the session it recorded is read back from the store. The process
inherits the environment, ``OMP_NUM_THREADS`` included (the ``teach teachable`` verbs set it
from ``--threads``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._progress import Echo, Progress
from ..loop import new_session, recorded_sessions, run_suite
from ._files import TeachableError

__all__ = ["Collection", "Rollouts", "collect"]


@dataclass(frozen=True)
class Rollouts:
    """Which tasks to run, and how: ``seeds`` per level from ``seed_start``."""

    levels: tuple[str, ...]
    seeds: int
    seed_start: int = 0
    max_steps: int = 24
    mock: bool = False

    def args(self) -> list[str]:
        """The ``--minigrid-*`` options that select these tasks."""
        args = [
            "--minigrid-levels",
            ",".join(self.levels),
            "--minigrid-seeds",
            str(self.seeds),
            "--minigrid-seed-start",
            str(self.seed_start),
            "--minigrid-max-steps",
            str(self.max_steps),
        ]
        return [*args, "--minigrid-mock"] if self.mock else args


@dataclass(frozen=True)
class Collection:
    """A recorded rollout session."""

    session: str
    episodes: int
    failures: int
    log: Path


def collect(
    suite: str | Path,
    db: Path | str,
    model: str,
    rollouts: Rollouts,
    log: Path,
    *,
    extra: Sequence[str] = (),
    echo: Echo | None = None,
    prefix: str = "",
) -> Collection:
    """Run the suite under ``model`` with collection on; return the session it recorded.

    With ``echo``, the tests run are shown as they finish (a bar on a terminal, about ten
    lines starting with ``prefix`` otherwise).

    Raises:
        TeachableError: the suite is missing, or pytest failed for another reason than
            failing scenarios (the log has the details).
    """
    if not Path(suite).exists():
        raise TeachableError(f"suite {suite} does not exist; pass --suite scenarios/minigrid")
    from ..store import prepare_store

    prepare_store(db)
    log.parent.mkdir(parents=True, exist_ok=True)
    before = recorded_sessions(db)
    args = [
        str(suite),
        "--model",
        model,
        "--collect-training-data",
        "--teach-db",
        str(db),
        *rollouts.args(),
        *extra,
        "-q",
        "--tb=no",
        "-p",
        "no:cacheprovider",
    ]
    with Progress(None, unit="test", echo=echo, prefix=prefix, every=None) as progress:
        run = run_suite(args, log, progress if echo is not None else None)
    if run.returncode not in (0, 1):
        raise TeachableError(
            f"the rollouts under {model} failed (pytest exit {run.returncode}): "
            f"{run.last_line()}; see {log}"
        )
    session = new_session(db, before, "--collect-training-data")
    from ..store import Store

    with Store.open(db, create=False) as store:
        episodes = store.count(session=session)
        failures = store.count(session=session, outcome="intervention")
    return Collection(session, episodes, failures, log)
