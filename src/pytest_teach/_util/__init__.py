"""Private helpers shared across pytest-teach's packages (standard library only, cheap to
import): atomic writes, the JSON Lines row writer, running pytest in a subprocess with its
timings, phase timings, and the ``noisy-P`` scripted-name parser."""

from ._files import (
    NothingWritten,
    WriteError,
    atomic_write_dir,
    atomic_write_lines,
    atomic_write_text,
    json_line,
)
from ._noisy import NOISY_PREFIX, noise_level
from ._pytest import PhaseTimer, PytestRun, run_pytest

__all__ = [
    "NOISY_PREFIX",
    "NothingWritten",
    "PhaseTimer",
    "PytestRun",
    "WriteError",
    "atomic_write_dir",
    "atomic_write_lines",
    "atomic_write_text",
    "json_line",
    "noise_level",
    "run_pytest",
]
