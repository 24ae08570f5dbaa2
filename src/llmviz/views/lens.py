"""The logit lens: what the model would predict from the residual stream after each layer.

    top = logit_lens(model.run("CBABBC"), k=3)
    top["layers"]                  # blocks.0.hook_resid_pre ... blocks.2.hook_resid_pre, blocks.2.hook_resid_post
    top["labels"]                  # embeddings, after layer 0, ..., after layer 2
    top["top"][layer][position]    # [{"id", "token", "prob"}, ...] best first

Each boundary's residual is decoded as TransformerLens's `accumulated_resid(apply_ln=True)` followed by the
unembedding does: the final layer norm with its statistics recomputed for that residual, the unembedding,
then a softmax. The model's own graph computes it (the same ops as the forward pass's last layers).
"""

from __future__ import annotations

import numpy as np

from ..core.errors import LlmvizError
from ..core.graph import Graph
from ..core.ops import by_rows


def boundaries(graph: Graph) -> list[str]:
    """Each layer's `hook_resid_pre`, then the last layer's `hook_resid_post` (what the final layer norm reads)."""
    return [f"blocks.{i}.hook_resid_pre" for i in range(graph.config.n_layer)] + [_last(graph)]


def decoder(graph: Graph) -> list[str]:
    """The tensors computed after the last layer: the final layer norm, the unembedding, the softmax."""
    after = graph.position()[_last(graph)]
    return [n for n in graph.ancestors([graph.output])
            if graph[n].kind not in ("weight", "input") and graph.position()[n] > after]


def _last(graph: Graph) -> str:
    if not graph.config.n_layer:  # (the learning path's bigram table)
        raise LlmvizError(f"{graph.config.name} has no layers: the logit lens reads the stream between layers")
    last = f"blocks.{graph.config.n_layer - 1}.hook_resid_post"
    if last not in graph:  # (an image classifier's layers: no residual stream)
        raise LlmvizError(f"{graph.config.name} has no residual stream: the logit lens reads the stream between layers")
    return last


def logit_lens(trace, k: int = 5) -> dict:
    """The top k next tokens, with their probabilities, at every layer boundary and position of a trace."""
    model, graph = trace.model, trace.graph
    head, layers = decoder(graph), boundaries(graph)
    final, probs = layers[-1], graph[graph.output]
    logits_name, max_name, sum_name = probs.inputs  # softmax(x, max, Σexp): only the k kept are worked out
    upto = head[:head.index(graph.output)]
    top = []
    for name in layers:
        v = model._compute(graph, trace.tokens, {final: trace[name]}, upto, keep={logits_name, max_name, sum_name})
        logits, m, s = v[logits_name], v[max_name], v[sum_name]
        best = _top(logits, k)
        p = np.exp(np.take_along_axis(logits, best, -1) - m[:, None]) / s[:, None]  # the softmax's own formula
        top.append([[{"id": int(i), "token": model.token_strs([int(i)])[0], "prob": float(q)} for i, q in zip(row, pr)]
                    for row, pr in zip(best, p)])
    labels = ["embeddings"] + [f"after layer {i}" for i in range(len(layers) - 1)]
    return {"layers": layers, "labels": labels, "tokens": list(trace.tokens), "token_strs": trace.token_strs, "top": top}


def _top(x: np.ndarray, k: int) -> np.ndarray:
    """Each row's k largest, best first: a partial sort (the vocabulary may be 50,257 long), on every core."""
    k = min(k, x.shape[-1])
    part = np.empty((x.shape[0], k), np.int64)

    def work(rows):
        part[rows] = np.argpartition(x[rows], x.shape[-1] - k, axis=-1)[:, -k:]

    by_rows(work, x.shape[0], x.size)
    order = np.argsort(-np.take_along_axis(x, part, -1), axis=-1, kind="stable")
    return np.take_along_axis(part, order, -1)
