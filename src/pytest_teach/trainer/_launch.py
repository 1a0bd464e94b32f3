"""Runs on several processes: the trainer service hands a run to torchrun or accelerate launch
instead of its in-process worker (``teach trainer serve --processes N``).

The service writes the run's spec to ``<run dir>/launch/spec.json`` and starts the launcher in a
process group of its own; each rank runs :func:`rank_main` (``python -m
pytest_teach.trainer._launch SPEC``), which trains with the service's backend. Rank 0 appends
its progress to ``progress.jsonl`` and, at the end, writes ``result.json``; a rank that fails
writes one line to ``rank-K.error``. The service follows those files, records the run, and on a
non-zero exit fails the run with the first rank's error.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["LAUNCHERS", "check_launcher", "launch_command", "rank_error", "rank_main"]

#: The launchers ``--launcher`` takes.
LAUNCHERS = ("torchrun", "accelerate")

_ROOT_CAUSE = re.compile(r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.S)


def check_launcher(launcher: str, processes: int, config: str | None = None) -> None:
    """Refuse a launch that can't work, in one line: an unknown launcher, fewer than 2
    processes, torch or accelerate not installed, an accelerate config that isn't a readable
    file (or one given to torchrun).

    Raises:
        ValueError: why.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")
    if config is not None and launcher != "accelerate":
        raise ValueError("--accelerate-config needs --launcher accelerate")
    if processes < 2:
        raise ValueError(f"--processes {processes}: a launched run needs 2 or more processes")
    if importlib.util.find_spec("torch") is None:
        raise ValueError(f"--launcher {launcher} needs torch; install pytest-teach[train]")
    if launcher == "accelerate" and importlib.util.find_spec("accelerate") is None:
        raise ValueError("--launcher accelerate needs accelerate; pip install accelerate")
    if config is not None and not Path(config).is_file():
        raise ValueError(f"--accelerate-config {config}: no such file")


def launch_command(
    spec_path: Path, processes: int, launcher: str = "torchrun", config: str | None = None
) -> list[str]:
    """The command that runs :func:`rank_main` on ``processes`` local processes.

    torchrun gets ``--standalone`` (a free port of its own); accelerate gets ``--multi_gpu``,
    which on a machine without GPUs runs the ranks on CPU with gloo (its ``MULTI_CPU`` config
    starts one process unless mpirun runs them), or ``--config_file``.
    """
    target = ["-m", "pytest_teach.trainer._launch", str(spec_path)]
    if launcher == "torchrun":
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            *target,
        ]
    head = [sys.executable, "-m", "accelerate.commands.launch"]
    if config is not None:
        return [*head, "--config_file", config, "--num_processes", str(processes), *target]
    return [
        *head,
        "--multi_gpu",
        "--num_machines=1",
        f"--num_processes={processes}",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        "--main_process_port=0",
        *target,
    ]


def rank_error(folder: Path, log_text: str = "") -> str | None:
    """The first failed rank's error from its ``rank-K.error`` file; else the rank and exit
    status of torchrun's root cause in the log (a rank killed before it could write); else
    ``None``."""
    errors = sorted(folder.glob("rank-*.error"), key=lambda p: int(p.stem.split("-")[1]))
    for path in errors:
        with contextlib.suppress(OSError):
            text = path.read_text(encoding="utf-8").strip()
            if text:
                return text
    found = _ROOT_CAUSE.search(log_text)
    if found:
        return f"rank {found.group(1)} exited with status {found.group(2)}"
    return None


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def rank_main(argv: Sequence[str]) -> int:
    """One rank of a launched run: train with the spec's backend; see the module docstring."""
    from ..train import ranks
    from ._backends import BACKENDS, RunSpec

    folder = Path(argv[0]).parent
    here = ranks()
    spec_doc = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    spec = RunSpec(**spec_doc["spec"])
    crash = spec.params.get("crash")
    crashes_here = here.rank == here.world_size - 1  # fault injection: the last rank fails

    def on_step(step: int, loss: float | None) -> None:
        if here.main:
            with open(folder / "progress.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"steps": step, "loss": loss}) + "\n")
        if crash == "exit" and crashes_here:
            os._exit(70)
        if crash == "raise" and crashes_here:
            raise RuntimeError(f"injected crash at step {step} (params.crash='raise')")

    backend = BACKENDS[spec_doc["backend"]](spec.data_dir)
    scratch = None
    if not here.main and not backend.distributed:  # the others' output is thrown away
        scratch = Path(f"{spec.output_dir}.rank{here.rank}")
        spec = RunSpec(**{**spec_doc["spec"], "output_dir": str(scratch)})
    try:
        metrics = backend.train(spec, on_step)
    except BaseException as exc:
        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0]
        line = f"{here.label} failed: {type(exc).__name__}: {first}".rstrip(": ")
        with contextlib.suppress(OSError):
            _write(folder / f"rank-{here.rank}.error", line + "\n")
        return 1
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if here.main:
        body: dict[str, Any] = {"metrics": {**metrics, "processes": here.world_size}}
        _write(folder / "result.json", json.dumps(body))
    return 0


if __name__ == "__main__":
    sys.exit(rank_main(sys.argv[1:]))
