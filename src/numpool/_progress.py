"""``progress=``: a bar (or a callback) for a long ``apply`` or ``map``.

The call's caller thread drives the work (it submits blocks and collects
them), so the bar is drawn from it too, never from a thread of its own:
:func:`track` makes a :class:`Progress` current for this thread, and the
engine, as each block or batch of tasks comes back, calls :func:`advance`
with the rows or tasks it finished. With ``progress=False`` (the default)
nothing is current and :func:`advance` is one thread-local lookup per block.

Progress is per call. A numpool call made while another's bar is current in
the same thread (from ``func`` run by the caller, or from a ``progress``
callback) reports into its own bar or into none, never into the outer one:
:func:`track` makes its own bar (or no bar) current for its duration, and a
callback runs with no bar current (so a callback that calls numpool does not
call itself again). A call that skips :func:`track` (the runner's fast path)
must skip it only while :func:`current` is None.

What draws it, in order of preference: ``progress=callable`` is called as
``callable(done, total)``; else rich's bar when rich is installed (in a
notebook, rich renders it as a notebook display, not escape codes); else
tqdm's (``tqdm.auto``: a notebook widget there); else one line of plain text
on stderr, rewritten in place. Redraws are at most 5 per second, and once
at the end.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Progress", "advance", "check_progress", "current", "track"]

#: seconds between redraws (5 a second: enough for a person, and a redraw of a
#: rich bar costs about a millisecond)
REDRAW_S = 0.2


class _Local(threading.local):
    #: the bar of the call running in this thread (a class default: reading it in a
    #: thread that never set it costs no AttributeError, 0.05 us instead of 0.5 us,
    #: and every apply reads it)
    bar: Progress | None = None


_local = _Local()


def check_progress(value: Any) -> Any:
    """``progress=`` as given: a bool, None or a callable ``(done, total)``."""
    if value is None or isinstance(value, bool) or callable(value):
        return value
    raise TypeError(
        f"progress must be True, False or a callable (done, total), got "
        f"{type(value).__name__} {value!r}"
    )


class Progress:
    """One call's progress: ``done`` of ``total`` items (rows or tasks)."""

    def __init__(self, total: int, what: str, sink: Any = True) -> None:
        self.total = total
        self.what = what
        self.done = 0
        self.started = time.perf_counter()
        self._drawn = 0.0
        self._callback: Callable[[int, int], Any] | None = None
        self._bar: Any = None
        self._task: Any = None
        self._tqdm: Any = None
        if callable(sink) and not isinstance(sink, bool):
            self._callback = sink
        else:
            self._open_bar()
        self._draw(force=True)

    def _open_bar(self) -> None:
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress
        except ImportError:
            pass
        else:
            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                auto_refresh=False,  # drawn from the caller's thread only
                console=Console(stderr=True),  # (stdout stays the program's)
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=self.total, rate="")
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self._tqdm = tqdm(total=self.total, desc=self.what, mininterval=REDRAW_S)

    def advance(self, n: int) -> None:
        self.done = min(self.total, self.done + n)
        self._draw(force=self.done >= self.total)

    def _rate(self) -> float:
        return self.done / max(time.perf_counter() - self.started, 1e-9)

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._drawn < REDRAW_S:
            return
        self._drawn = now
        if self._callback is not None:
            # (a numpool call made by the callback must not advance this bar: it
            # would draw again, from inside the callback, without end)
            outer = _local.bar
            _local.bar = None
            try:
                self._callback(self.done, self.total)
            finally:
                _local.bar = outer
        elif self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=f"{self._rate():,.0f}/s")
            self._bar.refresh()
        elif self._tqdm is not None:
            self._tqdm.update(self.done - self._tqdm.n)
        else:
            rate = self._rate()
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            sys.stderr.write(
                f"\r{self.what}: {self.done:,}/{self.total:,} ({rate:,.0f}/s, "
                f"{left:.0f} s left)   "
            )
            sys.stderr.flush()

    def close(self) -> None:
        self._draw(force=True)
        if self._bar is not None:
            self._bar.stop()
        elif self._tqdm is not None:
            self._tqdm.close()
        elif self._callback is None:
            sys.stderr.write("\n")
            sys.stderr.flush()


@contextlib.contextmanager
def track(progress: Any, total: int, what: str) -> Iterator[Progress | None]:
    """Make this call's bar current for this thread while it runs: a new one, or
    none when ``progress`` is False or None (then an outer call's bar is hidden
    too: a call nested in another reports into its own bar only)."""
    outer = _local.bar
    bar = Progress(total, what, progress) if progress else None
    _local.bar = bar
    try:
        yield bar
    finally:
        _local.bar = outer
        if bar is not None:
            bar.close()


def current() -> Progress | None:
    """The bar of the call running in this thread, if it has one."""
    return _local.bar


def advance(n: int) -> None:
    """``n`` more rows or tasks of the current call are done (see :func:`track`)."""
    bar = _local.bar
    if bar is not None:
        bar.advance(n)
