"""Running pytest in a fresh interpreter, timed, and timing the phases of a longer job."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

try:
    import resource
except ImportError:  # Windows: no CPU times of child processes
    resource = None  # type: ignore[assignment]

__all__ = ["PhaseTimer", "PytestRun", "run_pytest"]


@dataclass(frozen=True)
class PytestRun:
    """One finished ``python -m pytest`` run."""

    command: tuple[str, ...]
    returncode: int
    #: stdout and stderr together, as pytest wrote them
    output: str
    #: wall-clock seconds from start to exit
    seconds: float
    #: user + system CPU seconds of the run (0.0 where the platform doesn't report them)
    cpu_seconds: float

    def last_line(self, limit: int = 300) -> str:
        """The line that best says why the run failed: the last ``ERROR``/``E`` line, else the
        last non-blank one."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(("ERROR", "E "))]
        return (errors or lines or ["no output"])[-1][:limit]


def _children_cpu() -> float:
    if resource is None:
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pytest(
    args: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    mask: Callable[[str], str] | None = None,
) -> PytestRun:
    """Run ``python -m pytest ARGS`` (this interpreter) and wait for it.

    ``env`` replaces the environment (default: this process's). With ``on_line``, the output is
    read as it comes (unbuffered) and each line is passed on; otherwise it is read at the end.
    With ``log``, the command line and the output are written there, through ``mask`` when
    given (to keep secrets such as a store URL's password out of the file).
    """
    command = (sys.executable, "-m", "pytest", *args)
    environ = dict(os.environ if env is None else env)
    if on_line is not None:
        environ["PYTHONUNBUFFERED"] = "1"
    cpu_start = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    with proc:
        if on_line is None:
            output, _ = proc.communicate()
        else:
            lines = []
            for line in proc.stdout or ():
                lines.append(line)
                on_line(line)
            output = "".join(lines)
    seconds = time.perf_counter() - started
    cpu = _children_cpu() - cpu_start
    if log is not None:
        text = "$ " + " ".join(command) + "\n" + output
        log.write_text(mask(text) if mask is not None else text, encoding="utf-8")
    return PytestRun(command, proc.returncode, output, seconds, cpu)


class PhaseTimer:
    """Seconds per phase of a job: each :meth:`lap` closes the phase that ran since the last.

    ::

        timer = PhaseTimer()
        split()
        timer.lap("split")
        train()
        timer.lap("train")
        timer.total()  # timer.seconds == {"split": 0.4, "train": 12.1, "total": 12.5}
    """

    def __init__(self, digits: int = 1) -> None:
        self.digits = digits
        #: seconds by phase, rounded to ``digits``, in the order the phases ran
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> float:
        """Record the seconds since the previous lap (or the start) as phase ``name``."""
        now = time.perf_counter()
        self.seconds[name] = round(now - self._clock, self.digits)
        self._clock = now
        return self.seconds[name]

    def total(self) -> float:
        """Add ``"total"``, the sum of the phases, and return it."""
        self.seconds["total"] = round(
            sum(v for k, v in self.seconds.items() if k != "total"), self.digits
        )
        return self.seconds["total"]
