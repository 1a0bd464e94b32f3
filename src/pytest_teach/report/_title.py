"""A run's name, read from its command line: what it ran (test paths, ``-m``, ``-k``) and under
which models, short enough for a title."""

from __future__ import annotations

from collections.abc import Iterable

from ..redaction import REDACTED, redact, redact_argv

__all__ = ["RUN_NAME_CHARS", "run_name"]

#: The longest name :func:`run_name` returns (longer ones end in an ellipsis).
RUN_NAME_CHARS = 100
_MAX_PATHS = 3

# Options whose value is the next argument: pytest's own that take one, and this plugin's.
# Anything else starting with "-" is taken as a flag, so its next argument reads as a path.
_VALUED = frozenset(
    {
        "-k",
        "-m",
        "-p",
        "-c",
        "-o",
        "-r",
        "-W",
        "-n",
        "--maxfail",
        "--tb",
        "--durations",
        "--durations-min",
        "--rootdir",
        "--basetemp",
        "--confcutdir",
        "--deselect",
        "--ignore",
        "--ignore-glob",
        "--override-ini",
        "--junitxml",
        "--junit-xml",
        "--junitprefix",
        "--log-level",
        "--log-file",
        "--log-cli-level",
        "--log-format",
        "--import-mode",
        "--capture",
        "--color",
        "--cov",
        "--cov-report",
        "--dist",
        "--numprocesses",
        "--inifile",
        "--config-file",
        "--model",
        "--ab",
        "--teach-db",
        "--teach-report",
        "--teach-cache",
        "--teacher",
        "--intervention-predictor",
    }
)
_KEPT = ("-m", "-k")  # the selections that name what ran, shown as given


def _options(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """The positional arguments and the last value of each valued option."""
    paths: list[str] = []
    values: dict[str, str] = {}
    pending: str | None = None
    for arg in argv:
        if pending is not None:
            values[pending] = arg
            pending = None
        elif arg == "--":
            pending = None
        elif arg.startswith("--") and "=" in arg:
            name, _, value = arg.partition("=")
            values[name] = value
        elif arg in _VALUED:
            pending = arg
        elif len(arg) > 2 and arg[:2] in _VALUED and not arg.startswith("--"):
            values[arg[:2]] = arg[2:]  # -kEXPR
        elif not arg.startswith("-") and arg and arg != REDACTED:  # a masked secret's value
            paths.append(arg)
    return paths, values


def run_name(argv: Iterable[str], *, fallback: str = "all tests") -> str:
    """A short name for the run with command line ``argv`` (pytest's arguments, with or without
    a leading ``pytest``): its test paths (at most three, then how many more), its ``-m`` and
    ``-k`` selections, and its models (``--model M``, ``--ab A,B`` as ``A vs B``), joined by
    `` · ``. ``fallback`` stands for the paths when none were given. Secrets are masked and the
    name is cut to :data:`RUN_NAME_CHARS` characters.
    """
    args = redact_argv(str(a) for a in argv)
    if args and args[0].rsplit("/", 1)[-1] in ("pytest", "py.test"):
        args = args[1:]
    paths, values = _options(args)
    shown = paths[:_MAX_PATHS] or [fallback]
    parts = [" ".join(shown) + (f" +{len(paths) - _MAX_PATHS} more" if paths[_MAX_PATHS:] else "")]
    parts += [f"{flag} {values[flag]}" for flag in _KEPT if values.get(flag)]
    ab = values.get("--ab", "")
    if "," in ab:
        first, _, second = ab.partition(",")
        parts.append(f"{first.strip()} vs {second.strip()}")
    elif values.get("--model"):
        parts.append(values["--model"])
    name = redact(" · ".join(parts))
    if len(name) > RUN_NAME_CHARS:
        name = name[: RUN_NAME_CHARS - 1].rstrip() + "…"
    return name
