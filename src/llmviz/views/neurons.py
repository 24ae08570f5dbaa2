"""What is an MLP neuron for? Where it fires in the training text, and which next tokens it pushes up or down.

    about = neuron(model, layer=1, index=17)
    about["contexts"]     # the training text where it fired most: [{"text", "mark", "activation"}, ...], or None
    about["boosted"]      # the 8 tokens its output raises most directly: [{"id", "token", "effect"}, ...]
    about["suppressed"]   # the 8 it lowers most

A neuron is one index along an MLP's hidden axis (`d_mlp`): one column of W_in, one entry of `mlp.hook_pre` and
`mlp.hook_post` at each position, one row of W_out. Its top contexts were found when the model was trained
(training/top_contexts.py) and are stored beside the bundled weights (`<name>.neurons.json`); a model without that
file (nano-gpt, a model loaded from a file or folder) has none, and `contexts_note` says so.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..core.errors import BadModelFile, LlmvizError
from ..core.graph import Graph
from ..core.model import Model
from ..core.weights import widen
from ..io.loading import BUNDLED, NEURONS_FORMAT, bundled_neurons

AXIS = "d_mlp"  # the graph's name for an MLP's hidden axis: its index is the neuron
TOP = 8
BUNDLED_SOURCE = "bundled with llmviz"  # a bundled model's `source` (io/loading.py)


def neuron_tensors(graph: Graph) -> list[str]:
    """The tensors of the MLPs that have one entry (or one row, or one column) per neuron: the weights and
    activations of each `blocks.L.mlp` with the neuron axis."""
    return [n for n in graph.names() if ".mlp." in n and AXIS in graph[n].axes]


def check_neuron(model: Model, layer: int, index: int) -> None:
    cfg = model.config
    if not 0 <= layer < cfg.n_layer:
        raise LlmvizError(f"layer {layer} is out of range: {model.name} has layers 0 to {cfg.n_layer - 1}")
    if not 0 <= index < cfg.d_mlp:
        raise LlmvizError(f"neuron {index} is out of range: each MLP of {model.name} has neurons 0 to {cfg.d_mlp - 1}")


def direct_effect(model: Model, layer: int, index: int) -> np.ndarray:
    """How one unit of the neuron's activation moves each next-token logit directly: its output row W_out[index],
    carried straight to the unembedding through the final norm, (W_out[index] − its mean) ⊙ γ · W_U for a LayerNorm
    (no centring for an RMSNorm), with γ the final norm's gain.

    The approximation: the neuron's output is added to the residual stream, and the final norm divides that stream by
    its own σ (its root mean square for an RMSNorm), which depends on everything else in the stream; that positive
    factor is left out, so the effects are in logits per unit of activation before that division, and their ranking is
    exact. The layers after the neuron's, which read its output too, are left out as well: this is its direct effect
    only. The final norm's bias and the unembedding's bias do not depend on the neuron and drop out."""
    check_neuron(model, layer, index)
    w = model.require_weights()
    out = widen(w[f"blocks.{layer}.mlp.W_out"])[index].astype(np.float64)
    if model.config.norm == "layer":
        out = out - out.mean()
    gain = widen(w["ln_final.w"]).astype(np.float64)
    return (out * gain) @ widen(w["unembed.W_U"]).astype(np.float64)


def stored_contexts(model: Model) -> dict | None:
    """The neuron contexts stored with a bundled model, or None (see the module doc)."""
    if model.source != BUNDLED_SOURCE or model.name not in BUNDLED:
        return None
    path = bundled_neurons(model.name)
    if path is None:
        return None
    data = _read(str(path))
    layers = data.get("layers")
    if (data.get("format") != NEURONS_FORMAT or not isinstance(layers, list) or len(layers) != model.config.n_layer
            or any(len(neurons) != model.config.d_mlp for neurons in layers)):
        raise BadModelFile(f"{Path(path).name}: not the neuron contexts of {model.name}")
    return data


@lru_cache(maxsize=4)
def _read(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def neuron(model: Model, layer: int, index: int, k: int = TOP) -> dict:
    """What neuron `index` of layer `layer`'s MLP does: its top contexts (stored), and the `k` tokens its output
    boosts and suppresses most directly (direct_effect)."""
    effect = direct_effect(model, layer, index)
    ids = model.token_strs(list(range(len(effect))))

    def tokens(order) -> list[dict]:
        return [{"id": int(i), "token": ids[i], "effect": float(effect[i])} for i in order[:k]]

    data = stored_contexts(model)
    if data is None:
        contexts, note = None, (f"{model.name} has no stored contexts: they are found when a model is trained with "
                                "llmviz (llmviz train shakespeare-char) and ship beside its weights")
    else:
        mark = data["before"]
        contexts = [{"text": text, "mark": mark, "activation": act} for text, act in data["layers"][layer][index]]
        note = (f"where it fired most among {data['scanned']:,} positions of the training text, each read from the "
                f"snippet's first character to the marked one")
    order = np.argsort(-effect, kind="stable")
    return {"model": model.name, "layer": layer, "index": index, "tensor": f"blocks.{layer}.mlp.hook_post",
            "contexts": contexts, "contexts_note": note,
            "boosted": tokens(order), "suppressed": tokens(order[::-1]),
            "effect_note": "direct effect on the next-token logits per unit of activation: W_out row × the final "
                           "norm's gain × W_U, before the final norm's division by σ and without the later layers"}
