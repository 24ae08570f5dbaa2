"""Hugging Face models: a local folder (config.json + model.safetensors [+ tokenizer.json]),
or a hub id downloaded into the usual Hugging Face cache when the user names it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..core.arch import architecture, for_model_type
from ..core.config import ModelConfig
from ..core.errors import BadModelFile, LlmvizError, ModelNotFound
from ..core.model import Model
from .convert import STORED, Checked
from .safetensors_file import SafetensorsFile
from .tokenizer import HFTokenizer

HUB_FILES = ["config.json", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors", "tokenizer.json"]


def config_from_hf(cfg: dict, name: str, source, shown: str = "") -> ModelConfig:
    """The config of a Hugging Face config.json, read by its architecture's module."""
    if not isinstance(cfg, dict):
        raise BadModelFile(f"{source}: config.json must be a JSON object, not a {type(cfg).__name__}")
    model_type = cfg.get("model_type")
    arch = for_model_type(model_type if isinstance(model_type, str) else str(model_type or cfg.get("architectures")), source)
    return arch.config_from_hf(cfg, name, source, shown)


class LazyState(Mapping):
    """Canonical tensor name -> array from one or more safetensors files, each read only when asked for: mapped in
    place in the file's dtype (SafetensorsFile.view: no number read until used), or read whole as float32 for a
    model converted at load. `unchecked` collects the large mapped tensors to check on first use (convert.reader,
    convert.Checked)."""

    def __init__(self, files: list[SafetensorsFile], canonical, mapped: bool = True):
        self.where = {canonical(k): (f, k) for f in files for k in f.keys()}  # noqa: SIM118 (a file, not a dict)
        self.mapped = mapped  # False: each tensor read into memory as float32 (to be converted: SafetensorsFile.read)
        self.unchecked: dict[int, tuple[str, np.ndarray]] = {}

    def __getitem__(self, name):
        f, key = self.where[name]
        return f.view(key) if self.mapped else f.read(key)

    def __iter__(self):
        return iter(self.where)

    def __len__(self):
        return len(self.where)


def read_config(folder: Path, name: str, shown: str) -> ModelConfig:
    """The config of a Hugging Face model folder's config.json (see config_from_hf)."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise BadModelFile(f"{folder}: no config.json: a Hugging Face model folder holds config.json, "
                           "model.safetensors and, optionally, tokenizer.json")
    try:
        raw = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise BadModelFile(f"{config_path}: not valid JSON ({type(e).__name__}: {e})") from None
    return config_from_hf(raw, name, folder, shown)


def load_folder(folder, dtype: str = STORED, name: str | None = None, shown: str | None = None) -> Model:
    """name: the model's name (default: the folder's); shown: how its source is shown (what the user typed,
    never an absolute path). dtype: "stored" (the default) maps the weights in place, as the files store them, and
    reads only their headers now; "float32", "float16" or "bfloat16" reads and converts every weight now."""
    folder = Path(folder)
    shown = shown or name or folder.name
    config = read_config(folder, name or folder.name, shown)
    index = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").is_file():
        files = [SafetensorsFile(folder / "model.safetensors")]
    elif index.is_file():
        files = [SafetensorsFile(p) for p in shard_paths(index)]
    elif (folder / "pytorch_model.bin").is_file():
        raise BadModelFile(f"{folder}: only pytorch_model.bin is there; llmviz reads model.safetensors "
                           "(transformers' save_pretrained writes it)")
    else:
        raise BadModelFile(f"{folder}: no model.safetensors")
    arch = architecture(config.arch)
    state = LazyState(files, arch.canonical, mapped=dtype == STORED)
    converted = arch.weights_from_state(state, config, source=str(files[0].path), dtype=dtype)
    weights = Checked(converted, state.unchecked, files[0].path)
    tok_path = folder / "tokenizer.json"
    tokenizer = HFTokenizer(tok_path) if tok_path.is_file() else None
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise BadModelFile(f"{tok_path}: the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                           f"{config.vocab_size}")
    model = Model(config, weights, tokenizer, source=shown)
    kinds = {w.dtype for w in converted.values() if w.ndim > 1}  # (its matrices)
    if dtype == STORED and len(kinds) == 1:  # mapped as the file has them: a bfloat16 or float16 checkpoint's format
        model.precision = {np.dtype(np.uint16): "bf16", np.dtype(np.float16): "f16"}.get(kinds.pop(), "f32")
    return model


def shard_paths(index: Path) -> list[Path]:
    """The shards a `model.safetensors.index.json` names, each checked to be a file inside its folder."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise BadModelFile(f"{index}: not valid JSON ({type(e).__name__})") from None
    except (KeyError, TypeError, AttributeError):
        raise BadModelFile(f"{index}: no weight_map object (tensor name -> shard file)") from None
    if not shards or not all(isinstance(s, str) and s for s in shards):
        raise BadModelFile(f"{index}: the weight_map must name shard files")
    folder = index.parent.resolve()
    paths = []
    for shard in shards:
        path = (folder / shard).resolve()
        if Path(shard).is_absolute() or not path.is_relative_to(folder):
            raise BadModelFile(f"{index}: shard {shard!r} is outside the model folder; llmviz reads only files in it")
        if not path.is_file():
            raise BadModelFile(f"{index}: shard {shard!r} is missing")
        paths.append(path)
    return paths


def load_hub(repo_id: str, dtype: str = STORED) -> Model:
    """Download (or find in the Hugging Face cache) a hub model the user named, then load it."""
    help_offline = (f"to use it offline, put config.json, model.safetensors and tokenizer.json from "
                    f"https://huggingface.co/{repo_id} in a folder and pass that folder (llmviz serve --model ./folder)")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise LlmvizError(f"loading {repo_id!r} from the hub needs huggingface_hub (pip install huggingface_hub); "
                          + help_offline) from None
    try:  # the cache first: no network needed for a model downloaded before
        path = snapshot_download(repo_id, allow_patterns=HUB_FILES, local_files_only=True)
    except Exception:
        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
            raise ModelNotFound(f"unknown model {repo_id!r}: not a preset, a file or a folder, and it is not in the "
                                f"Hugging Face cache (HF_HUB_OFFLINE is set); {help_offline}") from None
        try:
            print(f"downloading {repo_id} from the Hugging Face hub ...", flush=True)
            path = snapshot_download(repo_id, allow_patterns=HUB_FILES)
        except Exception as e:
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ModelNotFound(f"unknown model {repo_id!r}: not a preset, a file or a folder, and the Hugging Face "
                                f"hub could not provide it ({reason}); {help_offline}") from None
    return load_folder(path, dtype, name=repo_id)
