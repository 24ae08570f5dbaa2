"""Interventions: a forward pass with edits (core/edits.py), answered next to the clean pass."""

from __future__ import annotations

import json

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...core.edits import Edit, info, parse_edits
from ...core.model import Model, Trace
from ..dependencies import ServedDep
from ..schemas import InterveneRequest, InterveneResponse, json_safe

JSON_FLOAT = 24  # bytes a float32 probability takes in the answer's JSON, at most ("0.00012345678544789553, ")

router = APIRouter()


@router.post("/api/intervene", response_model=InterveneResponse)
async def intervene(req: InterveneRequest, request: Request, s: ServedDep):
    """Run the pass with these edits, each made right after its tensor is computed so that everything downstream
    reads the edited numbers, and answer both passes' next-token probabilities and how much every tensor changed."""
    m = s.model(req.model)
    raw = [e.model_dump() for e in req.edits]

    def compute(stop):
        ids = s.request_ids(m, req.prompt)
        n, vocab = len(ids), m.config.vocab_size
        size = 2 * n * vocab * JSON_FLOAT
        g = m.graph
        checked = parse_edits(g, raw, n, m.encode)  # before anything is computed
        sources = {(e.source_tokens, e.tensor) for e in checked if e.kind == "patch"}  # held through the pass
        held = sum(g[name].nbytes(g.sizes(n)) for _, name in sources)
        s.within_budget(g.peak_bytes(n, g.checkpoints()) + g.peak_bytes(n, ()) + held + size,
                        f"an intervention on {n} tokens (two passes, {len(sources)} patched tensors, and "
                        f"{2 * n * vocab:,} probabilities to send)", "give fewer tokens or fewer patches")
        edits = m.edits(checked, n, stop)  # each patch's source pass runs
        s.unsent.admit(size)
        return Response(s.with_pass(m, ids, stop, lambda clean: answer(m, clean, edits, stop)),
                        media_type="application/json")

    return await s.run(request, compute)


def answer(m: Model, clean: Trace, edits: list[Edit], stop) -> bytes:
    """The edited pass beside the clean one, as InterveneResponse's JSON."""
    g, changed = m.graph, {}

    def visit(name: str, a: np.ndarray) -> None:  # each tensor of the edited pass against the clean one's
        before = clean[name]
        with np.errstate(invalid="ignore"):  # a masked score is -inf in both: no change
            d = np.where(a == before, 0.0, np.abs(a.astype(np.float64) - before))
        changed[name] = float(d.max(initial=0.0))

    edited = m.run(clean.tokens, keep=[g.output], visit=visit, stop=stop, edits=edits)
    body = {
        "model": m.name, "tokens": clean.tokens, "token_strs": clean.token_strs,
        "edits": [info(g, e, len(clean.tokens)) for e in edits],
        "probs": edited[g.output].tolist(), "clean_probs": clean[g.output].tolist(),
        "predicted": edited.predicted, "clean_predicted": clean.predicted, "changed": json_safe(changed),
    }
    return json.dumps(body).encode()
