"""Where requests compute: a byte-bounded cache of recent results, and a small pool of worker threads with a
bounded queue, which stops a computation whose client has gone away and tells how far each one has got (the page
names its request's computation with an `X-Llmviz-Task` header, then asks GET /api/progress/{task})."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import Response

from ..core.errors import Busy
from ..core.model import Stopped
from ..core.progress import watching
from .limits import Unsent

log = logging.getLogger("llmviz")


class Recent:
    """Recent results by key, within `capacity` bytes (least recently used goes first; a result larger than
    the whole capacity is not kept). Safe for the worker threads."""

    def __init__(self, capacity: int):
        self.capacity, self.used = capacity, 0
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key][0]
        return None

    def put(self, key, value, size: int) -> None:
        with self.lock:
            if key in self.items:
                self.used -= self.items.pop(key)[1]
            if size > self.capacity:
                return
            self.items[key] = (value, size)
            self.used += size
            while self.used > self.capacity:
                self.used -= self.items.popitem(last=False)[1][1]

    def payload(self, key, make) -> bytes:
        """The bytes kept under key, or make() them and keep them."""
        data = self.get(key)
        if data is None:
            data = make()
            self.put(key, data, len(data))
        return data


TASK_HEADER = "x-llmviz-task"
TASK_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what a task's name may be (the page's: a random id)


@dataclass
class Progress:
    """How far one named computation has got: its latest report, `done` of `total` units of `what` (0 of 0, "",
    before the first; one tuple, so that a reader never sees half of a report), whether it still waits for a
    worker, and when it was asked for (time.monotonic)."""

    started: float = field(default_factory=time.monotonic)
    latest: tuple[int, int, str] = (0, 0, "")
    waiting: bool = True

    def seconds(self) -> float:
        return time.monotonic() - self.started


class Tasks:
    """The progress of the computations named by their request, while they wait or run (a record is removed when
    its computation ends, so there are never more than the workers and their queue hold). Safe for the workers."""

    def __init__(self) -> None:
        self.records: dict[str, Progress] = {}
        self.lock = threading.Lock()

    def add(self, task: str) -> Progress:
        with self.lock:
            record = self.records[task] = Progress()  # (a name given twice: the later computation's)
        return record

    def remove(self, task: str, record: Progress) -> None:
        with self.lock:
            if self.records.get(task) is record:
                del self.records[task]

    def get(self, task: str) -> Progress | None:
        with self.lock:
            return self.records.get(task)


class Workers:
    """Every request whose work depends on what it asks runs in a pool of `size` threads, never on the event
    loop, with at most `queue` more waiting; past that, or while the answers not yet sent are over their budget,
    a request gets 503 with Retry-After. A request whose client goes away, or a server that is stopping, stops its
    computation at the next op; its place in the pool is given back when the computation has really ended."""

    def __init__(self, size: int, queue: int, unsent: Unsent):
        self.pool = ThreadPoolExecutor(size, thread_name_prefix="llmviz-worker")
        self.limit, self.pending = size + queue, 0
        self.unsent = unsent
        self.closing = threading.Event()
        self.tasks = Tasks()

    async def run(self, request: Request, fn):
        """fn(stop) in a worker thread; stop() turns true when the result is no longer wanted. A request with an
        `X-Llmviz-Task` header has its computation's progress kept under that name until it ends."""
        if self.pending >= self.limit:
            raise Busy(f"the server is busy ({self.pending} requests computing or waiting): try again shortly")
        if self.unsent.full:
            raise self.unsent.refuse()
        task = request.headers.get(TASK_HEADER)
        if task is not None and not TASK_NAME.fullmatch(task):
            task = None  # (not a name the page makes: not kept)
        self.pending += 1
        cancel = threading.Event()

        def stop() -> bool:
            return cancel.is_set() or self.closing.is_set()

        if task is None:
            job = asyncio.wrap_future(self.pool.submit(fn, stop))
        else:
            record = self.tasks.add(task)
            job = asyncio.wrap_future(self.pool.submit(watched, record, fn, stop))
            job.add_done_callback(lambda _: self.tasks.remove(task, record))
        job.add_done_callback(self._ended)
        gone = asyncio.ensure_future(client_gone(request))
        try:
            await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not job.done():
                cancel.set()
                return Response(status_code=499)  # nobody is listening
            if job.cancelled():  # still queued when the server began to stop
                raise Stopped("the server is stopping")
            return job.result()
        except asyncio.CancelledError:
            cancel.set()
            raise
        finally:
            gone.cancel()

    def _ended(self, job: asyncio.Future) -> None:
        """A job's end: its place is free; a job nobody waits for any more is logged in one line."""
        self.pending -= 1
        if not job.cancelled() and isinstance(job.exception(), Stopped):
            log.info("a computation stopped: its client went away or the server is stopping")

    def close(self) -> None:
        self.closing.set()
        self.pool.shutdown(wait=False, cancel_futures=True)


def watched(record: Progress, fn, stop):
    """fn(stop) on this worker, its reports (core/progress.py) kept in `record`."""
    def listener(done: int, total: int, what: str) -> None:
        record.latest = (done, total, what)

    record.waiting = False
    with watching(listener):
        return fn(stop)


async def client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body has been read: the channel says nothing else)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
