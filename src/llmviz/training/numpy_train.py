"""Training in numpy, every number visible: random initial weights, the gradients of Model.gradients, AdamW. No torch.

    model = random_model(PRESETS["nano-gpt"], CharTokenizer("ABC"), seed=0)
    opt = AdamW(model.weights, decays=decayed(model.graph))
    for step in range(steps):
        loss = train_step(model, sort_examples(16, rng), opt)

The settings are minGPT's (as training/fit.py's torch loop): AdamW with betas 0.9/0.95, weight decay 0.1 on the
matrices but not the embeddings, the norms or the biases, and the gradient clipped to a norm of 1. A batch's loss is
the mean over its examples' counted positions (each example the same count, as the sort task's).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ..core.config import ModelConfig
from ..core.graph import Graph
from ..core.model import Model

LENGTH, LETTERS = 6, 3  # nano-gpt's sort task: six tokens of A, B, C (training/train.py)


def readers(graph: Graph) -> dict[str, list[tuple]]:
    """Each tensor's readers: (the tensor an op computes from it, which of the op's inputs it is), in graph order."""
    out: dict[str, list[tuple]] = {name: [] for name in graph.names()}
    for t in graph:
        for i, name in enumerate(t.inputs):
            out[name].append((t, i))
    return out


def initial_weights(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """minGPT's initialisation, from what reads each weight in the graph: a norm's gain 1 and every bias 0, every
    other weight normal with std 0.02, the projections back into the residual stream (attention's W_O, the MLP's
    W_out) with std 0.02 / √(2 · layers). A tied weight is not made twice."""
    rng = np.random.default_rng(seed)
    sizes, out, read = graph.sizes(1), {}, readers(graph)
    for name in graph.names("weight"):
        spec = graph[name]
        if spec.attrs.get("tied_to"):
            continue
        shape = spec.shape(sizes)
        uses = read[name]
        if any(t.op == "ln_affine" and i == 1 for t, i in uses):
            out[name] = np.ones(shape, np.float32)
        elif any((t.op == "ln_affine" and i == 2) or (t.op == "linear" and i == 2) for t, i in uses):
            out[name] = np.zeros(shape, np.float32)
        else:
            into_stream = any(t.op == "linear" and any(u.residual for u, _ in read[t.name]) for t, _ in uses)
            std = 0.02 / math.sqrt(2 * graph.config.n_layer) if into_stream else 0.02
            out[name] = rng.normal(0.0, std, shape).astype(np.float32)
    return out


def random_model(config: ModelConfig, tokenizer, seed: int = 0) -> Model:
    """A model of this config with initial weights (initial_weights)."""
    graph = Graph(config)
    return Model(config, initial_weights(graph, seed), tokenizer, source=f"random initial weights (seed {seed})")


def decayed(graph: Graph) -> set[str]:
    """The weights AdamW decays: the matrices of the projections (a linear's weight, the unembedding's too), not the
    embeddings (read by a lookup), the norms or the biases (a head's bias has two axes, but is a bias)."""
    read = readers(graph)
    return {n for n in graph.names("weight") if not graph[n].attrs.get("tied_to")
            and any(t.op == "linear" and i == 1 for t, i in read[n])}


class AdamW:
    """AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected moments), on numpy arrays,
    changed in place."""

    def __init__(self, weights: Mapping[str, np.ndarray], lr: float = 5e-4, betas=(0.9, 0.95), eps: float = 1e-8,
                 weight_decay: float = 0.1, decays: Iterable[str] = ()):
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.decays = set(decays)
        self.m = {n: np.zeros_like(w, dtype=np.float32) for n, w in weights.items()}
        self.v = {n: np.zeros_like(w, dtype=np.float32) for n, w in weights.items()}
        self.t = 0

    def step(self, weights: dict[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for n, w in weights.items():
            g = grads[n]
            if n in self.decays:
                w *= np.float32(1 - self.lr * self.weight_decay)
            self.m[n] = b1 * self.m[n] + (1 - b1) * g
            self.v[n] = b2 * self.v[n] + (1 - b2) * g * g
            w -= (self.lr * (self.m[n] / c1) / (np.sqrt(self.v[n] / c2) + self.eps)).astype(np.float32)


def clip(grads: dict[str, np.ndarray], max_norm: float = 1.0) -> float:
    """Scale the gradients down, in place, so that their norm over every weight is at most max_norm (as
    torch.nn.utils.clip_grad_norm_); returns the norm before."""
    norm = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads.values()))
    if norm > max_norm:
        for g in grads.values():
            g *= np.float32(max_norm / (norm + 1e-6))
    return norm


def train_step(model: Model, batch: Sequence[tuple[list[int], list[int]]], opt: AdamW, max_norm: float = 1.0) -> float:
    """One step on a batch of (tokens, targets): the examples' gradients averaged, clipped, and AdamW's update of the
    model's weights. Returns the batch's mean loss before the step."""
    total: dict[str, np.ndarray] = {}
    loss = 0.0
    for ids, targets in batch:
        g = model.gradients(ids, targets)
        loss += g.loss
        for n, gw in g.weights.items():
            total[n] = total[n] + gw if n in total else gw.copy()
    for gw in total.values():
        gw /= np.float32(len(batch))
    clip(total, max_norm)
    opt.step(model.require_weights(), total)
    return loss / len(batch)


def sort_examples(n: int, rng: np.random.Generator) -> list[tuple[list[int], list[int]]]:
    """n examples of nano-gpt's task: six random letters then their sorted version, fed as 11 tokens; the targets
    count only the positions that predict the sorted letters (−1 elsewhere)."""
    out = []
    for _ in range(n):
        letters = rng.integers(LETTERS, size=LENGTH).tolist()
        seq = letters + sorted(letters)
        out.append((seq[:-1], [-1] * (LENGTH - 1) + seq[LENGTH:]))
    return out
