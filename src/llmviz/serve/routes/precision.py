"""A model's precision table: its weights stored at each format, their bytes and error, and how far they move the
logits on its example input (views/precision.py)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...core.quant import SEP, quantized
from ...views.precision import precision_table
from ..dependencies import ServedDep, example_input
from ..schemas import PrecisionTable, json_safe

router = APIRouter()


@router.get("/api/models/{name}/precision", response_model=PrecisionTable)
async def model_precision(name: str, request: Request, s: ServedDep):
    """The model at f32, f16, bf16, int8, q8_0 and q4_0: the weights' bytes as stored, their RMS and largest error,
    the logits' largest error on the model's example input and the probability of its top token at each format, and
    the time of a pass (measured once). A model already stored in a format (`nano-gpt:q4_0`) is refused: the table
    is its original's. Made once per model, then kept while the cache has room."""
    m = s.model(name)
    m.require_weights()
    text = example_input(m) or ""  # (a model with weights has one)

    def stored(fmt: str):  # one the server already keeps, else made for the table and let go (each is a copy)
        return s.formats.get(f"{name}{SEP}{fmt}") or quantized(m, fmt)

    def compute(stop):
        s.pass_budget(m, m.encode(text))
        return Response(s.cache.payload(("precision", m), lambda: json.dumps(json_safe(
            precision_table(m, text, stored=stored, stop=stop))).encode()), media_type="application/json")

    return await s.run(request, compute)
