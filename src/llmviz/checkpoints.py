"""PyTorch checkpoints of nanoGPT (`ckpt.pt`) and minGPT (a saved state dict).

Read with `torch.load(weights_only=True)`, which only rebuilds tensors and plain containers and never
runs code from the file. A char-level nanoGPT's `meta.pkl` (its vocabulary) is read with an unpickler
that accepts plain dicts, lists, strings and numbers, nothing else.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import numpy as np

from .config import ModelConfig, explain
from .arch.gpt2 import canonical, weights_from_state
from .errors import BadModelFile, LlmvizError
from .model import Model
from .tokenizer import CharTokenizer, HFTokenizer

# minGPT's model types: (n_layer, n_embd) -> n_head; a bare state dict does not record the head count.
MINGPT_HEADS = {(12, 768): 12, (24, 1024): 16, (36, 1280): 20, (48, 1600): 25, (8, 512): 16,
                (6, 192): 6, (4, 128): 4, (3, 48): 3}


def load_checkpoint(path, dtype: str = "float32", n_head: int | None = None, shown: str | None = None) -> Model:
    """shown: how the model's source is shown (what the user typed; never an absolute path)."""
    path = Path(path)
    shown = shown or path.name
    try:
        import torch
    except ImportError:
        raise LlmvizError(f"{path} is a PyTorch checkpoint: reading it needs torch (pip install 'llmviz[train]')") from None
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr: the error below says it
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError ... with long multi-line texts
        found = re.search(r"GLOBAL (\S+) (?:was not an allowed global|whose module)", str(e))
        culprit = found.group(1) if found else _forbidden_global(path)
        if culprit:
            raise BadModelFile(f"{path}: holds a forbidden Python object ({culprit}), not only tensors and plain "
                               "containers, and llmviz never unpickles arbitrary objects") from None
        raise BadModelFile(f"{path}: cannot read it as a PyTorch checkpoint (truncated, or not a torch.save file)") from None
    if not isinstance(obj, dict):
        raise BadModelFile(f"{path}: expected a nanoGPT checkpoint or a minGPT state dict, found a {type(obj).__name__}")
    name = path.parent.name if path.stem in ("ckpt", "model", "checkpoint") and path.parent.name else path.stem
    if "model" in obj and "model_args" in obj:
        state, config = _nanogpt(obj, name, path, shown)
    elif obj and all(hasattr(v, "shape") for v in obj.values()):
        state, config = _mingpt(obj, name, path, n_head, shown)
    else:
        raise BadModelFile(f"{path}: expected a nanoGPT checkpoint (with 'model' and 'model_args') or a minGPT "
                           "state dict (tensor names like transformer.h.0.attn.c_attn.weight)")
    weights = weights_from_state(state, config, layout="linear", source=str(path), dtype=dtype)
    return Model(config, weights, _tokenizer_beside(path, config), source=shown)


# Causal-mask buffers (minGPT's and older nanoGPT's attn.bias, transformers' attn.bias and attn.masked_bias): not
# weights, never read (the graph makes its own mask), and some are bool.
MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")


def _numpy(state: dict, path) -> dict:
    """A state dict's tensors as numpy arrays under canonical names. A weight must be floating point: a tensor of an
    integer, bool or complex dtype is refused by name (with its name in the file), before anything is converted."""
    import torch

    out = {}
    for key, v in state.items():
        name = canonical(key) if isinstance(key, str) else key
        if isinstance(name, str) and name.endswith(MASK_BUFFERS):
            continue
        if isinstance(v, torch.Tensor):
            if not v.is_floating_point():
                raise BadModelFile(f"{path}: tensor {key!r} is {v.dtype}; weights must be floating point "
                                   "(float32, float16, bfloat16 or float64)")
            v = v.detach()  # float64 stays float64 until convert.check_weight has seen it (never cast to inf)
            v = v.numpy() if v.dtype in (torch.float32, torch.float64) else v.float().numpy()
        out[name] = np.asarray(v)
    return out


def _nanogpt(obj: dict, name: str, path, shown: str):
    a = obj["model_args"]
    if not isinstance(a, dict) or not isinstance(obj["model"], dict):
        raise BadModelFile(f"{path}: model_args and model must be dicts (a nanoGPT checkpoint)")
    try:
        config = ModelConfig(name, n_layer=a["n_layer"], n_head=a["n_head"], n_embd=a["n_embd"],
                             vocab_size=a["vocab_size"], n_ctx=a["block_size"], bias=a.get("bias", True),
                             activation="gelu",  # nanoGPT's MLP uses nn.GELU(), the exact (erf) form
                             tied_unembed=True, description=f"nanoGPT checkpoint {shown}")
    except (KeyError, ValueError) as e:
        raise BadModelFile(f"{path}: model_args is incomplete or inconsistent ({explain(e, {'n_ctx': 'block_size'})})") from None
    return _numpy(obj["model"], path), config


def _mingpt(obj: dict, name: str, path, n_head: int | None, shown: str):
    state = _numpy(obj, path)
    if "wte.weight" not in state or "wpe.weight" not in state:
        raise BadModelFile(f"{path}: no transformer.wte.weight / transformer.wpe.weight: not a GPT state dict")
    layers = {int(m.group(1)) for k in state if (m := re.match(r"h\.(\d+)\.", k))}
    n_layer = max(layers) + 1 if layers else 0
    if state["wte.weight"].ndim != 2 or state["wpe.weight"].ndim != 2:
        raise BadModelFile(f"{path}: wte.weight and wpe.weight must be matrices, found shapes "
                           f"{list(state['wte.weight'].shape)} and {list(state['wpe.weight'].shape)}")
    vocab, n_embd = state["wte.weight"].shape
    n_head = n_head or MINGPT_HEADS.get((n_layer, n_embd))
    if n_head is None:
        raise LlmvizError(f"{path}: a minGPT state dict does not record its number of heads "
                          f"({n_layer} layers, n_embd {n_embd}): pass n_head (CLI: --n-head)")
    tied = "lm_head.weight" not in state or np.array_equal(state["lm_head.weight"], state["wte.weight"])
    try:
        config = ModelConfig(name, n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab,
                             n_ctx=state["wpe.weight"].shape[0], bias="h.0.attn.c_attn.bias" in state,
                             tied_unembed=tied, description=f"minGPT state dict {shown}")
    except ValueError as e:
        raise BadModelFile(f"{path}: {e}") from None
    return state, config


SAFE_MODULES = ("torch", "collections", "_codecs", "numpy")


def _forbidden_global(path: Path) -> str | None:
    """The first object a pickle (or torch.save's zip of one) would import from outside torch, if any: read from
    its opcodes, never by unpickling."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                data = next((z.read(n) for n in z.namelist() if n.endswith("data.pkl")), b"")
        else:
            data = path.read_bytes()
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(arg)
            name = arg.replace(" ", ".") if op.name in ("GLOBAL", "INST") else (
                ".".join(strings[-2:]) if op.name == "STACK_GLOBAL" and len(strings) >= 2 else None)
            if name and not name.startswith(SAFE_MODULES):
                return name
    except Exception:  # not a pickle we can walk: no name to give
        return None
    return None


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _tokenizer_beside(path: Path, config: ModelConfig):
    if (path.parent / "tokenizer.json").is_file():
        return HFTokenizer(path.parent / "tokenizer.json")
    meta = path.parent / "meta.pkl"  # nanoGPT's char-level datasets
    if meta.is_file():
        try:
            with open(meta, "rb") as f:
                itos = _PlainUnpickler(f).load()["itos"]
            return CharTokenizer([itos[i] for i in range(len(itos))])
        except (pickle.UnpicklingError, KeyError, TypeError, EOFError, IndexError, LlmvizError) as e:
            raise BadModelFile(f"{meta}: not a plain nanoGPT vocabulary ({e})") from None
    return None
