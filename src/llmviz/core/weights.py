"""How a model's weights are kept: as their file stores them (float32, float16, or bfloat16 as its uint16 bits),
memory-mapped where the file allows, and widened to float32 only while an op uses them. A weight larger than BLOCK
numbers is widened a block of rows at a time, so that no float32 copy of it is ever whole: an 8B model's 2 GB
(float32) unembedding is read in 16 MB pieces.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

BLOCK = 1 << 22  # numbers widened at once, at most, when a weight is streamed (16 MB of float32)
# Parameters, at most, of a model whose weights llmviz copies whole in float32 (its gradients, a training step, another
# precision) or whose walkthrough it compiles at start: GPT-2 medium's size. A 1B model's copy is 5 GB.
COPIES_UP_TO = 400_000_000


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 (its uint16 bits) -> float32: the bits are float32's upper half (the layout of `bits` is kept)."""
    out = np.empty_like(bits, dtype=np.uint32)
    np.left_shift(bits, 16, out=out, dtype=np.uint32)
    return out.view(np.float32)


def widen(w: np.ndarray) -> np.ndarray:
    """A weight as float32 for computing: float16 is cast, bfloat16 (kept as uint16 bits) is expanded."""
    if w.dtype == np.float32:
        return w
    return bf16_to_f32(w) if w.dtype == np.uint16 else w.astype(np.float32)


def owner(a: np.ndarray) -> np.ndarray:
    """The array whose memory `a` uses (itself, or the array it is a view of): a mapped weight's is its file tensor."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def streamed(w: np.ndarray) -> bool:
    """Whether an op reads this weight in blocks (it is stored narrower than float32, and large)."""
    return w.dtype != np.float32 and w.size > BLOCK


def blocks(size: int, row: int) -> Iterator[slice]:
    """Slices of an axis of `size` indices, each `row` numbers long, of at most BLOCK numbers (at least one index)."""
    step = max(1, BLOCK // max(row, 1))
    for start in range(0, size, step):
        yield slice(start, min(size, start + step))
