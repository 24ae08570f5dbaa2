"""The local web server: the built front-end plus a small typed JSON/binary API.

    GET  /api/models               the models this server knows, with config and parameter count
    GET  /api/models/{name}/graph  the model graph (tensors, axes, ops) as JSON
    POST /api/trace                every tensor of one forward pass, as safetensors bytes
    POST /api/scene                what the 3D view draws: the layout and every block's numbers
    POST /api/explain              where one number came from: its op's formula with the real numbers
    POST /api/generate             sample a continuation

Open /docs for the OpenAPI page.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, model_validator

from .errors import LlmvizError, ModelNotFound
from .loading import load_model, structure_only
from .model import Model, Trace
from .provenance import explain, pick_in_region
from .scene import scene_bytes

MAX_BODY_BYTES = 64 * 1024
TRACE_MEDIA_TYPE = "application/vnd.llmviz.trace+safetensors"
SCENE_MEDIA_TYPE = "application/vnd.llmviz.scene+safetensors"
STRUCTURE_ONLY = ["gpt2", "gpt2-xl", "gpt3"]  # always listed, for the scale view


class ModelInfo(BaseModel):
    name: str
    description: str
    example: str | None = Field(None, description="an input to start with")
    n_params: int = Field(description="exact number of learned parameters")
    has_weights: bool = Field(description="false: structure only, no numbers to show")
    config: dict
    source: str


class PromptRequest(BaseModel):
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


class SceneRequest(BaseModel):
    model: str | None = Field(None, examples=["nano-gpt"], description="default: the server's first model")
    text: str | None = Field(None, max_length=20_000, examples=["CBABBC"])
    tokens: list[int] | None = Field(None, max_length=10_000)
    n_pos: int | None = Field(None, ge=1, le=4096, description="positions to lay out for a structure-only model")

    @model_validator(mode="after")
    def not_both(self):
        if self.text is not None and self.tokens is not None:
            raise ValueError("give at most one of 'text' or 'tokens'")
        return self


class ExplainRequest(PromptRequest):
    tensor: str = Field(examples=["blocks.0.attn.hook_q"])
    index: list[int] | None = Field(None, max_length=8, description="the cell's index, one number per axis")
    region: dict[str, list[int]] | None = Field(
        None, description="instead of index: {axis: [first, last]}; the cell of largest magnitude in it is explained "
                          "(a downsampled cell of the view stands for such a tile)")

    @model_validator(mode="after")
    def index_or_region(self):
        if (self.index is None) == (self.region is None):
            raise ValueError("give exactly one of 'index' or 'region'")
        return self


class TraceRequest(PromptRequest):
    include_weights: bool = Field(False, description="also send every weight tensor")


class GenerateRequest(PromptRequest):
    max_new_tokens: int | None = Field(None, ge=0, le=256)
    temperature: float = Field(0.0, ge=0.0, le=10.0, description="0 is greedy")
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = None


class GenerateResponse(BaseModel):
    prompt_tokens: list[int]
    tokens: list[int]
    token_strs: list[str]
    text: str
    probs: list[float] = Field(description="probability of each chosen token when it was chosen")


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, whether or not they declare a Content-Length."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                return await self.refuse(scope, receive, send)
            return await self.app(scope, receive, send)
        # No declared length (chunked): read up to the limit, then replay what was read.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                return await self.refuse(scope, receive, send)
        pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():  # the buffered body once, then the real channel (for http.disconnect)
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)

    async def refuse(self, scope, receive, send):
        response = JSONResponse({"detail": f"request body too large: at most {self.limit} bytes"}, 413)
        await response(scope, receive, send)


class Recent:
    """The last few results by key (least recently used goes first); safe for the endpoints' thread pool."""

    def __init__(self, size: int = 8):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get_or_make(self, key, make):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = make()  # outside the lock: a forward pass may take a while
        with self.lock:
            self.items[key] = value
            if len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


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


def create_app(models: list[Model] | None = None) -> FastAPI:
    """An app serving these models (default: nano-gpt), plus structure-only GPT-2 and GPT-3 for scale."""
    registry: dict[str, Model] = {}
    for m in models or [load_model("nano-gpt")]:
        name, n = m.name, 2
        while name in registry:  # two folders of the same name: the second is "name-2"
            name, n = f"{m.name}-{n}", n + 1
        registry[name] = m
    for name in STRUCTURE_ONLY:
        registry.setdefault(name, structure_only(name))

    app = FastAPI(title="llmviz", version="0.1.0", summary="Every number of a GPT's forward pass.")

    def get_model(name: str) -> Model:
        if name not in registry:
            raise ModelNotFound(f"unknown model {name!r}: this server has {', '.join(registry)}")
        return registry[name]

    traces = Recent()  # the last few forward passes: hovering asks about the same input
    scenes = Recent()  # and the scene payloads built from them

    def run(name: str, prompt) -> Trace:
        m = get_model(name)
        m.require_weights()
        ids = m.encode(prompt)
        return traces.get_or_make((name, tuple(ids)), lambda: m.run(ids))

    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)  # float16 data: level 9 costs 3x for 1%

    @app.exception_handler(LlmvizError)
    async def user_error(request: Request, exc: LlmvizError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{where}: {e['msg']}" if where else e["msg"])
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    @app.get("/api/models", response_model=list[ModelInfo])
    def list_models():
        """Every model this server knows, in selector order."""
        return [
            ModelInfo(name=name, description=m.config.description, example=example_input(m), n_params=m.config.n_params,
                      has_weights=m.has_weights, config=m.config.to_dict(), source=m.source)
            for name, m in registry.items()
        ]

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
                                              "(name -> dtype, shape, offsets; __metadata__ has the tokens), buffer"}})
    def trace(req: TraceRequest):
        """Run the forward pass and return every tensor it computed (and the weights, if asked)."""
        t = run(req.model, req.prompt)
        return Response(t.to_bytes(req.include_weights), media_type=TRACE_MEDIA_TYPE)

    @app.post("/api/scene", response_class=Response,
              responses={200: {"content": {SCENE_MEDIA_TYPE: {}},
                               "description": "safetensors bytes: a float16 `atlas` of every block's displayed cells; "
                                              "__metadata__.scene is the JSON scene (blocks, positions, axes, links)"}})
    def scene(req: SceneRequest):
        """What the 3D view draws: every tensor as a block, placed, with its numbers (structure only for a model
        without weights). With no input, a model with weights runs its example input."""
        name = req.model or next(iter(registry))
        m = get_model(name)
        prompt = req.text if req.text is not None else req.tokens
        if m.has_weights and prompt is None:
            prompt = example_input(m) or [0]
        trace = run(name, prompt) if m.has_weights else None
        key = (name, tuple(trace.tokens) if trace is not None else req.n_pos)
        payload = scenes.get_or_make(key, lambda: scene_bytes(m, trace, req.n_pos))
        return Response(payload, media_type=SCENE_MEDIA_TYPE)

    @app.post("/api/explain")
    def explain_cell(req: ExplainRequest) -> dict:
        """Where one number came from: its value, its op's formula filled in with the real numbers of the
        forward pass (ending in the same value), and the cells it was computed from."""
        t = run(req.model, req.prompt)
        if req.tensor not in t.model.graph:
            raise LlmvizError(f"unknown tensor {req.tensor!r}: not in {t.model.name}'s graph")
        index = req.index if req.index is not None else pick_in_region(t, req.tensor, req.region)
        return json_safe(explain(t, req.tensor, index))

    @app.post("/api/generate", response_model=GenerateResponse)
    def generate(req: GenerateRequest):
        """Sample a continuation token by token (temperature 0 is greedy)."""
        g = get_model(req.model).generate(req.prompt, req.max_new_tokens, req.temperature, req.top_k,
                                          req.top_p, req.seed)
        return GenerateResponse(prompt_tokens=g.prompt, tokens=g.tokens, token_strs=g.token_strs,
                                text=g.text, probs=g.probs)

    static = static_dir()
    if (static / "index.html").is_file():
        app.mount("/", StaticFiles(directory=static, html=True), name="static")
    else:
        @app.get("/", response_class=HTMLResponse, include_in_schema=False)
        def not_built():
            return ("<h1>llmviz</h1><p>The front-end is not built. From the repository run "
                    "<code>make build</code>, then reload. The API is at <a href='/docs'>/docs</a>.</p>")

    return app
