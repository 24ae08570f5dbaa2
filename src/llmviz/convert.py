"""GPT-2-style state dicts (Hugging Face, nanoGPT, minGPT) -> the graph's per-head weights.

All three name their tensors alike (`wte.weight`, `h.0.attn.c_attn.weight`, `h.0.mlp.c_proj.bias`,
`ln_f.weight`, `lm_head.weight`, possibly behind `transformer.` or nanoGPT's `_orig_mod.`); they
differ in layout: Hugging Face's Conv1D stores matrices [in, out], torch's nn.Linear [out, in].
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import numpy as np

from .config import ModelConfig
from .errors import BadModelFile
from .safetensors_file import f32_to_bf16

STORAGE_DTYPES = ("float32", "float16", "bfloat16")


def canonical(name: str) -> str:
    """`_orig_mod.transformer.h.0.ln_1.weight` -> `h.0.ln_1.weight`."""
    for prefix in ("_orig_mod.", "module.", "transformer."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


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


def canonical_state(state: Mapping) -> dict:
    return {canonical(k): v for k, v in state.items()}


def weights_from_gpt2_state(state: Mapping[str, np.ndarray], config: ModelConfig, layout: str,
                            source: str = "", dtype: str = "float32") -> dict[str, np.ndarray]:
    """Convert a state dict with canonical names to graph weights, checking each tensor's presence and shape.

    `state` may read lazily (see huggingface.LazyState), one tensor at a time, so that loading never
    holds two copies of the model. layout: "conv1d" (matrices stored [in, out]) or "linear" ([out, in]).
    """
    names = set(state.keys())
    check_shape(config, len({m.group(1) for k in names if (m := re.match(r"h\.(\d+)\.", k))}), dtype, source)
    C, H, A, M, V, N = config.n_embd, config.n_head, config.d_head, config.d_mlp, config.vocab_size, config.n_ctx
    matrices = {"attn.c_attn.weight": (C, 3 * C), "attn.c_proj.weight": (C, C),
                "mlp.c_fc.weight": (C, M), "mlp.c_proj.weight": (M, C)}
    biases = {"ln_1.bias": (C,), "ln_2.bias": (C,), "attn.c_attn.bias": (3 * C,), "attn.c_proj.bias": (C,),
              "mlp.c_fc.bias": (M,), "mlp.c_proj.bias": (C,)}
    expected = {"wte.weight": (V, C), "wpe.weight": (N, C), "ln_f.weight": (C,)}
    if config.bias:
        expected["ln_f.bias"] = (C,)
    if not config.tied_unembed:
        expected["lm_head.weight"] = (V, C)  # an nn.Linear in every layout
    for i in range(config.n_layer):
        expected.update({f"h.{i}.ln_1.weight": (C,), f"h.{i}.ln_2.weight": (C,)})
        expected.update({f"h.{i}.{k}": s if layout == "conv1d" else s[::-1] for k, s in matrices.items()})
        if config.bias:
            expected.update({f"h.{i}.{k}": s for k, s in biases.items()})

    for name in expected:
        if name not in names:
            raise BadModelFile(f"{source}: tensor {name!r} is missing")

    def get(name: str) -> np.ndarray:
        a = state[name]
        if tuple(a.shape) != expected[name]:
            raise BadModelFile(f"{source}: tensor {name!r} has shape {list(a.shape)}, expected {list(expected[name])}")
        a = np.asarray(a, dtype=np.float32)
        check_weight(a, dtype, source, name)
        return a.T if (layout == "linear" and name.split(".", 2)[-1] in matrices) else a

    def keep(a):
        return to_storage(a, dtype)

    w = {"embed.W_E": keep(get("wte.weight")), "pos_embed.W_pos": keep(get("wpe.weight"))}
    for i in range(config.n_layer):
        h, L = f"h.{i}.", f"blocks.{i}."
        for src, dst in (("ln_1", "ln1"), ("ln_2", "ln2")):
            w[L + dst + ".w"] = keep(get(h + src + ".weight"))
            if config.bias:
                w[L + dst + ".b"] = keep(get(h + src + ".bias"))
        qkv = get(h + "attn.c_attn.weight")
        qkv_b = get(h + "attn.c_attn.bias") if config.bias else None
        for j, c in enumerate("QKV"):
            # Stored [d_model, head, d_head] contiguous, seen as [head, d_model, d_head]: matmuls read it in place.
            w[L + f"attn.W_{c}"] = keep(np.ascontiguousarray(qkv[:, j * C:(j + 1) * C])).reshape(C, H, A).transpose(1, 0, 2)
            if qkv_b is not None:
                w[L + f"attn.b_{c}"] = keep(qkv_b[j * C:(j + 1) * C].reshape(H, A))
        del qkv
        w[L + "attn.W_O"] = keep(np.ascontiguousarray(get(h + "attn.c_proj.weight"))).reshape(H, A, C)
        w[L + "mlp.W_in"] = keep(np.ascontiguousarray(get(h + "mlp.c_fc.weight")))
        w[L + "mlp.W_out"] = keep(np.ascontiguousarray(get(h + "mlp.c_proj.weight")))
        if config.bias:
            w[L + "attn.b_O"] = keep(get(h + "attn.c_proj.bias"))
            w[L + "mlp.b_in"] = keep(get(h + "mlp.c_fc.bias"))
            w[L + "mlp.b_out"] = keep(get(h + "mlp.c_proj.bias"))
    w["ln_final.w"] = keep(get("ln_f.weight"))
    if config.bias:
        w["ln_final.b"] = keep(get("ln_f.bias"))
    w["unembed.W_U"] = w["embed.W_E"].T if config.tied_unembed else keep(get("lm_head.weight")).T
    return w
