"""digits-mlp's task: classify scikit-learn's 8 × 8 handwritten digits (bundled, llmviz.data), trained in numpy
(numpy_train.Trainer) on images 0 … 1,436 only and scored on the held-out images 1,437 … 1,796.

    t = digits_mlp()
    t.examples(64, rng)      # a batch: (an 8 × 8 image, [its digit]), training images only
    t.evaluate(model)        # {"test accuracy": 0.96…}: the share of held-out images it classifies right

    llmviz train digits-mlp --out src/llmviz/weights/digits-mlp.safetensors --force   (about 5 s)
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..core.config import ModelConfig
from ..core.errors import LlmvizError
from ..core.model import Model
from ..data import TEST, TRAIN, digits
from .task import Settings, Task

NOISE = 3.0  # the training images' added noise (pixels are 0 … 16): without it the model scores about 91 % held out
EXAMPLE = 1442  # a held-out 7: the page's first input
SETTINGS = Settings(steps=3000, batch=64, lr=1e-2, warmup=50, final_lr=1e-4)


def config() -> ModelConfig:
    example = " ".join(f"{v:g}" for v in digits()[0][EXAMPLE].reshape(-1))  # its pixels as text, row by row
    return ModelConfig("digits-mlp", n_layer=2, n_head=1, n_embd=32, vocab_size=10, n_ctx=1, arch="mlp",
                       activation="relu", n_inner=16, image_side=8, example=example,
                       task="which digit an 8 × 8 handwritten image shows",
                       description="An MLP (64 → 32 → 16 → 10) that reads 8 × 8 handwritten digits")


def predictions(model: Model, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """The most probable class of each image [n, 8, 8], in batches (Model.batch_logits)."""
    return np.concatenate([model.batch_logits(images[i:i + batch]).argmax(-1) for i in range(0, len(images), batch)])


def accuracy(model: Model, part: slice = TEST) -> float:
    """The share of the images of `part` (default: the held-out ones) whose most probable class is their label."""
    images, labels = digits()
    return float((predictions(model, images[part]) == labels[part]).mean())


def misclassified(model: Model) -> list[dict]:
    """The held-out images the model gets wrong: each one's index in the data, its label and what the model said."""
    images, labels = digits()
    said = predictions(model, images[TEST])
    first = TEST.start
    return [{"index": first + i, "label": int(labels[first + i]), "predicted": int(p)}
            for i, p in enumerate(said) if p != labels[first + i]]


def mistakes(model: Model) -> dict:
    """What the page lists of a digit classifier's held-out errors: each held-out image (1,437 on, never trained on) it
    gets wrong, with its label, the digit the model says and that digit's probability, and its pixels as the model's
    input text; and the held-out accuracy."""
    cfg = model.config
    if cfg.image_side != 8 or cfg.vocab_size != 10:
        raise LlmvizError(f"{model.name} does not read 8 × 8 digits: it has no held-out digits to get wrong")
    images, labels = digits()
    probs = np.concatenate([softmax(model.batch_logits(images[TEST][i:i + 512])) for i in range(0, TEST.stop - TEST.start, 512)])
    said = probs.argmax(-1)
    wrong = [
        {"index": TEST.start + i, "label": int(labels[TEST][i]), "predicted": int(said[i]), "prob": float(probs[i, said[i]]),
         "text": " ".join(f"{v:g}" for v in images[TEST][i].reshape(-1))}
        for i in np.flatnonzero(said != labels[TEST])
    ]
    return {"model": model.name, "tested": len(said), "accuracy": float((said == labels[TEST]).mean()), "mistakes": wrong}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def digits_mlp() -> Task:
    images, labels = digits()
    train_images, train_labels = images[TRAIN], labels[TRAIN]

    def examples(n: int, rng: np.random.Generator) -> list[Any]:
        """n training images drawn at random, each with noise added to its pixels (normal, σ = NOISE, then clipped to
        0 … 16: a new smudge every time, so the model cannot learn the images by heart), and its digit."""
        pick = rng.integers(len(train_images), size=n)
        noisy = np.clip(train_images[pick] + rng.normal(0.0, NOISE, (n, 8, 8)), 0, 16).astype(np.float32)
        return [(x, [int(train_labels[i])]) for x, i in zip(noisy, pick, strict=True)]

    return Task("digits-mlp", config(), None, SETTINGS, examples,  # type: ignore[arg-type]  # (an image model: no tokenizer)
                lambda m: {"test accuracy": accuracy(m)}, probe="", shares=frozenset({"test accuracy"}),
                about=f"digits-mlp learns which digit an 8 × 8 handwritten image shows. It trains on images 0 … "
                      f"{TRAIN.stop - 1:,}, each drawn with fresh noise; its score, test accuracy, is the share of the "
                      f"{TEST.stop - TEST.start} held-out images ({TEST.start:,} on, never trained on) it classifies "
                      f"right: a guess gets about 10 %. It is an MLP: no attention heads, so no pattern to watch "
                      f"form; open a snapshot to see its weights and draw a digit for it.")


CARD = """# digits-mlp

An MLP that reads an 8 × 8 handwritten digit (64 pixels, 0 = blank to 16 = ink) and gives the probability of each
digit 0–9: 64 → 32 (ReLU) → 16 (ReLU) → 10, softmax. {n_params:,} parameters.

- Data: scikit-learn's `load_digits` (the UCI optdigits test set, 1,797 images), bundled as `llmviz/data/digits.npz`.
- Trained on images 0 … 1,436 only, each with fresh noise added to its pixels every time it is drawn (normal,
  σ = {noise:g}, clipped to 0 … 16), in numpy (llmviz.training.numpy_train: {settings}).
- Held-out accuracy, images 1,437 … 1,796 (360 images): **{accuracy:.1%}** ({wrong} wrong).
- Training accuracy, images 0 … 1,436: {train:.1%}.

Written by `llmviz train digits-mlp` (seed {seed}).
"""


def train_digits(out, steps: int | None = None, seed: int = 3407, log=print, force: bool = False) -> float:
    """Train digits-mlp from random weights (SETTINGS, or `steps` of them) and write its weights and model card to
    `out` (refused before training if they exist, unless force). Returns its held-out accuracy."""
    from .numpy_train import trained
    from .writing import check_outputs, write_model

    check_outputs(out, force)
    trainer, _ = trained(digits_mlp(), steps, seed, log, every=250)
    model, s = trainer.model, trainer.settings
    test = accuracy(model)
    settings = "; ".join(f"{k}: {v}" for k, v in s.describe() if k != "seed")
    card = CARD.format(n_params=model.config.n_params, settings=settings, noise=NOISE, accuracy=test,
                       wrong=len(misclassified(model)), train=accuracy(model, TRAIN), seed=trainer.seed)
    write_model(model, out, card, force, log=log)
    return test


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train digits-mlp in numpy and write its weights with a model card.")
    ap.add_argument("--out", required=True)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    train_digits(args.out, force=args.force)


if __name__ == "__main__":
    main()
