"""The learning path as the page lists it: five steps from a single neuron to nano-gpt, each a bundled model with its
own walkthrough chapter (issue 25), and, for the models a server has, where each step's walkthrough starts and ends.

Not to be confused with training/learning_path.py, which makes and trains the path's small models: this module only
says what the steps are, in which order, and where the page opens each one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .walkthrough import CHAPTERS, Chapter, applies, chapters, kinds


@dataclass(frozen=True)
class PathStep:
    model: str  # the bundled model the step shows
    title: str
    learn: str  # one line: what the learner takes away from it
    picture: str  # its thumbnail, a file of the page's (frontend/public/path/), never part of an export


STEPS = (
    PathStep("neuron", "A single neuron",
             "Two inputs, two weights, a bias and a sigmoid: one straight line that splits the plane in two.",
             "path/neuron.png"),
    PathStep("digits-mlp", "A digit classifier",
             "Layers of neurons turn the 64 pixels of a digit you draw into ten probabilities.",
             "path/digits-mlp.webp"),
    PathStep("bigram-char", "A bigram table",
             "The next letter from the current one alone: one table of counts, then a softmax.",
             "path/bigram-char.webp"),
    PathStep("attention-toy", "One attention head",
             "Queries meet keys: how the last position looks back to find the letter it needs.",
             "path/attention-toy.webp"),
    PathStep("nano-gpt", "A whole GPT",
             "Embeddings, heads, MLPs and the residual stream, layer after layer, sorting letters.",
             "path/nano-gpt.webp"),
)


def walk_span(model, folder: Path = CHAPTERS) -> tuple[list[int], list[int]] | None:
    """Where this model's part of the path is in its walkthrough, as (chapter, step) from 1, the numbers a link's
    `step=` takes: its first step and its last. A learning-path model's part is the chapters written for it alone;
    a whole transformer's is its whole walkthrough. None: no chapter is written for it yet."""
    have = kinds(model, trace=True)  # (its numbers are shown: a model the path opens has weights)
    kept: list[tuple[int, Chapter, int]] = []
    for number, ch in enumerate(chapters(folder), 1):
        n = sum(applies(model, s, have) for s in ch.steps)
        if n:
            kept.append((number, ch, n))
    if not kept:
        return None
    return [kept[0][0], 1], [kept[-1][0], kept[-1][2]]


def learning_path_steps(models: Mapping[str, object], folder: Path = CHAPTERS) -> list[dict]:
    """The five steps in order, each with whether this server has its model (with weights) and, if it does, where its
    walkthrough starts and ends (null while no chapter is written for it)."""
    out = []
    for s in STEPS:
        m = models.get(s.model)
        served = m is not None and bool(getattr(m, "has_weights", False))
        span = walk_span(m, folder) if served else None
        out.append({"model": s.model, "title": s.title, "learn": s.learn, "picture": s.picture, "served": served,
                    "start": span[0] if span else None, "end": span[1] if span else None})
    return out
