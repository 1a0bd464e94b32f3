"""Progress of long work (training steps, collected tests, labeled snapshots): a live bar with
the count, the latest figures (a loss) and an ETA on a terminal, plain lines in a log.

The output goes where the caller's ``echo`` goes. The bar is drawn only when that is a
terminal: ``click.echo`` writes to standard output, and any other echo can say where it writes
with a ``stream`` attribute; an echo that does neither (a list's ``append``, a logger) gets the
plain lines. Plain lines never contain a carriage return, so CI logs stay readable.

tqdm (installed with transformers and datasets) draws the bar; it is imported only when one is
drawn. :func:`no_progress_bars` silences transformers' and datasets' own bars meanwhile.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

__all__ = ["Echo", "Progress", "clock", "no_progress_bars", "stream_of"]

#: Where progress lines go: one call per line.
Echo = Callable[[str], None]

_BAR_FORMAT = "{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit}{postfix} [{elapsed}, ETA {remaining}]"  # fmt: skip


def stream_of(echo: Echo | None) -> TextIO | None:
    """The stream ``echo`` writes to, when known: its ``stream`` attribute, standard output for
    ``click.echo``, else None."""
    if echo is None:
        return None
    stream = getattr(echo, "stream", None)
    if stream is not None:
        return stream
    click = sys.modules.get("click")
    if click is not None and echo is getattr(click, "echo", None):
        return sys.stdout
    return None


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """Silence transformers' and datasets' own progress bars (loading weights, tokenizing), for
    callers that show their own progress."""
    import datasets
    from transformers.utils import logging

    bars = logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if bars[0]:
            logging.enable_progress_bar()
        if bars[1]:
            datasets.enable_progress_bars()


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def clock(seconds: float) -> str:
    """``seconds`` as ``M:SS`` or ``H:MM:SS``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _describe(note: str | None, figures: dict[str, Any]) -> str:
    parts = [note] if note else []
    parts += [f"{k} {_shown(v)}" for k, v in figures.items()]
    return "".join(f"  {part}" for part in parts)


class Progress:
    """The progress of one run of ``total`` units of work (steps, tests, snapshots).

    Call :meth:`update` with how many are done (and the latest figures, such as ``loss=``),
    then :meth:`close` (or use it as a context manager). On a terminal it draws one bar with the
    count, the figures and an ETA; otherwise it echoes plain lines,
    ``{prefix}{label} {done}/{total}  {note}  {figures}  ({elapsed}, ETA {eta})`` (``label``
    is the unit unless given; ``""`` leaves it out), for every ``every``-th unit and the last
    one (``every=None``: about ten lines a run). ``initial`` units count as done before this run
    (resumed work). ``total`` may be None until it is known.

    The ETA is the pace since the first finished unit times what is left, so start-up work
    (loading a model, starting pytest) doesn't inflate it; the bar appears with that first unit.
    """

    def __init__(
        self,
        total: int | None,
        *,
        unit: str = "step",
        label: str | None = None,
        echo: Echo | None = None,
        prefix: str = "",
        every: int | None = 1,
        initial: int = 0,
        bar: bool | None = None,
    ) -> None:
        self.total = total
        self.unit = unit
        self.label = unit if label is None else label
        self.echo = echo
        self.prefix = prefix
        self.every = every
        self.initial = self.done = initial
        self.started = time.perf_counter()
        self._first: tuple[float, int] | None = None
        self._stream = stream_of(echo)
        wanted = bar if bar is not None else _is_terminal(self._stream)
        self.mode = None if echo is None else "bar" if wanted else "lines"
        self._bar: Any = None
        self._closed = False

    @property
    def is_bar(self) -> bool:
        """Whether progress shows as a live bar (rather than plain lines)."""
        return self.mode == "bar"

    def eta(self) -> float | None:
        """Seconds left at the pace so far, or None before the first unit (or without a total)."""
        if self.total is None or self.done <= self.initial:
            return None
        now = time.perf_counter()
        if self._first is not None and self.done > self._first[1]:
            each = (now - self._first[0]) / (self.done - self._first[1])
        else:
            each = (now - self.started) / (self.done - self.initial)
        return each * max(0, self.total - self.done)

    def _open_bar(self, done: int, postfix: str) -> Any:
        from tqdm import tqdm

        return tqdm(
            total=self.total,
            initial=done,
            postfix=postfix or None,
            desc=self.prefix.strip() + " " if self.prefix.strip() else "",
            unit=f"{self.unit}s",
            file=self._stream or sys.stdout,
            bar_format=_BAR_FORMAT,
            dynamic_ncols=True,
            leave=True,
            mininterval=0.2,
        )

    def update(
        self, done: int, *, total: int | None = None, note: str | None = None, **figures: Any
    ) -> None:
        """``done`` units are finished now; ``note`` (what the last one was) and ``figures``
        (for example ``loss=0.41``) are shown beside the count. ``total`` sets the total."""
        if self._closed:
            return
        if total is not None:
            self.total = total
        self.done = done
        if self._first is None and done > self.initial:
            self._first = (time.perf_counter(), done)
        if self.mode is None:
            return
        if self.mode == "bar":
            postfix = _describe(note, figures).strip()
            if self._bar is None:
                self._bar = self._open_bar(done, postfix)
            else:
                if total is not None and self._bar.total != total:
                    self._bar.total = total
                if postfix:
                    self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(done - self._bar.n)
            if self.total is not None and done >= self.total:
                self.close()  # finished: the bar's line is complete before anything else
            return
        last = self.total is not None and done >= self.total
        every = self.every or max(1, (self.total or 0) // 10)
        if done <= self.initial or ((done - self.initial) % every and not last):
            return
        count = f"{done}/{'?' if self.total is None else self.total}"
        shown = _describe(note, figures)
        eta = self.eta()
        timing = f"{clock(time.perf_counter() - self.started)}, ETA {clock(eta) if eta is not None else '?'}"  # fmt: skip
        word = f"{self.label} " if self.label else ""
        if self.echo is not None:
            self.echo(f"{self.prefix}{word}{count}{shown}  ({timing})")

    def close(self) -> None:
        """Leave the finished bar on the screen (a no-op for plain lines). Idempotent."""
        self._closed = True
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
