"""Checking and storing converted weights, for every architecture (see llmviz.arch): that a config's
weights fit in memory and match the file, that no weight is NaN or inf, and the storage dtypes."""

from __future__ import annotations

import os

import numpy as np

from .config import ModelConfig
from .errors import BadModelFile
from .safetensors_file import f32_to_bf16

STORAGE_DTYPES = ("float32", "float16", "bfloat16")


BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
F16_MAX = 65504.0


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
    """Refuse a weight with NaN or inf, or one that float16 storage would overflow."""
    bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    if bad:
        raise BadModelFile(f"{source}: tensor {name!r} holds {bad:,} values that are not finite numbers (NaN or inf); "
                           "llmviz computes nothing from such weights")
    if dtype == "float16" and a.size and float(np.abs(a).max()) > F16_MAX:
        raise BadModelFile(f"{source}: tensor {name!r} has values beyond float16's range (±65504): load it as "
                           "float32 or bfloat16")


def to_storage(a: np.ndarray, dtype: str) -> np.ndarray:
    """Keep a weight as float32, float16, or bfloat16 (as its uint16 bits; see model.widen)."""
    if dtype == "float32":
        return np.ascontiguousarray(a, dtype=np.float32) if a.dtype != np.float32 else a
    if dtype == "float16":
        return a.astype(np.float16)
    return f32_to_bf16(a)
