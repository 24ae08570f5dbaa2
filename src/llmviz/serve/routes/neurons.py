"""MLP neurons: which tensors have one entry per neuron, and what one neuron does (views/neurons.py)."""

from __future__ import annotations

from fastapi import APIRouter

from ...views.neurons import AXIS, neuron, neuron_tensors, stored_contexts
from ..dependencies import ServedDep
from ..schemas import Neuron, NeuronTensors

router = APIRouter()


@router.get("/api/models/{name}/neurons", response_model=NeuronTensors)
def model_neurons(name: str, s: ServedDep):
    """The tensors whose `d_mlp` axis indexes the MLP's neurons (the page offers the neuron view on their cells), and
    whether the model has its neurons' top contexts stored. A structure-only model has no numbers: 409."""
    m = s.model(name)
    m.require_weights()
    return NeuronTensors(model=m.name, axis=AXIS, tensors=neuron_tensors(m.graph), n_layer=m.config.n_layer,
                         d_mlp=m.config.d_mlp, contexts=stored_contexts(m) is not None)


@router.get("/api/models/{name}/neurons/{layer}/{index}", response_model=Neuron)
def model_neuron(name: str, layer: int, index: int, s: ServedDep):
    """Neuron `index` of layer `layer`'s MLP: where it fired most in the training text (null for a model without
    stored contexts) and the 8 tokens its output boosts and suppresses most directly. A layer or neuron out of range
    is a 422 naming the range; an unknown model a 404."""
    return neuron(s.model(name), layer, index)
