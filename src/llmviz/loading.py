"""Finding a model by name or path and reading its weights.

Weights live in the graph's own names (`embed.W_E`, `blocks.0.attn.W_Q`, ...), float32, in a
safetensors file whose metadata holds the config as JSON: the `.safetensors` format llmviz writes.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from .config import PRESETS, ModelConfig
from .errors import BadModelFile, ModelNotFound
from .graph import Graph
from .model import Model
from .tokenizer import CharTokenizer

FORMAT = "llmviz-weights-1"

# Presets whose weights ship with the package.
BUNDLED = {"nano-gpt": "nano-gpt.safetensors"}


def bundled_path(name: str) -> Path:
    return Path(str(resources.files("llmviz") / "weights" / BUNDLED[name]))


def available_models() -> list[str]:
    return list(PRESETS)


def load_model(name_or_path: str) -> Model:
    """A preset name (nano-gpt loads its bundled weights; gpt2 ... gpt3 are structure only)
    or the path of a .safetensors file written by llmviz."""
    if name_or_path in BUNDLED:
        return load_weights_file(bundled_path(name_or_path))
    if name_or_path in PRESETS:
        return Model(PRESETS[name_or_path], None, None, source="preset (structure only)")
    path = Path(name_or_path)
    if path.suffix == ".safetensors" and path.is_file():
        return load_weights_file(path)
    raise ModelNotFound(
        f"unknown model {name_or_path!r}: use one of {', '.join(PRESETS)} or the path of an llmviz .safetensors file"
    )


def save_weights(model: Model, path) -> None:
    """Write the model's weights (a tied W_U is not stored twice) with its config and tokenizer."""
    from safetensors.numpy import save_file

    tensors = {
        n: np.ascontiguousarray(model.weights[n], dtype=np.float32)
        for n in model.graph.names("weight")
        if not (n == "unembed.W_U" and model.config.tied_unembed)
    }
    meta = {"format": FORMAT, "config": json.dumps(model.config.to_dict())}
    if model.tokenizer is not None:
        meta["tokenizer"] = json.dumps(model.tokenizer.to_dict())
    save_file(tensors, str(path), metadata=meta)


def load_weights_file(path) -> Model:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise BadModelFile(f"{path}: not an llmviz weights file (no '{FORMAT}' metadata)")
            config = ModelConfig.from_dict(json.loads(meta["config"]))
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise BadModelFile(f"{path}: cannot read it as safetensors ({e})") from None
    tok = json.loads(meta["tokenizer"]) if "tokenizer" in meta else None
    tokenizer = CharTokenizer(tok["chars"]) if tok and tok.get("type") == "chars" else None
    return Model(config, check_weights(Graph(config), arrays, path), tokenizer, source=str(path))


def check_weights(graph: Graph, arrays: dict[str, np.ndarray], path) -> dict[str, np.ndarray]:
    """Every weight the graph declares, float32 and of the declared shape; else an error naming it."""
    if graph.config.tied_unembed and "unembed.W_U" not in arrays and "embed.W_E" in arrays:
        arrays = {**arrays, "unembed.W_U": arrays["embed.W_E"].T}
    sizes = graph.sizes(0)
    out = {}
    for name in graph.names("weight"):
        if name not in arrays:
            raise BadModelFile(f"{path}: tensor {name!r} is missing")
        a, want = arrays[name], graph[name].shape(sizes)
        if tuple(a.shape) != want:
            raise BadModelFile(f"{path}: tensor {name!r} has shape {list(a.shape)}, expected {list(want)}")
        out[name] = a if a.dtype == np.float32 else a.astype(np.float32)
    return out


def weights_from_gpt2_state(state: dict[str, np.ndarray], config: ModelConfig, layout: str) -> dict[str, np.ndarray]:
    """Convert a GPT-2-style state dict (names `transformer.h.0.attn.c_attn.weight` ..., as in Hugging Face,
    minGPT and nanoGPT) into the graph's per-head weights.

    layout: "conv1d" (Hugging Face, weights stored [in, out]) or "linear" (torch nn.Linear, [out, in]).
    """
    C, H, A = config.n_embd, config.n_head, config.d_head

    def get(name):
        return np.asarray(state[name], dtype=np.float32)

    def matrix(name):  # always returned as [in, out]
        w = get(name)
        return w if layout == "conv1d" else w.T

    w = {"embed.W_E": get("transformer.wte.weight"), "pos_embed.W_pos": get("transformer.wpe.weight")}
    for i in range(config.n_layer):
        h, L = f"transformer.h.{i}.", f"blocks.{i}."
        for ln_src, ln_dst in (("ln_1", "ln1"), ("ln_2", "ln2")):
            w[L + ln_dst + ".w"], w[L + ln_dst + ".b"] = get(h + ln_src + ".weight"), get(h + ln_src + ".bias")
        qkv, qkv_b = matrix(h + "attn.c_attn.weight"), get(h + "attn.c_attn.bias")
        for j, c in enumerate("QKV"):
            # Stored [d_model, head, d_head] contiguous, seen as [head, d_model, d_head]: the matmul reads it in place.
            w[L + f"attn.W_{c}"] = np.ascontiguousarray(qkv[:, j * C:(j + 1) * C]).reshape(C, H, A).transpose(1, 0, 2)
            w[L + f"attn.b_{c}"] = qkv_b[j * C:(j + 1) * C].reshape(H, A)
        w[L + "attn.W_O"] = np.ascontiguousarray(matrix(h + "attn.c_proj.weight")).reshape(H, A, C)
        w[L + "attn.b_O"] = get(h + "attn.c_proj.bias")
        w[L + "mlp.W_in"], w[L + "mlp.b_in"] = matrix(h + "mlp.c_fc.weight"), get(h + "mlp.c_fc.bias")
        w[L + "mlp.W_out"], w[L + "mlp.b_out"] = matrix(h + "mlp.c_proj.weight"), get(h + "mlp.c_proj.bias")
    w["ln_final.w"], w["ln_final.b"] = get("transformer.ln_f.weight"), get("transformer.ln_f.bias")
    w["unembed.W_U"] = w["embed.W_E"].T if config.tied_unembed else get("lm_head.weight").T
    return w
