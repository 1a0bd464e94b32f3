"""A sharded ``--ab`` run comes back together: the tool-selection suite under
``--ab scripted:noisy-0.3,scripted:oracle`` as three pytest-split groups in separate processes,
their stores merged (or written into one PostgreSQL store), judged by ``teach compare`` with the
two models as sides: the same verdict and the same paired counts as the run in one piece."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_teach import open_store
from pytest_teach.cli import cli

from .conftest import REPO

SUITE = REPO / "scenarios" / "tool_selection"
BASELINE, CANDIDATE = "scripted:noisy-0.3", "scripted:oracle"
SHARDS = 3
#: How long one pytest process may take before the test gives up on it, in seconds.
RUN_TIMEOUT_S = 300

# the A/B section pytest prints at the end of a session
_PAIRED = re.compile(r"paired on (\d+) scenarios: B wins (\d+), loses (\d+), ties (\d+)")
_MCNEMAR = re.compile(r"\(only A passed (\d+), only B passed (\d+)\)")
_VERDICT = re.compile(r"verdict for B \(([^)]*)\): (APPROVE|REJECT)")


@dataclass(frozen=True)
class Judgement:
    """What a comparison decided: the verdict, the winner and the paired counts."""

    verdict: str
    winner: str | None
    pairs: int
    wins: int
    losses: int
    ties: int
    only_a: int  # discordant pairs: passed under A only
    only_b: int  # and under B only
    regressions: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict) -> Judgement:
        """From ``teach compare --json``."""
        return cls(
            verdict=data["verdict"],
            winner=data["winner"],
            pairs=data["pairs"],
            wins=data["wins"],
            losses=data["losses"],
            ties=data["ties"],
            only_a=data["only_baseline_passed"],
            only_b=data["only_candidate_passed"],
            regressions=tuple(data["regressions"]),
        )


def _pytest(db: str | Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "pytest", str(SUITE), "--ab", f"{BASELINE},{CANDIDATE}",
        "--collect-training-data", "--teach-db", str(db), "-q", "-p", "no:cacheprovider", *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):
        env.pop(name, None)
    return env


def _run_all(commands: Sequence[list[str]], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    """Run the commands at once, as the jobs of a CI matrix do; each within RUN_TIMEOUT_S."""
    procs = [
        subprocess.Popen(
            cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for cmd in commands
    ]
    done = []
    try:
        for cmd, proc in zip(commands, procs, strict=True):
            try:
                out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{' '.join(cmd)} still running after {RUN_TIMEOUT_S}s")
            done.append(subprocess.CompletedProcess(cmd, proc.returncode, out, None))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done


def _shard(k: int, db: str | Path) -> list[str]:
    # least_duration deals the items out in name order, one group after the other: the two arms
    # of a scenario (adjacent names) always land in different groups, the hardest case
    return _pytest(
        db, "--splits", str(SHARDS), "--group", str(k), "--splitting-algorithm", "least_duration"
    )


def _run_shards(cwd: Path, dbs: Sequence[str | Path]) -> None:
    results = _run_all([_shard(k, db) for k, db in enumerate(dbs, 1)], cwd)
    for k, result in enumerate(results, 1):
        # exit 1: the noisy arm's failures are the data; anything else is a broken run
        assert result.returncode == 1, f"shard {k}: exit {result.returncode}\n{result.stdout}"
        assert f"Running group {k}/{SHARDS}" in result.stdout, result.stdout


def _teach(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout


def _compare(db: str | Path) -> tuple[int, Judgement]:
    """``teach compare --gate --json`` with the two models as sides, over every session."""
    code, out = _teach(
        "compare", "--db", str(db), "--baseline", BASELINE, "--candidate", CANDIDATE,
        "--gate", "--json",
    )  # fmt: skip
    assert code in (0, 1), out
    return code, Judgement.from_json(json.loads(out))


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Judgement, int, Judgement]:
    """The suite in one process with ``--ab-gate``: the A/B section pytest printed, its exit
    status, and ``teach compare`` on its store."""
    cwd = tmp_path_factory.mktemp("unsharded")
    db = cwd / "experience.db"
    (result,) = _run_all([_pytest(db, "--ab-gate")], cwd)
    out = result.stdout
    paired, mcnemar, verdict = _PAIRED.search(out), _MCNEMAR.search(out), _VERDICT.search(out)
    assert paired and mcnemar and verdict, out
    winner = re.search(r"^winner: (.+)$", out, re.M)
    assert winner, out
    printed = Judgement(
        verdict=verdict.group(2),
        winner=None if winner.group(1) == "no significant difference" else winner.group(1),
        pairs=int(paired.group(1)),
        wins=int(paired.group(2)),
        losses=int(paired.group(3)),
        ties=int(paired.group(4)),
        only_a=int(mcnemar.group(1)),
        only_b=int(mcnemar.group(2)),
    )
    _, stored = _compare(db)
    return printed, result.returncode, stored


def _same_judgement(sharded: Judgement, printed: Judgement, stored: Judgement) -> None:
    assert stored.regressions == sharded.regressions
    assert printed.regressions == ()  # the printed section lists them only on a REJECT
    assert sharded == stored
    assert (sharded.verdict, sharded.winner, sharded.pairs) == (
        printed.verdict,
        printed.winner,
        printed.pairs,
    )
    assert (sharded.wins, sharded.losses, sharded.ties, sharded.only_a, sharded.only_b) == (
        printed.wins,
        printed.losses,
        printed.ties,
        printed.only_a,
        printed.only_b,
    )


def _split_arms(dbs: Sequence[Path]) -> int:
    """How many scenarios ran their A arm in one shard and their B arm in another."""
    where: dict[tuple[str, str], int] = {}
    for k, db in enumerate(dbs):
        with open_store(db) as store:
            for episode in store.episodes():
                where[(episode.model or "", episode.scenario)] = k
    scenarios = {scenario for _, scenario in where}
    return sum(
        1
        for s in scenarios
        if (BASELINE, s) in where
        and (CANDIDATE, s) in where
        and where[(BASELINE, s)] != where[(CANDIDATE, s)]
    )


def test_unsharded_reference_is_a_real_difference(unsharded) -> None:
    """The run in one piece finds the oracle better on a good share of the suite: the sharded
    comparisons below have discordant pairs to get right."""
    printed, exit_status, stored = unsharded
    assert printed.verdict == "APPROVE" and exit_status == 0  # --ab-gate: the verdict is the exit
    assert printed.winner == CANDIDATE
    assert printed.pairs > 200 and printed.only_b > 50 and printed.only_a == 0
    assert printed.wins + printed.losses + printed.ties == printed.pairs
    _same_judgement(stored, printed, stored)


def test_three_sqlite_shards_merged_judge_as_one_run(unsharded, tmp_path: Path) -> None:
    """Three groups, each with its own SQLite file, merged with ``teach store merge``: the
    gate and the paired counts over the union equal the unsharded run's, though no shard held
    both arms of any scenario."""
    printed, exit_status, stored = unsharded
    dbs = [tmp_path / f"shard-{k}" / "experience.db" for k in range(1, SHARDS + 1)]
    _run_shards(tmp_path, dbs)

    split = _split_arms(dbs)
    assert split == printed.pairs  # every pair straddles two shards
    for db in dbs:  # so one shard alone can't judge anything
        with open_store(db) as store:
            assert 0 < store.stats()["episodes"] < 2 * printed.pairs

    merged = tmp_path / "merged.db"
    code, out = _teach("store", "merge", *map(str, dbs), "--into", str(merged))
    assert code == 0 and "no conflicts" in out, out
    gate, judgement = _compare(merged)
    assert gate == exit_status == 0
    _same_judgement(judgement, printed, stored)

    # one shard's store alone judges a different, smaller comparison
    _, alone = _compare(dbs[0])
    assert alone.pairs == 0 and alone.verdict == "REJECT"


def test_three_shards_into_one_postgresql_store_judge_as_one_run(unsharded, pg_url: str, tmp_path):
    """The three groups write into one PostgreSQL store at the same time: ``teach compare`` on
    it gives the unsharded run's verdict and paired counts, and each group is its own session."""
    printed, exit_status, stored = unsharded
    _run_shards(tmp_path, [pg_url] * SHARDS)

    with open_store(pg_url) as store:
        sessions = store.sessions()
        assert len(sessions) == SHARDS
        assert store.stats()["episodes"] == 2 * printed.pairs
    gate, judgement = _compare(pg_url)
    assert gate == exit_status == 0
    _same_judgement(judgement, printed, stored)
