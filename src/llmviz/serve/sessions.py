"""Generation one step at a time, for the page's Step, Play, Undo and Reset: a session keeps the KV cache,
the seeded generator and what each step drew, so that a step computes only the new position and Undo
restores the state before it exactly (the same seed then draws the same token again).

A session's memory is its KV cache, one copy: Undo cuts the cache back rather than keeping a copy per step.
The sessions of a server share a byte budget: a step that would take them past it first ends the least
recently used other sessions, and a session too large for the budget on its own is refused (413)."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict

import numpy as np

from ..core.errors import LlmvizError, NotFound, OverBudget
from ..core.model import KVCache, Model
from ..core.sampling import Draw, Sampling, sample


class ContextFull(LlmvizError):
    status = 409


class SessionGone(LlmvizError):
    """A session that existed but expired, or was evicted for newer ones."""

    status = 410


class Session:
    def __init__(self, model: Model, prompt: list[int], sampling: Sampling, seed: int | None):
        self.model, self.prompt, self.sampling, self.seed = model, list(prompt), sampling, seed
        self.rng = np.random.default_rng(seed)
        self.cache = KVCache(model)
        self.pending = list(prompt)  # tokens not in the cache yet: the prompt, then each drawn token
        self.draws: list[Draw] = []
        self.history: list[tuple] = []  # before each step: the cache's length, the generator's state, pending
        self.lock = threading.Lock()

    @property
    def tokens(self) -> list[int]:
        return self.prompt + [d.token for d in self.draws]

    @property
    def done(self) -> bool:
        """The context is full: the tokens so far (the last one not yet computed) exceed it."""
        return len(self.cache) + len(self.pending) > self.model.config.n_ctx

    def position(self, i: int) -> int:
        """Where the i-th generated token sits in the sequence (counting from 0, as the `pos` axis does)."""
        return len(self.prompt) + i

    def step(self, stop=None) -> Draw:
        """Draw the next token: the new positions' pass on the cache, then the sampling chain."""
        if self.done:
            raise ContextFull(f"the context is full: {self.model.name} holds {self.model.config.n_ctx} tokens, "
                              "and all of them are used")
        before = (len(self.cache), self.rng.bit_generator.state, list(self.pending))
        logits = self.model.step(self.cache, self.pending, keep=(), stop=stop).next_logits
        assert logits is not None  # a step always predicts
        draw = sample(logits, self.sampling, self.rng)
        self.history.append(before)
        self.draws.append(draw)
        self.pending = [draw.token]
        return draw

    def undo(self) -> None:
        """Take back the last step: its token, the cache it grew and the draw it used."""
        if not self.draws:
            raise LlmvizError("nothing to undo: no token has been generated yet")
        n, state, self.pending = self.history.pop()
        self.cache.truncate(n)
        self.rng.bit_generator.state = state
        self.draws.pop()

    @property
    def cache_bytes(self) -> int:
        """The memory the session holds: its KV cache's arrays."""
        return self.cache.nbytes

    def bytes_after(self, count: int) -> int:
        """Its KV cache's bytes after `count` more steps (each step caches the positions it computes)."""
        positions = min(len(self.cache) + len(self.pending) + count - 1, self.model.config.n_ctx)
        return self.model.config.kv_cache_bytes(positions)


class Sessions:
    """At most `size` sessions holding at most `budget` bytes of KV cache together, the least recently used
    ended first, each expiring after `ttl` seconds unused. An id that is not known is a 404; one that was known
    but expired or was ended for newer ones, a 410."""

    def __init__(self, size: int = 8, ttl: float = 900.0, budget: int = 512 * 2**20):
        self.size, self.ttl, self.budget = size, ttl, budget
        self.items: OrderedDict[str, tuple[Session, float]] = OrderedDict()
        self.gone: OrderedDict[str, None] = OrderedDict()  # ids that existed (the last few thousand)
        self.lock = threading.Lock()

    def _forget(self, sid: str) -> None:
        self.items.pop(sid, None)
        self.gone[sid] = None
        while len(self.gone) > 4096:
            self.gone.popitem(last=False)

    @property
    def nbytes(self) -> int:
        """The memory every session holds together (their KV caches)."""
        with self.lock:
            return sum(s.cache_bytes for s, _ in self.items.values())

    def add(self, session: Session) -> str:
        sid = secrets.token_urlsafe(12)
        with self.lock:
            self.items[sid] = (session, time.monotonic())
            while len(self.items) > self.size:
                self._forget(next(iter(self.items)))
        return sid

    def get(self, sid: str) -> Session:
        with self.lock:
            now = time.monotonic()
            for old in [k for k, (_, t) in self.items.items() if now - t > self.ttl]:
                self._forget(old)
            if sid in self.items:
                session = self.items[sid][0]
                self.items[sid] = (session, now)
                self.items.move_to_end(sid)
                return session
            if sid in self.gone:
                raise SessionGone(f"generation session {sid!r} has expired (sessions last {self.ttl:g} s unused, at "
                                  f"most {self.size} are kept, and together they hold at most "
                                  f"{self.budget / 2**20:,.0f} MiB of KV cache): start a new one")
        raise NotFound(f"no generation session {sid!r}: start one with POST /api/sessions")

    def make_room(self, sid: str, count: int) -> None:
        """Before `count` steps of session `sid`: end the least recently used other sessions until every
        session's cache, this one's grown, fits the budget. A session too large for the budget alone is refused."""
        with self.lock:
            session = self.items[sid][0]
            need = session.bytes_after(count)
            if need > self.budget:
                raise OverBudget(f"this session's KV cache would hold {need / 2**20:,.1f} MiB after {count} more "
                                 f"step{'s' * (count != 1)}, over the sessions' budget of {self.budget / 2**20:,.0f} "
                                 "MiB (llmviz serve --sessions-mb): generate fewer tokens, or start from a shorter input")
            others = [k for k in self.items if k != sid]
            while others and need + sum(self.items[k][0].cache_bytes for k in others) > self.budget:
                self._forget(others.pop(0))

    def remove(self, sid: str) -> None:
        """End a session: its cache is freed."""
        self.get(sid)
        with self.lock:
            self._forget(sid)
