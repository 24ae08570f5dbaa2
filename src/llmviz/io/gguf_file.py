"""GGUF files, as llama.cpp's converter (convert_hf_to_gguf.py) writes them and llama.cpp and Ollama run them, for the
llama and gpt2 architectures. Read with the `gguf` package (the extra `llmviz[gguf]`).

A file's tensors are renamed to the Hugging Face names and layouts its architecture module already reads
(core/arch: `weights_from_state`), so there is one mapping to the graph, not two:
- llama.cpp stores every matrix as nn.Linear does ([out, in]), and its names are its own (`blk.0.attn_q.weight`);
- the converter reorders the rows of each Llama query and key head so that ggml's rotary turns adjacent channels
  (0, 1), (2, 3), ... where Hugging Face (and llmviz) turn the two halves' channels (i, i + A/2): undone here;
- Llama 3's rope scaling is stored as a tensor of per-pair frequency divisors (`rope_freqs.weight`), read back as
  the four settings llmviz's config computes it from;
- quantized tensors (Q8_0, Q4_0, the K-quants, ...) are dequantized by the gguf package's reference functions, one
  tensor at a time, as the loader asks for each; compute is float32 on those numbers, as llama.cpp's reference path.
The tokenizer comes from the file's metadata (`tokenizer.ggml.*`): the byte-level BPE ("gpt2") of GPT-2 and
Llama 3, or SentencePiece ("llama") of Llama 2 and Mistral.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.arch import architecture
from ..core.config import ConfigError, ModelConfig
from ..core.errors import BadModelFile, LlmvizError
from ..core.model import Model
from ..core.quant import BLOCK, Stored, input_axes
from ..core.weights import widen
from .tokenizer import HFTokenizer, _byte_decoder

ARCHITECTURES = ("llama", "gpt2")
# The tensor types llmviz reads: each dequantized by the gguf package.
TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
# llama.cpp's names of the pre-tokenizers llmviz reproduces: GPT-2's split, and Llama 3's.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_TOKENIZERS = ("gpt-2", "llama-bpe")
NORMAL, UNKNOWN, CONTROL, USER_DEFINED = 1, 2, 3, 4  # llama.cpp's token types (tokenizer.ggml.token_type)


def gguf_package():
    try:
        import gguf
    except ImportError:
        raise LlmvizError("reading .gguf files needs the gguf package: pip install llmviz[gguf]") from None
    return gguf


# ---- The file ----

def open_reader(path: Path):
    """The file's header, metadata and tensor index (its data stays on disk, memory-mapped); a file that is not a
    whole GGUF file is refused in one line."""
    gguf = gguf_package()
    size = path.stat().st_size
    try:
        reader = gguf.GGUFReader(path)
    except ValueError as e:
        unknown = re.search(r"(\d+)\)? is not a valid GGMLQuantizationType", str(e))
        if unknown:
            raise BadModelFile(f"{path}: a tensor has ggml type {unknown.group(1)}, a type the gguf package does not "
                               f"know; llmviz reads {', '.join(TYPES)}") from None
        if "cannot reshape array" in str(e):  # the reader maps a tensor's bytes: fewer are there than it has
            raise BadModelFile(f"{path}: truncated: the file ends ({size:,} bytes) before the tensor data its header "
                               "describes") from None
        if "magic" in str(e):
            raise BadModelFile(f"{path}: not a GGUF file (it does not begin with the bytes 'GGUF')") from None
        raise BadModelFile(f"{path}: not a readable GGUF file: it is truncated or corrupt ({first_line(e)})") from None
    except IndexError:  # a read past the end
        raise BadModelFile(f"{path}: truncated or corrupt: its header describes more than the file's {size:,} bytes "
                           "hold") from None
    except (OverflowError, struct.error, UnicodeDecodeError) as e:
        raise BadModelFile(f"{path}: not a readable GGUF file: it is truncated or corrupt "
                           f"({type(e).__name__}: {first_line(e)})") from None
    for t in reader.tensors:  # the reader maps what is there: a tensor past the end of the file is short
        if t.data_offset + t.n_bytes > size or t.data.nbytes != t.n_bytes:
            raise BadModelFile(f"{path}: truncated: tensor {t.name!r} needs bytes {t.data_offset:,} to "
                               f"{t.data_offset + t.n_bytes:,} but the file has {size:,}")
    return reader


def first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


class Metadata:
    """The file's key-value metadata, each read as the type it must be, refused by name when it is not."""

    def __init__(self, reader, path: Path):
        self.fields, self.path = reader.fields, path

    def raw(self, key: str, default: Any = None) -> Any:
        f = self.fields.get(key)
        return default if f is None else f.contents()

    def need(self, key: str) -> Any:
        if key not in self.fields:
            raise BadModelFile(f"{self.path}: the metadata lacks {key!r}")
        return self.raw(key)

    def value(self, key: str, default: Any = None) -> Any:
        """The key's value, or `default` where the file has none; without a default, the key must be there."""
        return self.need(key) if default is None else self.raw(key, default)

    def whole(self, key: str, default: int | None = None) -> int:
        v = self.value(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise BadModelFile(f"{self.path}: metadata {key!r} must be a whole number (got {v!r:.40})")
        return v

    def number(self, key: str, default: float | None = None) -> float:
        v = self.value(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BadModelFile(f"{self.path}: metadata {key!r} must be a number (got {v!r:.40})")
        return float(str(np.float32(v)))  # the file holds float32: its shortest decimal (1e-05, not 9.99999974e-06)

    def text(self, key: str, default: str | None = None) -> str:
        v = self.value(key, default)
        if not isinstance(v, str):
            raise BadModelFile(f"{self.path}: metadata {key!r} must be a string (got {v!r:.40})")
        return v

    def array(self, key: str) -> list:
        v = self.need(key)
        if not isinstance(v, list):
            raise BadModelFile(f"{self.path}: metadata {key!r} must be an array")
        return v


def shape(t) -> tuple[int, ...]:
    """A tensor's shape as numpy (and nn.Linear) order it: ggml lists the fastest-moving axis first."""
    return tuple(int(d) for d in reversed(t.shape.tolist()))


def dequantized(t) -> np.ndarray:
    """One tensor's numbers as float32, by the gguf package's reference functions."""
    gguf = gguf_package()
    a = gguf.quants.dequantize(t.data, t.tensor_type)
    return np.asarray(a, np.float32).reshape(shape(t))


# ---- The config, from the metadata ----

def llama_config(meta: Metadata, tensors: dict, name: str, shown: str) -> ModelConfig:
    p = "llama."
    path = meta.path
    if meta.raw(p + "expert_count", 0):
        raise BadModelFile(f"{path}: a mixture of experts ({p}expert_count {meta.raw(p + 'expert_count')}) is not "
                           "supported")
    scaling = meta.raw(p + "rope.scaling.type", "none")
    if scaling not in ("none", None):
        raise BadModelFile(f"{path}: rope scaling {scaling!r} ({p}rope.scaling.type) is not supported: llmviz computes "
                           "no approximation of it")
    C, H = meta.whole(p + "embedding_length"), meta.whole(p + "attention.head_count")
    G = meta.whole(p + "attention.head_count_kv", H)
    A = meta.whole(p + "attention.key_length", C // H if H else 0)
    if meta.whole(p + "attention.value_length", A) != A:
        raise BadModelFile(f"{path}: {p}attention.value_length differs from key_length: llmviz's heads have one width")
    rotary = meta.whole(p + "rope.dimension_count", A)
    if rotary != A:
        raise BadModelFile(f"{path}: {p}rope.dimension_count {rotary} turns only part of each head's {A} channels: "
                           "not supported")
    theta = meta.number(p + "rope.freq_base", 10000.0)
    rope: dict[str, Any] = {}
    if "rope_freqs.weight" in tensors:
        rope = llama3_rope(dequantized(tensors["rope_freqs.weight"]), theta, A, path)
    fields = dict(
        arch="llama", n_layer=meta.whole(p + "block_count"), n_head=H, n_embd=C,
        vocab_size=vocab(tensors, path),
        n_ctx=meta.whole(p + "context_length"), layer_norm_eps=meta.number(p + "attention.layer_norm_rms_epsilon"),
        activation="silu", tied_unembed="output.weight" not in tensors, bias=False,
        n_inner=meta.whole(p + "feed_forward_length"), norm="rms", mlp="gated", n_kv_head=G,
        head_dim=A if A * H != C else None, rope_theta=theta, **rope,
        description=f"GGUF llama model {shown}")
    return make_config(name, fields, path, p)


def vocab(tensors: dict, path) -> int:
    """The vocabulary: the token embedding's rows (the metadata's vocab_size is optional, and checked against it)."""
    if "token_embd.weight" not in tensors:
        raise BadModelFile(f"{path}: tensor 'token_embd.weight' is missing")
    return shape(tensors["token_embd.weight"])[0]


def llama3_rope(factors: np.ndarray, theta: float, dims: int, path) -> dict:
    """Llama 3's rope scaling from the converter's `rope_freqs.weight` (each pair's frequency is divided by its
    factor: 1 for fast pairs, `factor` for slow ones, and between them 1 / ((1 − s)/factor + s) with s linear in the
    frequency) as the four settings transformers (and llmviz's config) compute it from."""
    rf = np.asarray(factors, np.float64).ravel()
    if rf.size != dims // 2 or not np.isfinite(rf).all() or (rf <= 0).any():
        raise BadModelFile(f"{path}: rope_freqs.weight must hold {dims // 2} positive numbers, one per channel pair")
    if np.allclose(rf, 1.0, rtol=0, atol=1e-7):
        return {}
    freq = 1.0 / theta ** (np.arange(0, dims, 2, dtype=np.float64) / dims)
    factor = float(np.float32(rf.max()))
    s = (1 / rf - 1 / factor) / (1 - 1 / factor)  # 1 for an unscaled pair, 0 for a pair divided by the factor
    mid = (rf > 1 + 1e-6) & (rf < factor * (1 - 1e-6))
    lines = []  # candidate (a, b) with s = a · freq − b
    if mid.sum() >= 2:
        slope, icept = np.polyfit(freq[mid], s[mid], 1)
        lines.append((slope, -icept))
    points = ([(freq[rf >= factor * (1 - 1e-6)].max(), 0.0)] if (rf >= factor * (1 - 1e-6)).any() else [])
    points += list(zip(freq[mid], s[mid]))
    points += [(freq[rf <= 1 + 1e-6].min(), 1.0)] if (rf <= 1 + 1e-6).any() else []
    for i in range(len(points)):
        for j in range(i + 1, len(points)):
            (f0, s0), (f1, s1) = points[i], points[j]
            if f1 != f0:
                a = (s1 - s0) / (f1 - f0)
                lines.append((a, a * f0 - s0))
    want = freq / rf
    for a, b in lines:
        if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
            continue
        # Only the slope a = original / (2π (high − low)) and b = low / (high − low) show in the factors: the
        # three settings are chosen round where they can be (low_freq_factor 1, as Llama 3's; a power-of-two
        # context with factors in quarters), else the nearest whole context.
        choices = [(round(2 * math.pi * a / b), 1.0)] + [(2 ** k, None) for k in range(5, 21)]
        for orig, low in choices + [(max(1, round(2 * math.pi * a)), None)]:
            d = orig / (2 * math.pi * a)  # high − low
            low = b * d if low is None else low
            high = low + d
            if all(abs(v * 4 - round(v * 4)) < 1e-3 * max(1.0, v) for v in (low, high)):
                low, high = round(low * 4) / 4, round(high * 4) / 4
            got = dict(rope_type="llama3", rope_factor=factor, rope_low_freq_factor=low, rope_high_freq_factor=high,
                       rope_original_max=orig)
            if orig >= 1 and matches(got, theta, dims, want):
                return got
    raise BadModelFile(f"{path}: rope_freqs.weight holds frequency factors that are not Llama 3's rope scaling; "
                       "llmviz computes no other")


def matches(rope: dict, theta: float, dims: int, want: np.ndarray) -> bool:
    from ..core.ops.attention import inv_freq
    try:
        cfg = ModelConfig("rope", n_layer=1, n_head=1, n_embd=dims, vocab_size=1, n_ctx=1, arch="llama",
                          rope_theta=theta, **rope)
    except ValueError:
        return False
    return bool(np.allclose(inv_freq(cfg), want, rtol=1e-5, atol=0))


def gpt2_config(meta: Metadata, tensors: dict, name: str, shown: str) -> ModelConfig:
    p = "gpt2."
    tied = "output.weight" not in tensors or same_bytes(tensors.get("output.weight"), tensors.get("token_embd.weight"))
    H = meta.whole(p + "attention.head_count")
    fields = dict(
        arch="gpt2", n_layer=meta.whole(p + "block_count"), n_head=H,
        n_embd=meta.whole(p + "embedding_length"),
        vocab_size=vocab(tensors, meta.path),
        n_ctx=meta.whole(p + "context_length"), layer_norm_eps=meta.number(p + "attention.layer_norm_epsilon"),
        activation="gelu_new", tied_unembed=tied, n_inner=meta.whole(p + "feed_forward_length"),
        description=f"GGUF gpt2 model {shown}")
    if meta.whole(p + "attention.head_count_kv", H) != H:
        raise BadModelFile(f"{meta.path}: {p}attention.head_count_kv differs from head_count: GPT-2 has one key per head")
    return make_config(name, fields, meta.path, p)


def same_bytes(a, b) -> bool:
    """The converter writes GPT-2's tied unembedding as a copy of the token embedding: the same type and bytes."""
    return (a is not None and b is not None and a.tensor_type == b.tensor_type and shape(a) == shape(b)
            and np.array_equal(a.data, b.data))


def make_config(name: str, fields: dict, path, prefix: str) -> ModelConfig:
    keys = {"n_layer": "block_count", "n_head": "attention.head_count", "n_embd": "embedding_length",
            "n_ctx": "context_length", "n_inner": "feed_forward_length", "n_kv_head": "attention.head_count_kv",
            "head_dim": "attention.key_length", "rope_theta": "rope.freq_base",
            "layer_norm_eps": "attention.layer_norm_epsilon"}
    try:
        return ModelConfig(name, **fields)
    except ConfigError as e:
        shown = prefix + keys[e.field] if e.field in keys else e.field
        raise BadModelFile(f"{path}: metadata {shown} {e.rule}") from None
    except ValueError as e:
        raise BadModelFile(f"{path}: {first_line(e)}") from None


# ---- Tensor names: llama.cpp's -> Hugging Face's, with shapes ----

def llama_names(cfg: ModelConfig) -> dict[str, tuple[str, tuple[int, ...]]]:
    """GGUF name -> (the Hugging Face name llama.weights_from_state reads, its [out, in] shape)."""
    C, H, G, A, M, V = cfg.n_embd, cfg.n_head, cfg.kv_heads, cfg.d_head, cfg.d_mlp, cfg.vocab_size
    names = {"token_embd.weight": ("embed_tokens.weight", (V, C)), "output_norm.weight": ("norm.weight", (C,))}
    if not cfg.tied_unembed:
        names["output.weight"] = ("lm_head.weight", (V, C))
    for i in range(cfg.n_layer):
        b, h = f"blk.{i}.", f"layers.{i}."
        names.update({
            b + "attn_norm.weight": (h + "input_layernorm.weight", (C,)),
            b + "ffn_norm.weight": (h + "post_attention_layernorm.weight", (C,)),
            b + "attn_q.weight": (h + "self_attn.q_proj.weight", (H * A, C)),
            b + "attn_k.weight": (h + "self_attn.k_proj.weight", (G * A, C)),
            b + "attn_v.weight": (h + "self_attn.v_proj.weight", (G * A, C)),
            b + "attn_output.weight": (h + "self_attn.o_proj.weight", (C, H * A)),
            b + "ffn_gate.weight": (h + "mlp.gate_proj.weight", (M, C)),
            b + "ffn_up.weight": (h + "mlp.up_proj.weight", (M, C)),
            b + "ffn_down.weight": (h + "mlp.down_proj.weight", (C, M)),
        })
    return names


def gpt2_names(cfg: ModelConfig) -> dict[str, tuple[str, tuple[int, ...]]]:
    """GGUF name -> (the Hugging Face name gpt2.weights_from_state reads, in its "linear" layout, [out, in])."""
    C, M, V, N = cfg.n_embd, cfg.d_mlp, cfg.vocab_size, cfg.n_ctx
    names = {"token_embd.weight": ("wte.weight", (V, C)), "position_embd.weight": ("wpe.weight", (N, C)),
             "output_norm.weight": ("ln_f.weight", (C,)), "output_norm.bias": ("ln_f.bias", (C,))}
    if not cfg.tied_unembed:
        names["output.weight"] = ("lm_head.weight", (V, C))
    for i in range(cfg.n_layer):
        b, h = f"blk.{i}.", f"h.{i}."
        for src, dst, out, inp in (("attn_qkv", "attn.c_attn", 3 * C, C), ("attn_output", "attn.c_proj", C, C),
                                   ("ffn_up", "mlp.c_fc", M, C), ("ffn_down", "mlp.c_proj", C, M)):
            names[b + src + ".weight"] = (h + dst + ".weight", (out, inp))
            names[b + src + ".bias"] = (h + dst + ".bias", (out,))
        for src, dst in (("attn_norm", "ln_1"), ("ffn_norm", "ln_2")):
            names[b + src + ".weight"] = (h + dst + ".weight", (C,))
            names[b + src + ".bias"] = (h + dst + ".bias", (C,))
    return names


def unpermute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo the converter's reordering of a query or key weight's rows: within each head, llama.cpp stores the
    channel pairs interleaved (0, A/2, 1, A/2 + 1, ...) so that ggml's rotary turns neighbours; Hugging Face keeps
    the two halves apart (0 … A/2 − 1, then A/2 … A − 1), as llmviz's rotary reads them."""
    A = w.shape[0] // n_heads
    return np.ascontiguousarray(w.reshape(n_heads, A // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


# The types whose stored numbers the page shows (core/quant.Stored), by llmviz's name: ggml's simple blocks (bytes per
# block of 32: a float16 d, for Q4_1 a float16 minimum m too, then the codes) and the 16-bit floats. (The K-quants'
# super-blocks are read back as numbers only.)
BLOCK_TYPES = {"Q8_0": ("q8_0", 34), "Q4_0": ("q4_0", 18), "Q4_1": ("q4_1", 20)}
FLOAT_TYPES = {"F16": "f16", "BF16": "bf16"}
STORED_PARAMS = 150_000_000  # up to this many parameters (GPT-2 small), a file's stored blocks are kept for hover
PARTS = ("type", "code", "d", "m", "row", "col")  # what a stored tensor is made of, each laid out as its numbers


def stored_parts(t) -> dict[str, np.ndarray]:
    """A tensor's stored numbers, each as float32 in the tensor's own shape ([out, in]), cell by cell: its `type`
    (an index into TYPES), and for a block type each weight's `code`, its block's `d` (Q4_1: and `m`), and its block's
    `row` and `col` (the block's place in the row). ggml's 4-bit blocks hold weight j in byte j's low nibble and
    weight j + 16 in its high one."""
    kind, out = t.tensor_type.name, shape(t)
    parts = {"type": np.full(out, TYPES.index(kind), np.float32)}
    if kind not in BLOCK_TYPES:
        return parts
    fmt, size = BLOCK_TYPES[kind]
    rows = int(np.prod(out[:-1]))
    raw = np.ascontiguousarray(t.data).reshape(rows, -1, size)
    blocks = raw.shape[1]

    def half(at: int) -> np.ndarray:  # a float16 at this byte of every block, [rows, blocks]
        return np.ascontiguousarray(raw[..., at:at + 2]).view(np.float16)[..., 0].astype(np.float32)

    if fmt == "q8_0":
        codes = raw[..., 2:].view(np.int8)
    else:
        qs = raw[..., (4 if fmt == "q4_1" else 2):]
        codes = np.concatenate([qs & 0x0F, qs >> 4], -1)

    def per_cell(a: np.ndarray) -> np.ndarray:
        return np.repeat(a.astype(np.float32)[..., None], BLOCK, -1).reshape(out)

    parts.update(code=codes.astype(np.float32).reshape(out), d=per_cell(half(0)),
                 row=per_cell(np.broadcast_to(np.arange(rows)[:, None], (rows, blocks))),
                 col=per_cell(np.broadcast_to(np.arange(blocks)[None], (rows, blocks))))
    if fmt == "q4_1":
        parts["m"] = per_cell(half(2))
    return parts


class GGUFState(Mapping):
    """Hugging Face name -> float32 array, each dequantized from the file only when the loader asks for it (and not
    kept: the loader converts it to the graph's layout and storage dtype before asking for the next). With `part`
    (one of PARTS), each tensor's stored part instead (zeros where it has none), laid out as its numbers are, so that
    the loader puts each code and scale where it puts the weight it belongs to."""

    def __init__(self, tensors: dict, names: dict[str, tuple[str, tuple[int, ...]]], permuted: dict[str, int],
                 part: str | None = None):
        self.tensors, self.permuted, self.part = tensors, permuted, part
        self.where = {hf: gg for gg, (hf, _) in names.items() if gg in tensors}

    def __getitem__(self, name: str) -> np.ndarray:
        gg = self.where[name]
        t = self.tensors[gg]
        a = dequantized(t) if self.part is None else stored_parts(t).get(self.part, np.zeros(shape(t), np.float32))
        return unpermute(a, self.permuted[gg]) if gg in self.permuted else a

    def __iter__(self) -> Iterator[str]:
        return iter(self.where)

    def __len__(self) -> int:
        return len(self.where)


# ---- The tokenizer, from the metadata ----

class GGUFTokenizer(HFTokenizer):
    """A tokenizer rebuilt from a GGUF file's metadata, as the `tokenizers` library's (shown as a tokenizer.json's)."""

    def __init__(self, tok, source: str, byte_level: bool):
        self.tok, self.byte_level, self.bytes_of, self.path = tok, byte_level, _byte_decoder(), source


def tokenizer_from(meta: Metadata, vocab_size: int):
    """The tokenizer the file's metadata describes (none: the model takes token ids):
    - "gpt2": byte-level BPE from its tokens and merges, split as GPT-2 or Llama 3 split text (tokenizer.ggml.pre);
    - "llama": SentencePiece's BPE from its pieces and their scores, with byte fallback, as transformers converts a
      Llama tokenizer.model: each piece's merges (every split into two pieces of the vocabulary) ranked by its score.
    Control tokens (<s>, <|begin_of_text|>, ...) are special: written in the text, each is one token."""
    path = meta.path
    kind = meta.raw("tokenizer.ggml.model")
    if kind is None:
        return None
    if kind not in ("gpt2", "llama"):
        raise BadModelFile(f"{path}: tokenizer.ggml.model {kind!r} is not supported: llmviz reads byte-level BPE "
                           "('gpt2': GPT-2, Llama 3) and SentencePiece ('llama': Llama 2, Mistral) tokenizers")
    try:
        from tokenizers import AddedToken
    except ImportError:
        raise LlmvizError("a GGUF file's tokenizer needs the tokenizers package: pip install tokenizers") from None
    tokens = meta.array("tokenizer.ggml.tokens")
    types = meta.raw("tokenizer.ggml.token_type") or [NORMAL] * len(tokens)
    if len(tokens) > vocab_size:
        raise BadModelFile(f"{path}: the tokenizer has {len(tokens)} tokens but the model only {vocab_size}")
    if len(types) != len(tokens) or not all(isinstance(t, str) for t in tokens):
        raise BadModelFile(f"{path}: tokenizer.ggml.tokens and token_type must be lists of the same length")
    tok = bpe(meta, tokens) if kind == "gpt2" else sentencepiece(meta, tokens, types)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, k in zip(tokens, types) if k in (CONTROL, UNKNOWN)])
    tok.add_tokens([AddedToken(t, normalized=False) for t, k in zip(tokens, types) if k == USER_DEFINED])
    return GGUFTokenizer(tok, str(path), byte_level=kind == "gpt2")


def bpe(meta: Metadata, tokens: list):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    path = meta.path
    pre = meta.text("tokenizer.ggml.pre", "gpt-2")
    if pre not in PRE_TOKENIZERS:
        raise BadModelFile(f"{path}: tokenizer.ggml.pre {pre!r} is not supported: llmviz splits text as "
                           f"{' or '.join(PRE_TOKENIZERS)}")
    pairs = []
    for m in meta.array("tokenizer.ggml.merges"):
        parts = m.split(" ") if isinstance(m, str) else []
        if len(parts) != 2:
            raise BadModelFile(f"{path}: tokenizer.ggml.merges holds {m!r:.40}, not two tokens separated by a space")
        pairs.append((parts[0], parts[1]))
    try:
        tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, pairs))
    except Exception as e:  # the library raises plain Exception for a merge of unknown tokens
        raise BadModelFile(f"{path}: tokenizer.ggml.merges do not fit its tokens ({first_line(e)})") from None
    if pre == "llama-bpe":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def sentencepiece(meta: Metadata, tokens: list, types: list):
    from tokenizers import Tokenizer, decoders, models, normalizers

    path = meta.path
    scores = meta.array("tokenizer.ggml.scores")
    if len(scores) != len(tokens) or not all(isinstance(v, (int, float)) for v in scores):
        raise BadModelFile(f"{path}: tokenizer.ggml.scores must hold one number per token")
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for piece, i in vocab.items():
        if types[i] != NORMAL:
            continue
        splits = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        merges += [(a, b, scores[i]) for a, b in sorted(splits, key=lambda ab: (vocab[ab[0]], vocab[ab[1]]))]
    merges.sort(key=lambda m: -m[2])  # stable: pieces of one score keep their order
    unk = next((t for t, k in zip(tokens, types) if k == UNKNOWN), None)
    tok = Tokenizer(models.BPE(vocab, [(a, b) for a, b, _ in merges], unk_token=unk, fuse_unk=True, byte_fallback=True))
    prefix = bool(meta.raw("tokenizer.ggml.add_space_prefix", True))  # "hi" is read as " hi" (▁hi)
    tok.normalizer = normalizers.Sequence(([normalizers.Prepend("\u2581")] if prefix else [])
                                          + [normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
                                    + ([decoders.Strip(" ", 1, 0)] if prefix else []))
    return tok


# ---- Loading ----

def load_gguf(path, dtype: str = "float32", shown: str | None = None) -> Model:
    """A llama or gpt2 model from a GGUF file: its config from the metadata, its weights (dequantized), its
    tokenizer. Everything that does not fit is refused in one line naming the file."""
    gguf_package()
    path = Path(path)
    shown = shown or path.name
    reader = open_reader(path)
    meta = Metadata(reader, path)
    arch = meta.text("general.architecture")
    if arch not in ARCHITECTURES:
        raise BadModelFile(f"{path}: unsupported architecture {arch!r}: llmviz reads GGUF files of "
                           f"{' and '.join(ARCHITECTURES)}")
    shards = meta.raw("split.count", 1)
    if shards != 1:
        raise BadModelFile(f"{path}: one shard of a model split in {shards} files (split.count); llmviz reads a model "
                           "in one file: merge them with llama.cpp's llama-gguf-split --merge")
    tensors = {t.name: t for t in reader.tensors}
    for t in reader.tensors:
        if t.tensor_type.name not in TYPES:
            raise BadModelFile(f"{path}: tensor {t.name!r} is stored as {t.tensor_type.name}, a type llmviz does not "
                               f"read; it reads {', '.join(TYPES)}")
    name = path.name.removesuffix(".gguf")
    config = (llama_config if arch == "llama" else gpt2_config)(meta, tensors, name, shown)
    names = (llama_names if arch == "llama" else gpt2_names)(config)
    extra = sorted(set(tensors) - set(names) - {"rope_freqs.weight"}
                   - ({"output.weight"} if arch == "gpt2" and config.tied_unembed else set()))
    if extra:
        raise BadModelFile(f"{path}: tensor {extra[0]!r} is not one a {arch} model of this config has"
                           f"{f' (and {len(extra) - 1} more)' if len(extra) > 1 else ''}")
    for gg, (_, want) in names.items():
        if gg not in tensors:
            raise BadModelFile(f"{path}: tensor {gg!r} is missing")
        if shape(tensors[gg]) != want:
            raise BadModelFile(f"{path}: tensor {gg!r} has shape {list(shape(tensors[gg]))}, expected {list(want)}")
    if arch == "llama" and (config.d_head % 2):
        raise BadModelFile(f"{path}: heads of {config.d_head} channels: rotary turns pairs, so an even number")
    vocab = meta.raw(f"{arch}.vocab_size")
    if vocab is not None and vocab != config.vocab_size:
        raise BadModelFile(f"{path}: metadata {arch}.vocab_size is {vocab} but token_embd.weight has "
                           f"{config.vocab_size} rows")
    permuted = {}
    if arch == "llama":
        for i in range(config.n_layer):
            permuted[f"blk.{i}.attn_q.weight"], permuted[f"blk.{i}.attn_k.weight"] = config.n_head, config.kv_heads
    tokenizer = tokenizer_from(meta, config.vocab_size)
    def load(part: str | None = None, storage: str = dtype) -> dict[str, np.ndarray]:
        state = GGUFState(tensors, names, permuted, part)
        try:
            if arch == "gpt2":
                from ..core.arch.gpt2 import weights_from_state
                return weights_from_state(state, config, source=str(path), dtype=storage, layout="linear")
            return architecture("llama").weights_from_state(state, config, source=str(path), dtype=storage)
        except BadModelFile as e:  # a check of the loader (NaN, inf, a weight beyond ±1e6): named as the file names it
            message = str(e)
            for gg, (hf, _) in names.items():
                message = message.replace(f"'{hf}'", f"'{gg}'")
            raise BadModelFile(message) from None

    model = Model(config, load(), tokenizer, source=shown)
    if config.n_params <= STORED_PARAMS:
        model.stored = stored_weights(model, {part: load(part, "float32") for part in PARTS})
        kinds = [s.fmt for s in model.stored.values()]
        model.precision = max(set(kinds), key=kinds.count) if kinds else "f32"  # (the file's most common type)
    return model


def stored_weights(model: Model, parts: dict[str, dict[str, np.ndarray]]) -> dict[str, Stored]:
    """Each quantized weight of a model read from a file (core/quant.input_axes) as the file stores it: a block type's
    codes, scales (and Q4_1's minimums) and blocks, in the weight's axes; a 16-bit float's format. A weight made of
    tensors of different types, or of F32 or a K-quant, has none."""
    out = {}
    for name in input_axes(model.graph):
        kinds = np.unique(parts["type"][name])
        if len(kinds) != 1:
            continue
        kind = TYPES[int(kinds[0])]
        values = widen(model.require_weights()[name])
        if kind in FLOAT_TYPES:
            out[name] = Stored(FLOAT_TYPES[kind], None, values, None, None, None)
        elif kind in BLOCK_TYPES:
            fmt = BLOCK_TYPES[kind][0]
            row, col = parts["row"][name].astype(np.int64), parts["col"][name].astype(np.int64)
            block = (row * (int(col.max()) + 1) + col).astype(np.int32)
            codes = parts["code"][name].astype(np.int8 if fmt == "q8_0" else np.uint8)
            out[name] = Stored(fmt, None, values, codes, parts["d"][name], block,
                               parts["m"][name] if fmt == "q4_1" else None)
    return out
