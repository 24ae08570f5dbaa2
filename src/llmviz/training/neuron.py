"""The neuron's task (the learning path's first step): tell two clouds of points in the plane apart, with one
neuron (core/arch/neuron.py). The points are made here, the same every time (POINTS of each class, seed SEED):

    xs, labels = points()          # [2 · POINTS, 2] coordinates and their class, 0 or 1
    t = neuron_task()
    t.examples(16, rng)            # a batch: (a point, [its class]) drawn from the points
    t.evaluate(model)              # {"accuracy": 0.95}: the share of the points on their class's side of the line

    llmviz train neuron --out src/llmviz/weights/neuron.safetensors --force   (about a second)
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from ..core.config import ModelConfig
from ..core.model import Model
from .task import Settings, Task

POINTS, SEED = 30, 7  # points of each class, and the seed that places them
CENTRES = ((-0.9, -0.6), (0.9, 0.8))  # each class's cloud: normal around its centre, σ = SPREAD
SPREAD = 0.8
EXAMPLE = "1.2 0.5"  # the page's first input: a point on class 1's side
SETTINGS = Settings(steps=300, batch=16, lr=0.05)


@cache
def points() -> tuple[np.ndarray, np.ndarray]:
    """The task's points [2 · POINTS, 2] (float32, class 0's then class 1's) and their classes [2 · POINTS]."""
    rng = np.random.default_rng(SEED)
    xs = np.concatenate([rng.normal(c, SPREAD, (POINTS, 2)) for c in CENTRES]).round(2).astype(np.float32)
    labels = np.repeat(np.arange(len(CENTRES)), POINTS)
    xs.flags.writeable = labels.flags.writeable = False
    return xs, labels


def config() -> ModelConfig:
    return ModelConfig("neuron", n_layer=0, n_head=1, n_embd=2, vocab_size=2, n_ctx=1, arch="neuron", input_size=2,
                       example=EXAMPLE, task="which of two clouds a point (x₁, x₂) belongs to: class 0 or class 1",
                       description="One neuron: two inputs, two weights, a bias and a sigmoid")


def probabilities(model: Model, xs: np.ndarray | None = None) -> np.ndarray:
    """σ(z) of each point (default: the task's points): the probability the neuron gives class 1."""
    z = model.batch_logits(points()[0] if xs is None else xs)[..., 0].astype(np.float64)
    return 1 / (1 + np.exp(-z))


def accuracy(model: Model) -> float:
    """The share of the task's points on their own class's side of the decision line (σ(z) > 0.5 for class 1)."""
    return float(((probabilities(model) > 0.5) == (points()[1] == 1)).mean())


def neuron_task() -> Task:
    xs, labels = points()

    def examples(n: int, rng: np.random.Generator) -> list[Any]:
        """n of the task's points drawn at random, each with its class."""
        pick = rng.integers(len(xs), size=n)
        return [(xs[i], [int(labels[i])]) for i in pick]

    return Task("neuron", config(), None, SETTINGS, examples,  # type: ignore[arg-type]  # (it reads numbers: no tokenizer)
                lambda m: {"accuracy": accuracy(m)}, probe="",
                about=f"neuron learns where to draw its line between the two clouds of {2 * POINTS} points. Its "
                      "score, accuracy, is the share of the points on their own class's side. It has three numbers to "
                      "learn (two weights and a bias) and no attention heads: watch its line turn and slide in the "
                      "plot as the snapshots arrive.")


CARD = """# neuron

One neuron: it reads a point (x₁, x₂), computes z = W[0] x₁ + W[1] x₂ + b and gives σ(z) = 1 / (1 + exp(−z)), the
probability that the point is of class 1. {n_params} parameters. Its decision line, where σ(z) = 50 %, is
W[0] x₁ + W[1] x₂ + b = 0: here {line}.

- Data: {n} points made by `llmviz.training.neuron.points` ({each} of each class, normal around {c0} and {c1},
  σ = {spread:g}, seed {seed}).
- Trained with the binary cross-entropy in numpy (llmviz.training.numpy_train: {settings}).
- Accuracy on its points: **{accuracy:.1%}**.

Written by `llmviz train neuron` (seed {train_seed}).
"""


def line_text(model: Model) -> str:
    w, b = model.require_weights()["W"][:, 0], float(model.require_weights()["b"][0])
    return f"{w[0]:.3g} x₁ + {w[1]:.3g} x₂ + {b:.3g} = 0".replace("+ -", "− ")


def train_neuron(out, steps: int | None = None, seed: int = 3407, log=print, force: bool = False) -> float:
    """Train the neuron from random weights (SETTINGS, or `steps` of them) and write its weights and model card to
    `out` (refused before training if they exist, unless force). Returns its accuracy on its points."""
    from .numpy_train import trained
    from .writing import check_outputs, write_model

    check_outputs(out, force)
    trainer, _ = trained(neuron_task(), steps, seed, log, every=50)
    model, s = trainer.model, trainer.settings
    acc = accuracy(model)
    settings = "; ".join(f"{k}: {v}" for k, v in s.describe() if k != "seed")
    card = CARD.format(n_params=model.config.n_params, line=line_text(model), n=2 * POINTS, each=POINTS,
                       c0=CENTRES[0], c1=CENTRES[1], spread=SPREAD, seed=SEED, settings=settings, accuracy=acc,
                       train_seed=trainer.seed)
    write_model(model, out, card, force, log=log)
    return acc
