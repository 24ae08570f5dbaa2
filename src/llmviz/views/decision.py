"""What the neuron's plot draws (the learning path's first step): the task's points, the decision line of the neuron's
weights, each point's probability, the loss and accuracy over the points, the loss's gradient with respect to the
three weights, and the weights one step of gradient descent makes of them.

A learner who drags a weight makes a neuron of their own, named by its weights: `neuron~3.8,1.84,1.01` is the
bundled neuron's config with W = [3.8, 1.84] and b = 1.01 (`learner_model`). A name always means one set of weights,
so every view (scene, hover, walkthrough) shows the learner's neuron as it shows the trained one.

    decision(load_model("neuron"))["line"]     # {"w": [3.8, 1.84], "b": 1.01}: W[0] x₁ + W[1] x₂ + b = 0
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..core.errors import LlmvizError, ModelNotFound
from ..core.model import Model
from ..training.neuron import points

OWN_WEIGHTS = "~"  # a learner's neuron: "<model>~<W[0]>,<W[1]>,<b>"
LIMIT = 20.0  # a learner's weights go from −LIMIT to LIMIT
STEP_LR = 1.0  # gradient descent's learning rate in the plot's Step (on all the points: the whole batch)
EXTENT = 3.0  # the plot shows x₁ and x₂ from −EXTENT to EXTENT


def is_neuron(model: Model) -> bool:
    return model.config.arch == "neuron"


def weights_name(base: str, w, b: float) -> str:
    """The name of the neuron `base` with these weights (each written to 4 significant digits)."""
    return f"{base}{OWN_WEIGHTS}" + ",".join(f"{float(v):.4g}" for v in (*np.ravel(w), b))


def learner_model(models: dict[str, Model], name: str) -> Model | None:
    """The neuron `<model>~<W…>,<b>` a learner set, made from the served neuron `<model>`; None for a name without
    OWN_WEIGHTS. Refused (one line) for a model that is not a neuron, or weights that are not numbers within ±LIMIT."""
    base, sep, text = name.partition(OWN_WEIGHTS)
    if not sep:
        return None
    if base not in models:
        raise ModelNotFound(f"unknown model {base!r} (in {name!r}): this server has {', '.join(models)}")
    model = models[base]
    if not is_neuron(model) or not model.has_weights:
        raise LlmvizError(f"{name!r}: only a neuron's weights can be set by name ('{base}' is not a neuron with weights)")
    n = model.config.input_size
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != n + 1 or not all(math.isfinite(v) and abs(v) <= LIMIT for v in values):
        raise LlmvizError(f"{name!r}: give {base}{OWN_WEIGHTS} then its {n} weights and its bias, numbers from −{LIMIT:g} to "
                          f"{LIMIT:g} separated by commas, such as {base}{OWN_WEIGHTS}1.5,-0.8,0.2")
    config = dataclasses.replace(model.config, name=weights_name(base, values[:n], values[n]))
    weights = {"W": np.array(values[:n], np.float32).reshape(n, 1), "b": np.array(values[n:], np.float32)}
    return Model(config, weights, model.tokenizer, source=f"weights set by the learner, from {base}")


def decision(model: Model, lr: float = STEP_LR) -> dict:
    """The plot of a neuron (see the module's docstring); `lr`: the learning rate of the step it proposes."""
    if not is_neuron(model):
        raise LlmvizError(f"{model.name} is not a neuron: only a neuron has a decision line to draw")
    weights = model.require_weights()
    xs, labels = points()
    z = model.batch_logits(xs)[:, 0].astype(np.float64)
    p = 1 / (1 + np.exp(-z))
    grads = model.batch_gradients(xs, labels[:, None].tolist())  # the mean binary cross-entropy over every point
    w, b = weights["W"][:, 0].astype(np.float64), float(weights["b"][0])
    gw, gb = grads.weights["W"][:, 0].astype(np.float64), float(grads.weights["b"][0])
    nw, nb = w - lr * gw, b - lr * gb
    base = model.name.partition(OWN_WEIGHTS)[0].partition("@")[0]
    return {
        "model": model.name, "base": base,
        "points": np.round(xs.astype(np.float64), 4).tolist(), "labels": labels.tolist(), "probs": p.tolist(),
        "line": {"w": w.tolist(), "b": b},
        "loss": grads.loss, "accuracy": float(((p > 0.5) == (labels == 1)).mean()),
        "grad": {"w": gw.tolist(), "b": gb},
        "lr": lr, "next": {"w": nw.tolist(), "b": nb,
                           "name": weights_name(base, np.clip(nw, -LIMIT, LIMIT), float(np.clip(nb, -LIMIT, LIMIT)))},
        "limit": LIMIT, "extent": EXTENT,
    }
