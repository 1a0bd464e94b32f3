"""The reward pool on Ray: actors holding warm pytest sessions, on a real local cluster."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'pytest-teach[ray]'")

from pytest_teach.cli import cli as teach  # noqa: E402
from pytest_teach.envs import tool_selection as ts  # noqa: E402
from pytest_teach.pipeline import SuiteSource  # noqa: E402
from pytest_teach.rewards import (  # noqa: E402
    RayRewardPool,
    RewardPool,
    RewardPoolError,
    reward_pool,
)

ROOT = Path(__file__).resolve().parents[1]

SUITE = """
import os
import signal
import sys
import time

import pytest

from pytest_teach import Reward
from pytest_teach.agents import chat_model


@pytest.mark.parametrize("target", ["alpha", "beta"])
def test_echo(target, agent, episode):
    reply = chat_model(agent.spec).complete([{"role": "user", "content": f"say {target}"}]).text
    if reply == "slow":
        time.sleep(30)
    if reply == "stuck":  # a check the alarm can't interrupt
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(30)
    if reply == "exit":
        sys.exit(3)
    if reply == "die":
        os._exit(3)
    if reply == "hold":  # note this process, then wait to be killed
        with open("held.pid", "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(60)
    if reply == "boom":
        raise RuntimeError("the check crashed")
    if reply.startswith("secret "):  # a key in the check's output, and a line to find it by
        print(f"calling with Authorization: Bearer {reply.split()[1]} end-{target}", flush=True)
    hit = 1.0 if target in reply else 0.0
    episode.reward(Reward.of({"hit": hit, "short": float(len(reply) < 20)}, weights={"hit": 3}))
    assert hit, f"{target!r} not in {reply!r}"
"""


def echo(target: str) -> str:
    return f"test_suite.py::test_echo[{target}]"


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("suite")
    (root / "test_suite.py").write_text(textwrap.dedent(SUITE))
    return root


@pytest.fixture(scope="module")
def pool(cluster: None, suite: Path) -> Iterator[RayRewardPool]:
    with RayRewardPool(
        ["test_suite.py"], workers=2, timeout=1.0, kill_grace=1.0, cwd=suite
    ) as started:
        yield started


def test_ray_and_the_local_pool_give_identical_rewards_on_tool_selection(cluster: None) -> None:
    options = {"workers": 2, "pytest_args": ["-k", "weather"], "cwd": ROOT, "timeout": 30.0}
    suite = ["scenarios/tool_selection"]
    with reward_pool(suite, backend="ray", **options) as on_ray:
        assert isinstance(on_ray, RayRewardPool)
        tasks = on_ray.tasks()
        cases = {s.id: s for s in ts.SCENARIOS}
        requests = []
        for task in tasks:
            case = cases[task.nodeid.rsplit("[", 1)[1].rstrip("]")]
            requests += [
                (task.nodeid, ts.format_plan(list(case.expected))),
                (task.nodeid, ts.format_plan(["web_search"])),
                (task.nodeid, "not a plan"),
            ]
        ray_scores = on_ray.score(requests)
    with reward_pool(suite, backend="local", **options) as local:
        assert local.tasks() == tasks
        local_scores = local.score(requests)
    assert len(tasks) == len([s for s in ts.SCENARIOS if s.id.startswith("weather")])
    assert [(s.value, s.outcome, s.components) for s in ray_scores] == [
        (s.value, s.outcome, s.components) for s in local_scores
    ]
    assert {s.value for s in ray_scores[::3]} == {1.0}  # every correct plan earned the reward
    assert {s.value for s in ray_scores[2::3]} == {0.0}


def test_scores_keep_their_order_across_actors(pool: RayRewardPool) -> None:
    requests = [(echo(t), reply) for t in ("alpha", "beta") for reply in ("alpha", "beta")] * 5
    scores = pool.score(requests)
    assert [s.nodeid for s in scores] == [n for n, _ in requests]
    assert [s.value for s in scores] == [1.0 if n.endswith(f"[{r}]") else 0.25 for n, r in requests]


def test_a_timeout_or_an_exception_gives_none_and_the_actor_goes_on(pool: RayRewardPool) -> None:
    node = echo("alpha")
    slow, boom, exited, after = pool.score(
        [(node, "slow"), (node, "boom"), (node, "exit"), (node, "alpha")]
    )
    assert (slow.value, slow.outcome, slow.reason) == (None, "timeout", "the check ran past 1 s")
    assert (boom.value, boom.outcome) == (None, "error")
    assert "RuntimeError: the check crashed" in boom.reason
    assert (exited.value, exited.outcome) == (None, "crashed")
    assert exited.reason.startswith("crashed (exit 3)")
    assert after.value == 1.0
    assert pool.stats.none_reasons["timeout: the check ran past 1 s"] >= 1


def test_a_check_the_alarm_cannot_stop_costs_its_candidate_and_the_actor(
    pool: RayRewardPool,
) -> None:
    restarts = pool.stats.restarts
    stuck, after = pool.score([(echo("beta"), "stuck"), (echo("beta"), "beta")])
    assert (stuck.value, stuck.outcome) == (None, "timeout")
    assert stuck.reason == "the actor hung and was replaced: no answer in 2 s"
    assert after.value == 1.0
    assert pool.stats.restarts == restarts + 1


def test_a_check_that_ends_its_actor_is_crashed_and_the_rest_score(pool: RayRewardPool) -> None:
    restarts = pool.stats.restarts
    node = echo("alpha")
    before, died, *rest = pool.score([(node, "alpha"), (node, "die")] + [(node, "alpha")] * 4)
    assert before.value == 1.0
    assert (died.value, died.outcome) == (None, "crashed")
    assert "the actor died" in died.reason and "replaced" in died.reason
    assert [s.value for s in rest] == [1.0] * 4
    assert pool.stats.restarts == restarts + 1


def test_an_actor_killed_mid_check_costs_that_candidate_and_nothing_else(
    cluster: None, suite: Path
) -> None:
    held = suite / "held.pid"
    held.unlink(missing_ok=True)
    node = echo("beta")
    requests = [(node, "beta"), (node, "hold"), (node, "beta"), (node, "alpha"), (node, "beta")]
    with RayRewardPool(["test_suite.py"], workers=1, timeout=60.0, cwd=suite) as one:
        results: list = []
        scoring = threading.Thread(target=lambda: results.extend(one.score(requests)))
        scoring.start()
        deadline = time.monotonic() + 60
        while not held.exists() or not held.read_text():
            assert time.monotonic() < deadline, "the held check never started"
            time.sleep(0.05)
        os.kill(int(held.read_text()), signal.SIGKILL)
        scoring.join(120)
        assert not scoring.is_alive()
        assert [s.value for s in results] == [1.0, None, 1.0, 0.25, 1.0]
        assert results[1].outcome == "crashed"
        assert "the actor died" in results[1].reason
        assert one.stats.restarts == 1
        assert one.score([(node, "beta")])[0].value == 1.0  # the fresh actor serves on


def test_a_secret_a_check_printed_never_reaches_the_ray_logs(pool: RayRewardPool) -> None:
    key = "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e"
    (score,) = pool.score([(echo("alpha"), f"secret {key}")])
    assert score.outcome == "failed"  # the check ran (no "alpha" in the reply)
    logs = Path("/tmp/ray/session_latest/logs")  # Ray's default; the workers' output is here
    deadline = time.monotonic() + 30
    while True:  # the actor's output reaches its log file through the redaction thread
        texts = [f.read_text(errors="replace") for f in logs.glob("worker-*") if f.is_file()]
        found = [t for t in texts if "end-alpha" in t]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found, f"the check's output line never reached {logs}"
    assert all(key not in t for t in texts)
    assert any("Authorization: [REDACTED] end-alpha" in t for t in found)


def test_the_trl_reward_function_is_async_and_reports_flat_groups(pool: RayRewardPool) -> None:
    reward = pool.reward_func()
    assert inspect.iscoroutinefunction(reward)
    nodeids = [echo("alpha")] * 3 + [echo("beta")] * 3
    completions = ["alpha", "x", "alpha", "nope", "nope", "nope"]
    logged: dict[str, float] = {}
    values = asyncio.run(
        reward(
            prompts=[[]] * 6,
            completions=completions,
            nodeid=nodeids,
            log_metric=lambda k, v: logged.__setitem__(k, v),
        )
    )
    assert values == [1.0, 0.25, 1.0, 0.25, 0.25, 0.25]
    assert logged["checks/zero_variance_groups"] == 0.5
    assert (echo("beta"), 0.25) in pool.stats.zero_variance
    assert "groups with no reward variance: " in pool.stats.summary()


def test_an_unreachable_address_fails_at_once_in_one_line(suite: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = RayRewardPool(
        ["test_suite.py"], address=f"127.0.0.1:{port}", connect_timeout=3, cwd=suite
    )
    with pytest.raises(RewardPoolError) as caught:
        unreachable.start()
    message = str(caught.value)
    assert "\n" not in message
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in message
    assert "(waited up to 3 s)" in message


def test_teach_train_grpo_on_an_unreachable_ray_address_is_one_line(
    suite: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    out = ["train", "grpo", "-o", str(tmp_path / "model"), "--suite", str(suite)]
    result = runner.invoke(teach, [*out, "--reward-backend", "ray", "--ray-address", "127.0.0.1:1"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        "teach train grpo: error: cannot reach the Ray cluster at 127.0.0.1:1: "
        "Connection refused (waited up to 10 s)"
    ]
    assert not (tmp_path / "model").exists()
    lone = runner.invoke(teach, [*out, "--ray-address", "auto"])
    assert lone.exit_code != 0
    assert "--ray-address needs --reward-backend ray" in lone.output


def test_a_suite_source_on_ray_gives_prompts_rewards_and_a_report(
    cluster: None, suite: Path, tmp_path: Path
) -> None:
    import contextlib

    source = SuiteSource([str(suite / "test_suite.py")], "-k alpha", 1, 5.0, backend="ray")
    said: list[str] = []
    with contextlib.ExitStack() as stack:
        path, where = source.prepare(tmp_path, stack, echo=said.append)
        assert isinstance(source.pool, RayRewardPool)
        assert where["reward_backend"] == "ray" and where["tasks"] == 1
        assert "1 prompts captured by 1 reward worker(s) (Ray actors)" in said[0]
        assert '"say alpha"' in Path(path).read_text()
        nodeid = source.pool.nodeids[0]
        reward = source.reward_func()
        values = asyncio.run(reward([[]] * 2, ["alpha", "no"], [nodeid] * 2))
        assert values == [1.0, 0.25]
        assert source.report(echo=None)["scored"] == 2
    with pytest.raises(RewardPoolError, match="not started"):  # closed with the stack
        source.pool.score([(nodeid, "alpha")])


def test_the_backend_is_chosen_by_name(suite: Path) -> None:
    assert isinstance(reward_pool(["test_suite.py"], cwd=suite), RewardPool)
    ray_pool = reward_pool(["test_suite.py"], backend="ray", ray_address="auto", cwd=suite)
    assert isinstance(ray_pool, RayRewardPool) and ray_pool.address == "auto"
    with pytest.raises(RewardPoolError, match="unknown reward backend 'dask'"):
        reward_pool(["test_suite.py"], backend="dask", cwd=suite)
    with pytest.raises(RewardPoolError, match="needs the ray backend"):
        reward_pool(["test_suite.py"], ray_address="auto", cwd=suite)
