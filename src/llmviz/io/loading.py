"""Finding a model by name or path and reading its weights.

`load_model` accepts:
- `nano-gpt` and `shakespeare-char` (bundled weights) and the structure-only preset `gpt3`;
- a Hugging Face model folder (config.json + model.safetensors [+ tokenizer.json]);
- a hub id such as `gpt2` or `distilgpt2`, downloaded into the Hugging Face cache only when named;
- a nanoGPT `ckpt.pt` or a minGPT state dict (`.pt`, `.pth`, `.bin`), when torch is installed;
- a `.gguf` file of llama.cpp (a llama or gpt2, any common quantization), when gguf is installed (io/gguf_file.py);
- a `.safetensors` file written by llmviz: weights under the graph's own names (`embed.W_E`,
  `blocks.0.attn.W_Q`, ...), with the config and tokenizer as JSON in its metadata.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import numpy as np

from ..core.config import PRESETS, ModelConfig
from ..core.errors import BadModelFile, LlmvizError, ModelNotFound
from ..core.graph import Graph
from ..core.model import Model
from ..core.quant import quantized
from .convert import STORAGE_DTYPES, STORED, check_shape, check_weight, to_storage
from .safetensors_file import SafetensorsFile
from .tokenizer import CharTokenizer

FORMAT = "llmviz-weights-1"
NEURONS_FORMAT = "llmviz-neurons-1"  # the neuron contexts beside a weights file (neurons_path)
# Models whose weights ship with the package; the first is what `llmviz serve` shows first.
BUNDLED = {"nano-gpt": "nano-gpt.safetensors", "shakespeare-char": "shakespeare-char.safetensors",
           "bigram-char": "bigram-char.safetensors", "attention-toy": "attention-toy.safetensors",
           "digits-mlp": "digits-mlp.safetensors", "neuron": "neuron.safetensors"}
DEFAULT_MODELS = list(BUNDLED)  # what a server serves when given no model
NOT_ON_HUB = {"gpt3"}  # presets that are structure only: their weights were never released
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def bundled_path(name: str) -> Path:
    return Path(str(resources.files("llmviz") / "weights" / BUNDLED[name]))


def neurons_path(weights) -> Path:
    """Where a weights file's MLP neurons' top contexts are stored (training/top_contexts.py), beside it:
    `shakespeare-char.safetensors` -> `shakespeare-char.neurons.json`."""
    weights = Path(weights)
    return weights.with_name(weights.name.removesuffix(".safetensors") + ".neurons.json")


def bundled_neurons(name: str) -> Path | None:
    """The stored neuron contexts of a bundled model, or None for a model that has none."""
    path = neurons_path(bundled_path(name)) if name in BUNDLED else None
    return path if path is not None and path.is_file() else None


def structure_only(name: str) -> Model:
    """A preset's config and graph without weights: for showing its structure and scale."""
    return Model(PRESETS[name], None, None, source="preset (structure only)")


def load_model(source: str, dtype: str | None = None, n_head: int | None = None, quantize: str | None = None) -> Model:
    """Load a model by preset name, path or hub id (see the module doc).

    dtype: how weights are kept, "float32", "float16" or "bfloat16" (read whole at load), or "stored": as the file
    stores them, memory-mapped, read as ops use them (core/weights.py). The default (None) is "stored" for a Hugging
    Face folder or hub id, and "float32" for every other source, which is read whole. Every op computes in
    float32. n_head: the head count of a minGPT state dict of a non-standard shape. quantize: a format of
    core/quant.py ("f16", "bf16", "int8", "q8_0", "q4_0"): the model with its weights stored in it and read back,
    named "<name>:<format>" (None or "f32": the model as loaded).
    """
    if dtype is not None and dtype not in STORAGE_DTYPES:
        raise LlmvizError(f"unknown dtype {dtype!r}: use one of {', '.join(STORAGE_DTYPES)}")
    source = str(source)
    try:
        model = _load(source, dtype, n_head)
        return quantized(model, quantize) if quantize else model
    except LlmvizError:
        raise
    except MemoryError:
        raise BadModelFile(f"{source}: there is not enough memory to load it") from None
    except Exception as e:  # a file none of the checks foresaw: still one line that names it
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise BadModelFile(f"{source}: cannot be read as a model ({type(e).__name__}{': ' + reason if reason else ''})") from None


def shown_source(source: str) -> str:
    """How a model's source is shown to the page: what the user typed, or the file's name if that was an
    absolute path (the page never learns where files are)."""
    return Path(source).name if Path(source).expanduser().is_absolute() else source


def _load(source: str, dtype: str | None, n_head: int | None) -> Model:
    mapped = dtype or STORED  # a Hugging Face folder's; every other source is read whole, float32 unless told
    dtype = "float32" if dtype in (None, STORED) else dtype
    if source in BUNDLED:
        return load_weights_file(bundled_path(source), dtype, shown="bundled with llmviz")
    path = Path(source).expanduser()
    shown = shown_source(source)
    if path.is_dir():
        from .huggingface import load_folder
        return load_folder(path, mapped, shown=shown)
    if path.is_file():
        if path.suffix == ".safetensors":
            return load_weights_file(path, dtype, shown=shown)
        if path.suffix == ".gguf":
            from .gguf_file import load_gguf
            return load_gguf(path, dtype, shown=shown)
        if path.suffix in CHECKPOINT_SUFFIXES:
            from .checkpoints import load_checkpoint
            return load_checkpoint(path, dtype, n_head, shown=shown)
        raise BadModelFile(f"{path}: not a model file llmviz reads (a folder with config.json, a .safetensors "
                           f"file written by llmviz, a .gguf file, or a PyTorch checkpoint {'/'.join(CHECKPOINT_SUFFIXES)})")
    if source in NOT_ON_HUB:
        return structure_only(source)
    if HUB_ID.match(source):
        from .huggingface import load_hub
        return load_hub(source, mapped)
    raise ModelNotFound(f"unknown model {source!r}: no such file or folder, and not a preset "
                        f"({', '.join(PRESETS)}) or a Hugging Face hub id")


def save_weights(model: Model, path, metadata: dict[str, str] | None = None, storage: str = "float32") -> None:
    """Write the model's weights (a tied weight is not stored twice) with its config and tokenizer, and any other
    `metadata` (strings, such as a "model_card"). storage: "float32", or "float16" for half the bytes."""
    from safetensors.numpy import save_file

    from ..core.weights import widen

    if storage not in ("float32", "float16"):
        raise LlmvizError(f"weights are stored as float32 or float16, not {storage!r}")
    tensors = {
        n: np.ascontiguousarray(widen(model.require_weights()[n]).astype(storage))
        for n in model.graph.names("weight")
        if "tied_to" not in model.graph[n].attrs
    }
    meta = {**(metadata or {}), "format": FORMAT, "config": json.dumps(model.config.to_dict())}
    if isinstance(model.tokenizer, CharTokenizer):
        meta["tokenizer"] = json.dumps(model.tokenizer.to_dict())
    save_file(tensors, str(path), metadata=meta)


def load_weights_file(path, dtype: str = "float32", shown: str | None = None) -> Model:
    path = Path(path)
    f = SafetensorsFile(path)
    if f.metadata.get("format") != FORMAT:
        raise BadModelFile(f"{path}: not an llmviz weights file (no '{FORMAT}' metadata); for a Hugging Face "
                           "model pass its folder, with config.json")
    try:
        config = ModelConfig.from_dict(json.loads(f.metadata["config"]))
        tok = json.loads(f.metadata["tokenizer"]) if "tokenizer" in f.metadata else None
        tokenizer = CharTokenizer(tok["chars"]) if isinstance(tok, dict) and tok.get("type") == "chars" else None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise BadModelFile(f"{path}: corrupt llmviz metadata ({e})") from None
    check_shape(config, len({k.split(".")[1] for k in f.tensors if k.startswith("blocks.")}), dtype, path)
    graph = Graph(config)
    sizes = graph.sizes(0)
    weights = {}
    for name in graph.names("weight"):
        if "tied_to" in graph[name].attrs:  # the model ties it to the weight it names
            continue
        if name not in f.tensors:
            raise BadModelFile(f"{path}: tensor {name!r} is missing")
        want = graph[name].shape(sizes)
        if f.shape(name) != want:
            raise BadModelFile(f"{path}: tensor {name!r} has shape {list(f.shape(name))}, expected {list(want)}")
        a = f.read(name)
        check_weight(a, dtype, path, name)
        weights[name] = to_storage(a, dtype)
    return Model(config, weights, tokenizer, source=shown or path.name)
