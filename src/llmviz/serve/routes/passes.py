"""One forward pass: its tensors (a trace), what the 3D view draws of it (the scene), the numbers the page
explains a cell with (cells), and the chain rule of a cell's gradient (chain)."""

from __future__ import annotations

import fnmatch
import threading

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...core.backward import Gradients, weight_gradient
from ...core.errors import LlmvizError, OverBudget
from ...core.graph import Graph
from ...core.model import Model
from ...views.chainrule import chain_rule, check_cell
from ...views.provenance import cells, slice_bytes
from ...views.scene import edited_scene, error_scene, gradient_scene, scene_bytes, step_scene
from ..dependencies import Served, ServedDep, example_input, pass_key
from ..limits import MB
from ..schemas import CellsRequest, CellsResponse, ChainRequest, ChainRule, SceneRequest, TraceRequest

TRACE_MEDIA_TYPE = "application/vnd.llmviz.trace+safetensors"
SCENE_MEDIA_TYPE = "application/vnd.llmviz.scene+safetensors"

router = APIRouter()


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


@router.post("/api/trace", response_class=Response,
             responses={200: {"content": {TRACE_MEDIA_TYPE: {}},
                              "description": "safetensors bytes: 8-byte little-endian header length, JSON header "
                                             "(name -> dtype, shape, offsets; __metadata__ has the tokens), buffer"},
                        413: {"description": "the trace is larger than the server's budget for one request"}})
async def trace(req: TraceRequest, request: Request, s: ServedDep):
    """Run the forward pass and return the tensors it computed (and the weights, if asked)."""
    m = s.model(req.model)

    def compute(stop):
        ids = s.request_ids(m, req.prompt)
        g, sizes = m.graph, m.graph.sizes(len(ids))
        names = g.names() if req.include_weights else g.names("input", "activation", "aggregate")
        if req.tensors is not None:
            names = matching(g.names(), names, req.tensors, m.name)
        computed = [n for n in names if g[n].kind != "weight"]
        size = sum(g[n].nbytes(sizes) for n in names)
        s.within_budget(g.peak_bytes(len(ids), names, only=computed) + size,
                        f"this trace is {size / MB:,.0f} MiB ({len(names)} tensors, {len(ids)} tokens) and",
                        "ask for fewer tensors ('tensors': [\"blocks.0.*\"]) or fewer tokens, or save it from the "
                        "command line: llmviz trace --out FILE")
        s.unsent.admit(size)
        t = m.run(ids, keep=computed, stop=stop, only=computed)
        return Response(t.to_bytes(names=names), media_type=TRACE_MEDIA_TYPE)

    return await s.run(request, compute)


@router.post("/api/scene", response_class=Response,
             responses={200: {"content": {SCENE_MEDIA_TYPE: {}},
                              "description": "safetensors bytes: a float16 `atlas` of every block's displayed cells; "
                                             "__metadata__.scene is the JSON scene (SceneInfo: blocks, positions, "
                                             "axes, links)"}})
async def scene(req: SceneRequest, request: Request, s: ServedDep):
    """What the 3D view draws: every tensor as a block, placed, with its numbers (structure only for a model
    without weights). With no input, a model with weights runs its example input."""
    m = s.model(req.model or next(iter(s.registry)))
    cache = s.cache

    def compute(stop):
        if not m.has_weights:
            return Response(cache.payload(("structure", m, req.n_pos, req.heads, req.tower),
                                          lambda: scene_bytes(m, None, req.n_pos, req.heads, req.tower)),
                            media_type=SCENE_MEDIA_TYPE)
        prompt = req.text if req.text is not None else req.tokens
        ids = m.encode(prompt if prompt is not None else (example_input(m) or [0]))
        if req.past is not None:
            s.step_budget(m, ids, req.past)
            return Response(step_scene(m, ids, req.past, req.heads, stop), media_type=SCENE_MEDIA_TYPE)
        if req.edits:
            return Response(edited(s, m, ids, [e.model_dump() for e in req.edits], req.heads, stop),
                            media_type=SCENE_MEDIA_TYPE)
        if req.quant_error:  # (a quantized model's weights coloured by stored − original)
            s.pass_budget(m, ids)
            return Response(cache.payload(("quant error", m, tuple(ids), req.heads),
                                          lambda: error_scene(m, ids, req.heads, stop)), media_type=SCENE_MEDIA_TYPE)
        if req.gradients:  # (the backward pass kept for the chain rule's hovers that follow: computed once)
            gradient_budget(s, m, ids)
            return Response(cache.payload(("gradients", m, tuple(ids), req.heads),
                                          lambda: gradient_scene(m, ids, req.heads, stop, gradients(s, m, ids, stop))),
                            media_type=SCENE_MEDIA_TYPE)
        key = ("scene", m, tuple(ids), req.heads) + (("tower",) if req.tower else ())
        payload = cache.get(key)
        if payload is None:
            def build(trace):  # the pass just computed built this scene; a cached pass, another layout, not
                made = cache.get(key)
                if made is None:
                    made = scene_bytes(m, trace, heads=req.heads, tower=req.tower)
                    cache.put(key, made, len(made))
                return made

            payload = s.with_pass(m, ids, stop, build, req.heads)
        return Response(payload, media_type=SCENE_MEDIA_TYPE)

    return await s.run(request, compute)


def gradient_budget(s: Served, m: Model, ids: list[int]) -> None:
    """A backward pass (Model.gradients) within the request budget: its forward pass, and every activation's gradient
    beside the tensors of the layer it is in."""
    g, weights = m.graph, 4 * m.config.n_params  # (every weight's gradient, float32, held at once)
    if why := m.unavailable().get("gradients"):
        raise OverBudget(why)
    s.within_budget(g.peak_bytes(len(ids), g.checkpoints()) + 2 * g.peak_bytes(len(ids), ()) + weights,
                    f"a forward and a backward pass of {len(ids)} tokens (every activation's and weight's gradient)",
                    "give fewer tokens")


def gradients(s: Served, m: Model, ids: list[int], stop) -> Gradients:
    """The backward pass of this input (Model.gradients), cached for the next cell's chain rule: every activation's
    gradient, and every weight's while they are small beside the cache (else a weight's is computed from its readers
    when asked, and kept if it is small: `weight_of`)."""
    key = ("gradients of", m, tuple(ids))
    if (g := s.cache.get(key)) is not None:
        return g
    with _starting:  # one backward pass per input at a time: the page's first hovers ask together
        lock = _computing.setdefault(key, threading.Lock())
    try:
        with lock:
            if (g := s.cache.get(key)) is not None:
                return g
            gradient_budget(s, m, ids)
            g = m.gradients(ids, stop=stop)
            size = sum(a.nbytes for a in g.activations.values())
            weights = sum(a.nbytes for a in g.weights.values())
            if size + weights > s.cache.capacity // 2:
                g = Gradients(g.loss, {}, g.activations, g.tokens, g.targets)
            else:
                size += weights
            s.cache.put(key, g, size)
            return g
    finally:
        with _starting:
            _computing.pop(key, None)


_starting = threading.Lock()
_computing: dict[tuple, threading.Lock] = {}  # the backward passes under way, by input


def weight_of(s: Served, trace, g: Gradients, name: str):
    """One weight's gradient when the backward pass's weights were too large to keep (a GPT-2's): from its readers'
    backward (core/backward.weight_gradient, the same float32 numbers), kept if it is small beside the cache."""
    key = ("weight gradient of", trace.model, tuple(trace.tokens), name)
    w = s.cache.get(key)
    if w is None:
        w = weight_gradient(trace.graph, trace, g.activations, name)
        if w.nbytes <= s.cache.capacity // 8:
            s.cache.put(key, w, w.nbytes)
    return w


@router.post("/api/chain", response_model=ChainRule)
async def chain(req: ChainRequest, request: Request, s: ServedDep):
    """The chain rule of the next-token loss's gradient (as the gradients view colours it: Model.gradients) with
    respect to one cell of any activation or weight: each op that reads it, its backward's formula with the pass's
    numbers, the largest terms, and the total beside the backward pass's own number. The backward pass is computed
    once per input and kept for the next cell."""
    m = s.model(req.model)

    def compute(stop):
        ids = s.request_ids(m, req.prompt)
        check_cell(m.graph, len(ids), req.tensor, req.index, m.name)
        g = gradients(s, m, ids, stop)

        def explain(trace):
            grads = g if req.tensor in g.weights or m.graph[req.tensor].kind != "weight" else \
                Gradients(g.loss, {req.tensor: weight_of(s, trace, g, req.tensor)}, g.activations, g.tokens, g.targets)
            return chain_rule(trace, grads, req.tensor, req.index)

        return s.with_pass(m, ids, stop, explain)

    return await s.run(request, compute)


def edited(s: Served, m: Model, ids: list[int], raw: list[dict], heads: str, stop) -> bytes:
    """The scene of an edited pass (views/scene.edited_scene), built beside the clean pass; the edited pass stays in
    the cache for the cells a hover then asks for."""
    edits = s.edits(m, ids, raw, stop)
    key = ("scene", m, tuple(ids), heads, pass_key(m, ids, edits)[-1])
    payload = s.cache.get(key)
    if payload is None:
        def build(clean):
            trace, made = edited_scene(m, clean, edits, heads, stop)
            s.cache.put(key, made, len(made))
            s.cache.put(pass_key(m, ids, edits), trace, trace.nbytes)
            return made

        payload = s.with_pass(m, ids, stop, build, heads)
    return payload


@router.post("/api/cells", response_model=CellsResponse)
async def cells_of(req: CellsRequest, request: Request, s: ServedDep):
    """Numbers of one forward pass for the page to explain cells with (frontend/src/explain.ts): every
    tensor's shape, and the slices asked for."""
    slices, name = [c.model_dump() for c in req.slices], s.model(req.model).name

    def fits(graph: Graph, n_pos: int) -> None:  # before the pass: the slices are checked, their answer budgeted
        size = slice_bytes(graph, n_pos, slices, name)
        s.within_budget(size, f"these {len(slices)} slices are {size / MB:,.0f} MiB and",
                        "fix more of their axes (a row or a column is what an explanation reads)")
        s.unsent.admit(size)

    stored = [c.model_dump() for c in req.stored]  # (a weight cell's stored form: views/provenance.stored_cell)
    return await s.on_pass(request, req, lambda t: cells(t, slices, stored), req.past, before=fits,
                           edits=[e.model_dump() for e in req.edits])
