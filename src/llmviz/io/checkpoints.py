"""PyTorch checkpoints of nanoGPT (`ckpt.pt`) and minGPT (a saved state dict).

Read with `torch.load(weights_only=True)`, which only rebuilds tensors and plain containers and never
runs code from the file, and only after the zip's directory says that it inflates to no more than a
checkpoint could need (see check_archive). A char-level nanoGPT's `meta.pkl` (its vocabulary) is read
with an unpickler that accepts plain dicts, lists, strings and numbers, nothing else.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..core.arch.gpt2 import canonical, weights_from_state
from ..core.config import ModelConfig, explain
from ..core.errors import BadModelFile, LlmvizError
from ..core.model import Model
from .convert import memory_bytes
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
        raise LlmvizError(f"{path} is a PyTorch checkpoint: reading it needs torch (pip install 'llmviz[torch]')") from None
    check_archive(path)
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


# Bounds on a torch.save file, checked from the zip's directory before torch reads it (torch inflates every member it
# reads whole, into a buffer of the size the directory gives). torch.save stores its members uncompressed (ZIP_STORED),
# one per tensor storage, plus data.pkl, the pickle of the structure: names, shapes, dtypes and storage keys, never
# the numbers. So:
# - a member may be compressed (a file zipped again) but not beyond MAX_RATIO : 1 once it inflates past SMALL_MEMBER;
#   real weights deflate to about 0.9 of their size, and a zip bomb's zeros to 1/1032. SMALL_MEMBER leaves room for a
#   re-zipped causal mask or a zero bias (minGPT's attn.bias at a 2,048-token context is exactly 16 MiB);
# - the whole archive may not inflate to more than MAX_RATIO times the file's own size (past SMALL_MEMBER), which
#   also covers many small members and directory entries that share one compressed stream;
# - a pickle holds no numbers: GPT-2 XL's data.pkl with its AdamW state (1,743 tensors) is 214 KB; MAX_PICKLE is 300
#   times that;
# - the zip's directory, which Python's zipfile holds as objects of about 8 times its size, is at most MAX_DIRECTORY:
#   torch.save writes one entry per storage, about 60 bytes each (GPT-2 XL with its AdamW state: 2,330 entries,
#   134 KB), so 16 MiB is 125 times that;
# - and nothing may inflate to more than this machine's memory.
MAX_RATIO = 100
SMALL_MEMBER = 16 << 20
MAX_PICKLE = 64 << 20
MAX_DIRECTORY = 16 << 20


def _zipped(path: Path) -> bool:
    """torch's own test of a zip checkpoint (torch.serialization._is_zipfile): the file starts with a local header."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def check_archive(path: Path) -> None:
    """Refuse a checkpoint that would inflate far beyond its size, from the zip's directory alone: nothing is inflated
    or unpickled here. A file that is not a zip (torch's legacy format, or a bare pickle) is read as it is, so its
    size is what it holds: it must fit in memory."""
    size = path.stat().st_size
    if not _zipped(path):
        if size > memory_bytes():
            raise BadModelFile(f"{path}: {size:,} bytes, more than this machine's memory ({memory_bytes():,} bytes)")
        return
    try:
        with open(path, "rb") as f:  # the end-of-directory record alone (zipfile's own helper), before the directory
            end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
        directory = end[zipfile._ECD_SIZE] if end else 0  # type: ignore[attr-defined]
        if directory <= MAX_DIRECTORY:
            with zipfile.ZipFile(path) as z:
                entries = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as e:
        raise BadModelFile(f"{path}: cannot read it as a PyTorch checkpoint (its zip directory is corrupt: "
                           f"{' '.join(str(e).split())[:100]})") from None
    if directory > MAX_DIRECTORY:
        raise BadModelFile(f"{path}: its zip directory is {directory:,} bytes: refused before reading; torch.save "
                           f"writes about 60 bytes per tensor there, and llmviz allows at most {MAX_DIRECTORY:,}")
    total = 0
    for m in entries:
        if m.header_offset + m.compress_size > size:
            raise BadModelFile(f"{path}: member {m.filename[:100]!r}: the zip directory says it ends past byte "
                               f"{m.header_offset + m.compress_size:,} but the file has {size:,} bytes: refused before "
                               "reading")
        if m.compress_type == zipfile.ZIP_STORED and m.file_size != m.compress_size:
            raise BadModelFile(f"{path}: member {m.filename[:100]!r} is stored uncompressed, yet the zip directory gives "
                               f"it two sizes ({m.file_size:,} and {m.compress_size:,} bytes): refused before reading")
        if m.file_size > SMALL_MEMBER and m.file_size > MAX_RATIO * m.compress_size:
            raise BadModelFile(f"{path}: member {m.filename[:100]!r} would inflate to {m.file_size:,} bytes from "
                               f"{m.compress_size:,} (a ratio of {m.file_size / max(m.compress_size, 1):,.0f}): refused "
                               f"before reading; torch.save stores members uncompressed, and llmviz allows at most "
                               f"{MAX_RATIO}:1")
        if m.filename.endswith(".pkl") and m.file_size > MAX_PICKLE:
            raise BadModelFile(f"{path}: member {m.filename[:100]!r} would inflate to {m.file_size:,} bytes: refused "
                               f"before reading; a checkpoint's pickle holds its structure, not its numbers, and "
                               f"llmviz allows at most {MAX_PICKLE:,} bytes")
        total += m.file_size
    if total > SMALL_MEMBER and total > MAX_RATIO * size:
        raise BadModelFile(f"{path}: its {len(entries):,} members would inflate to {total:,} bytes from a file of "
                           f"{size:,} (a ratio of {total / max(size, 1):,.0f}): refused before reading; llmviz allows "
                           f"at most {MAX_RATIO}:1")
    if total > memory_bytes():
        raise BadModelFile(f"{path}: its members would inflate to {total:,} bytes, more than this machine's memory "
                           f"({memory_bytes():,} bytes): refused before reading")


SAFE_MODULES = ("torch", "collections", "_codecs", "numpy")


def _forbidden_global(path: Path) -> str | None:
    """The first object a pickle (or torch.save's zip of one) would import from outside torch, if any: read from
    its opcodes, never by unpickling, from at most MAX_PICKLE bytes. A bounded read: a zip whose directory understates
    a member's size is not inflated past that size (check_archive has bounded the sizes the directory states)."""
    import pickletools

    try:
        if _zipped(path):
            with zipfile.ZipFile(path) as z:
                member = next((i for i in z.infolist() if i.filename.endswith("data.pkl")), None)
                if member is None:
                    return None
                with z.open(member) as f:  # each step of a bounded read inflates at most what it asks for
                    data = f.read(min(member.file_size, MAX_PICKLE))
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_PICKLE)
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(str(arg))
            name = str(arg).replace(" ", ".") if op.name in ("GLOBAL", "INST") else (
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
