"""GGUF files written as llama.cpp's converter (convert_hf_to_gguf.py) writes them, from tiny random transformers
models: its tensor names, nn.Linear's [out, in] layout, the Llama query/key row permutation, its metadata keys and
its tokenizer keys. Each weight is stored in a chosen type (quantized by the gguf package's reference functions, or,
for the K-quants, which it cannot quantize, random blocks), and the model's own parameters are replaced by the
stored numbers dequantized: transformers then runs the very weights the file holds."""

from __future__ import annotations

import json
import math
import re

import gguf
import numpy as np
import torch

T = gguf.GGMLQuantizationType
K_QUANTS = {  # type: (offsets of its f16 scales in a block, the scale that keeps weights near ±0.1)
    T.Q2_K: ((80, 82), 2e-3), T.Q3_K: ((108,), 8e-4), T.Q4_K: ((0, 2), 1e-4), T.Q5_K: ((0, 2), 5e-5),
    T.Q6_K: ((208,), 2.5e-5)}


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """The converter's reordering of a query or key weight's rows, head by head: halves (i, i + A/2) -> neighbours."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def random_k_blocks(rows: int, cols: int, qtype, rng) -> np.ndarray:
    """Random bytes in `qtype`'s block layout, with its f16 scales set so the weights stay small."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, (rows * cols // block, size), dtype=np.uint8)
    offsets, scale = K_QUANTS[qtype]
    for off in offsets:
        d = rng.uniform(0.5 * scale, 1.5 * scale, raw.shape[0]).astype(np.float16)
        raw[:, off:off + 2] = d.view(np.uint8).reshape(-1, 2)
    return raw.reshape(rows, cols // block * size)


def stored(a: np.ndarray, qtype, rng) -> tuple[np.ndarray, np.ndarray]:
    """(what the file holds, its numbers dequantized) for a float32 array stored as qtype. Vectors stay F32, as the
    converter keeps them; a matrix whose rows are not whole blocks stays F16."""
    a = np.ascontiguousarray(a, np.float32)
    if a.ndim == 1 or qtype == T.F32:
        return a, a
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if a.shape[-1] % block:
        qtype = T.F16
    if qtype == T.F16:
        h = a.astype(np.float16)
        return h, h.astype(np.float32)
    raw = random_k_blocks(*a.shape, qtype, rng) if qtype in K_QUANTS else gguf.quants.quantize(a, qtype)
    return raw, gguf.quants.dequantize(raw, qtype).reshape(a.shape)


def tokenizer_keys(w, tok, pre: str) -> None:
    """The tokenizer as the converter writes a byte-level BPE: tokens in id order, their types, the merges; or, for
    pre "sentencepiece", as it writes a Llama tokenizer.model: pieces, their scores (a BPE piece's score ranks its
    merge: the later made, the lower) and their types (unknown 2, control 3, byte 6)."""
    vocab = tok.get_vocab(with_added_tokens=True)
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    special = {a.content for a in tok.get_added_tokens_decoder().values() if a.special}
    if pre == "sentencepiece":
        kinds = [2 if t == "<unk>" else 6 if re.fullmatch(r"<0x[0-9A-F]{2}>", t) else 3 if t in special else 1
                 for t in tokens]
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores([-float(i) if k == 1 else 0.0 for i, k in enumerate(kinds)])
        w.add_token_types(kinds)
        w.add_add_space_prefix(True)
        return
    merges = json.loads(tok.to_str())["model"]["merges"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([3 if t in special else 1 for t in tokens])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])


def write(path, arch: str, tensors: dict, meta, tok=None, pre: str = "gpt-2") -> None:
    w = gguf.GGUFWriter(str(path), arch)
    meta(w)
    if tok is not None:
        tokenizer_keys(w, tok, pre)
    for name, (data, qtype) in tensors.items():
        w.add_tensor(name, data, raw_dtype=qtype if data.dtype == np.uint8 else None)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def set_params(net, new: dict) -> None:
    with torch.no_grad():
        params = dict(net.named_parameters())
        for name, a in new.items():
            params[name].copy_(torch.from_numpy(np.ascontiguousarray(a)))


def llama_gguf(path, net, qtype, tok=None, pre: str = "llama-bpe", seed: int = 0) -> None:
    """Write a transformers LlamaForCausalLM as a GGUF file, and set its weights to the file's numbers."""
    rng = np.random.default_rng(seed)
    cfg = net.config
    H, G = cfg.num_attention_heads, cfg.num_key_value_heads
    A = getattr(cfg, "head_dim", None) or cfg.hidden_size // H
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    tensors, back = {}, {}

    def put(gg: str, hf: str, perm: int = 0):
        a = sd[hf]
        data, deq = stored(permute(a, perm) if perm else a, qtype, rng)
        tensors[gg] = (data, qtype if data.dtype == np.uint8 else None)
        back[hf] = unpermute(deq, perm) if perm else deq

    put("token_embd.weight", "model.embed_tokens.weight")
    put("output_norm.weight", "model.norm.weight")
    if not cfg.tie_word_embeddings:
        put("output.weight", "lm_head.weight")
    for i in range(cfg.num_hidden_layers):
        b, h = f"blk.{i}.", f"model.layers.{i}."
        put(b + "attn_norm.weight", h + "input_layernorm.weight")
        put(b + "ffn_norm.weight", h + "post_attention_layernorm.weight")
        put(b + "attn_q.weight", h + "self_attn.q_proj.weight", H)
        put(b + "attn_k.weight", h + "self_attn.k_proj.weight", G)
        put(b + "attn_v.weight", h + "self_attn.v_proj.weight")
        put(b + "attn_output.weight", h + "self_attn.o_proj.weight")
        put(b + "ffn_gate.weight", h + "mlp.gate_proj.weight")
        put(b + "ffn_up.weight", h + "mlp.up_proj.weight")
        put(b + "ffn_down.weight", h + "mlp.down_proj.weight")
    rope = dict(getattr(cfg, "rope_parameters", None) or {})  # transformers 5 keeps rope_theta there too
    theta = rope.get("rope_theta", 10000.0)
    if rope.get("rope_type") == "llama3":  # the converter's rope_freqs: each pair's frequency divisor
        freqs = 1.0 / (theta ** (torch.arange(0, A, 2, dtype=torch.float32) / A))
        lo, hi, old = rope["low_freq_factor"], rope["high_freq_factor"], rope["original_max_position_embeddings"]
        factors = []
        for f in freqs.tolist():
            wavelen = 2 * math.pi / f
            if wavelen < old / hi:
                factors.append(1.0)
            elif wavelen > old / lo:
                factors.append(rope["factor"])
            else:
                s = (old / wavelen - lo) / (hi - lo)
                factors.append(1 / ((1 - s) / rope["factor"] + s))
        tensors["rope_freqs.weight"] = (np.asarray(factors, np.float32), None)

    def meta(w):
        w.add_block_count(cfg.num_hidden_layers)
        w.add_context_length(cfg.max_position_embeddings)
        w.add_embedding_length(cfg.hidden_size)
        w.add_feed_forward_length(cfg.intermediate_size)
        w.add_head_count(H)
        w.add_head_count_kv(G)
        w.add_rope_freq_base(theta)
        w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
        w.add_rope_dimension_count(A)
        w.add_vocab_size(cfg.vocab_size)
        if cfg.hidden_size != A * H:
            w.add_key_length(A)
            w.add_value_length(A)

    write(path, "llama", tensors, meta, tok, pre)
    set_params(net, back)


def gpt2_gguf(path, net, qtype, tok=None, pre: str = "gpt-2", seed: int = 0) -> None:
    """Write a transformers GPT2LMHeadModel as a GGUF file (Conv1D matrices transposed to [out, in], the tied
    unembedding written as a copy of the token embedding), and set its weights to the file's numbers."""
    rng = np.random.default_rng(seed)
    cfg = net.config
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    tensors, back = {}, {}
    conv1d = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")

    def put(gg: str, hf: str):
        a = sd[hf]
        flip = hf.endswith(conv1d)
        data, deq = stored(a.T if flip else a, qtype, rng)
        tensors[gg] = (data, qtype if data.dtype == np.uint8 else None)
        back[hf] = deq.T if flip else deq

    put("token_embd.weight", "transformer.wte.weight")
    if cfg.tie_word_embeddings:  # the converter writes the tied unembedding as a copy
        tensors["output.weight"] = tensors["token_embd.weight"]
    else:
        put("output.weight", "lm_head.weight")
    put("position_embd.weight", "transformer.wpe.weight")
    put("output_norm.weight", "transformer.ln_f.weight")
    put("output_norm.bias", "transformer.ln_f.bias")
    for i in range(cfg.n_layer):
        b, h = f"blk.{i}.", f"transformer.h.{i}."
        for gg, hf in (("attn_norm", "ln_1"), ("ffn_norm", "ln_2"), ("attn_qkv", "attn.c_attn"),
                       ("attn_output", "attn.c_proj"), ("ffn_up", "mlp.c_fc"), ("ffn_down", "mlp.c_proj")):
            put(b + gg + ".weight", h + hf + ".weight")
            put(b + gg + ".bias", h + hf + ".bias")

    def meta(w):
        w.add_block_count(cfg.n_layer)
        w.add_context_length(cfg.n_positions)
        w.add_embedding_length(cfg.n_embd)
        w.add_feed_forward_length(cfg.n_inner or 4 * cfg.n_embd)
        w.add_head_count(cfg.n_head)
        w.add_layer_norm_eps(cfg.layer_norm_epsilon)

    write(path, "gpt2", tensors, meta, tok, pre)
    set_params(net, back)
