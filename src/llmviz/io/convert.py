"""Checking and storing converted weights, for every architecture (see llmviz.core.arch): that a config's
weights fit in memory and match the file, that no weight is NaN, inf or beyond ±1e6, and the storage dtypes.

dtype "stored" keeps each weight as its file stores it, memory-mapped (core/weights.py): a large weight is checked
the first time it is read (`Checked`), which is before any number computed from it exists."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, MutableMapping

import numpy as np

from ..core.config import ModelConfig
from ..core.errors import BadModelFile
from ..core.weights import owner, widen
from .safetensors_file import f32_to_bf16

STORED = "stored"  # as the file stores them (float32, float16 or bfloat16), memory-mapped
STORAGE_DTYPES = (STORED, "float32", "float16", "bfloat16")
KEPT = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.uint16))  # what "stored" keeps as it is
CHECK_LATER = 1 << 20  # a stored weight of this many numbers or more is checked when first read, not at load


BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, STORED: 0}  # (stored: mapped, the file's pages, not memory)
F16_MAX = 65504.0
# The largest weight magnitude llmviz accepts. Trained models' weights stay within a few hundred (a norm's gain, an
# outlier channel); a weight of 1e6 already makes products of 1e12 with unit activations, and a few layers of such
# products leave float32's range (3.4e38) when the model runs, with NaN and overflow warnings instead of numbers.
MAX_WEIGHT = 1e6


def memory_bytes() -> int:
    """This machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 60


def check_shape(config: ModelConfig, layers_in_file: int, dtype: str, source) -> None:
    """Before anything is built: the config's layers are the file's, and its weights fit in memory."""
    need = config.n_params * BYTES[dtype]
    if need > memory_bytes():
        raise BadModelFile(f"{source}: this config (n_layer {config.n_layer:,}, n_embd {config.n_embd:,}, vocab "
                           f"{config.vocab_size:,}) would need {need / 1e9:,.1f} GB of {dtype} weights; this machine "
                           f"has {memory_bytes() / 1e9:,.1f} GB of memory")
    if layers_in_file != config.n_layer:
        raise BadModelFile(f"{source}: the config says n_layer {config.n_layer:,} but the weights hold "
                           f"{layers_in_file:,} layers")


def check_weight(a: np.ndarray, dtype: str, source, name: str) -> None:
    """Refuse a weight with NaN or inf, one beyond ±MAX_WEIGHT, or one that float16 storage would overflow. `a` may be
    float64 (as read): it is checked before it is narrowed, so narrowing cannot overflow. Two passes (max, min) and no
    copy: a NaN makes the max NaN, an inf the max or the min infinite."""
    if not a.size:
        return
    hi, lo = float(a.max()), float(a.min())
    if not (math.isfinite(hi) and math.isfinite(lo)):
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        raise BadModelFile(f"{source}: tensor {name!r} holds {bad:,} values that are not finite numbers (NaN or inf); "
                           "llmviz computes nothing from such weights")
    if max(hi, -lo) > MAX_WEIGHT:
        extreme = f"up to {hi:.3g}" if hi >= -lo else f"down to {lo:.3g}"
        limit = f"{MAX_WEIGHT:.0e}".replace("e+0", "e")  # 1e6
        raise BadModelFile(f"{source}: tensor {name!r} holds values {extreme}; llmviz refuses weights beyond "
                           f"±{limit} (they overflow float32 in the forward pass)")
    if dtype == "float16" and max(hi, -lo) > F16_MAX:
        raise BadModelFile(f"{source}: tensor {name!r} has values beyond float16's range (±65504): load it as "
                           "float32 or bfloat16")


def reader(state, dtype: str, source):
    """get(name, shape): a checkpoint's tensor as float32 (dtype "stored": as the file stores it), refused by name if it
    is missing, misshapen, or holds values llmviz cannot compute with (see check_weight; checked before it is
    narrowed). A large stored tensor is checked when first read instead: it is listed in `state.unchecked` (Checked)."""
    unchecked = getattr(state, "unchecked", None)

    def get(name: str, shape: tuple) -> np.ndarray:
        if name not in state:
            raise BadModelFile(f"{source}: tensor {name!r} is missing")
        a = state[name]
        if tuple(a.shape) != shape:
            raise BadModelFile(f"{source}: tensor {name!r} has shape {list(a.shape)}, expected {list(shape)}")
        a = np.asarray(a)
        if dtype == STORED and a.dtype in KEPT:
            if unchecked is not None and a.size >= CHECK_LATER:
                unchecked[id(owner(a))] = (name, owner(a))
            else:
                check_weight(widen(a), dtype, source, name)
            return a
        a = widen(a) if a.dtype == np.uint16 else a  # (a mapped bfloat16 tensor's bits)
        check_weight(a, dtype, source, name)  # before narrowing: a float64 value beyond float32 is named, never cast to inf
        return np.asarray(a, dtype=np.float32)

    return get


# Per stored dtype: the integers of the same width, the largest magnitude's bits allowed (MAX_WEIGHT, or the largest
# finite number where that is less), for a check that reads the bits: a float's magnitude grows with its bits.
BITS = {np.dtype(np.uint16): (np.int16, np.uint16, 0x4974),  # bfloat16: 999,424; the next is 1,003,520
        np.dtype(np.float16): (np.int16, np.uint16, 0x7BFF),  # 65,504
        np.dtype(np.float32): (np.int32, np.uint32, 0x49742400)}  # 1e6


def check_stored(a: np.ndarray, source, name: str) -> None:
    """check_weight on a stored tensor, from its bits: two integer reductions and no copy. The signed view's maximum
    is the largest positive magnitude; the unsigned view's, with the sign bit set, the largest negative one."""
    signed, unsigned, limit = BITS[a.dtype]
    flat = a.reshape(-1)
    if not flat.size:
        return
    sign = 1 << (8 * flat.itemsize - 1)
    hi, lo = int(flat.view(signed).max()), int(flat.view(unsigned).max())
    if max(hi, lo - sign if lo >= sign else 0) > limit:
        check_weight(widen(a), "float32", source, name)  # (names what is wrong)


class Checked(MutableMapping):
    """A model's weights by name, each large stored tensor (`unchecked`: id of its array -> its name in the file and
    the array) checked the first time a weight made from it is read: a bad one is refused by name then."""

    def __init__(self, weights: dict[str, np.ndarray], unchecked: dict[int, tuple[str, np.ndarray]], source):
        self.weights, self.unchecked, self.source = weights, unchecked, source
        self.lock = threading.Lock()

    def __getitem__(self, name: str) -> np.ndarray:
        w = self.weights[name]
        if self.unchecked and (key := id(owner(w))) in self.unchecked:
            with self.lock:
                if (found := self.unchecked.get(key)) is not None:
                    check_stored(found[1], self.source, found[0])
                    del self.unchecked[key]
        return w

    def __setitem__(self, name: str, w: np.ndarray) -> None:
        self.weights[name] = w

    def __delitem__(self, name: str) -> None:
        del self.weights[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.weights)

    def __len__(self) -> int:
        return len(self.weights)


def kept(a: np.ndarray, dtype: str) -> np.ndarray:
    """A converted weight as the model keeps it: as stored, a view of the mapped file in whatever layout the
    conversion left it (no copy); otherwise contiguous, in the storage dtype."""
    return to_storage(a if dtype == STORED else np.ascontiguousarray(a), dtype)


def to_storage(a: np.ndarray, dtype: str) -> np.ndarray:
    """Keep a weight as float32, float16, or bfloat16 (as its uint16 bits; see weights.widen), or as it is stored."""
    if dtype == STORED:
        return a if a.dtype in KEPT else np.asarray(a, np.float32)
    if dtype == "float32":
        return np.ascontiguousarray(a, dtype=np.float32) if a.dtype != np.float32 else a
    if dtype == "float16":
        return a.astype(np.float16)
    return f32_to_bf16(a)
