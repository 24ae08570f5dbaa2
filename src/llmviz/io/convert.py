"""Checking and storing converted weights, for every architecture (see llmviz.core.arch): that a config's
weights fit in memory and match the file, that no weight is NaN, inf or beyond ±1e6, and the storage dtypes."""

from __future__ import annotations

import math
import os

import numpy as np

from ..core.config import ModelConfig
from ..core.errors import BadModelFile
from .safetensors_file import f32_to_bf16

STORAGE_DTYPES = ("float32", "float16", "bfloat16")


BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
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
    """get(name, shape): a checkpoint's tensor as float32, refused by name if it is missing, misshapen, or holds values
    llmviz cannot compute with (see check_weight; checked before it is narrowed)."""

    def get(name: str, shape: tuple) -> np.ndarray:
        if name not in state:
            raise BadModelFile(f"{source}: tensor {name!r} is missing")
        a = state[name]
        if tuple(a.shape) != shape:
            raise BadModelFile(f"{source}: tensor {name!r} has shape {list(a.shape)}, expected {list(shape)}")
        a = np.asarray(a)
        check_weight(a, dtype, source, name)  # before narrowing: a float64 value beyond float32 is named, never cast to inf
        return np.asarray(a, dtype=np.float32)

    return get


def to_storage(a: np.ndarray, dtype: str) -> np.ndarray:
    """Keep a weight as float32, float16, or bfloat16 (as its uint16 bits; see model.widen)."""
    if dtype == "float32":
        return np.ascontiguousarray(a, dtype=np.float32) if a.dtype != np.float32 else a
    if dtype == "float16":
        return a.astype(np.float16)
    return f32_to_bf16(a)
