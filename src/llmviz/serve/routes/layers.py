"""Across layers: every head's attention pattern, the logit lens, and the tree of the most probable
continuations."""

from __future__ import annotations

import json

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ...core.errors import LlmvizError
from ...io.safetensors_file import allocate
from ...views.branches import branches, node_count, tree_bytes
from ...views.lens import logit_lens
from ..dependencies import ServedDep
from ..schemas import BranchesRequest, BranchRoot, Lens, LensRequest, PromptRequest, json_safe
from .passes import TRACE_MEDIA_TYPE

router = APIRouter()


@router.post("/api/attention", response_class=Response,
             responses={200: {"content": {TRACE_MEDIA_TYPE: {}},
                              "description": "safetensors bytes: each layer's hook_pattern [head, pos, key_pos] as "
                                             "float16; __metadata__ has the tokens and `layers`, the tensor names"}})
async def attention(req: PromptRequest, request: Request, s: ServedDep):
    """Every head's attention pattern of every layer, for the attention-map panel (float16: half the bytes of
    /api/trace, and the panel draws colours)."""
    m = s.model(req.model)
    if not m.graph.patterns():  # (the learning path's bigram table)
        raise LlmvizError(f"{m.name} has no attention: it has no heads to show")

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
        ids = s.request_ids(m, req.prompt)
        names, sizes = m.graph.patterns(), m.graph.sizes(len(ids))
        specs = {n: (np.float16, m.graph[n].shape(sizes)) for n in names}
        size = sum(2 * int(np.prod(shape)) for _, shape in specs.values())
        s.within_budget(m.graph.peak_bytes(len(ids), (), only=names) + size, f"the attention of {len(ids)} tokens",
                        "give fewer tokens")
        key = ("attention", m, tuple(ids))
        if s.cache.get(key) is None:
            s.unsent.admit(size)
        return Response(s.cache.payload(key, lambda: patterns(ids, names, specs, stop)), media_type=TRACE_MEDIA_TYPE)

    return await s.run(request, compute)


@router.post("/api/lens", response_model=Lens)
async def lens(req: LensRequest, request: Request, s: ServedDep):
    """The logit lens: each layer boundary's residual decoded by the final layer norm (its statistics
    recomputed), the unembedding and a softmax; the top k tokens at each position."""
    return await s.on_pass(request, req, lambda t: JSONResponse(json_safe(logit_lens(t, req.k))))


@router.post("/api/branches", response_model=BranchRoot)
async def tree(req: BranchesRequest, request: Request, s: ServedDep):
    """The k most probable next tokens after the input, and after each of those, `depth` levels down; each
    node's `prob` is the model's probability of its token after its parent's path."""
    m = s.model(req.model)

    def compute(stop):
        ids = s.request_ids(m, req.prompt)
        text = len(m.decode(ids).encode())
        need = tree_bytes(m, len(ids), req.k, req.depth, req.max_nodes, text)
        if need > s.budget:
            fits = [n for n in (1000, 500, 200, 100, 50, 20, 10, 5, 1) if n < req.max_nodes
                    and tree_bytes(m, len(ids), req.k, req.depth, n, text) <= s.budget]
            nodes = node_count(m, len(ids), req.k, req.depth, req.max_nodes)
            s.within_budget(need, f"a tree of {nodes:,} nodes (k {req.k}, depth {req.depth}) on {len(ids):,} tokens",
                            f"max_nodes {fits[0]} would fit" if fits else "give fewer tokens")
        answer = s.cache.payload(("branches", m, tuple(ids), req.k, req.depth, req.max_nodes), lambda: json.dumps(
            json_safe(branches(m, ids, req.k, req.depth, req.max_nodes, stop))).encode())
        return Response(answer, media_type="application/json")

    return await s.run(request, compute)
