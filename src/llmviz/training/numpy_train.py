"""Training in numpy, every number visible: random initial weights, the gradients of the backward pass
(Model.batch_gradients: a batch in one pass), AdamW. No torch.

    trainer = Trainer(task("nano-gpt"))      # training/tasks.py: the model, its batches, its settings
    for _ in range(trainer.settings.steps):
        loss = trainer.step()
    trainer.model                            # an llmviz Model: its weights are the trained ones

The settings are minGPT's (as the torch reference, training/torch_gpt.py): AdamW with betas 0.9/0.95, weight decay
0.1 on the matrices but not the embeddings, the norms or the biases, and the gradient clipped to a norm of 1. A
batch's loss is the mean over its examples' counted positions.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Mapping, MutableMapping, Sequence

import numpy as np

from ..core.config import ModelConfig
from ..core.errors import LlmvizError, NumericTrouble
from ..core.graph import Graph
from ..core.model import Model
from .task import Example, Task


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

    def step(self, weights: MutableMapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
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


class TrainingDiverged(LlmvizError):
    """A step's loss or gradient is not a finite number: the run cannot go on (the weights are the last good ones)."""


def train_step(model: Model, batch: Sequence[Example], opt: AdamW, max_norm: float = 1.0) -> float:
    """One step on a batch of (tokens, targets), all of one length: the batch's gradient (the mean loss over every
    counted position), clipped, and AdamW's update of the model's weights. Returns the batch's loss before the step.
    A loss or gradient that is not finite raises TrainingDiverged before any weight changes."""
    try:
        g = model.batch_gradients([x for x, _ in batch], [t for _, t in batch])
    except NumericTrouble as e:  # the forward pass left float32's range
        raise TrainingDiverged(f"training diverged at step {opt.t + 1}: {e}; the weights are those of step {opt.t}") from None
    norm = clip(g.weights, max_norm)
    if not (math.isfinite(g.loss) and math.isfinite(norm)):
        what = "loss" if not math.isfinite(g.loss) else "gradient's norm"
        raise TrainingDiverged(f"training diverged at step {opt.t + 1}: the {what} is "
                               f"{g.loss if what == 'loss' else norm}; the weights are those of step {opt.t}")
    opt.step(model.require_weights(), g.weights)
    return g.loss


def schedule(step: int, steps: int, lr: float, warmup: int, low: float | None) -> float:
    """The learning rate of a step: `lr`, or with `low`, a linear warm-up to `lr` over `warmup` steps, then a cosine
    down to `low` at the last step."""
    if low is None:
        return lr
    if step < warmup:
        return lr * (step + 1) / warmup
    done = (step - warmup) / max(1, steps - 1 - warmup)
    return float(low + 0.5 * (lr - low) * (1 + np.cos(np.pi * min(1.0, done))))


class Trainer:
    """A task's model trained from random initial weights (initial_weights, seeded by the settings' seed or
    `seed`): each step() draws a batch, computes its gradient and changes the weights in place."""

    def __init__(self, task: Task, seed: int | None = None):
        self.task, self.settings = task, task.settings
        self.seed = self.settings.seed if seed is None else seed
        self.model = random_model(task.config, task.tokenizer, self.seed)
        s = self.settings
        self.opt = AdamW(self.model.require_weights(), lr=s.lr, betas=s.betas, weight_decay=s.weight_decay,
                         decays=decayed(self.model.graph))
        self.rng = np.random.default_rng(self.seed)
        self.steps_done = 0

    def lr(self) -> float:
        """This step's learning rate."""
        s = self.settings
        return schedule(self.steps_done, s.steps, s.lr, s.warmup, s.final_lr)

    def step(self) -> float:
        """One step; its batch's loss before the update."""
        self.opt.lr = self.lr()
        loss = train_step(self.model, self.task.examples(self.settings.batch, self.rng), self.opt, self.settings.clip)
        self.steps_done += 1
        return loss


def trained(task: Task, steps: int | None = None, seed: int | None = None, log=print,
            every: int = 500) -> tuple[Trainer, dict]:
    """A task's model trained from random weights, with its settings (`steps` of them, and `seed`, if given): the
    trainer, and what `fit` measured."""
    if steps is not None:  # (the schedule, warm-up and decay, fits the run's length)
        task = dataclasses.replace(task, settings=dataclasses.replace(task.settings, steps=steps))
    trainer = Trainer(task, seed=seed)
    return trainer, fit(trainer, log=log, every=every)


def fit(trainer: Trainer, log=print, every: int = 500) -> dict:
    """Run a trainer's steps, logging the loss and the task's scores every `every` steps and at the last. Returns the
    losses and the seconds taken."""
    t0, losses, steps = time.time(), [], trainer.settings.steps
    for step in range(steps):
        losses.append(trainer.step())
        if step % every == 0 or step == steps - 1:
            scores = "".join(f"  {k} {v:.4f}" for k, v in trainer.task.evaluate(trainer.model).items())
            log(f"step {step:5d}  loss {losses[-1]:.5f}{scores}  ({time.time() - t0:.0f} s)")
    return {"losses": losses, "final_loss": float(np.mean(losses[-100:])), "seconds": round(time.time() - t0, 1)}
