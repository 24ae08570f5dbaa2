"""What every route shares, handed to it as a FastAPI dependency (`Depends(served)`): the models this server
knows, the cache of recent passes, the worker pool, the generation sessions and the memory budget per request;
and the preamble most routes begin with (`on_pass`): get the model, require its weights, encode the input,
check the budget, and compute on a worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request

from ..core.edits import Edit, parse_edits
from ..core.errors import LlmvizError, ModelNotFound, OverBudget
from ..core.graph import Graph
from ..core.model import KVCache, Model, Trace
from ..core.quant import SEP as QUANT_SEP
from ..core.quant import quantized
from ..core.weights import COPIES_UP_TO
from ..io.loading import DEFAULT_MODELS, load_model, structure_only
from ..training.live import TrainingSlot
from ..views.decision import learner_model
from ..views.scene import run_scene
from ..views.walkthrough import compile_chapters
from .limits import MB, Limits, Unsent
from .schemas import PromptRequest
from .sessions import Sessions
from .workers import Recent, Workers

STRUCTURE_ONLY = ["gpt2", "gpt2-xl", "gpt3"]  # always listed, for the scale view


class Served:
    """One server's models and resources."""

    def __init__(self, models: list[Model] | None, limits: Limits):
        self.registry: dict[str, Model] = {}
        for m in models or [load_model(n) for n in DEFAULT_MODELS]:  # the bundled ones, nano-gpt first
            name, n = m.name, 2
            while name in self.registry:  # two folders of the same name: the second is "name-2"
                name, n = f"{m.name}-{n}", n + 1
            self.registry[name] = m
        for name in STRUCTURE_ONLY:
            self.registry.setdefault(name, structure_only(name))
        self.unsent = Unsent(limits.unsent_mb * MB)
        self.workers = Workers(limits.workers, limits.queue, self.unsent)
        self.sessions = Sessions(limits.sessions, budget=limits.sessions_mb * MB)
        self.stopping = asyncio.Event()  # set when the server begins to stop (see server.run)
        self.cache = Recent(limits.cache_mb * MB)  # forward passes (their residual stream) and scene payloads
        self.budget = limits.request_mb * MB
        self.formats: dict[str, Model] = {}  # the quantized models asked for, by name (nano-gpt:q4_0)
        self.training = TrainingSlot()  # one training run at a time; its snapshots are models by name (nano-gpt@1200)

    def quantized(self, name: str) -> Model | None:
        """`<model>:<format>` (nano-gpt:q4_0): the served model with its weights stored in that format and read back
        (core/quant.py), made once and kept; None for a name without the separator."""
        base, sep, fmt = name.rpartition(QUANT_SEP)
        if not sep or base not in self.registry:
            return None
        if name not in self.formats:
            self.formats[name] = quantized(self.registry[base], fmt)
        return self.formats[name]

    def model(self, name: str) -> Model:
        if name not in self.registry:
            if (snapshot := self.training.model(name)) is not None:  # a training run's snapshot: not in the list
                return snapshot
            if (mine := learner_model(self.registry, name)) is not None:  # a neuron with a learner's weights
                return mine
            if (q := self.quantized(name)) is not None:  # a model with its weights stored in fewer bits
                return q
            raise ModelNotFound(self.training.known(name) or
                                f"unknown model {name!r}: this server has {', '.join(self.registry)}")
        return self.registry[name]

    def warm(self) -> None:
        """Compile each model's walkthrough for its example input once, on a background thread, so that the first
        learner to open it does not wait for what a chapter measures once per model (nano-gpt's sorting chapter runs
        all 729 inputs with each of its edits: seconds, then cached)."""
        def run() -> None:
            for m in list(self.registry.values()):
                if m.has_weights and m.engine == "numpy" and m.config.n_params <= COPIES_UP_TO and \
                        (text := example_input(m)) is not None:
                    with contextlib.suppress(LlmvizError):  # (a model that cannot: its first request says why)
                        compile_chapters(m, m.run(text, keep=m.graph.checkpoints()))

        threading.Thread(target=run, name="llmviz-warm", daemon=True).start()

    def within_budget(self, need: int, what: str, advice: str) -> None:
        if need > self.budget:
            raise OverBudget(f"{what} needs about {need / MB:,.0f} MiB of memory, over this server's budget of "
                             f"{self.budget / MB:,.0f} MiB per request (llmviz serve --request-mb): {advice}")

    def pass_budget(self, m: Model, ids: list[int]) -> None:
        """A pass's memory as it streams (Model.pass_bytes); refused with the longest input that fits."""
        if (need := m.pass_bytes(len(ids))) <= self.budget:
            return
        lo, hi = 0, len(ids) - 1  # the most tokens that fit: pass_bytes grows with the tokens
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if m.pass_bytes(mid) <= self.budget else (lo, mid - 1)
        self.within_budget(need, f"a forward pass of {len(ids):,} tokens",
                           f"give at most {lo:,} tokens" if lo else "this model's pass does not fit even for one token")

    def step_budget(self, m: Model, ids: list[int], past: int) -> None:
        """A generation step's view (scene or cells): `past` must leave at least one new token."""
        if not 0 < past < len(ids):
            raise LlmvizError(f"past must be from 1 to {len(ids) - 1}: the tokens before the step's new ones")
        self.pass_budget(m, ids)

    def edits(self, m: Model, ids: list[int], raw: Sequence[Mapping], stop) -> list[Edit]:
        """Edits (their JSON form) checked against the model for this input, each patch's source pass run within
        the budget: the source tensors are held through the pass (with the pass itself, and the clean one)."""
        if not raw:
            return []
        g = m.graph
        checked = parse_edits(g, raw, len(ids), m.encode)  # before anything is computed
        sources = {(e.source_tokens, e.tensor) for e in checked if e.kind == "patch"}
        held = sum(g[name].nbytes(g.sizes(len(ids))) for _, name in sources)
        self.within_budget(2 * g.peak_bytes(len(ids), g.checkpoints()) + held,
                           f"an edited pass of {len(ids)} tokens (and the clean one, and {len(sources)} patched "
                           "tensors)", "give fewer tokens or fewer patches")
        return m.edits(checked, len(ids), stop)

    def request_ids(self, m: Model, prompt) -> list[int]:
        """The tokens a request names, for a model that computes passes (a model served by nnsight holds no weights
        of its own, and computes them)."""
        if not m.has_weights:
            m.require_weights()
        return m.encode(prompt)

    def with_pass(self, m: Model, ids: list[int], stop, use: Callable[[Trace], Any], heads: str = "side",
                  edits: Sequence[Edit] = ()):
        """use(trace) on the forward pass of ids: the cached one, or one computed now (within the request budget),
        kept as its residual stream with its scene built on the way. A tensor `use` reads is recomputed from its
        layer; that layer stays for the next request if it fits in half the cache, and the cache counts it.
        edits (checked, with their sources: Model.edits): the pass with these interventions instead."""
        key = pass_key(m, ids, edits)
        trace = self.cache.get(key)
        if trace is None:
            self.pass_budget(m, ids)
            if edits:
                trace = m.run(ids, keep=m.graph.checkpoints(), stop=stop, edits=edits)
            else:
                trace, payload = run_scene(m, ids, stop, heads)
                self.cache.put(("scene", m, tuple(ids), heads), payload, len(payload))
        try:
            return use(trace)
        finally:
            if trace.nbytes > self.cache.capacity // 2:
                trace.forget()
            self.cache.put(key, trace, trace.nbytes)

    async def run(self, request: Request, fn: Callable[[Callable[[], bool]], Any]):
        """fn(stop) on a worker thread (see workers.Workers.run)."""
        return await self.workers.run(request, fn)

    async def on_pass(self, request: Request, req: PromptRequest, use: Callable[[Trace], Any],
                      past: int | None = None, before: Callable[[Graph, int], None] | None = None,
                      edits: Sequence[Mapping] = ()):
        """The preamble of a route that reads one forward pass: use(trace) on the pass of the request's input,
        computed on a worker within the budget (cached for the next request); with `past`, the pass of a
        generation step, its first `past` tokens on a KV cache; with `edits` (their JSON form), the edited pass.
        before(graph, new positions), if given, runs first, on the worker: a check of the request against the
        pass's graph."""
        m = self.model(req.model)

        def compute(stop):
            ids = self.request_ids(m, req.prompt)
            if past is not None:
                self.step_budget(m, ids, past)
            if before is not None:
                before(Graph(m.config, past=past) if past else m.graph, len(ids) - (past or 0))
            if past is None:
                return self.with_pass(m, ids, stop, use, edits=self.edits(m, ids, edits, stop))
            kv = KVCache(m)
            m.step(kv, ids[:past], keep=(), stop=stop)
            return use(m.step(kv, ids[past:], stop=stop))

        return await self.run(request, compute)


def served(request: Request) -> Served:
    """The dependency every route takes: this app's `Served`."""
    return request.app.state.served


def example_input(m: Model) -> str | None:
    """A first input for the view: the model's own example, else a short sentence its tokenizer accepts
    (without a tokenizer, a few token ids)."""
    if not m.has_weights:
        return None
    if m.config.classifier:  # an image model's: its example image's pixels as text (a neuron's: its point)
        return m.config.example or None
    if m.tokenizer is None:
        return " ".join(str(i) for i in range(min(4, m.config.n_ctx, m.config.vocab_size)))
    for text in (m.config.example, "The quick brown fox"):
        try:
            if text and len(m.encode(text)) <= m.config.n_ctx:
                return text
        except LlmvizError:
            pass
    return m.decode([0, 1, 2][: m.config.n_ctx])


ServedDep = Annotated[Served, Depends(served)]  # a route's parameter `s: ServedDep`


def pass_key(m: Model, ids: Sequence[int], edits: Sequence[Edit] = ()) -> tuple:
    """The cache's key for a pass (an edited one: its edits too)."""
    key: tuple = ("trace", m, tuple(ids))
    return key + (json.dumps([e.to_json() for e in edits]),) if edits else key
