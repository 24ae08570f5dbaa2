"""One neuron (the first step of the learning path): it reads a point's two numbers, weighs each, adds a bias, and
squashes the sum into a probability with the sigmoid:

    z = x₁ · W[0] + x₂ · W[1] + b        # `logits`: one number, the log-odds of class 1
    p = σ(z) = 1 / (1 + exp(−z))         # `probs`: the probability that the point is of class 1 (class 0: 1 − p)

Its decision line is where z = 0 (p = 50 %): W[0] x₁ + W[1] x₂ + b = 0. W is perpendicular to it and points to
class 1's side; b shifts it. The loss it learns by is the binary cross-entropy, −log p of the point's class
(core/backward.binary_pair), with gradient (p − class) per point, as any other model's (p − onehot). llmviz's own
model: no Hugging Face model_type, no checkpoint names of its own.
"""

from __future__ import annotations

from ..config import ModelConfig
from ..errors import BadModelFile
from ..scope import Scope
from .base import own_model

NAME = "neuron"
MODEL_TYPES: tuple[str, ...] = ()
NAMES = "single neurons (llmviz's neuron)"
LEARNING_PATH = True  # the walkthrough tells it only in chapters written for it (views/walkthrough.learning_path)


def param_parts(cfg: ModelConfig) -> dict[str, int]:
    """A weight per input number and a bias: the neuron is the whole model (counted as its MLP)."""
    return {"embedding": 0, "attention": 0, "mlp": cfg.input_size + 1, "other": 0}


def check(cfg: ModelConfig) -> None:
    if cfg.input_size < 1 or cfg.vocab_size != 2:
        raise BadModelFile(f"{cfg.name}: a neuron (arch 'neuron') reads input_size >= 1 numbers and tells 2 classes "
                           f"(got input_size {cfg.input_size}, vocab_size {cfg.vocab_size})")


def build(g) -> None:
    check(g.config)
    n = g.config.input_size
    x = Scope(g, group="embed").input("point", ["feature"], f"Input point: its {n} numbers", label="point")
    out = Scope(g, group="unembed")
    W = out.weight("W", ["feature", "neuron"], "The neuron's weights: one per input number", label="W")
    b = out.weight("b", ["neuron"], "The neuron's bias", label="b")
    z = out.linear("logits", x, W, b, "z = W · x + b: the log-odds of class 1", label="z")
    out.op("probs", ["neuron"], "sigmoid", (z,), "p = σ(z): the probability of class 1", label="σ(z)")


config_from_hf, canonical, weights_from_state = own_model("a single neuron")
