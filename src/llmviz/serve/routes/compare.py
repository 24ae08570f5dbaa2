"""One input at two precisions (views/compare.py): the numbers of the comparison, and its difference view's scene."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ...core.errors import LlmvizError
from ...core.model import Model, Trace
from ...core.quant import SEP, precision_name
from ...views.compare import compare, compare_scene
from ..dependencies import Served, ServedDep, pass_key
from ..schemas import CompareRequest, Comparison, json_safe
from .passes import SCENE_MEDIA_TYPE

router = APIRouter()


def models(s: Served, req: CompareRequest) -> tuple[Model, Model]:
    """The two models compared: the request's model (a quantized one's original) in each format."""
    m = s.model(req.model)
    if SEP not in req.model and m.precision != "f32":  # (a GGUF file's or a bfloat16 folder's own format)
        raise LlmvizError(f"{m.name} is stored as {m.precision} in its file: comparing precisions starts from a "
                          "model's float32 weights")
    base = req.model.rpartition(SEP)[0] if SEP in req.model else req.model
    return s.model(precision_name(base, req.reference)), s.model(precision_name(base, req.other))


def both(s: Served, ref: Model, other: Model, ids: list[int], stop, use) -> bytes:
    """use(reference trace) within the budget of two passes, the reference's pass taken from the cache."""
    g = ref.graph
    s.within_budget(2 * g.peak_bytes(len(ids), g.checkpoints()) + g.peak_bytes(len(ids), ()),
                    f"two passes of {len(ids)} tokens (one per format)", "give fewer tokens")
    return s.with_pass(ref, ids, stop, use)


@router.post("/api/compare", response_model=Comparison)
async def compare_route(req: CompareRequest, request: Request, s: ServedDep):
    """The request's input run at two precisions: each layer's residual-stream relative error (other against
    reference), both answers and where the predictions differ."""
    ref, other = models(s, req)

    def compute(stop):
        ids = s.request_ids(other, req.prompt)
        s.request_ids(ref, req.prompt)

        def use(t: Trace):
            o = s.cache.get(pass_key(other, ids))
            if o is None:
                o = other.run(ids, keep=other.graph.checkpoints(), stop=stop)
                s.cache.put(pass_key(other, ids), o, o.nbytes)
            return JSONResponse(json_safe(compare(t, o)))

        return both(s, ref, other, ids, stop, use)

    return await s.run(request, compute)


@router.post("/api/compare/scene", response_class=Response,
             responses={200: {"content": {SCENE_MEDIA_TYPE: {}},
                              "description": "as /api/scene's: the other format's pass, with a second atlas `change` "
                                             "(other − reference) and the comparison as the scene's `compare`"}})
async def compare_scene_route(req: CompareRequest, request: Request, s: ServedDep):
    """The difference view: the scene of the other format's pass, every cell also as its difference from the
    reference's (weights too: what storing them changed), and the comparison's numbers."""
    ref, other = models(s, req)

    def compute(stop):
        ids = s.request_ids(other, req.prompt)
        s.request_ids(ref, req.prompt)
        key = ("compare scene", ref, other, tuple(ids), req.heads)
        payload = s.cache.get(key)
        if payload is None:
            def build(t: Trace) -> bytes:
                trace, made = compare_scene(other, t, req.heads, stop)
                s.cache.put(key, made, len(made))
                s.cache.put(pass_key(other, ids), trace, trace.nbytes)  # (for the hovers that follow)
                return made

            payload = both(s, ref, other, ids, stop, build)
        return Response(payload, media_type=SCENE_MEDIA_TYPE)

    return await s.run(request, compute)
