"""What a task is: a model to train from random initial weights (its config and tokenizer), its batches, its
optimiser settings and how it is scored. The tasks themselves are in tasks.py (TASKS); numpy_train.Trainer runs one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..core.config import ModelConfig
from ..core.model import Model
from ..io.tokenizer import CharTokenizer

Example = tuple[list[int], list[int]]  # an input's tokens and each position's target (−1: not counted)


@dataclass(frozen=True)
class Settings:
    """A run's optimiser and schedule: minGPT's AdamW, its gradient clipped to a norm of `clip`; the learning rate
    `lr`, or, with `final_lr`, a linear warm-up over `warmup` steps then a cosine down to `final_lr`."""

    steps: int
    batch: int
    lr: float
    seed: int = 3407
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    clip: float = 1.0
    warmup: int = 0
    final_lr: float | None = None

    def describe(self) -> list[tuple[str, str]]:
        """The settings as a learner reads them: (what, value) pairs."""
        rate = f"{self.lr:g}" if self.final_lr is None else \
            f"{self.lr:g}, after {self.warmup} warm-up steps, cosine down to {self.final_lr:g}"
        return [("optimiser", "AdamW"), ("learning rate", rate), ("betas", f"{self.betas[0]:g}, {self.betas[1]:g}"),
                ("weight decay", f"{self.weight_decay:g} on the matrices (not embeddings, norms or biases)"),
                ("gradient clipping", f"norm {self.clip:g}"), ("batch", f"{self.batch} examples"),
                ("steps", f"{self.steps:,}"), ("seed", str(self.seed))]


@dataclass(frozen=True)
class Task:
    name: str
    config: ModelConfig
    tokenizer: CharTokenizer
    settings: Settings
    examples: Callable[[int, np.random.Generator], list[Example]]  # (how many, rng) -> a batch
    evaluate: Callable[[Model], dict[str, float]]  # the model's score, by name
    probe: str  # an input whose attention patterns are worth watching as the model learns ("": it has no attention)
    offline: bool = True  # its data is at hand without a download
    notes: dict = field(default_factory=dict)
    about: str = ""  # what it learns and how it is scored, in a learner's words (the training panel shows it)
    shares: frozenset[str] = frozenset({"accuracy"})  # its metrics that are a share of something: drawn 0 … 100 %
