"""Direct logit attribution: one token's logit at one position, split into what each part of the model wrote into
the residual stream.

    a = attribution(model.run("CBABBC"))           # the last position, the predicted token
    a["logit"], a["total"]                          # the model's logit, and the parts' sum (equal to float tolerance)
    a["parts"][0]                                   # {"label": "token embedding", "kind": "embed", "tensor": "hook_embed", ...}

The residual stream the final norm reads is a sum: the embeddings (token, and position where the model learns them),
then each layer's attention output and MLP output. Attention's output is itself a sum, one term per head
(`hook_z[pos, h] @ W_O[h]`) plus its bias `b_O`. The final norm is linearised: its scale (LayerNorm's σ, RMSNorm's
root mean square) is frozen at its value on this input, so the norm is a linear map of the stream, and each part
goes through it alone. LayerNorm also subtracts the mean, which is linear too: each part is centred first. Then

    logit = Σ_parts  norm(part) · (γ ⊙ W_U[:, token])  +  β · W_U[:, token]  +  b_U[token]

where γ is the norm's gain (Gemma's 1 + w, as the graph holds it), β its bias and b_U the unembedding's bias (each
only where the model has one). The parts are found by walking the graph back from the final norm's input through
the residual adds, so every architecture the graph declares (sequential or parallel blocks, grouped-query heads,
scaled embeddings) is split the same way; each part names the tensor the page flies to.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import LlmvizError
from ..core.graph import Graph
from ..core.model import Trace
from ..core.weights import widen


def final_norm(graph: Graph) -> dict:
    """The final norm's tensors: the stream it reads (`resid`), its scale, its gain and bias, whether it centres
    (LayerNorm) or not (RMSNorm), and the unembedding's weight and bias."""
    logits = graph[graph.output].inputs[0]
    out, W_U, *b_U = graph[logits].inputs
    if graph[out].op != "ln_affine":  # (the learning path's bigram table and attention toy)
        raise LlmvizError(f"{graph.config.name} has no final norm before its unembedding: the logit attribution splits "
                          "the stream a final norm reads")
    normalized, gain, *beta = graph[out].inputs
    spec = graph[normalized]
    return {"logits": logits, "out": out, "resid": spec.inputs[0], "scale": spec.inputs[-1],
            "centred": spec.op == "ln_normalize", "gain": gain, "bias": beta[0] if beta else None,
            "W_U": W_U, "b_U": b_U[0] if b_U else None}


def components(graph: Graph, resid: str) -> list[str]:
    """The tensors whose sum is the residual stream `resid`, in graph order: every input of the adds (and the
    identities that carry the stream into a layer) down to what is not itself the stream."""
    found, todo = set(), [resid]
    while todo:
        name = todo.pop()
        spec = graph[name]
        if spec.op in ("add", "identity"):
            todo.extend(spec.inputs)
        else:
            found.add(name)
    order = graph.position()
    return sorted(found, key=order.__getitem__)


def check_target(model, n_pos: int, position: int | None, token: int | None) -> tuple[int, int | None]:
    """The position (default: the last) and token (default None: the predicted one) asked for, if in range."""
    p = n_pos - 1 if position is None else position
    if not 0 <= p < n_pos:
        raise LlmvizError(f"position {position} is out of range: the input has {n_pos} tokens (positions 0 to "
                          f"{n_pos - 1})")
    V = model.config.vocab_size
    if token is not None and not 0 <= token < V:
        raise LlmvizError(f"token {token} is out of range: {model.name} has token ids 0 to {V - 1}")
    return p, token


def attribution(trace: Trace, position: int | None = None, token: int | None = None, k: int = 5) -> dict:
    """The logit of `token` (default: the most probable) at `position` (default: the last) split into parts, each
    {"label", "kind", "layer", "head", "tensor", "value"}; `logit` is the model's own, `total` the parts' sum. `top`:
    the k most probable tokens there ({"id", "token", "prob", "logit"}), to choose another token from."""
    model, graph = trace.model, trace.graph
    weights = model.require_weights()
    p, token = check_target(model, len(trace.tokens), position, token)
    f = final_norm(graph)
    if p == len(trace.tokens) - 1 and trace.next_logits is not None and trace.next_probs is not None:
        logits, probs = trace.next_logits, trace.next_probs
    else:
        logits, probs = trace[f["logits"]][p], trace[graph.output][p]
    t = int(np.argmax(probs)) if token is None else token  # the prediction, as the readout names it

    def w(name: str) -> np.ndarray:
        return widen(weights[name])

    # The direction one part's vector is read along: γ ⊙ W_U[:, t] / σ, minus its mean for LayerNorm (centring a
    # vector v, then reading it along u, is reading v along u centred).
    sigma = float(trace[f["scale"]][p])
    unembed = w(f["W_U"])[:, t].astype(np.float64)
    u = w(f["gain"]).astype(np.float64) * unembed / sigma
    if f["centred"]:
        u = u - u.mean()
    parts = []
    for name in components(graph, f["resid"]):
        parts.extend(_split(trace, graph, name, p, u, w))
    if f["bias"] is not None:
        parts.append(_part("final norm bias β", "bias", None, f["bias"], float(w(f["bias"]).astype(np.float64) @ unembed)))
    if f["b_U"] is not None:
        parts.append(_part("unembedding bias b_U", "bias", None, f["b_U"], float(w(f["b_U"])[t])))
    best = np.argsort(-logits, kind="stable")[:k]
    return {
        "model": model.name, "tokens": list(trace.tokens), "token_strs": trace.token_strs,
        "position": p, "token": t, "token_str": model.token_strs([t])[0],
        "logit": float(logits[t]), "prob": float(probs[t]), "total": float(sum(x["value"] for x in parts)),
        "norm": {"tensor": f["scale"], "scale": sigma, "centred": f["centred"]},
        "parts": parts,
        "top": [{"id": int(i), "token": model.token_strs([int(i)])[0], "prob": float(probs[i]), "logit": float(logits[i])}
                for i in best],
    }


def _split(trace: Trace, graph: Graph, name: str, p: int, u: np.ndarray, w) -> list[dict]:
    """One component of the stream at position p, read along u: attention's output as its heads and its bias, any
    other (an embedding, an MLP's output) whole."""
    spec, layer = graph[name], graph[name].layer
    if spec.op == "linear" and "head" in graph[spec.inputs[0]].axes:  # b_O + Σ_h z[:, h] @ W_O[h]
        z_name, W_O, *b = spec.inputs
        z = trace[z_name][p].astype(np.float64)  # [head, d_head]
        per_head = np.einsum("hd,hd->h", z, w(W_O).astype(np.float64) @ u)
        out = [_part(f"L{layer} head {h}", "head", layer, z_name, float(v), head=h) for h, v in enumerate(per_head)]
        if b:
            out.append(_part(f"L{layer} attention bias b_O", "bias", layer, b[0], float(w(b[0]).astype(np.float64) @ u)))
        return out
    value = float(trace[name][p].astype(np.float64) @ u)
    if name.endswith("hook_mlp_out"):
        return [_part(f"L{layer} MLP", "mlp", layer, name, value)]
    if spec.op in ("embed", "pos_embed", "scale") and layer is None:
        label = {"embed": "token embedding", "pos_embed": "position embedding", "scale": "token embedding × √C"}[spec.op]
        return [_part(label, "embed", None, name, value)]
    return [_part(spec.title, "other", layer, name, value)]


def _part(label: str, kind: str, layer: int | None, tensor: str, value: float, head: int | None = None) -> dict:
    return {"label": label, "kind": kind, "layer": layer, "head": head, "tensor": tensor, "value": value}
