"""The reward pool on Ray: actors that each hold a warm pytest session over the suite.

Ray is imported when the pool starts, never before: ``pip install 'pytest-teach[ray]'``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import socket
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._base import KILL_GRACE_S, RewardPoolError, Score, ScoringPool, Task, completion_text, log

__all__ = ["RayRewardPool"]

#: Seconds the pool waits to open a connection to ``address`` before it gives up.
CONNECT_TIMEOUT_S = 10.0

#: Seconds past ``start_timeout`` the pool waits for an actor to be placed and answer.
PLACE_GRACE_S = 30.0

#: Seconds a stopping actor may take to tear its fixtures down before it is killed.
STOP_TIMEOUT_S = 10.0


class _Actor:
    """One actor as the pool sees it: its handle, the node id it ran last, its check count."""

    def __init__(self, index: int, handle: Any) -> None:
        self.index = index
        self.handle = handle
        self.current: str | None = None
        self.checks = 0
        self.lock = threading.Lock()


def _gcs_address(address: str) -> str | None:
    """The ``HOST:PORT`` that ``address`` (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) names,
    or ``None`` when ``auto`` has nothing to resolve to (Ray then says so at once)."""
    if address == "auto":
        resolved = os.environ.get("RAY_ADDRESS")
        if not resolved:
            current = Path("/tmp/ray/ray_current_cluster")  # where `ray start` notes its address
            with contextlib.suppress(OSError):
                resolved = current.read_text().strip()
        if not resolved or resolved == "auto":
            return None
        address = resolved
    return address.split("://", 1)[-1]


def _check_reachable(address: str, timeout: float) -> None:
    """Open (and close) a TCP connection to the cluster ``address`` names, within ``timeout``:
    Ray itself retries an unreachable address for minutes."""
    target = _gcs_address(address)
    if target is None:
        return
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise RewardPoolError(f"Ray address {address!r} is not 'auto' or HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        named = address if target == address else f"{address} ({target})"
        raise RewardPoolError(
            f"cannot reach the Ray cluster at {named}: {why} (waited up to {timeout:g} s)"
        ) from None


def _died(exc: BaseException) -> str:
    """Why Ray says an actor died, in a few words (``it was killed by `ray.kill```)."""
    text = str(exc)
    marker = "The actor is dead because "
    if marker in text:
        return text.split(marker, 1)[1].split(".", 1)[0].strip()
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


class RayRewardPool(ScoringPool):
    """Ray actors that score completions with a suite's own checks: the reward pool's second
    backend, with the local :class:`~pytest_teach.rewards.RewardPool`'s contract.

    Each actor holds one pytest session over ``suite`` whose fixtures stay warm; a check that
    runs past ``timeout`` scores ``None`` (logged); a check that ends its actor (``os._exit``,
    a signal, ``ray.kill``) scores ``None`` as ``crashed`` and the actor is replaced, while the
    candidates queued behind it go to the fresh actor; an actor that doesn't answer within
    ``timeout + kill_grace`` is killed and replaced. Candidates are sent to an actor ahead of
    time, so Ray's round trip overlaps the checks.

    Args:
        address: the cluster: ``None`` starts a local one for the pool (and shuts it down on
            :meth:`close`); ``"auto"`` joins the running one (``RAY_ADDRESS`` or ``ray start``'s);
            ``HOST:PORT`` joins that one. In a process already connected to Ray (``ray.init``
            called), the pool uses that connection.
        workers: actors (each holds its own fixtures).
        actor_cpus: CPUs each actor reserves on the cluster.
        connect_timeout: seconds to reach ``address`` before giving up.
        The other arguments are :class:`~pytest_teach.rewards.ScoringPool`'s. The suite's
        folder (``cwd``) must exist on every node an actor runs on.
    """

    def __init__(
        self,
        suite: str | Sequence[str],
        *,
        address: str | None = None,
        workers: int = 2,
        timeout: float = 10.0,
        pytest_args: Sequence[str] = (),
        cwd: str | os.PathLike[str] | None = None,
        start_timeout: float = 120.0,
        kill_grace: float = KILL_GRACE_S,
        actor_cpus: float = 1.0,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        max_checks_per_worker: int | None = None,
        max_worker_rss_mb: float | None = None,
    ) -> None:
        super().__init__(
            suite,
            workers=workers,
            timeout=timeout,
            pytest_args=pytest_args,
            cwd=cwd,
            start_timeout=start_timeout,
            kill_grace=kill_grace,
            max_checks_per_worker=max_checks_per_worker,
            max_worker_rss_mb=max_worker_rss_mb,
        )
        if not (isinstance(actor_cpus, (int, float)) and actor_cpus >= 0):
            raise ValueError(f"actor_cpus must be a number >= 0, got {actor_cpus!r}")
        self.address = address
        self.actor_cpus = float(actor_cpus)
        self.connect_timeout = float(connect_timeout)
        self._workers: list[_Actor] = []
        self._actor_class: Any = None
        self._finalizer: weakref.finalize | None = None

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> RayRewardPool:
        return self.start()

    def start(self) -> RayRewardPool:
        """Connect to (or start) the cluster, start the actors and wait until each has
        collected the suite."""
        if self._workers:
            return self
        try:
            import ray
        except ImportError:
            raise RewardPoolError(
                "the Ray reward backend needs ray: pip install 'pytest-teach[ray]'"
            ) from None
        from ._actor import CheckActor

        if self.address is not None:
            _check_reachable(self.address, self.connect_timeout)
        owned = False
        if not ray.is_initialized():
            started = time.monotonic()
            try:
                if self.address is None:
                    cpus = max(math.ceil(self.n_workers * self.actor_cpus), os.cpu_count() or 1)
                    ray.init(
                        num_cpus=cpus,
                        include_dashboard=False,
                        log_to_driver=False,
                        logging_level=logging.WARNING,
                    )
                else:
                    ray.init(
                        address=self.address, log_to_driver=False, logging_level=logging.WARNING
                    )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise RewardPoolError(
                    f"cannot connect to Ray at {self.address or 'a new local cluster'}: {first} "
                    f"(after {time.monotonic() - started:.1f} s)"
                ) from None
            owned = True  # the pool connected: it disconnects (and stops a local cluster)
        self._actor_class = ray.remote(CheckActor).options(
            num_cpus=self.actor_cpus, max_restarts=0, max_concurrency=1
        )
        workers = self._workers
        self._finalizer = weakref.finalize(self, _release, workers, owned)
        try:
            for i in range(self.n_workers):
                workers.append(_Actor(i, self._actor_class.remote(self.args, self.cwd)))
            lists = [self._wait_ready(w) for w in workers]
        except BaseException:
            self.close()
            raise
        self._collected(lists)
        return self

    def _wait_ready(self, actor: _Actor) -> list[str]:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        limit = self.start_timeout + PLACE_GRACE_S
        try:
            kind, payload, notes = ray.get(
                actor.handle.ready.remote(self.start_timeout), timeout=limit
            )
        except GetTimeoutError:
            ray.kill(actor.handle, no_restart=True)
            raise RewardPoolError(
                f"reward actor {actor.index} was not placed and ready in {limit:g} s (it "
                f"reserves {self.actor_cpus:g} CPU: has the cluster room for {self.n_workers}?)"
            ) from None
        except RayActorError as exc:
            raise RewardPoolError(
                f"reward actor {actor.index} died while collecting the suite: {_died(exc)}"
            ) from None
        for note in notes:
            log.warning("%s", note)
        if kind != "ready":
            ray.kill(actor.handle, no_restart=True)
            raise RewardPoolError(
                str(payload) + (f": {notes[0]}" if notes and notes[0] not in payload else "")
            )
        return list(payload)

    def _replace(self, actor: _Actor, *, recycle: bool = False) -> _Actor:
        """A fresh actor in ``actor``'s place: killed (it hung or crashed) or, to recycle it,
        stopped with its fixtures torn down."""
        _stop(actor, graceful=recycle)
        with self._stats_lock:
            if recycle:
                self.stats.recycled += 1
            else:
                self.stats.restarts += 1
        fresh = _Actor(actor.index, self._actor_class.remote(self.args, self.cwd))
        self._workers[actor.index] = fresh
        self._wait_ready(fresh)
        return fresh

    def _recycle_reason(self, actor: _Actor) -> str | None:
        limit = self.max_checks_per_worker
        if limit is not None and actor.checks >= limit:
            return f"after {actor.checks} checks"
        if self.max_worker_rss_mb is not None:
            import ray

            rss = ray.get(actor.handle.rss_mb.remote(), timeout=self.timeout + self.kill_grace)
            if rss is not None and rss > self.max_worker_rss_mb:
                return f"at {rss:.0f} MiB resident (limit {self.max_worker_rss_mb:g})"
        return None

    def close(self) -> None:
        """Tear the actors' fixtures down and stop them; disconnect from Ray if the pool
        connected (a local cluster it started stops)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._workers.clear()

    # -- prompts and scores -----------------------------------------------------------------

    def _capture(self, index: int, nodeids: list[str]) -> dict[str, Task]:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        out: dict[str, Task] = {}
        actor = self._workers[index]
        wait = self.timeout + self.kill_grace
        with actor.lock:
            for nodeid in nodeids:
                try:
                    kind, payload = ray.get(actor.handle.prompt.remote(nodeid), timeout=wait)
                except GetTimeoutError:
                    self.skipped[nodeid] = f"no prompt in {wait:g} s; the actor was replaced"
                    actor = self._replace(actor)
                    continue
                except RayActorError as exc:
                    self.skipped[nodeid] = (
                        f"crashed (the actor died: {_died(exc)}) capturing the prompt; "
                        "the actor was replaced"
                    )
                    actor = self._replace(actor)
                    continue
                actor.current = nodeid
                if kind != "ok":
                    self.skipped[nodeid] = str(payload)
                    continue
                out[nodeid] = self._task(nodeid, payload)
        return out

    def _run_on(
        self, index: int, jobs: list[tuple[int, tuple[str, Any]]]
    ) -> list[tuple[int, Score]]:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        out: list[tuple[int, Score]] = []
        wait = self.timeout + self.kill_grace
        actor = self._workers[index]
        # one check at a time on each actor: when an actor dies, the check it was running is
        # the one that ended it, and no finished check's answer is lost with it
        window = 1
        with actor.lock:
            pending = collections.deque((i, nodeid, completion_text(c)) for i, (nodeid, c) in jobs)
            sent: collections.deque[tuple[int, str, str, Any]] = collections.deque()
            while pending or sent:
                while pending and len(sent) < window:
                    if self._recycling and (why := self._recycle_reason(actor)):
                        log.info("reward actor %d recycled %s", index, why)
                        actor = self._replace(actor, recycle=True)
                    i, nodeid, text = pending.popleft()
                    actor.checks += 1
                    ref = actor.handle.score.remote(nodeid, text, self.timeout)
                    sent.append((i, nodeid, text, ref))
                i, nodeid, text, ref = sent.popleft()
                started = time.perf_counter()
                try:
                    kind, payload = ray.get(ref, timeout=wait)
                except (GetTimeoutError, RayActorError) as exc:
                    ms = (time.perf_counter() - started) * 1000.0
                    if isinstance(exc, GetTimeoutError):
                        why = f"no answer in {wait:g} s"
                        score = Score(
                            nodeid,
                            None,
                            "timeout",
                            f"the actor hung and was replaced: {why}",
                            ms=ms,
                        )
                    else:
                        why = f"the actor died: {_died(exc)}"
                        score = Score(
                            nodeid,
                            None,
                            "crashed",
                            f"crashed ({why}): the check ended the actor, which was replaced",
                            ms=ms,
                        )
                    out.append((i, score))
                    log.warning("reward actor %d lost on %s: %s", index, nodeid, why)
                    # what was queued behind the lost check goes to the fresh actor
                    pending.extendleft(reversed([(j, n, t) for j, n, t, _ in sent]))
                    sent.clear()
                    actor = self._replace(actor)
                    continue
                actor.current = nodeid
                out.append((i, self._scored(nodeid, kind, payload)))
        return out


def _stop(actor: _Actor, *, graceful: bool) -> None:
    """Stop ``actor``: tear its fixtures down first when ``graceful``; then kill it."""
    import ray

    if graceful:
        with contextlib.suppress(Exception):
            ray.get(actor.handle.stop.remote(STOP_TIMEOUT_S), timeout=STOP_TIMEOUT_S + 1)
    with contextlib.suppress(Exception):
        ray.kill(actor.handle, no_restart=True)


def _release(actors: list[_Actor], owned: bool) -> None:
    """Stop the pool's actors; disconnect from Ray if the pool connected."""
    import ray

    if not ray.is_initialized():
        return
    for actor in actors:
        _stop(actor, graceful=True)
    actors.clear()
    if owned:
        ray.shutdown()
