"""The models this server knows, a model's graph and its embedding map, a digit classifier's mistakes, a neuron's
decision plot, and the walkthrough compiled for a model and an input."""

from __future__ import annotations

import json

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from ...core.graph import Graph
from ...core.quant import BITS, FORMATS, input_axes, precision_name
from ...core.weights import COPIES_UP_TO
from ...views.decision import STEP_LR, decision
from ...views.embedmap import embedding_map
from ...views.walkthrough import compile_chapters, learning_path
from ..dependencies import ServedDep, example_input
from ..schemas import (
    Decision,
    EmbeddingMap,
    GraphJson,
    Mistakes,
    ModelConfig,
    ModelInfo,
    Precision,
    Vocab,
    Walk,
    json_safe,
)

router = APIRouter()


def model_info(name: str, m, precisions: bool = False) -> ModelInfo:
    """A model as the page's selector describes it; `precisions`: a served model, with the formats its weights can
    be stored in (the page's precision selector: core/quant.py)."""
    formats = [Precision(format=f, bits=BITS[f], model=precision_name(name, f)) for f in FORMATS] \
        if precisions and m.has_weights and input_axes(m.graph) and m.precision == "f32" and not learning_path(m) \
        and m.engine == "numpy" and m.config.n_params <= COPIES_UP_TO else []
    # (a file's own format, a GGUF's or a bfloat16 folder's, is the model's; the learning path's small networks are told
    # in float32; another engine's model keeps its weights: io/nnsight_engine.py; a larger model is not copied whole)
    other = m.engine != "numpy"  # (what it cannot offer, and its note, are its engine's words)
    return ModelInfo(name=name, description=m.config.description, example=example_input(m), n_params=m.config.n_params,
                     param_parts=m.config.param_parts(), has_weights=m.has_weights,
                     config=ModelConfig.model_validate(m.config.to_dict()), source=m.source, precisions=formats,
                     engine=m.engine, engine_note=m.note if other else None, cannot=m.unavailable())


@router.get("/api/models", response_model=list[ModelInfo])
def list_models(s: ServedDep):
    """Every model this server knows, in selector order, each with the formats it can be shown in."""
    return [model_info(name, m, precisions=True) for name, m in s.registry.items()]


@router.get("/api/models/{name}", response_model=ModelInfo)
def one_model(name: str, s: ServedDep):
    """Any model this server can show by name, listed or not: a training run's snapshot (`nano-gpt@1200`), a neuron
    with a learner's weights (`neuron~1.5,-0.8,0.2`)."""
    m = s.model(name)
    return model_info(m.name, m)


@router.get("/api/walkthrough", response_model=Walk)
async def walkthrough_for(request: Request, s: ServedDep, model: str = "nano-gpt",
                          input: str | None = Query(None, max_length=20_000)):
    """The guided walkthrough's chapters and steps for this model and input (default: its example): the
    text with this forward pass's numbers filled in, each step's actions and the tensors they name. A
    model without weights gets the steps that need no numbers, and a note saying so."""
    m = s.model(model)

    def compute(stop):
        if not m.has_weights:
            return JSONResponse(json_safe(compile_chapters(m)))
        if m.engine != "numpy":  # (its pass lacks the weights the chapters' numbers read: told as structure)
            return JSONResponse(json_safe({**compile_chapters(m), "note": f"{m.name} is {getattr(m, 'walk_note', '')}"}))
        ids = m.encode(input if input is not None else example_input(m) or [0])
        return s.with_pass(m, ids, stop, lambda t: JSONResponse(json_safe(compile_chapters(m, t))))

    return await s.run(request, compute)


@router.get("/api/models/{name}/mistakes", response_model=Mistakes)
async def model_mistakes(name: str, request: Request, s: ServedDep):
    """An 8 × 8 digit classifier's held-out digits (scikit-learn's images 1,437 on, never trained on) that it gets
    wrong, each with its pixels as input text to open it; a model that reads no digits is refused."""
    from ...training.digits import mistakes

    m = s.model(name)
    m.require_weights()
    return await s.run(request, lambda stop: mistakes(m))


@router.get("/api/models/{name}/decision", response_model=Decision)
def model_decision(name: str, s: ServedDep, lr: float = Query(STEP_LR, gt=0, le=100)):
    """A neuron's plot: its points, its decision line, the loss, its gradient and one step of gradient descent with
    learning rate `lr` (`<neuron>~W…,b` names a neuron with the weights a learner set); any other model is refused."""
    return decision(s.model(name), lr)


@router.get("/api/models/{name}/graph", response_model=GraphJson)
def model_graph(name: str, s: ServedDep, past: int = Query(0, ge=0, le=100_000)):
    """The model graph: every tensor with its axes, kind, op and inputs; the axes with their colours;
    the ops with their formulas. `pos` and `key_pos` sizes are null: they depend on the input. With `past`, the
    graph of a generation step after `past` cached positions (each layer's keys and values read through the cache)."""
    m = s.model(name)
    g = (Graph(m.config, past=past) if past else m.graph).to_json()
    g["tokenizer"] = m.tokenizer.to_dict() if m.tokenizer else None
    return g


@router.get("/api/models/{name}/vocab", response_model=Vocab)
def model_vocab(name: str, s: ServedDep):
    """Every vocabulary entry's token as the view shows it (what a hovered cell's token is called)."""
    m = s.model(name)
    return Vocab(tokens=m.token_strs(list(range(m.config.vocab_size))))


@router.get("/api/models/{name}/embedding-map", response_model=EmbeddingMap)
async def model_embedding_map(name: str, request: Request, s: ServedDep):
    """The rows of the token embedding W_E, and of the position embedding W_pos if the model learned one, on their
    first two principal components: each row's coordinates, label and numbers, and the share of the variance each
    component keeps (views/embedmap.py). A large vocabulary shows its lowest 2,000 ids. A structure-only model has
    no numbers to map."""
    m = s.model(name)
    m.require_weights()

    def compute(stop):  # (the weights do not change: the map is made once, and kept while the cache has room)
        return Response(s.cache.payload(("embedding-map", m), lambda: json.dumps(embedding_map(m)).encode()),
                        media_type="application/json")

    return await s.run(request, compute)
