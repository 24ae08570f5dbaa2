"""The backward pass: the loss's gradient with respect to every weight and every activation of one forward pass.

    g = model.gradients("CBABBCABBBC")      # the mean next-token cross-entropy over positions 0 … T−2
    g.loss, g.weights["blocks.0.attn.W_Q"], g["blocks.1.hook_resid_post"]

The loss is the mean cross-entropy of the targets (default: the input shifted by one, so that position i predicts
token i + 1) over the positions that have one. Its gradient with respect to the logits is (p − onehot(target)) / N;
from there each op's backward (its vector-Jacobian product, held next to its forward in core/ops) carries the
gradient to the op's inputs, in reverse graph order, adding where a tensor is read more than once (the residual
stream, a weight used at every position). A tied weight's gradient is the sum over its uses, as autograd gives.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from .errors import LlmvizError
from .graph import Graph
from .ops import OPS
from .ops.base import Local, fmt, local


class Gradients(Mapping):
    """The loss of one pass, the gradient of every weight (`weights`, named as the model's) and of every activation
    (by its trace name: g["blocks.0.hook_resid_post"]). Tensors the loss does not depend on (the probabilities'
    softmax, computed after the logits) have none."""

    def __init__(self, loss: float, weights: dict[str, np.ndarray], activations: dict[str, np.ndarray], tokens: list[int],
                 targets: list[int]):
        self.loss = loss
        self.weights = weights
        self.activations = activations
        self.tokens = tokens
        self.targets = targets

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.activations:
            raise KeyError(f"{name!r} has no gradient here: give an activation of the graph that the loss depends on")
        return self.activations[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.activations)

    def __len__(self) -> int:
        return len(self.activations)


def targets_for(ids: list[int], targets: Sequence[int] | None, vocab: int) -> list[int]:
    """The next-token targets: of positions 0 … T−2, the input shifted by one; or those given, T − 1 of them, or T to
    score the last position too (its next token is not in the input); −1 for a position the loss does not count, as
    a training task's input positions."""
    if len(ids) < 2:
        raise LlmvizError("a loss needs at least two tokens: each position but the last predicts the next")
    if targets is None:
        return list(ids[1:])
    out = [int(t) for t in targets]
    if len(out) not in (len(ids) - 1, len(ids)):
        raise LlmvizError(f"targets: give one per position but the last ({len(ids) - 1}), or one per position "
                          f"({len(ids)}), not {len(out)}")
    bad = [t for t in out if not -1 <= t < vocab]
    if bad:
        raise LlmvizError(f"targets: {bad[0]} is not a token id (0 to {vocab - 1}, or -1: not counted)")
    if all(t == -1 for t in out):
        raise LlmvizError("targets: every position is -1 (not counted): the loss would count nothing")
    return out


def backward(graph: Graph, values: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray], logits_name: str,
             targets: Sequence[int] | np.ndarray) -> Gradients:
    """The gradients of the mean cross-entropy of `targets` (positions 0 … len(targets) − 1, those of −1 not counted;
    for a batch, a row of one per position for each example, the mean over every position counted) from a pass's
    tensors
    (`values`: any tensor the logits depend on, weights widened to float32; a Trace, which recomputes a layer's
    tensors from the residual stream when first asked, is read in reverse graph order: one layer at a time)."""
    logits = values[logits_name].astype(np.float64)
    shape = logits.shape  # [pos, vocab], or a batch's [batch, pos, vocab] with a row of targets per example
    logits = binary_pair(logits.reshape(-1, shape[-1]))
    flat = np.asarray(targets).reshape(-1)
    at = np.flatnonzero(flat >= 0)  # the positions counted
    wanted = flat[at]
    rows = logits[at] - logits[at].max(-1, keepdims=True)
    logp = rows - np.log(np.exp(rows).sum(-1, keepdims=True))
    loss = float(-logp[np.arange(len(at)), wanted].mean())
    g_logits = np.zeros(logits.shape, np.float64)
    g_logits[at] = np.exp(logp)
    g_logits[at, wanted] -= 1.0
    g_logits = g_logits[:, -shape[-1]:]  # (a binary classifier's: its one logit's, p − target)
    grads: dict[str, np.ndarray] = {logits_name: (g_logits.reshape(shape) / len(at)).astype(np.float32)}
    for name in reversed(graph.ancestors([logits_name])):
        t = graph[name]
        if name not in grads or t.kind in ("weight", "input"):
            continue
        op = OPS[t.op or ""]
        if op.backward is None:
            raise LlmvizError(f"{name}'s op {op.name} has no backward: its gradient cannot be computed")
        inputs = [values[i] for i in t.inputs]
        for i, gi in zip(t.inputs, op.backward(grads[name], values[name], *inputs, **t.attrs)):
            if gi is None or graph[i].kind == "input":
                continue
            grads[i] = grads[i] + gi if i in grads else np.asarray(gi, np.float32)
    out_weights = {}
    for name in weights:
        gw = grads.get(name)
        out_weights[name] = np.zeros(np.shape(weights[name]), np.float32) if gw is None else gw.astype(np.float32)
    for name in graph.names("weight"):  # a tied weight and the weight it is share one gradient: the sum of both uses
        source = graph[name].attrs.get("tied_to")
        if source and name in grads:
            src_axes, axes = graph[source].axes, graph[name].axes
            total = grads.get(source, 0) + grads[name].transpose([axes.index(a) for a in src_axes])
            out_weights[source] = total.astype(np.float32)
            if name in weights:  # (a loader that lists it too: the same numbers, in its own axes)
                out_weights[name] = out_weights[source].transpose([src_axes.index(a) for a in axes])
    activations = {k: v for k, v in grads.items() if graph[k].kind in ("activation", "aggregate")}
    return Gradients(loss, out_weights, activations, [], list(targets))


def binary_pair(logits: np.ndarray) -> np.ndarray:
    """A binary classifier's one logit z (a neuron's, whose σ(z) is the probability of class 1) as the two logits
    [0, z]: their softmax is [1 − σ(z), σ(z)], so its cross-entropy is the binary one, and its gradient with respect
    to z is σ(z) − target, as (p − onehot) / N is for any other model. Logits of two or more classes as they are."""
    return np.concatenate([np.zeros_like(logits), logits], -1) if logits.shape[-1] == 1 else logits


def counted(targets: Sequence[int]) -> int:
    """How many positions the loss averages over: those with a target (not −1)."""
    return sum(1 for t in targets if t >= 0)


def loss_chain(logits: np.ndarray, targets: Sequence[int], at: tuple[int, ...]) -> Local:
    """The loss's own step for one logit z[p, v] (one example): the mean cross-entropy's gradient, (p − onehot(target))
    / N, with p the softmax of position p's logits (in float64, as `backward` computes it) and N the positions
    counted; 0 at a position the loss does not count."""
    pos, v = at
    n = counted(targets)
    if pos >= len(targets) or targets[pos] < 0:
        return local("(p − onehot(target)) / N", np.zeros((0, 0)), [], [], rows=[("N", n)],
                     text=lambda _: "0: the loss does not score this position's prediction")
    row = binary_pair(logits[pos].astype(np.float64))
    v = v + len(row) - logits.shape[-1]  # (a binary classifier's logit: class 1's)
    e = np.exp(row - row.max())
    p, hit = e[v] / e.sum(), int(v == targets[pos])
    return local("(p − onehot(target)) / N", np.zeros((1, 0)), [1.0], [(p - hit) / n],
                 rows=[("p", p), ("onehot(target)", hit), ("N", n)], text=lambda g: f"({fmt(p)} − {hit}) / {n} = {fmt(g)}")


def weight_gradient(graph: Graph, values: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """One weight's gradient from the gradients of the tensors that read it (`grads`: every activation's, as
    `backward` gives them): each reader's backward, added as `backward` adds them (in reverse graph order; a tied
    weight and the weight it is, both uses), so the same float32 numbers as Gradients.weights, for one weight."""
    source = graph[name].attrs.get("tied_to") or name
    family = [source] + [n for n in graph.names("weight") if graph[n].attrs.get("tied_to") == source]
    total: dict[str, np.ndarray] = {}
    for t in reversed(list(graph)):
        if t.name not in grads or t.op is None:
            continue
        for k, i in enumerate(t.inputs):
            back = OPS[t.op].backward
            if i in family and back is not None:
                gi = back(grads[t.name], values[t.name], *[values[j] for j in t.inputs], **t.attrs)[k]
                total[i] = total[i] + gi if i in total else np.asarray(gi, np.float32)
    out = total.get(source, np.zeros(np.shape(values[source]), np.float32))
    for n in family[1:]:
        if n in total:
            out = out + total[n].transpose([graph[n].axes.index(a) for a in graph[source].axes])
    out = out.astype(np.float32)
    return out if name == source else out.transpose([graph[source].axes.index(a) for a in graph[name].axes])
