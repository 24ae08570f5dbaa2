"""A multilayer perceptron that classifies small images (llmviz's digits-mlp: 8 × 8 handwritten digits, 64 → 32 → 16 →
10). Its graph is built from the ops every architecture uses (linear, the activation, the softmax's visible steps), so
hover, provenance and the backward pass need nothing new:

    h1 = relu(pixels · W_in⁰ + b_in⁰)       # blocks.0.mlp: the 64 pixels, row by row, to n_embd units
    h2 = relu(h1 · W_in¹ + b_in¹)           # blocks.1.mlp: to d_mlp (n_inner) units
    logits = h2 · W_U + b_U                 # one score per class (vocab_size of them)
    probs = softmax(logits)

Column u of blocks.0.mlp.W_in holds one weight per pixel: reshaped to the image's side, it is the picture unit u of
the first layer responds to. The model has no positions, no residual stream and no attention; n_layer is its two
hidden layers. llmviz's own model: no Hugging Face model_type, no checkpoint names of its own.
"""

from __future__ import annotations

from ..config import ModelConfig
from ..errors import BadModelFile
from ..ops.activations import ACTIVATION_OPS, ACTIVATIONS
from ..scope import Scope
from .base import own_model

NAME = "mlp"
MODEL_TYPES: tuple[str, ...] = ()
NAMES = "image classifiers (llmviz's digits-mlp)"
LEARNING_PATH = True  # the walkthrough tells it only in chapters written for it (views/walkthrough.learning_path)
UNITS = ("unit1", "unit2")  # each hidden layer's axis


def param_parts(cfg: ModelConfig) -> dict[str, int]:
    """The hidden layers' weights and biases as mlp; the output layer's (W_U, b_U) as embedding, as every
    architecture counts an untied unembedding."""
    P, U1, U2, K = cfg.image_side ** 2, cfg.n_embd, cfg.d_mlp, cfg.vocab_size
    return {"embedding": U2 * K + K, "attention": 0, "mlp": P * U1 + U1 + U1 * U2 + U2, "other": 0}


def check(cfg: ModelConfig) -> None:
    if cfg.image_side < 1 or cfg.n_layer != len(UNITS):
        raise BadModelFile(f"{cfg.name}: an image classifier (arch 'mlp') has image_side >= 1 and n_layer "
                           f"{len(UNITS)} (got image_side {cfg.image_side}, n_layer {cfg.n_layer})")


def build(g) -> None:
    cfg = g.config
    check(cfg)
    side = cfg.image_side
    x = Scope(g, group="embed").input("pixels", ["pixel"], f"Input image: {side} × {side} pixels, row by row",
                                      label="pixels")
    before = "pixel"
    act = ACTIVATIONS[cfg.activation]
    for i, units in enumerate(UNITS):
        ml = Scope(g, f"blocks.{i}", layer=i).sub("mlp")
        W = ml.weight("W_in", [before, units], f"Hidden layer {i} weight", label="W_in")
        b = ml.weight("b_in", [units], f"Hidden layer {i} bias", label="b_in")
        pre = ml.linear("hook_pre", x, W, b, f"Hidden layer {i} pre-activation", label="pre")
        x = ml.op("hook_post", [units], act, (pre,), f"Hidden layer {i} activation ({ACTIVATION_OPS[act].label})",
                  label="activation")
        before = units
    top = Scope(g, group="unembed")
    W_U = top.weight("unembed.W_U", [before, "class"], "Output weight: one column per class", label="W_U")
    b_U = top.weight("unembed.b_U", ["class"], "Output bias", label="b_U")
    top.softmax("probs", top.linear("logits", x, W_U, b_U, "Logits: one score per class", label="logits"),
                "Class probabilities", label="probs")


config_from_hf, canonical, weights_from_state = own_model("an image classifier")
