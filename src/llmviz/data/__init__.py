"""Data sets bundled with llmviz (see README.md beside this file for where each comes from and its licence).

    images, labels = digits()       # float32 [1797, 8, 8] of 0 … 16, and int64 [1797] of 0 … 9
    images[TRAIN], labels[TEST]     # the training images (0 … 1,436) and the held-out ones (1,437 …)
    train, validation = bigram_pairs()   # int64 [64, 64]: how often character b follows a in shakespeare-char's text
"""

from __future__ import annotations

from importlib import resources

import numpy as np

N_DIGITS = 1797
TRAIN = slice(0, 1437)  # the images a model trains on
TEST = slice(1437, N_DIGITS)  # the held-out images its accuracy is measured on


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 handwritten digits of scikit-learn's `load_digits` (the UCI optdigits test set), in its order: 8 × 8
    images whose pixels count the inked cells of a 4 × 4 block of the original 32 × 32 bitmap (0 … 16), and their
    labels."""
    with resources.files(__name__).joinpath("digits.npz").open("rb") as f, np.load(f) as d:
        return d["images"].astype(np.float32), d["labels"].astype(np.int64)


def bigram_pairs() -> tuple[np.ndarray, np.ndarray]:
    """n(a→b), how often character b follows character a, in shakespeare-char's training text (its first 95 %) and in
    its validation text (the last 5 %): [64, 64] tables, rows and columns in the order of training.chars.CHARS."""
    with resources.files(__name__).joinpath("bigram-pairs.npz").open("rb") as f, np.load(f) as d:
        return d["train"].astype(np.int64), d["validation"].astype(np.int64)
