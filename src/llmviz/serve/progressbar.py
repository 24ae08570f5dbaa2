"""The command line's progress bar: once work on this thread has taken more than a second, one line on stderr says
how far it has got ("layer 3 of 16"), from the reports the core makes (core/progress.py).

    with progress_bar():
        trace = model.run(text)

On a terminal the line is redrawn in place and erased at the end; into a file or a pipe, a plain line now and then
(and the last report, if any line was written)."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from ..core.progress import watching

AFTER = 1.0  # seconds of work before anything is drawn: quick work shows no bar
REDRAW = 0.1  # on a terminal, at most this often
EVERY = 5.0  # into a file, a line at most this often
BAR = 24  # the bar's width in characters


def describe(done: int, total: int, what: str, seconds: float, width: int = BAR) -> str:
    """`layer 3 of 16 [#####...........] 4.2 s` (the bar filled in proportion; no bar without a total)."""
    text = f"{what} {done} of {total}" if total else what or "working"
    if total > 0:
        filled = round(width * min(max(done / total, 0.0), 1.0))
        text += f" [{'#' * filled}{'.' * (width - filled)}]"
    return f"{text} {seconds:.1f} s"


class Bar:
    """Draws reports on `stream`: redrawn in place on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO, clock: Callable[[], float], after: float = AFTER):
        self.stream, self.clock, self.after = stream, clock, after
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.start = clock()
        self.last_drawn: float | None = None  # when the last line was written (None: nothing written yet)
        self.shown = ""  # the text of the line last written
        self.latest: tuple[int, int, str] | None = None  # the last report, and the last one written
        self.written: tuple[int, int, str] | None = None
        self.stopped = False

    def report(self, done: int, total: int, what: str) -> None:
        if self.stopped:
            return
        self.latest = (done, total, what)
        now = self.clock()
        if now - self.start <= self.after:
            return
        end = total > 0 and done >= total
        gap = REDRAW if self.tty else EVERY
        if self.last_drawn is not None and now - self.last_drawn < gap and not end:
            return
        self.draw(describe(done, total, what, now - self.start), now)
        self.written = self.latest

    def draw(self, text: str, now: float) -> None:
        if self.tty:
            columns = shutil.get_terminal_size().columns
            text = text[: max(columns - 1, 10)]
            self.stream.write("\r" + text.ljust(len(self.shown)))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.shown, self.last_drawn = text, now

    def stop(self) -> None:
        """End the bar now and draw no more (before the command writes its own output to the terminal, such as
        generate's first token)."""
        self.end()
        self.stopped = True

    def end(self) -> None:
        """Erase the line on a terminal; into a file, the last report if a line was written and it was not that."""
        if self.last_drawn is None or self.stopped:
            return
        if self.tty:
            self.stream.write("\r" + " " * len(self.shown) + "\r")
            self.stream.flush()
        elif self.latest is not None and self.latest != self.written:
            self.draw(describe(*self.latest, self.clock() - self.start), self.clock())


@contextmanager
def progress_bar(stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 after: float = AFTER) -> Iterator[Bar]:
    """Show the progress of the work this block does on this thread, once it has taken more than `after` seconds
    (stream: stderr by default); the line is ended cleanly however the block ends (Ctrl+C included)."""
    bar = Bar(stream if stream is not None else sys.stderr, clock, after)
    try:
        with watching(bar.report):
            yield bar
    finally:
        bar.end()
