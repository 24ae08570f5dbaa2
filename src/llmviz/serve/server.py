"""The local web server: the built front-end plus a small typed JSON/binary API.

    GET  /api/models               the models this server knows, with config and parameter count
    GET  /api/models/{name}/graph  the model graph (tensors, axes, ops) as JSON
    POST /api/trace                tensors of one forward pass, as safetensors bytes
    POST /api/scene                what the 3D view draws: the layout and every block's numbers
    POST /api/explain              where one number came from: its op's formula with the real numbers
    POST /api/generate             sample a continuation, with every stage of the sampling chain
    POST /api/sessions             generate step by step on a KV cache: .../step, .../undo, GET, DELETE
    GET  /api/walkthrough          the guided walkthrough, compiled for a model and an input
    POST /api/attention            every head's attention pattern, float16 safetensors
    POST /api/lens                 the logit lens: the top tokens after each layer, at each position
    POST /api/branches             a tree of the most probable continuations

The OpenAPI schema is at /openapi.json. Limits (see `Limits`): a Host header check and no cross-site API
requests, request bodies of at most 64 KiB read within a timeout, a byte-bounded cache, a memory budget per
request, a byte budget for generation sessions and one for answers not yet sent, and a small pool of workers,
with a bounded queue, for every request whose work depends on what it asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import math
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..core.config import PRESETS
from ..core.errors import Busy, LlmvizError, ModelNotFound, OverBudget
from ..core.graph import Graph
from ..core.model import KVCache, Model, Stopped, Trace
from ..core.sampling import Draw, Sampling, percent
from ..io.loading import load_model, structure_only
from ..io.safetensors_file import allocate
from ..views.branches import MAX_DEPTH, MAX_K, MAX_NODES, branches, node_count, tree_bytes
from ..views.lens import logit_lens
from ..views.provenance import cells, explain, pick_in_region
from ..views.scene import run_scene, scene_bytes, step_scene
from ..views.walkthrough import compile_chapters
from .sessions import ContextFull, Session, Sessions

MAX_BODY_BYTES = 64 * 1024
MAX_PATTERNS = 256  # tensor names or patterns one trace request may give
TRACE_MEDIA_TYPE = "application/vnd.llmviz.trace+safetensors"
SCENE_MEDIA_TYPE = "application/vnd.llmviz.scene+safetensors"
STRUCTURE_ONLY = ["gpt2", "gpt2-xl", "gpt3"]  # always listed, for the scale view
LOOPBACK = ("localhost", "127.0.0.1", "::1")
MB = 2**20
log = logging.getLogger("llmviz")


@dataclass(frozen=True)
class Limits:
    """What one server allows; `llmviz serve` has an option for each."""

    cache_mb: int = 256  # forward passes and scenes kept for the next request, in MiB
    request_mb: int = 1024  # memory one request may use for its answer and its working set, in MiB
    workers: int = 2  # forward passes computed at once
    queue: int = 16  # requests waiting for a worker; past that, 503 with Retry-After
    body_timeout: float = 10.0  # seconds to receive a request body
    sessions: int = 8  # generation sessions kept (least recently used evicted; each expires after 15 min unused)
    sessions_mb: int = 512  # their KV caches together, in MiB
    unsent_mb: int = 512  # answers computed and not yet taken by their clients, together, in MiB


class StrictBody(BaseModel):
    """A request body: JSON types as declared (no "1" for 1, no 1.0 for 1, no "yes" for true), no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


class ModelInfo(BaseModel):
    name: str
    description: str
    example: str | None = Field(None, description="an input to start with")
    n_params: int = Field(description="exact number of learned parameters")
    param_parts: dict[str, int] = Field(description="where the parameters live: embedding, attention, mlp and other "
                                                    "(the norms), adding up to n_params")
    has_weights: bool = Field(description="false: structure only, no numbers to show")
    config: dict
    source: str


class PromptRequest(StrictBody):
    model: str = Field("nano-gpt", examples=["nano-gpt"])
    text: str | None = Field(None, max_length=20_000, examples=["CBABBC"])
    tokens: list[int] | None = Field(None, max_length=10_000, description="token ids instead of text")

    @model_validator(mode="after")
    def one_of_text_or_tokens(self):
        if (self.text is None) == (self.tokens is None):
            raise ValueError("give exactly one of 'text' or 'tokens'")
        return self

    @property
    def prompt(self):
        return self.text if self.text is not None else self.tokens


class SceneRequest(StrictBody):
    model: str | None = Field(None, examples=["nano-gpt"], description="default: the server's first model")
    text: str | None = Field(None, max_length=20_000, examples=["CBABBC"])
    tokens: list[int] | None = Field(None, max_length=10_000)
    n_pos: int | None = Field(None, ge=1, le=4096, description="positions to lay out for a structure-only model")
    heads: Literal["side", "stack"] = Field("side", description="a tensor's heads side by side, or stacked in depth")
    tower: bool = Field(False, description="the layers in one column, each MLP below its attention (the scale view "
                                           "stands models side by side as towers); default: the model's own "
                                           "arrangement, about as wide as a screen")
    past: int | None = Field(None, ge=1, le=100_000, description="a generation step: the last tokens computed on a "
                                                                 "KV cache of the first `past` (the KV-cache view)")

    @model_validator(mode="after")
    def not_both(self):
        if self.text is not None and self.tokens is not None:
            raise ValueError("give at most one of 'text' or 'tokens'")
        return self


class ExplainRequest(PromptRequest):
    tensor: str = Field(examples=["blocks.0.attn.hook_q"])
    past: int | None = Field(None, ge=1, le=100_000, description="a cell of a generation step's scene (see /api/scene)")
    index: list[int] | None = Field(None, max_length=8, description="the cell's index, one number per axis")
    region: dict[str, list[int]] | None = Field(
        None, description="instead of index: {axis: [first, last]}; the cell of largest magnitude in it is explained "
                          "(a downsampled cell of the view stands for such a tile)")

    @model_validator(mode="after")
    def index_or_region(self):
        if (self.index is None) == (self.region is None):
            raise ValueError("give exactly one of 'index' or 'region'")
        return self


class CellSlice(StrictBody):
    tensor: str = Field(examples=["blocks.0.attn.hook_pattern"])
    at: dict[str, int] = Field(default_factory=dict, description="the axes fixed, by name; the others come whole")


class CellsRequest(PromptRequest):
    past: int | None = Field(None, ge=1, le=100_000, description="a generation step's pass (see /api/scene)")
    slices: list[CellSlice] = Field(default_factory=list, max_length=64)


class CellsSlice(BaseModel):
    tensor: str
    at: dict[str, int]
    axes: list[str] = Field(description="the axes left, in the tensor's order")
    shape: list[int]
    values: str = Field(description="the numbers, little-endian float32, base64")


class CellsResponse(BaseModel):
    shapes: dict[str, list[int]] = Field(description="every tensor of this pass, by name")
    slices: list[CellsSlice]


def allowed_range(field: str) -> str:
    """' (allowed: from 1 to 20)' for a numeric request field with both bounds (the same in every request that
    has it); '' otherwise."""
    ranges = set()
    todo = [StrictBody]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        info = cls.model_fields.get(field)
        if info is not None:
            bound = {k: getattr(m, k) for m in info.metadata for k in ("ge", "gt", "le", "lt") if hasattr(m, k)}
            ranges.add((bound.get("ge", bound.get("gt")), bound.get("le", bound.get("lt"))))
    (lo, hi), = ranges if len(ranges) == 1 else [(None, None)]
    return f" (allowed: from {lo} to {hi})" if lo is not None and hi is not None else ""


class LensRequest(PromptRequest):
    k: int = Field(5, ge=1, le=20, description="how many tokens to keep at each layer and position")


class BranchesRequest(PromptRequest):
    k: int = Field(3, ge=1, le=MAX_K, description="children per node: the k most probable next tokens")
    depth: int = Field(1, ge=1, le=MAX_DEPTH, description="levels below the input")
    max_nodes: int = Field(200, ge=1, le=MAX_NODES, description="at most this many nodes")


class TraceRequest(PromptRequest):
    include_weights: bool = Field(False, description="also send every weight tensor")
    tensors: list[str] | None = Field(None, max_length=MAX_PATTERNS, examples=[["blocks.0.attn.*", "probs"]],
                                      description="only these tensors: names, or patterns with * and ?")


class SamplingFields(BaseModel):
    temperature: float = Field(0.0, ge=0.0, le=10.0, allow_inf_nan=False,
                               description="0 is greedy; close to 0 tends to greedy")
    top_k: int | None = Field(None, ge=1, description="keep the k most probable tokens")
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False,
                                description="keep the fewest tokens whose probabilities add up to top_p")
    min_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False,
                                description="keep tokens at least min_p times as probable as the most probable")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="the same seed and settings give the same tokens")

    def sampling(self) -> Sampling:
        return Sampling(self.temperature, self.top_k, self.top_p, self.min_p)


class GenerateRequest(PromptRequest, SamplingFields):
    max_new_tokens: int | None = Field(None, ge=0, le=256)


class Candidate(BaseModel):
    id: int
    token: str
    prob: float
    percent: str = Field(description="the probability as the page shows it")


class Stage(BaseModel):
    name: str = Field(description="probabilities, ÷ temperature T, top-k k, top-p p, min-p p, renormalised (or greedy)")
    kept: int = Field(description="how many tokens this stage keeps")
    top: list[Candidate] = Field(description="its most probable tokens")


class Step(BaseModel):
    id: int
    token: str
    prob: float = Field(description="the model's probability of the token")
    chosen_prob: float = Field(description="its probability after the sampling chain, which the draw used")
    u: float | None = Field(description="the uniform draw placed on the cumulative distribution; null when greedy")
    stages: list[Stage]
    position: int = Field(description="where the token goes in the sequence")


class GenerateResponse(BaseModel):
    prompt_tokens: list[int]
    tokens: list[int]
    token_strs: list[str]
    text: str
    probs: list[float] = Field(description="probability of each chosen token when it was chosen")
    steps: list[Step] = Field(description="each choice, with every stage of the sampling chain")


class SessionRequest(PromptRequest, SamplingFields):
    pass


class StepRequest(StrictBody):
    count: int = Field(1, ge=1, le=256, description="tokens to generate; fewer when the context fills")


class SessionState(BaseModel):
    session: str
    model: str
    prompt_tokens: list[int]
    tokens: list[int] = Field(description="the prompt and every token generated so far")
    token_strs: list[str]
    text: str = Field(description="the generated tokens, decoded")
    view_text: str = Field(description="the input a view of the sequence shows: the tokens so far, at most a context "
                                       "(the pass that predicted the last token)")
    steps: list[Step] = Field(description="this request's steps (after a step), or every step so far")
    n_ctx: int
    done: bool = Field(description="the context is full: no further step")
    message: str | None = None
    cache: dict = Field(description="the KV cache in numbers: its bytes now (2 · n_layer · n_head · d_head · positions · "
                                    "4 bytes), at GPT-2's and GPT-3's full context, and the multiply-adds of the next "
                                    "step with the cache and without it")


class BodyLimit:
    """Read each request body whole before the app sees it: at most `limit` bytes (413), declared or
    chunked, within `timeout` seconds (408, and the connection is closed)."""

    def __init__(self, app, limit: int, timeout: float, stopping: asyncio.Event):
        self.app, self.limit, self.timeout, self.stopping = app, limit, timeout, stopping

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await refuse(scope, receive, send, 413, f"request body too large: at most {self.limit} bytes")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        chunks, size, more = [], 0, True
        stopping = asyncio.ensure_future(self.stopping.wait())
        while more:
            part = asyncio.ensure_future(receive())
            await asyncio.wait({part, stopping}, timeout=max(0.0, deadline - loop.time()),
                               return_when=asyncio.FIRST_COMPLETED)
            if not part.done():
                part.cancel()
                stopping.cancel()
                if self.stopping.is_set():
                    return await refuse(scope, receive, send, 503, "the server is stopping", close=True)
                return await refuse(scope, receive, send, 408, f"the request body did not arrive within "
                                    f"{self.timeout:g} s", close=True)
            message = part.result()
            if message["type"] != "http.request":
                stopping.cancel()
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                stopping.cancel()
                return await refuse(scope, receive, send, 413, f"request body too large: at most {self.limit} bytes")
        stopping.cancel()
        pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():  # the buffered body once, then the real channel (for http.disconnect)
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)


class HostCheck:
    """Answer only requests whose Host header names this server: loopback names, the address it binds,
    and names allowed explicitly. A web page that rebinds its own name to 127.0.0.1 gets 400."""

    def __init__(self, app, hosts):
        self.app, self.hosts = app, {h.lower().strip("[]") for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and "*" not in self.hosts:
            header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host_name(header) not in self.hosts:
                return await refuse(scope, receive, send, 400, f"unexpected Host header {header[:100] or '(none)'!r}: this "
                                    "server answers only to its own names; start it with --allow-host NAME "
                                    "to allow another", close=True)
        await self.app(scope, receive, send)


HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9._~!$&'()*+,;=%-]*)(:[0-9]*)?")  # RFC 3986: host [":" port]


def host_name(header: str) -> str | None:
    """`[::1]:8765` -> `::1`, `localhost:8765` -> `localhost`; None for anything that is not a host with an
    optional numeric port (`[::1]evil.com`, `[::1]:80@evil.com`, `localhost:abc`)."""
    found = HOST.fullmatch(header.strip().lower())
    return found.group(1).strip("[]") if found else None


class NoCrossSite:
    """Refuse API requests that a browser marks as sent by another site (Sec-Fetch-Site: cross-site), such as an
    <img src=".../api/walkthrough?input=..."> on a web page: they would make this server compute for that page."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/api/") and \
                dict(scope["headers"]).get(b"sec-fetch-site") == b"cross-site":
            return await refuse(scope, receive, send, 403, "this server answers API requests from its own page only, "
                                "not from other web sites")
        await self.app(scope, receive, send)


class Unsent:
    """The bytes of answers computed and not yet taken by their clients, together at most `limit` (one answer
    alone may be larger: the request budget bounds it). A client that reads slowly, or never, holds its answer's
    bytes; past the limit, new answers are refused (503) until those are sent or their clients go away."""

    def __init__(self, limit: int):
        self.limit, self.bytes = limit, 0

    @property
    def full(self) -> bool:
        return self.bytes >= self.limit

    def admit(self, size: int) -> None:
        """Before computing an answer of `size` bytes: refuse it (503) if it could not be sent now."""
        if self.bytes and self.bytes + size > self.limit:
            raise self.refuse()

    def refuse(self) -> Busy:
        return Busy(f"the server holds {self.bytes / MB:,.0f} MiB of answers that their clients have not read yet "
                    f"(at most {self.limit / MB:,.0f} MiB, llmviz serve --unsent-mb): try again shortly")


class SendLimit:
    """Send each answer in pieces, each after the client has taken the one before (the server's flow control),
    counting its bytes in `unsent` from the first piece to the last; an answer that would take `unsent` past its
    limit is replaced by a 503."""

    PIECE = 256 * 1024

    def __init__(self, app, unsent: Unsent):
        self.app, self.unsent = app, unsent

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held, refused = 0, False
        unsent = self.unsent

        async def limited(message):
            nonlocal held, refused
            if message["type"] == "http.response.start":
                size = int(dict(message.get("headers", [])).get(b"content-length", b"0") or 0)
                if message["status"] < 400 and unsent.bytes and unsent.bytes + size > unsent.limit:
                    refused = True
                    busy = unsent.refuse()
                    return await refuse(scope, receive, send, busy.status, str(busy), headers=busy.headers)
                held = size
                unsent.bytes += size
                return await send(message)
            if refused or message["type"] != "http.response.body":
                return None if refused else await send(message)
            body, more = message.get("body", b""), message.get("more_body", False)
            view = memoryview(body)
            for at in range(0, max(len(body), 1), self.PIECE):
                piece = view[at:at + self.PIECE]
                last = at + self.PIECE >= len(body)
                await send({"type": "http.response.body", "body": bytes(piece), "more_body": more or not last})
                done = min(len(piece), held)
                held -= done
                unsent.bytes -= done

        try:
            await self.app(scope, receive, limited)
        finally:
            unsent.bytes -= held  # a client gone, or an answer shorter than it said


class JsonErrors:
    """An unexpected error is a JSON 500 that names no internals; the connection stays usable and the
    server log gets the traceback."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await refuse(scope, receive, send, 500, "internal error: the server log has the details")


async def refuse(scope, receive, send, status: int, detail: str, close: bool = False, headers=None) -> None:
    headers = {**(headers or {}), **({"connection": "close"} if close else {})}
    await JSONResponse({"detail": detail}, status, headers=headers)(scope, receive, send)


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

    async def run(self, request: Request, fn):
        """fn(stop) in a worker thread; stop() turns true when the result is no longer wanted."""
        if self.pending >= self.limit:
            raise Busy(f"the server is busy ({self.pending} requests computing or waiting): try again shortly")
        if self.unsent.full:
            raise self.unsent.refuse()
        self.pending += 1
        cancel = threading.Event()
        job = asyncio.wrap_future(self.pool.submit(fn, lambda: cancel.is_set() or self.closing.is_set()))
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


async def client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body has been read: the channel says nothing else)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def step_json(m: Model, d: Draw, position: int) -> Step:
    """One draw as the page shows it: the token, its probabilities, u, and each stage's top candidates."""
    stages = [Stage(name=st["name"], kept=st["kept"],
                    top=[Candidate(id=i, token=t, prob=p, percent=percent(p))
                         for (i, p), t in zip(st["top"], m.token_strs([i for i, _ in st["top"]]))])
              for st in d.stages]
    return Step(id=d.token, token=m.token_strs([d.token])[0], prob=d.prob, chosen_prob=d.chosen_prob, u=d.u,
                stages=stages, position=position)


def cache_facts(m: Model, kv: KVCache) -> dict:
    """What a session's KV cache holds (its real bytes, and the formula that gives them), at GPT-2's and GPT-3's
    full context, and what it saves: the multiply-adds of the next step with the cache and without it."""
    n, cfg = len(kv), m.config
    step = Graph(cfg, past=n).multiply_adds(1) if n else m.graph.multiply_adds(1)
    return {"positions": n, "bytes": kv.nbytes,
            "formula": f"2 · {cfg.n_layer} · {cfg.kv_heads} · {cfg.d_head} · {n} · 4 bytes",
            "at_scale": [{"model": k, "positions": PRESETS[k].n_ctx, "bytes": PRESETS[k].kv_cache_bytes(PRESETS[k].n_ctx)}
                         for k in ("gpt2", "gpt3")],
            "step_multiply_adds": step, "full_multiply_adds": m.graph.multiply_adds(n + 1)}


def matching(graph_names: list[str], names: list[str], patterns: list[str], model: str) -> list[str]:
    """The names that the patterns (names, or with * and ? wildcards) pick, in graph order; each pattern, checked
    once against the graph's names, must name a tensor."""
    known, picked = set(graph_names), set()
    for p in dict.fromkeys(patterns):
        hits = [p] if p in known else [n for n in graph_names if fnmatch.fnmatchcase(n, p)]
        if not hits:
            raise LlmvizError(f"tensors: {p!r} names no tensor of {model}'s graph")
        picked.update(hits)
    return [n for n in names if n in picked]


def json_safe(x):
    """JSON has no infinities: write them as the strings JavaScript's Number() reads back ("-Infinity")."""
    if isinstance(x, float) and not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def example_input(m: Model) -> str | None:
    """A first input for the view: the model's own example, else a short sentence its tokenizer accepts
    (without a tokenizer, a few token ids)."""
    if not m.has_weights:
        return None
    if m.tokenizer is None:
        return " ".join(str(i) for i in range(min(4, m.config.n_ctx, m.config.vocab_size)))
    for text in (m.config.example, "The quick brown fox"):
        try:
            if text and len(m.encode(text)) <= m.config.n_ctx:
                return text
        except LlmvizError:
            pass
    return m.decode([0, 1, 2][: m.config.n_ctx])


def static_dir() -> Path:
    return Path(str(resources.files("llmviz") / "static"))


def page_with(scripts: str) -> str:
    """The served page for another host (a notebook widget, a static export): without its early requests to the
    server, and with `scripts` where it loads app.js."""
    html = (static_dir() / "index.html").read_text(encoding="utf-8")
    html = re.sub(r'<script id="early">.*?</script>', "", html, flags=re.S)
    return html.replace('<script type="module" src="app.js"></script>', scripts)


def create_app(models: list[Model] | None = None, limits: Limits | None = None, hosts=()) -> FastAPI:
    """An app serving these models (default: nano-gpt), plus structure-only GPT-2 and GPT-3 for scale.
    hosts: names the Host header may give besides the loopback ones ("*": any)."""
    limits = limits or Limits()
    registry: dict[str, Model] = {}
    for m in models or [load_model("nano-gpt")]:
        name, n = m.name, 2
        while name in registry:  # two folders of the same name: the second is "name-2"
            name, n = f"{m.name}-{n}", n + 1
        registry[name] = m
    for name in STRUCTURE_ONLY:
        registry.setdefault(name, structure_only(name))

    unsent = Unsent(limits.unsent_mb * MB)
    workers = Workers(limits.workers, limits.queue, unsent)
    sessions = Sessions(limits.sessions, budget=limits.sessions_mb * MB)
    stopping = asyncio.Event()  # set when the server begins to stop (see run)
    cache = Recent(limits.cache_mb * MB)  # forward passes (their residual stream) and scene payloads
    budget = limits.request_mb * MB

    async def lifespan(app):
        yield
        workers.close()  # a server that stops ends the computations still running

    app = FastAPI(title="llmviz", version="0.1.0", summary="Every number of a GPT's forward pass.",
                  docs_url=None, redoc_url=None, lifespan=lifespan)  # /docs would load Swagger UI from a CDN

    app.state.cache, app.state.workers, app.state.stopping = cache, workers, stopping
    app.state.sessions, app.state.unsent = sessions, unsent

    def get_model(name: str) -> Model:
        if name not in registry:
            raise ModelNotFound(f"unknown model {name!r}: this server has {', '.join(registry)}")
        return registry[name]

    def within_budget(need: int, what: str, advice: str) -> None:
        if need > budget:
            raise OverBudget(f"{what} needs about {need / MB:,.0f} MiB of memory, over this server's budget of "
                             f"{budget / MB:,.0f} MiB per request (llmviz serve --request-mb): {advice}")

    def pass_budget(m: Model, ids: list[int]) -> None:
        within_budget(m.graph.peak_bytes(len(ids), m.graph.checkpoints()), f"a forward pass of {len(ids)} tokens",
                      "give fewer tokens")

    def with_pass(m: Model, ids: list[int], stop, use, heads: str = "side"):
        """use(trace) on the forward pass of ids: the cached one, or one computed now (within the request budget),
        kept as its residual stream with its scene built on the way. A tensor `use` reads is recomputed from its
        layer; that layer stays for the next request if it fits in half the cache, and the cache counts it."""
        key = ("trace", m, tuple(ids))
        trace = cache.get(key)
        if trace is None:
            pass_budget(m, ids)
            trace, payload = run_scene(m, ids, stop, heads)
            cache.put(("scene", m, tuple(ids), heads), payload, len(payload))
        try:
            return use(trace)
        finally:
            if trace.nbytes > cache.capacity // 2:
                trace.forget()
            cache.put(key, trace, trace.nbytes)

    def request_ids(m: Model, prompt) -> list[int]:
        """The tokens a request names, for a model with weights."""
        m.require_weights()
        return m.encode(prompt)

    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5,  # float16 data: level 9 costs 3x for 1%
                       exclude_content_types=(TRACE_MEDIA_TYPE,))  # float32 noise: gzip saves little, copies all
    app.add_middleware(SendLimit, unsent=unsent)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES, timeout=limits.body_timeout, stopping=stopping)
    app.add_middleware(JsonErrors)
    app.add_middleware(NoCrossSite)
    app.add_middleware(HostCheck, hosts=[*LOOPBACK, *hosts])

    @app.exception_handler(LlmvizError)
    async def user_error(request: Request, exc: LlmvizError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            allowed = allowed_range(where) if e.get("type", "").startswith(("greater", "less")) else ""
            parts.append((f"{where}: {e['msg']}" if where else e["msg"]) + allowed)
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    @app.exception_handler(Stopped)
    async def stopped(request: Request, exc: Stopped):
        return JSONResponse({"detail": "the server is stopping"}, status_code=503)

    @app.get("/api/models", response_model=list[ModelInfo])
    def list_models():
        """Every model this server knows, in selector order."""
        return [
            ModelInfo(name=name, description=m.config.description, example=example_input(m), n_params=m.config.n_params,
                      param_parts=m.config.param_parts(), has_weights=m.has_weights, config=m.config.to_dict(), source=m.source)
            for name, m in registry.items()
        ]

    @app.get("/api/walkthrough")
    async def walkthrough_for(request: Request, model: str = "nano-gpt", input: str | None = Query(None, max_length=20_000)):
        """The guided walkthrough's chapters and steps for this model and input (default: its example): the
        text with this forward pass's numbers filled in, each step's actions and the tensors they name. A
        model without weights gets the steps that need no numbers, and a note saying so."""
        m = get_model(model)

        def compute(stop):
            if not m.has_weights:
                return JSONResponse(json_safe(compile_chapters(m)))
            ids = m.encode(input if input is not None else example_input(m))
            return with_pass(m, ids, stop, lambda t: JSONResponse(json_safe(compile_chapters(m, t))))

        return await workers.run(request, compute)

    @app.get("/api/models/{name}/graph")
    def model_graph(name: str) -> dict:
        """The model graph: every tensor with its axes, kind, op and inputs; the axes with their colours;
        the ops with their formulas. `pos` and `key_pos` sizes are null: they depend on the input."""
        m = get_model(name)
        g = m.graph.to_json()
        g["tokenizer"] = m.tokenizer.to_dict() if m.tokenizer else None
        return g

    @app.post("/api/trace", response_class=Response,
              responses={200: {"content": {TRACE_MEDIA_TYPE: {}},
                               "description": "safetensors bytes: 8-byte little-endian header length, JSON header "
                                              "(name -> dtype, shape, offsets; __metadata__ has the tokens), buffer"},
                         413: {"description": "the trace is larger than the server's budget for one request"}})
    async def trace(req: TraceRequest, request: Request):
        """Run the forward pass and return the tensors it computed (and the weights, if asked)."""
        m = get_model(req.model)

        def compute(stop):
            ids = request_ids(m, req.prompt)
            g, sizes = m.graph, m.graph.sizes(len(ids))
            names = g.names() if req.include_weights else g.names("input", "activation", "aggregate")
            if req.tensors is not None:
                names = matching(g.names(), names, req.tensors, m.name)
            computed = [n for n in names if g[n].kind != "weight"]
            size = sum(g[n].nbytes(sizes) for n in names)
            within_budget(g.peak_bytes(len(ids), names, only=computed) + size,
                          f"this trace is {size / MB:,.0f} MiB ({len(names)} tensors, {len(ids)} tokens) and",
                          "ask for fewer tensors ('tensors': [\"blocks.0.*\"]) or fewer tokens, or save it from the "
                          "command line: llmviz trace --out FILE")
            unsent.admit(size)
            t = m.run(ids, keep=computed, stop=stop, only=computed)
            return Response(t.to_bytes(names=names), media_type=TRACE_MEDIA_TYPE)

        return await workers.run(request, compute)

    @app.post("/api/attention", response_class=Response,
              responses={200: {"content": {TRACE_MEDIA_TYPE: {}},
                               "description": "safetensors bytes: each layer's hook_pattern [head, pos, key_pos] as "
                                              "float16; __metadata__ has the tokens and `layers`, the tensor names"}})
    async def attention(req: PromptRequest, request: Request):
        """Every head's attention pattern of every layer, for the attention-map panel (float16: half the bytes of
        /api/trace, and the panel draws colours)."""
        m = get_model(req.model)

        def patterns(ids, names, specs, stop) -> memoryview:
            """Each layer's pattern written into the answer as float16 as soon as it is computed (none is kept)."""
            meta = {"model": m.name, "tokens": json.dumps(ids), "token_strs": json.dumps(m.token_strs(ids)),
                    "layers": json.dumps(names)}
            out, views = allocate(specs, meta)

            def visit(name, a):
                if name in views:
                    views[name][...] = a

            m.run(ids, keep=(), visit=visit, stop=stop, only=names)
            return out

        def compute(stop):
            ids = request_ids(m, req.prompt)
            names, sizes = m.graph.patterns(), m.graph.sizes(len(ids))
            specs = {n: (np.float16, m.graph[n].shape(sizes)) for n in names}
            size = sum(2 * int(np.prod(shape)) for _, shape in specs.values())
            within_budget(m.graph.peak_bytes(len(ids), (), only=names) + size, f"the attention of {len(ids)} tokens",
                          "give fewer tokens")
            key = ("attention", m, tuple(ids))
            if cache.get(key) is None:
                unsent.admit(size)
            return Response(cache.payload(key, lambda: patterns(ids, names, specs, stop)), media_type=TRACE_MEDIA_TYPE)

        return await workers.run(request, compute)

    @app.post("/api/lens")
    async def lens(req: LensRequest, request: Request):
        """The logit lens: each layer boundary's residual decoded by the final layer norm (its statistics
        recomputed), the unembedding and a softmax; the top k tokens at each position."""
        m = get_model(req.model)

        def compute(stop):
            ids = request_ids(m, req.prompt)
            return with_pass(m, ids, stop, lambda t: JSONResponse(json_safe(logit_lens(t, req.k))))

        return await workers.run(request, compute)

    @app.post("/api/branches")
    async def tree(req: BranchesRequest, request: Request):
        """The k most probable next tokens after the input, and after each of those, `depth` levels down; each
        node's `prob` is the model's probability of its token after its parent's path."""
        m = get_model(req.model)

        def compute(stop):
            ids = request_ids(m, req.prompt)
            text = len(m.decode(ids).encode())
            need = tree_bytes(m, len(ids), req.k, req.depth, req.max_nodes, text)
            if need > budget:
                fits = [n for n in (1000, 500, 200, 100, 50, 20, 10, 5, 1) if n < req.max_nodes
                        and tree_bytes(m, len(ids), req.k, req.depth, n, text) <= budget]
                nodes = node_count(m, len(ids), req.k, req.depth, req.max_nodes)
                within_budget(need, f"a tree of {nodes:,} nodes (k {req.k}, depth {req.depth}) on {len(ids):,} tokens",
                              f"max_nodes {fits[0]} would fit" if fits else "give fewer tokens")
            answer = cache.payload(("branches", m, tuple(ids), req.k, req.depth, req.max_nodes), lambda: json.dumps(
                json_safe(branches(m, ids, req.k, req.depth, req.max_nodes, stop))).encode())
            return Response(answer, media_type="application/json")

        return await workers.run(request, compute)

    @app.post("/api/scene", response_class=Response,
              responses={200: {"content": {SCENE_MEDIA_TYPE: {}},
                               "description": "safetensors bytes: a float16 `atlas` of every block's displayed cells; "
                                              "__metadata__.scene is the JSON scene (blocks, positions, axes, links)"}})
    async def scene(req: SceneRequest, request: Request):
        """What the 3D view draws: every tensor as a block, placed, with its numbers (structure only for a model
        without weights). With no input, a model with weights runs its example input."""
        m = get_model(req.model or next(iter(registry)))

        def compute(stop):
            if not m.has_weights:
                return Response(cache.payload(("structure", m, req.n_pos, req.heads, req.tower),
                                              lambda: scene_bytes(m, None, req.n_pos, req.heads, req.tower)),
                                media_type=SCENE_MEDIA_TYPE)
            prompt = req.text if req.text is not None else req.tokens
            ids = m.encode(prompt if prompt is not None else (example_input(m) or [0]))
            if req.past is not None:
                step_budget(m, ids, req.past)
                return Response(step_scene(m, ids, req.past, req.heads, stop), media_type=SCENE_MEDIA_TYPE)
            key = ("scene", m, tuple(ids), req.heads) + (("tower",) if req.tower else ())
            payload = cache.get(key)
            if payload is None:
                def build(trace):  # the pass just computed built this scene; a cached pass, another layout, not
                    made = cache.get(key)
                    if made is None:
                        made = scene_bytes(m, trace, heads=req.heads, tower=req.tower)
                        cache.put(key, made, len(made))
                    return made

                payload = with_pass(m, ids, stop, build, req.heads)
            return Response(payload, media_type=SCENE_MEDIA_TYPE)

        return await workers.run(request, compute)

    def step_budget(m: Model, ids: list[int], past: int) -> None:
        """A generation step's view (scene or explanation): `past` must leave at least one new token."""
        if not 0 < past < len(ids):
            raise LlmvizError(f"past must be from 1 to {len(ids) - 1}: the tokens before the step's new ones")
        pass_budget(m, ids)

    @app.post("/api/explain")
    async def explain_cell(req: ExplainRequest, request: Request):
        """Where one number came from: its value, its op's formula filled in with the real numbers of the
        forward pass (ending in the same value), and the cells it was computed from."""
        m = get_model(req.model)

        def answer(t: Trace):
            index = req.index if req.index is not None else pick_in_region(t, req.tensor, req.region)
            return JSONResponse(json_safe(explain(t, req.tensor, index)))

        def compute(stop):
            ids = request_ids(m, req.prompt)
            graph = Graph(m.config, past=req.past) if req.past else m.graph  # a step's graph has the cache's tensors
            if req.tensor not in graph:
                raise LlmvizError(f"unknown tensor {req.tensor!r}: not in {m.name}'s graph")
            if req.past is None:
                return with_pass(m, ids, stop, answer)
            step_budget(m, ids, req.past)
            kv = KVCache(m)
            m.step(kv, ids[:req.past], keep=(), stop=stop)
            return answer(m.step(kv, ids[req.past:], stop=stop))

        return await workers.run(request, compute)

    @app.post("/api/cells", response_model=CellsResponse)
    async def cells_of(req: CellsRequest, request: Request):
        """Numbers of one forward pass for the page to explain cells with (frontend/src/explain.ts): every
        tensor's shape, and the slices asked for."""
        m = get_model(req.model)
        slices = [s.model_dump() for s in req.slices]

        def compute(stop):
            ids = request_ids(m, req.prompt)
            if req.past is None:
                return with_pass(m, ids, stop, lambda t: cells(t, slices))
            step_budget(m, ids, req.past)
            kv = KVCache(m)
            m.step(kv, ids[:req.past], keep=(), stop=stop)
            return cells(m.step(kv, ids[req.past:], stop=stop), slices)

        return await workers.run(request, compute)

    @app.post("/api/generate", response_model=GenerateResponse)
    async def generate(req: GenerateRequest, request: Request):
        """Sample a continuation token by token (temperature 0 is greedy). Stops when the client goes away."""
        m = get_model(req.model)

        def compute(stop):
            ids = request_ids(m, req.prompt)
            longest = min(m.config.n_ctx, len(ids) + (req.max_new_tokens if req.max_new_tokens is not None else 32))
            within_budget(m.graph.peak_bytes(longest, ()), f"generating up to {longest} tokens", "give fewer tokens")
            g = m.generate(ids, req.max_new_tokens, req.temperature, req.top_k, req.top_p, req.seed, stop=stop,
                           min_p=req.min_p)
            steps = [step_json(m, d, len(ids) + i) for i, d in enumerate(g.draws)]
            return GenerateResponse(prompt_tokens=g.prompt, tokens=g.tokens, token_strs=g.token_strs,
                                    text=g.text, probs=g.probs, steps=steps)

        return await workers.run(request, compute)

    def session_state(sid: str, s: Session, steps: list[Step], message: str | None = None) -> SessionState:
        m = s.model
        new = [d.token for d in s.draws]
        return SessionState(session=sid, model=m.name, prompt_tokens=s.prompt, tokens=s.tokens,
                            token_strs=m.token_strs(s.tokens), text=m.decode(new) if new else "",
                            view_text=m.decode(s.tokens[:m.config.n_ctx]), steps=steps,
                            n_ctx=m.config.n_ctx, done=s.done, message=message, cache=cache_facts(m, s.cache))

    @app.post("/api/sessions", response_model=SessionState, status_code=201)
    def start_session(req: SessionRequest):
        """Start generating step by step from a prompt, with sampling settings and a seed (nothing is computed
        until the first step)."""
        m = get_model(req.model)
        ids = request_ids(m, req.prompt)
        sid = sessions.add(Session(m, ids, req.sampling(), req.seed))
        return session_state(sid, sessions.get(sid), [])

    @app.post("/api/sessions/{sid}/step", response_model=SessionState)
    async def session_step(sid: str, req: StepRequest, request: Request):
        """Generate `count` more tokens on the session's KV cache (each step computes only the new position).
        A full context ends the steps with a message (and `done`)."""
        s = sessions.get(sid)

        def compute(stop):
            with s.lock:
                within_budget(s.model.graph.peak_bytes(len(s.tokens), ()), f"a step at {len(s.tokens)} tokens",
                              "start shorter")
                sessions.make_room(sid, req.count)
                steps, message = [], None
                for _ in range(req.count):
                    try:
                        draw = s.step(stop)
                    except ContextFull as e:
                        if not steps:
                            raise
                        message = str(e)
                        break
                    steps.append(step_json(s.model, draw, s.position(len(s.draws) - 1)))
                return session_state(sid, s, steps, message)

        return await workers.run(request, compute)

    @app.post("/api/sessions/{sid}/undo", response_model=SessionState)
    def session_undo(sid: str):
        """Take back the last generated token (its cache and its draw too: stepping again draws it again)."""
        s = sessions.get(sid)
        with s.lock:
            s.undo()
            return session_state(sid, s, [])

    @app.get("/api/sessions/{sid}", response_model=SessionState)
    def session_get(sid: str):
        """The session so far, with every step's sampling stages."""
        s = sessions.get(sid)
        return session_state(sid, s, [step_json(s.model, d, s.position(i)) for i, d in enumerate(s.draws)])

    @app.delete("/api/sessions/{sid}", status_code=204)
    def session_end(sid: str):
        """End a session (Reset): its KV cache is freed."""
        sessions.remove(sid)

    static = static_dir()
    if (static / "index.html").is_file():
        app.mount("/", StaticFiles(directory=static, html=True), name="static")
    else:
        @app.get("/", response_class=HTMLResponse, include_in_schema=False)
        def not_built():
            return ("<h1>llmviz</h1><p>The front-end is not built. From the repository run "
                    "<code>make build</code>, then reload. The API is described at "
                    "<a href='/openapi.json'>/openapi.json</a>.</p>")

    return app


def run(app: FastAPI, sock) -> None:
    """Serve `app` on a listening socket until Ctrl+C. Stopping answers what is in flight at once (a body still
    arriving or a computation running gets 503), so the process exits promptly and quietly."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None):
            app.state.stopping.set()
            app.state.workers.close()
            await super().shutdown(sockets)

    with contextlib.suppress(KeyboardInterrupt):  # uvicorn has stopped; it raises the signal again for the caller
        Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)).run(sockets=[sock])
