"""Training on several processes: who this process is, a check that the launcher really started
the processes asked for, data that rank 0 reads and hands to the others, and each rank's log.

The launchers are torchrun's and accelerate's (``torchrun --nproc_per_node N``, ``accelerate
launch --multi_gpu --num_processes N``); they set ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``,
and accelerate's ``PartialState`` (which TRL's trainers build) joins the process group: gloo on
CPU, NCCL on GPUs. Every wait on another rank is bounded by ``TEACH_DIST_TIMEOUT`` seconds
(default 1800, transformers' ``ddp_timeout``), which the messages show.

torch is imported inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "ENV_TIMEOUT",
    "RANK_LOG_DIR",
    "LaunchError",
    "RankError",
    "RankLog",
    "Ranks",
    "dist_timeout",
    "ranks",
    "share_from_main",
]

T = TypeVar("T")

#: The environment variable bounding every wait on another rank, in seconds.
ENV_TIMEOUT = "TEACH_DIST_TIMEOUT"
#: transformers' ``ddp_timeout`` default.
DEFAULT_TIMEOUT = 1800.0
#: The folder of the output directory where each rank writes its log (``rank-K.json``).
RANK_LOG_DIR = "ranks"

# Set by launchers that run the processes themselves (MPI); accelerate's simple launcher sets
# MASTER_ADDR but none of these when it was asked for several CPU processes without mpirun.
_MPI_SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


class LaunchError(ValueError):
    """The processes were launched wrong (one line saying how to launch them), or a rank waited
    past ``TEACH_DIST_TIMEOUT`` for another."""


@dataclass(frozen=True)
class Ranks:
    """This process among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the one that writes the output, prints and registers."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there are several processes."""
        return self.world_size > 1

    @property
    def label(self) -> str:
        """``rank K of N``, for messages."""
        return f"rank {self.rank} of {self.world_size}"


def _env_int(name: str, default: int | None) -> int | None:
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise LaunchError(f"{name}={text!r} is not an integer; the launcher sets it") from None
    if value < 0:
        raise LaunchError(f"{name}={value} is negative; the launcher sets it")
    return value


def ranks() -> Ranks:
    """Who this process is, from the launcher's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``.

    Raises:
        LaunchError: a half-set environment (``RANK`` without ``WORLD_SIZE``, a rank past the
            world size, no ``MASTER_ADDR``), or ``accelerate launch`` asked for several
            processes but started one (a ``distributed_type: MULTI_CPU`` config or ``--cpu``
            launch one process unless mpirun runs them).
    """
    rank = _env_int("RANK", None)
    world = _env_int("WORLD_SIZE", None)
    if rank is None and world is None:
        if (
            os.environ.get("ACCELERATE_USE_CPU") is not None
            and os.environ.get("MASTER_ADDR")
            and not any(os.environ.get(name) for name in _MPI_SIZE)
        ):
            raise LaunchError(
                "accelerate launch was asked for several processes but started one (a "
                "distributed_type: MULTI_CPU config or --cpu runs them through mpirun only, "
                "with --mpirun_hostfile); launch with `torchrun --nproc_per_node N -m "
                "pytest_teach.cli ...` or `accelerate launch --multi_gpu --num_processes N "
                "-m pytest_teach.cli ...` (on CPU the ranks use gloo)"
            )
        return Ranks()
    if rank is None or world is None:
        have, missing = ("RANK", "WORLD_SIZE") if world is None else ("WORLD_SIZE", "RANK")
        raise LaunchError(
            f"{have} is set but {missing} is not; launch the processes with torchrun or "
            "accelerate launch, which set both"
        )
    if world < 1 or rank >= world:
        raise LaunchError(f"RANK={rank} does not fit WORLD_SIZE={world}")
    if world > 1 and not os.environ.get("MASTER_ADDR"):
        raise LaunchError(
            f"WORLD_SIZE={world} but MASTER_ADDR is not set; launch the processes with "
            "torchrun or accelerate launch"
        )
    local = _env_int("LOCAL_RANK", rank)
    return Ranks(rank, world, local if local is not None else rank)


def dist_timeout() -> float:
    """Seconds a rank waits for another (``TEACH_DIST_TIMEOUT``, default 1800).

    Raises:
        LaunchError: the variable is not a positive number.
    """
    text = os.environ.get(ENV_TIMEOUT, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise LaunchError(f"{ENV_TIMEOUT}={text!r}: expected a number of seconds > 0")
    return value


def join_process_group() -> None:
    """Join the process group now, as TRL's trainer would (accelerate's ``PartialState``: gloo
    on CPU, NCCL on CUDA), with :func:`dist_timeout` as the collectives' timeout."""
    from datetime import timedelta

    import torch
    from accelerate import PartialState

    PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(seconds=dist_timeout()))


def share_from_main(make: Callable[[], T], what: str, here: Ranks | None = None) -> T:
    """Rank 0 runs ``make()``; every rank returns its result (or raises its error), so the other
    ranks never do rank 0's work. One process: just ``make()``.

    The value must pickle. ``what`` names it in the timeout message.

    Raises:
        LaunchError: no answer from rank 0 within :func:`dist_timeout` seconds.
        Exception: what ``make()`` raised on rank 0, re-raised on every rank as one
            ``ValueError`` subclass of the same message (its own type on rank 0).
    """
    here = here or ranks()
    if not here.distributed:
        return make()
    import torch.distributed as dist

    timeout = dist_timeout()
    join_process_group()
    payload: list[Any] = [None]
    error: BaseException | None = None
    if here.main:
        try:
            payload[0] = ("ok", make())
        except Exception as exc:  # every rank fails with it, none waits
            error = exc
            payload[0] = ("error", type(exc).__name__, str(exc))
    started = time.monotonic()
    try:
        dist.broadcast_object_list(payload, src=0)
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LaunchError(
            f"{here.label}: no {what} from rank 0 after {time.monotonic() - started:.0f}s "
            f"(timeout {timeout:g}s, {ENV_TIMEOUT}): {first}"
        ) from None
    if error is not None:
        raise error
    if payload[0][0] == "error":
        raise RankError(f"{payload[0][2]} (raised on rank 0: {payload[0][1]})")
    return payload[0][1]


class RankError(ValueError):
    """Rank 0's error, as the other ranks raise it."""


# -- each rank's log ---------------------------------------------------------------------------


def _fingerprint(value: Any) -> str:
    return hashlib.sha1(value).hexdigest()[:12]


def batch_fingerprints(inputs: Any) -> list[str]:
    """A short fingerprint of each row of a training batch, the same whatever the batch size
    (padding is left out): token ids under their attention mask for a tokenized batch, the JSON
    of the row for a batch of raw rows (GRPO's)."""
    if isinstance(inputs, list):
        return [
            _fingerprint(json.dumps(row, sort_keys=True, default=str).encode()) for row in inputs
        ]
    if isinstance(inputs, dict):
        for key in ("input_ids", "prompt_input_ids", "chosen_input_ids"):
            ids = inputs.get(key)
            if ids is None or getattr(ids, "ndim", 0) != 2:
                continue
            mask = inputs.get(key.replace("input_ids", "attention_mask"))
            rows = []
            for i in range(ids.shape[0]):
                row = ids[i] if mask is None else ids[i][mask[i].bool()]
                rows.append(_fingerprint(row.cpu().numpy().astype("int64").tobytes()))
            return rows
    return []


class RankLog:
    """What one rank trained on: per optimiser step its rows' fingerprints and its local loss,
    written to ``<output>/ranks/rank-K.json`` when training ends (also on failure)."""

    def __init__(self, here: Ranks) -> None:
        self.here = here
        self.steps: list[dict[str, Any]] = []
        self.started = time.time()

    def record(self, inputs: Any, loss: Any) -> None:
        """One training step's batch and the loss this rank computed on it."""
        try:
            value = float(loss.detach().float().mean().item())
        except (AttributeError, RuntimeError, TypeError, ValueError):
            value = None
        self.steps.append(
            {"step": len(self.steps) + 1, "rows": batch_fingerprints(inputs), "loss": value}
        )

    def trace(self, trainer: Any) -> None:
        """Record every call of ``trainer.training_step`` (the batch it trains on)."""
        step = trainer.training_step

        def traced(model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            loss = step(model, inputs, *args, **kwargs)
            self.record(inputs, loss)
            return loss

        trainer.training_step = traced

    def write(self, out: Path, error: str | None = None) -> Path:
        """Write the log under ``out`` (atomically) and return its path."""
        folder = out / RANK_LOG_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"rank-{self.here.rank}.json"
        body = {
            "rank": self.here.rank,
            "world_size": self.here.world_size,
            "local_rank": self.here.local_rank,
            "pid": os.getpid(),
            "steps": self.steps,
            "seconds": round(time.time() - self.started, 3),
            "error": error,
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body, indent=1), encoding="utf-8")
        os.replace(tmp, path)
        return path
