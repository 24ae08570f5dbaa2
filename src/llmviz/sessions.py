"""Generation one step at a time, for the page's Step, Play, Undo and Reset: a session keeps the KV cache,
the seeded generator and what each step drew, so that a step computes only the new position and Undo
restores the state before it exactly (the same seed then draws the same token again)."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict

import numpy as np

from .errors import LlmvizError, NotFound
from .model import KVCache, Model
from .sampling import Draw, Sampling, sample


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
        self.history: list[tuple] = []  # the state before each step, for undo
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
        before = (self.cache.copy(), self.rng.bit_generator.state, list(self.pending))
        logits = self.model.step(self.cache, self.pending, keep=(), stop=stop).next_logits
        draw = sample(logits, self.sampling, self.rng)
        self.history.append(before)
        self.draws.append(draw)
        self.pending = [draw.token]
        return draw

    def undo(self) -> None:
        """Take back the last step: its token, the cache it grew and the draw it used."""
        if not self.draws:
            raise LlmvizError("nothing to undo: no token has been generated yet")
        self.cache, state, self.pending = self.history.pop()
        self.rng.bit_generator.state = state
        self.draws.pop()

    @property
    def cache_bytes(self) -> int:
        return self.cache.nbytes


class Sessions:
    """At most `size` sessions, the least recently used evicted first, each expiring after `ttl` seconds unused.
    An id that is not known is a 404; one that was known but expired or was evicted, a 410."""

    def __init__(self, size: int = 8, ttl: float = 900.0):
        self.size, self.ttl = size, ttl
        self.items: OrderedDict[str, tuple[Session, float]] = OrderedDict()
        self.gone: OrderedDict[str, None] = OrderedDict()  # ids that existed (the last few thousand)
        self.lock = threading.Lock()

    def _forget(self, sid: str) -> None:
        self.items.pop(sid, None)
        self.gone[sid] = None
        while len(self.gone) > 4096:
            self.gone.popitem(last=False)

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
                raise SessionGone(f"generation session {sid!r} has expired (sessions last {self.ttl:g} s unused, "
                                  f"and at most {self.size} are kept): start a new one")
        raise NotFound(f"no generation session {sid!r}: start one with POST /api/sessions")

    def remove(self, sid: str) -> None:
        self.get(sid)
        with self.lock:
            self._forget(sid)
