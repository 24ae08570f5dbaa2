"""How far the work running on this thread has got ("layer 3 of 16"), for whoever watches it: the CLI's progress
bar, or the page's (GET /api/progress/{task}). The core reports as it goes; it never knows who listens.

    with watching(lambda done, total, what: print(f"{what}: {done} of {total}")):
        model.run("The quick brown fox")
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Listener = Callable[[int, int, str], None]  # (done, total, what: "layer" or another unit of the work)
_local = threading.local()


@contextmanager
def watching(listener: Listener) -> Iterator[None]:
    """Send this thread's reports to `listener` while the block runs (an outer listener gets them again after)."""
    outer = getattr(_local, "listener", None)
    _local.listener = listener
    try:
        yield
    finally:
        _local.listener = outer


def report(done: int, total: int, what: str) -> None:
    """`done` of `total` units of `what` are done (no one watching: nothing happens)."""
    listener = getattr(_local, "listener", None)
    if listener is not None:
        listener(done, total, what)
