"""Analyses of one prediction: direct logit attribution (views/attribution.py) and the activation-patching sweep
(views/patching.py)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ...core.errors import LlmvizError, OverBudget
from ...core.graph import Graph
from ...views.attribution import attribution, check_target
from ...views.patching import READ, SUGGEST_RUNS, patching, suggest, sweep_cost
from ..dependencies import ServedDep
from ..schemas import Attribution, AttributionRequest, Patching, PatchingRequest, json_safe

MAX_SWEEP = 7 * 10**11  # what one patching sweep may cost (patching.sweep_cost): about 10 s on a quiet 2-core machine
MAX_SUGGEST = 5 * 10**10  # and the search for a corrupted input, when the request gives none

router = APIRouter()


@router.post("/api/attribution", response_model=Attribution)
async def attribution_route(req: AttributionRequest, request: Request, s: ServedDep):
    """One token's logit at one position split into each head's, each MLP's, the embeddings' and the biases'
    contributions, through the final norm with its scale frozen at this input's: the parts add up to the logit."""
    m = s.model(req.model)

    def before(graph: Graph, n: int) -> None:
        check_target(m, n, req.position, req.token)
        s.within_budget(graph.peak_bytes(n, graph.checkpoints()) + 2 * n * m.config.vocab_size * 4,
                        f"the attribution of a prediction among {n} tokens", "give fewer tokens")

    return await s.on_pass(request, req, lambda t: JSONResponse(json_safe(attribution(t, req.position, req.token))),
                           before=before)


@router.post("/api/patching", response_model=Patching)
async def patching_route(req: PatchingRequest, request: Request, s: ServedDep):
    """The corrupted input run with one activation from the clean input's pass, for every layer × position of the
    residual stream and every head's hook_z: the target token's probability for each, against both baselines."""
    m = s.model(req.model)

    def compute(stop):
        clean = s.request_ids(m, req.clean)
        p, _ = check_target(m, len(clean), req.position, req.token)
        g, n = m.graph, len(clean)
        if req.corrupted is None:
            runs = max(1, min(SUGGEST_RUNS, MAX_SUGGEST // max(1, g.multiply_adds(p + 1))))
            corrupted = suggest(m, clean, req.position, req.token, stop, runs)
        else:
            corrupted = m.encode(req.corrupted)
        if len(corrupted) != n:
            raise LlmvizError(f"the clean input has {n} tokens and the corrupted one {len(corrupted)}: patching takes "
                              "each activation from the same place in an input of the same length")
        work = sweep_cost(m, n, p)
        if work > MAX_SWEEP:
            raise OverBudget(f"a patching sweep of {p + 1} tokens of {m.name} costs about {work:.2g} multiply-adds (a "
                             f"weight read counted as {READ}), over this server's limit of {MAX_SWEEP:.2g}: give fewer "
                             "tokens, or an earlier position")
        keep = [*g.checkpoints(), *(f"blocks.{i}.attn.hook_z" for i in range(g.config.n_layer)),
                *(name for pair in g.kv_out for name in pair)]
        s.within_budget(2 * g.peak_bytes(p + 1, keep) + g.peak_bytes(p + 1, ()),
                        f"a patching sweep of {p + 1} tokens", "give fewer tokens, or an earlier position")
        key = ("patching", m, tuple(clean), tuple(corrupted), req.position, req.token)
        return Response(s.cache.payload(key, lambda: json.dumps(json_safe(
            patching(m, clean, corrupted, req.position, req.token, stop))).encode()), media_type="application/json")

    return await s.run(request, compute)
