"""Bad model files, built here: each is refused with one line that names the file and the problem."""

import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

import llmviz
from llmviz.core.errors import LlmvizError
from llmviz.io.loading import save_weights

C, H, V, N, L = 8, 2, 10, 16, 2


def gpt2_state(n_layer=L):
    """A random GPT-2 state dict in Hugging Face's layout (Conv1D matrices [in, out])."""
    rng = np.random.default_rng(0)
    r = lambda *s: rng.normal(0, 0.1, s).astype(np.float32)
    state = {"wte.weight": r(V, C), "wpe.weight": r(N, C), "ln_f.weight": r(C), "ln_f.bias": r(C)}
    for i in range(n_layer):
        h = f"h.{i}."
        state.update({h + "ln_1.weight": r(C), h + "ln_1.bias": r(C), h + "ln_2.weight": r(C), h + "ln_2.bias": r(C),
                      h + "attn.c_attn.weight": r(C, 3 * C), h + "attn.c_attn.bias": r(3 * C),
                      h + "attn.c_proj.weight": r(C, C), h + "attn.c_proj.bias": r(C),
                      h + "mlp.c_fc.weight": r(C, 4 * C), h + "mlp.c_fc.bias": r(4 * C),
                      h + "mlp.c_proj.weight": r(4 * C, C), h + "mlp.c_proj.bias": r(C)})
    return state


CONFIG = {"model_type": "gpt2", "n_layer": L, "n_head": H, "n_embd": C, "vocab_size": V, "n_positions": N}


def folder(tmp_path, config=None, state=None, name="m"):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(CONFIG if config is None else config))
    save_file(gpt2_state() if state is None else state, str(d / "model.safetensors"))
    return d


def raw_safetensors(path, header, data=b""):
    head = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes(len(head).to_bytes(8, "little") + head + data)
    return path


def with_config(**change):
    return lambda tmp: folder(tmp, {**CONFIG, **change})


def with_header(header, data=b"\0" * 64):
    def make(tmp):
        d = folder(tmp)
        raw_safetensors(d / "model.safetensors", header, data)
        return d
    return make


def with_index(index, shards=()):
    def make(tmp):
        d = folder(tmp)
        (d / "model.safetensors").rename(d / "model-00001-of-00001.safetensors")
        (d / "model.safetensors.index.json").write_text(index if isinstance(index, str) else json.dumps(index))
        return d
    return make


def llmviz_file(config=None, tokenizer=None, break_weight=None):
    def make(tmp):
        m = llmviz.load_model("nano-gpt")
        path = tmp / "m.safetensors"
        save_weights(m, path)
        from safetensors import safe_open
        from safetensors.numpy import load_file
        with safe_open(str(path), "np") as f:
            meta = dict(f.metadata())
        tensors = load_file(str(path))
        if config is not None:
            meta["config"] = config
        if tokenizer is not None:
            meta["tokenizer"] = tokenizer
        if break_weight is not None:
            tensors[break_weight] = tensors[break_weight].copy()
            tensors[break_weight][0] = np.inf
        save_file(tensors, str(path), metadata=meta)
        return path
    return make


def with_weights(change):
    def make(tmp):
        state = gpt2_state()
        change(state)
        return folder(tmp, state=state)
    return make


def nan_weight(state):
    state["h.1.attn.c_attn.weight"][3, 4] = np.nan


def deep_json(depth):
    return b"[" * depth + b"]" * depth


CASES = {
    # config.json values
    "n_head 0": (with_config(n_head=0), "n_head must be a whole number >= 1 (got 0)"),
    "n_head negative": (with_config(n_head=-2), "n_head must be a whole number >= 1 (got -2)"),
    "n_layer null": (with_config(n_layer=None), "n_layer must be a whole number >= 1 (got None)"),
    "n_layer float": (with_config(n_layer=2.5), "n_layer must be a whole number >= 1 (got 2.5)"),
    "n_embd string": (with_config(n_embd="8"), "n_embd must be a whole number >= 1 (got '8')"),
    "epsilon 0": (with_config(layer_norm_epsilon=0), "layer_norm_epsilon must be a number > 0 (got 0)"),
    "epsilon negative": (with_config(layer_norm_epsilon=-1e-5), "layer_norm_epsilon must be a number > 0"),
    "epsilon string": (with_config(layer_norm_epsilon="small"), "layer_norm_epsilon must be a number > 0"),
    "config a list": (lambda tmp: folder(tmp, [CONFIG]), "config.json must be a JSON object, not a list"),
    "n_layer 10**7": (with_config(n_layer=10**7), "the config says n_layer 10,000,000 but the weights hold 2 layers"),
    "n_layer disagrees": (with_config(n_layer=3), "the config says n_layer 3 but the weights hold 2 layers"),
    # safetensors headers
    "string offsets": (with_header({"wte.weight": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}}),
                       "tensor 'wte.weight' has an unsupported dtype or a corrupt entry"),
    "float offsets": (with_header({"wte.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0.0, 8.0]}}),
                      "corrupt entry"),
    "absurd shape": (with_header({"wte.weight": {"dtype": "F32", "shape": [10**15, 10**6], "data_offsets": [0, 8]}}),
                     "its byte range does not match its shape"),
    "non-integer shape": (with_header({"wte.weight": {"dtype": "F32", "shape": [0.5, 4], "data_offsets": [0, 8]}}),
                          "corrupt entry"),
    "nested 100k deep": (with_header(deep_json(100_000)), "corrupt safetensors header (nested too deeply)"),
    "overlapping": (with_header({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                 "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}),
                    "tensors 'a' and 'b' overlap in the file"),
    "metadata a list": (with_header({"__metadata__": ["x"]}), "__metadata__ must map names to strings"),
    # sharded index
    "index not JSON": (with_index("{not json"), "model.safetensors.index.json: not valid JSON"),
    "index without weight_map": (with_index({"metadata": {}}), "no weight_map object"),
    "weight_map a list": (with_index({"weight_map": ["model-00001-of-00001.safetensors"]}), "no weight_map object"),
    "shard outside": (with_index({"weight_map": {"wte.weight": "../../etc/hostname"}}),
                      "shard '../../etc/hostname' is outside the model folder"),
    "shard absolute": (with_index({"weight_map": {"wte.weight": "/etc/hostname"}}),
                       "shard '/etc/hostname' is outside the model folder"),
    "shard missing": (with_index({"weight_map": {"wte.weight": "model-2.safetensors"}}),
                      "shard 'model-2.safetensors' is missing"),
    # llmviz files
    "llmviz config a list": (llmviz_file(config="[1, 2]"), "corrupt llmviz metadata"),
    "llmviz n_head string": (llmviz_file(config=json.dumps({**llmviz.PRESETS["nano-gpt"].to_dict(), "n_head": "3"})),
                             "n_head must be a whole number >= 1 (got '3')"),
    "llmviz tokenizer chars": (llmviz_file(tokenizer=json.dumps({"type": "chars", "chars": 5})),
                               "corrupt llmviz metadata"),
    # weights that are not numbers
    "NaN weight": (with_weights(nan_weight), "tensor 'h.1.attn.c_attn.weight' holds 1 values that are not finite"),
    "inf weight in llmviz file": (llmviz_file(break_weight="blocks.0.mlp.W_in"),
                                  "tensor 'blocks.0.mlp.W_in' holds 192 values that are not finite"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_is_refused_with_one_line(tmp_path, case):
    make, message = CASES[case]
    path = make(tmp_path)
    with pytest.raises(LlmvizError) as e:
        llmviz.load_model(str(path))
    text = str(e.value)
    assert message in text and "\n" not in text
    assert path.name in text  # the file named


def test_n_layer_10_million_is_refused_up_front_with_its_size(tmp_path):
    """Read whole (float32), the config's size is refused before anything is built; mapped (the default), nothing
    is read, and the file's two layers are not the config's."""
    import time

    d = folder(tmp_path, {**CONFIG, "n_layer": 10**7})
    start = time.perf_counter()
    with pytest.raises(LlmvizError, match=r"would need [\d,.]+ GB of float32 weights; this machine has"):
        llmviz.load_model(str(d), dtype="float32")
    with pytest.raises(LlmvizError, match="the config says n_layer 10,000,000 but the weights hold 2 layers"):
        llmviz.load_model(str(d))
    assert time.perf_counter() - start < 5  # refused before anything the size of the config is built


def test_float16_overflow_is_refused(tmp_path):
    state = gpt2_state()
    state["wte.weight"][0, 0] = 1e6
    with pytest.raises(LlmvizError, match="beyond float16's range"):
        llmviz.load_model(str(folder(tmp_path, state=state)), dtype="float16")


# PyTorch checkpoints (torch is in the test extras)

def checkpoint(tmp_path, obj, meta=None):
    torch = pytest.importorskip("torch")
    d = tmp_path / "run"
    d.mkdir()
    torch.save(obj, d / "ckpt.pt")
    if meta is not None:
        with open(d / "meta.pkl", "wb") as f:
            pickle.dump(meta, f)
    return d / "ckpt.pt"


def nanogpt_obj(**args):
    torch = pytest.importorskip("torch")
    state = {"transformer." + k: torch.from_numpy(v) for k, v in gpt2_state().items()
             if not k.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))}
    for k, v in gpt2_state().items():
        if k.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            state["transformer." + k] = torch.from_numpy(np.ascontiguousarray(v.T))
    model_args = {"n_layer": L, "n_head": H, "n_embd": C, "vocab_size": V, "block_size": N, "bias": True, **args}
    return {"model": state, "model_args": model_args}


class Evil:
    def __reduce__(self):
        return (os.system, ("echo never-run",))


@pytest.mark.parametrize("make,message", [
    (lambda tmp: checkpoint(tmp, {**nanogpt_obj(), "model_args": [L, H, C]}), "model_args and model must be dicts"),
    (lambda tmp: checkpoint(tmp, nanogpt_obj(n_head=0)), "n_head must be a whole number >= 1 (got 0)"),
    (lambda tmp: checkpoint(tmp, nanogpt_obj(), meta={"itos": {i: i for i in range(V)}}),
     "meta.pkl: not a plain nanoGPT vocabulary"),
    (lambda tmp: checkpoint(tmp, {"transformer.wte.weight": __import__("torch").zeros(V),
                                  "transformer.wpe.weight": __import__("torch").zeros(N, C)}),
     "wte.weight and wpe.weight must be matrices, found shapes [10] and [16, 8]"),
    (lambda tmp: checkpoint(tmp, {"model": Evil(), "model_args": {}}),
     "holds a forbidden Python object (posix.system)"),
])
def test_bad_checkpoint_is_refused_with_one_line(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(LlmvizError) as e:
        llmviz.load_model(str(path))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_raw_pickle_with_an_object_is_named(tmp_path):
    pytest.importorskip("torch")
    path = tmp_path / "ckpt.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": Evil()}, f, protocol=4)
    with pytest.raises(LlmvizError, match=r"holds a forbidden Python object \(posix.system\)"):
        llmviz.load_model(str(path))


@pytest.mark.parametrize("case", ["n_head 0", "nested 100k deep", "shard outside", "NaN weight", "n_layer 10**7"])
def test_cli_prints_one_line_for_a_bad_file(tmp_path, case):
    make, message = CASES[case]
    path = make(tmp_path)
    r = subprocess.run([sys.executable, "-m", "llmviz.serve.cli", "generate", "--model", str(path), "--ids", "1 2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ") and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# ---- Issue #19: refused at load, in one line naming the file and the field or tensor (items 9, 10 and 11) ----

LLAMA = {"model_type": "llama", "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
         "hidden_size": C, "intermediate_size": 12, "vocab_size": V, "max_position_embeddings": N,
         "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
         "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8}}
CONTEXT_RULE = ("must be a whole number from 1 to 16,777,216 (2**24 positions, the longest context llmviz computes) "
                "(got 1000000000000000)")
F32_RULE = "must be a number > 0 that float32 holds (at most 3.4e+38)"
FLOAT_RULE = "weights must be floating point (F32, F16, BF16 or F64)"
HUGE_RULE = "llmviz refuses weights beyond ±1e6 (they overflow float32 in the forward pass)"


def llama_state():
    """A random one-layer Llama (GQA: 2 query heads, 1 key-value head of 4 channels) under Hugging Face's names."""
    rng = np.random.default_rng(1)
    r = lambda *s: rng.normal(0, 0.2, s).astype(np.float32)
    p = "model.layers.0."
    return {"model.embed_tokens.weight": r(V, C), "model.norm.weight": r(C), p + "input_layernorm.weight": r(C),
            p + "post_attention_layernorm.weight": r(C), p + "self_attn.q_proj.weight": r(8, C),
            p + "self_attn.k_proj.weight": r(4, C), p + "self_attn.v_proj.weight": r(4, C),
            p + "self_attn.o_proj.weight": r(C, 8), p + "mlp.gate_proj.weight": r(12, C),
            p + "mlp.up_proj.weight": r(12, C), p + "mlp.down_proj.weight": r(C, 12)}


def llama(change=None, rope=None, drop=()):
    """A Llama folder whose config.json has `change` applied (and `rope` merged into its rope_parameters)."""
    def make(tmp):
        cfg = {**LLAMA, **(change or {})}
        if rope is not None:
            cfg["rope_parameters"] = {**LLAMA["rope_parameters"], **rope}
        for key in drop:
            cfg["rope_parameters"] = {k: v for k, v in cfg["rope_parameters"].items() if k != key}
        d = tmp / "m"
        d.mkdir()
        (d / "config.json").write_text(json.dumps(cfg))
        save_file(llama_state(), str(d / "model.safetensors"))
        return d
    return make


def old_style(**rope):
    """A Llama config as transformers 4 wrote it: rope_theta at the top, the scaling in rope_scaling."""
    scaling = {k: v for k, v in LLAMA["rope_parameters"].items() if k != "rope_theta"}
    return llama({"rope_parameters": None, "rope_theta": 500000.0, "rope_scaling": {**scaling, **rope}})


def gpt2_weight(name, value):
    """A GPT-2 folder whose tensor `name` is `value` (any dtype)."""
    def make(tmp):
        state = gpt2_state()
        state[name] = value(state[name])
        return folder(tmp, state=state)
    return make


def llmviz_llama(**config):
    """An llmviz weights file of the tiny Llama, its metadata config changed."""
    def make(tmp):
        d = llama()(tmp)
        path = tmp / "l.safetensors"
        save_weights(llmviz.load_model(str(d)), path)
        from safetensors import safe_open
        from safetensors.numpy import load_file
        with safe_open(str(path), "np") as f:
            meta = dict(f.metadata())
        meta["config"] = json.dumps({**json.loads(meta["config"]), **config})
        save_file(load_file(str(path)), str(path), metadata=meta)
        return path
    return make


def one(a, value):
    """a with one value set to `value`."""
    a = a.copy()
    a.flat[5] = value
    return a


def llmviz_weight(name, change):
    """nano-gpt's llmviz weights file with tensor `name` changed (its dtype too)."""
    def make(tmp):
        path = llmviz_file()(tmp)
        from safetensors import safe_open
        from safetensors.numpy import load_file
        with safe_open(str(path), "np") as f:
            meta = dict(f.metadata())
        tensors = load_file(str(path))
        tensors[name] = change(tensors[name])
        save_file(tensors, str(path), metadata=meta)
        return path
    return make


def bf16_llama(name, value):
    """The tiny Llama with its weights stored as BF16 (as torch writes them), one value of `name` set to `value`."""
    def make(tmp):
        torch = pytest.importorskip("torch")
        from safetensors.torch import save_file as save_torch
        d = llama()(tmp)
        state = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in llama_state().items()}
        state[name].view(-1)[5] = value
        save_torch(state, str(d / "model.safetensors"))
        return d
    return make


def as_made(path):
    """The message names what the test made: the model folder (config values) or the llmviz weights file."""
    return path


def weights_of(d):
    """The message names the folder's model.safetensors (a tensor's dtype or values)."""
    return d / "model.safetensors"


# case -> (make, the file the message names (from what make returned), the message after "FILE: ")
AT_LOAD = {
    # item 10: config values that loaded and then failed when the model ran
    "rope_theta NaN": (llama(rope={"rope_theta": float("nan")}), as_made, f"rope_parameters.rope_theta {F32_RULE} (got nan)"),
    "rope_theta 0": (llama(rope={"rope_theta": 0}), as_made, f"rope_parameters.rope_theta {F32_RULE} (got 0)"),
    "rope_theta negative": (llama(rope={"rope_theta": -1e4}), as_made, f"rope_parameters.rope_theta {F32_RULE} (got -10000.0)"),
    "rope_theta inf": (llama(rope={"rope_theta": float("inf")}), as_made, f"rope_parameters.rope_theta {F32_RULE} (got inf)"),
    "rope_theta string": (llama(rope={"rope_theta": "10000"}), as_made, f"rope_parameters.rope_theta {F32_RULE} (got '10000')"),
    "rope_theta bool": (llama(rope={"rope_theta": True}), as_made, f"rope_parameters.rope_theta {F32_RULE} (got True)"),
    "rope_theta beyond float32": (llama(rope={"rope_theta": 1e39}), as_made, f"rope_parameters.rope_theta {F32_RULE} (got 1e+39)"),
    "top-level rope_theta NaN": (llama({"rope_parameters": None, "rope_theta": float("nan")}), as_made,
                                 f"rope_theta {F32_RULE} (got nan)"),
    "rope_theta tiny": (llama(rope={"rope_type": "default", "rope_theta": 1e-50}), as_made,
                        "rope_parameters.rope_theta (1e-50) gives rotary frequencies or angles beyond float32's range "
                        "over 16 positions"),
    "llama3 factor 0": (llama(rope={"factor": 0}), as_made, f"rope_parameters.factor {F32_RULE} (got 0)"),
    "llama3 factor negative": (llama(rope={"factor": -8.0}), as_made, f"rope_parameters.factor {F32_RULE} (got -8.0)"),
    "llama3 factor NaN": (llama(rope={"factor": float("nan")}), as_made, f"rope_parameters.factor {F32_RULE} (got nan)"),
    "llama3 factor inf": (llama(rope={"factor": float("inf")}), as_made, f"rope_parameters.factor {F32_RULE} (got inf)"),
    "llama3 factor string": (llama(rope={"factor": "8"}), as_made, f"rope_parameters.factor {F32_RULE} (got '8')"),
    "llama3 factor 0 in rope_scaling": (old_style(factor=0), as_made, f"rope_scaling.factor {F32_RULE} (got 0)"),
    "llama3 factor tiny": (llama(rope={"factor": 1e-40}), as_made,
                           "rope_parameters.rope_theta (500000) with factor 1e-40, low_freq_factor 1 and high_freq_factor 4 "
                           "gives rotary frequencies or angles beyond float32's range over 16 positions"),
    "llama3 factor missing": (llama(drop=["factor"]), as_made, "rope_parameters of type llama3 lacks 'factor'"),
    "low_freq_factor 0": (llama(rope={"low_freq_factor": 0}), as_made, f"rope_parameters.low_freq_factor {F32_RULE} (got 0)"),
    "low_freq_factor bool": (llama(rope={"low_freq_factor": False}), as_made,
                             f"rope_parameters.low_freq_factor {F32_RULE} (got False)"),
    "high_freq_factor NaN": (llama(rope={"high_freq_factor": float("nan")}), as_made,
                             f"rope_parameters.high_freq_factor {F32_RULE} (got nan)"),
    "high_freq_factor inf in rope_scaling": (old_style(high_freq_factor=float("inf")), as_made,
                                             f"rope_scaling.high_freq_factor {F32_RULE} (got inf)"),
    "low == high": (llama(rope={"low_freq_factor": 4.0}), as_made,
                    "rope_parameters.high_freq_factor must be greater than low_freq_factor (got 4, low_freq_factor 4): "
                    "Llama 3's rope scaling divides by their difference"),
    "low > high": (old_style(low_freq_factor=5.0), as_made,
                   "rope_scaling.high_freq_factor must be greater than low_freq_factor (got 4, low_freq_factor 5): "
                   "Llama 3's rope scaling divides by their difference"),
    "original_max 0": (llama(rope={"original_max_position_embeddings": 0}), as_made,
                       "rope_parameters.original_max_position_embeddings must be a whole number from 1 to 16,777,216 (got 0)"),
    "original_max float": (llama(rope={"original_max_position_embeddings": 8.5}), as_made,
                           "rope_parameters.original_max_position_embeddings must be a whole number from 1 to 16,777,216 "
                           "(got 8.5)"),
    "max_position_embeddings 10**15": (llama({"max_position_embeddings": 10**15}), as_made,
                                       f"max_position_embeddings {CONTEXT_RULE}"),
    "max_position_embeddings string": (llama({"max_position_embeddings": "16"}), as_made,
                                       "max_position_embeddings must be a whole number from 1 to 16,777,216 (2**24 "
                                       "positions, the longest context llmviz computes) (got '16')"),
    "hidden_size bool": (llama({"hidden_size": True}), as_made, "hidden_size must be a whole number >= 1 (got True)"),
    "rms_norm_eps string": (llama({"rms_norm_eps": "1e-6"}), as_made, "rms_norm_eps must be a number > 0 (got '1e-6')"),
    "sliding_window string": (llama({"model_type": "mistral", "sliding_window": "4"}), as_made,
                              "sliding_window must be null or a whole number (got '4')"),
    "n_positions 10**15": (with_config(n_positions=10**15), as_made, f"n_positions {CONTEXT_RULE}"),
    "n_ctx 10**15": (lambda tmp: folder(tmp, {**{k: v for k, v in CONFIG.items() if k != "n_positions"}, "n_ctx": 10**15}),
                     as_made, f"n_ctx {CONTEXT_RULE}"),
    "llmviz file rope_theta NaN": (llmviz_llama(rope_theta=float("nan")), as_made,
                                   f"corrupt llmviz metadata (rope_theta {F32_RULE} (got nan))"),
    "llmviz file rope_factor 0": (llmviz_llama(rope_factor=0), as_made,
                                  f"corrupt llmviz metadata (rope_factor {F32_RULE} (got 0))"),
    "llmviz file n_ctx 10**15": (llmviz_file(config=json.dumps({**llmviz.PRESETS["nano-gpt"].to_dict(), "n_ctx": 10**15})),
                                 as_made, f"corrupt llmviz metadata (n_ctx {CONTEXT_RULE})"),
    # item 11: weights that are not floating point, or too large to compute with
    "I32 weight": (gpt2_weight("h.0.attn.c_attn.weight", lambda a: a.astype(np.int32)), weights_of,
                   f"tensor 'h.0.attn.c_attn.weight' is I32; {FLOAT_RULE}"),
    "BOOL weight": (gpt2_weight("ln_f.weight", lambda a: a > 0), weights_of, f"tensor 'ln_f.weight' is BOOL; {FLOAT_RULE}"),
    "U8 weight": (gpt2_weight("wpe.weight", lambda a: a.astype(np.uint8)), weights_of, f"tensor 'wpe.weight' is U8; {FLOAT_RULE}"),
    "I64 weight in llmviz file": (llmviz_weight("blocks.0.mlp.W_in", lambda a: a.astype(np.int64)), as_made,
                                  f"tensor 'blocks.0.mlp.W_in' is I64; {FLOAT_RULE}"),
    "3e38 weight": (gpt2_weight("wte.weight", lambda a: one(a, 3e38)), weights_of,
                    f"tensor 'wte.weight' holds values up to 3e+38; {HUGE_RULE}"),
    "-2e6 weight": (gpt2_weight("h.1.mlp.c_fc.weight", lambda a: one(a, -2e6)), weights_of,
                    f"tensor 'h.1.mlp.c_fc.weight' holds values down to -2e+06; {HUGE_RULE}"),
    "F64 weight 1e300": (gpt2_weight("ln_f.bias", lambda a: one(a.astype(np.float64), 1e300)), weights_of,
                         f"tensor 'ln_f.bias' holds values up to 1e+300; {HUGE_RULE}"),
    "3e38 BF16 Llama weight": (bf16_llama("model.layers.0.mlp.down_proj.weight", 3e38), weights_of,
                               f"tensor 'layers.0.mlp.down_proj.weight' holds values up to 3e+38; {HUGE_RULE}"),
}


@pytest.mark.parametrize("case", list(AT_LOAD))
def test_refused_at_load_with_the_exact_line(tmp_path, case):
    import warnings

    make, named, message = AT_LOAD[case]
    path = make(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning on the way to the refusal either
        with pytest.raises(LlmvizError) as e:
            llmviz.load_model(str(path))
    assert str(e.value) == f"{named(path)}: {message}"


def test_the_tiny_llama_and_its_edges_load_and_run_without_warnings(tmp_path):
    """The same folders with sane values load and compute, warnings as errors: the checks refuse only what fails."""
    import warnings

    for i, make in enumerate([llama(), old_style(), llama({"rope_parameters": {"rope_type": "default", "rope_theta": 10000}}),
                              llama(rope={"factor": 1e-3, "low_freq_factor": 1e-3, "high_freq_factor": 1e30}),
                              llama({"max_position_embeddings": 2**24})]):
        (tmp_path / str(i)).mkdir()
        d = make(tmp_path / str(i))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m = llmviz.load_model(str(d))
            logits = m.run([1, 2, 3, 4])["logits"]
        assert np.isfinite(logits).all() and isinstance(m.config.rope_theta, float)


def test_a_mask_buffer_is_not_a_weight(tmp_path):
    """A bool causal mask in a state dict (transformers' and some nanoGPTs' attn.bias) is not read, so not refused."""
    torch = pytest.importorskip("torch")
    obj = nanogpt_obj()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    want = llmviz.load_model(str(checkpoint(tmp_path / "a", obj)))
    obj["model"].update({f"transformer.h.{i}.attn.bias": torch.ones(1, 1, N, N, dtype=torch.bool).tril() for i in range(L)})
    got = llmviz.load_model(str(checkpoint(tmp_path / "b", obj)))
    np.testing.assert_array_equal(got.run([1, 2, 3])["logits"], want.run([1, 2, 3])["logits"])


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool"])
def test_an_integer_tensor_in_a_checkpoint_is_refused_by_name(tmp_path, dtype):
    torch = pytest.importorskip("torch")
    obj = nanogpt_obj()
    key = "transformer.h.0.attn.c_attn.weight"
    obj["model"][key] = obj["model"][key].to(getattr(torch, dtype))
    path = checkpoint(tmp_path, obj)
    with pytest.raises(LlmvizError) as e:
        llmviz.load_model(str(path))
    assert str(e.value) == (f"{path}: tensor '{key}' is torch.{dtype}; weights must be floating point "
                            "(float32, float16, bfloat16 or float64)")


def test_a_huge_float64_weight_in_a_checkpoint_is_named_not_cast_to_inf(tmp_path):
    import warnings

    obj = nanogpt_obj()
    obj["model"]["transformer.wpe.weight"] = obj["model"]["transformer.wpe.weight"].double()
    obj["model"]["transformer.wpe.weight"][3, 1] = -1e300
    path = checkpoint(tmp_path, obj)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(LlmvizError) as e:
            llmviz.load_model(str(path))
    assert str(e.value) == f"{path}: tensor 'wpe.weight' holds values down to -1e+300; {HUGE_RULE}"


def test_block_size_10_15_is_refused_by_its_nanogpt_name(tmp_path):
    path = checkpoint(tmp_path, nanogpt_obj(block_size=10**15))
    with pytest.raises(LlmvizError) as e:
        llmviz.load_model(str(path))
    assert str(e.value) == f"{path}: model_args is incomplete or inconsistent (block_size {CONTEXT_RULE})"


# ---- Item 9: a .pt whose zip would inflate far beyond its size, refused from the zip's directory ----

def deflated_zeros(n, chunk=1 << 20):
    """A raw deflate stream of n zero bytes (n a multiple of chunk): one compressed block, repeated (a full flush
    makes each block stand alone), so a 2 GiB bomb takes milliseconds and 2 MB to make."""
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * (n // chunk) + c.flush()


def crc_of_zeros(n, chunk=1 << 20):
    import zlib

    crc, zeros = 0, bytes(chunk)
    for _ in range(n // chunk):
        crc = zlib.crc32(zeros, crc)
    return crc


def write_zip(path, members, file_size=None):
    """A zip written by hand: members are (name, method, payload, size the directory states, crc)."""
    import struct

    out, directory = bytearray(), bytearray()
    for name, method, payload, size, crc in members:
        n = name.encode()
        directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(payload), size,
                                 len(n), 0, 0, 0, 0, 0, len(out)) + n
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(payload), size, len(n), 0) + n + payload
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), len(out), 0)
    path.write_bytes(out + directory + end)
    return path


def torch_zip(tmp, replace):
    """A real torch.save checkpoint, rewritten with each member that replace(name) answers (method, payload, size,
    crc) for in place of torch's own."""
    torch = pytest.importorskip("torch")
    import zipfile

    d = tmp / "run"
    d.mkdir(exist_ok=True)
    path = d / "ckpt.pt"
    torch.save(nanogpt_obj(), path)
    with zipfile.ZipFile(path) as z:
        members = [(i.filename, 0, z.read(i), i.file_size, i.CRC) for i in z.infolist()]
    return write_zip(path, [(name, *(replace(name) or (m, p, s, c))) for name, m, p, s, c in members])


def bomb(size, declared=None):
    """data.pkl deflated from `size` zeros; the directory says `declared` (default: the truth)."""
    def make(tmp):
        payload, crc = deflated_zeros(size), crc_of_zeros(size)
        return torch_zip(tmp, lambda name: (8, payload, size if declared is None else declared, crc)
                         if name.endswith("data.pkl") else None)
    return make


PEAK = """
import json, sys, resource
import llmviz, torch  # imported before measuring: loading imports torch

def peak_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
try:
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak to the current size (Linux >= 4.0)
        f.write("5")
    before = peak_kib()
except OSError:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    llmviz.load_model(sys.argv[1])
    message = None
except llmviz.core.errors.LlmvizError as e:
    message = str(e)
print(json.dumps({"message": message, "grew_mb": (peak_kib() - before) / 1024}))
"""


def load_measured(path):
    """Load in a fresh process: (the error's message, how much the process's peak memory grew in MB)."""
    r = subprocess.run([sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return out["message"], out["grew_mb"]


def test_a_zip_bomb_checkpoint_is_refused_before_anything_is_inflated(tmp_path):
    """Issue #19: a 2 MB .pt whose data.pkl deflates to 2 GiB of zeros used 6.4 GB. Now: refused from the directory."""
    path = bomb(2 << 30)(tmp_path)
    assert path.stat().st_size < 3_000_000
    compressed = len(deflated_zeros(2 << 30))  # 2,123,778 bytes with zlib 1.2.13
    message, grew = load_measured(path)
    assert message == (f"{path}: member 'ckpt/data.pkl' would inflate to 2,147,483,648 bytes from {compressed:,} (a "
                       f"ratio of {2**31 / compressed:,.0f}): refused before reading; torch.save stores members "
                       "uncompressed, and llmviz allows at most 100:1")
    assert grew < 200, f"loading grew the process by {grew:.0f} MB"


def test_a_zip_whose_directory_understates_a_member_inflates_no_further(tmp_path):
    """The same 2 GiB stream, its directory saying 300 bytes: torch and llmviz's own look at the pickle read 300."""
    path = bomb(2 << 30, declared=300)(tmp_path)
    message, grew = load_measured(path)
    assert message == f"{path}: cannot read it as a PyTorch checkpoint (truncated, or not a torch.save file)"
    assert grew < 200, f"loading grew the process by {grew:.0f} MB"


def test_a_pickle_larger_than_a_checkpoint_could_need_is_refused(tmp_path):
    """80 MiB of data.pkl, compressed only 80:1 (below the ratio bound): a pickle holds structure, not numbers."""
    import os
    import zlib

    noise = os.urandom(1 << 10)  # 1 KiB of noise per 80 KiB: about 80:1
    payload = zlib.compress(b"".join(noise + bytes(79 << 10) for _ in range(1024)), 9)[2:-4]
    path = torch_zip(tmp_path, lambda name: (8, payload, 80 << 20, 0) if name.endswith("data.pkl") else None)
    with pytest.raises(LlmvizError) as e:
        llmviz.load_model(str(path))
    assert str(e.value) == (f"{path}: member 'ckpt/data.pkl' would inflate to 83,886,080 bytes: refused before "
                            "reading; a checkpoint's pickle holds its structure, not its numbers, and llmviz allows at "
                            "most 67,108,864 bytes")


def test_many_small_members_that_inflate_together_are_refused(tmp_path):
    """300 members of 8 MiB of zeros each (each below the per-member bound): 2.4 GiB from a 2.5 MB file."""
    payload, crc = deflated_zeros(8 << 20), crc_of_zeros(8 << 20)
    members = [(f"ckpt/data/{i}", 8, payload, 8 << 20, crc) for i in range(300)]
    path = write_zip(tmp_path / "ckpt.pt", members)
    with pytest.raises(LlmvizError) as e:
        llmviz.load_model(str(path))
    size = path.stat().st_size
    assert str(e.value) == (f"{path}: its 300 members would inflate to 2,516,582,400 bytes from a file of {size:,} (a "
                            f"ratio of {2_516_582_400 / size:,.0f}): refused before reading; llmviz allows at most 100:1")


@pytest.mark.parametrize("lie", ["two sizes", "past the end"])
def test_a_directory_whose_sizes_do_not_fit_the_file_is_refused(tmp_path, lie):
    """A stored member whose directory entry gives it two sizes, or says that it goes on past the file's end."""
    import struct

    path = torch_zip(tmp_path, lambda name: (0, b"x" * 10, 10**9, 0) if name.endswith("/version") and lie == "two sizes"
                     else None)
    if lie == "past the end":  # the directory entry of ckpt/version says 1,000,000 bytes, stored
        data = bytearray(path.read_bytes())
        entry = data.index(b"PK\x01\x02")  # the first entry of the directory
        while data[entry + 46:entry + 46 + 12] != b"ckpt/version":
            entry = data.index(b"PK\x01\x02", entry + 1)
        data[entry + 20:entry + 28] = struct.pack("<II", 10**6, 10**6)
        path.write_bytes(bytes(data))
    with pytest.raises(LlmvizError) as e:
        llmviz.load_model(str(path))
    if lie == "two sizes":
        assert str(e.value) == (f"{path}: member 'ckpt/version' is stored uncompressed, yet the zip directory gives it "
                                "two sizes (1,000,000,000 and 10 bytes): refused before reading")
    else:
        assert re.fullmatch(rf"{re.escape(str(path))}: member 'ckpt/version': the zip directory says it ends past byte "
                            rf"[\d,]+ but the file has {path.stat().st_size:,} bytes: refused before reading", str(e.value))


def test_a_huge_zip_directory_is_refused_before_it_is_parsed(tmp_path):
    """An end record that claims a 17 MiB directory (a sparse file: nothing is written there)."""
    import struct

    path = tmp_path / "ckpt.pt"
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04")
        f.seek(17 << 20)
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, 17 << 20, 4, 0))
    with pytest.raises(LlmvizError) as e:
        llmviz.load_model(str(path))
    assert str(e.value) == (f"{path}: its zip directory is 17,825,792 bytes: refused before reading; torch.save writes "
                            "about 60 bytes per tensor there, and llmviz allows at most 16,777,216")


def test_a_legacy_checkpoint_larger_than_memory_is_refused_by_its_size(tmp_path):
    """torch's pre-zip format is read as it is: its size is what it holds (a sparse file, nothing written)."""
    pytest.importorskip("torch")
    from llmviz.io.convert import memory_bytes

    path = tmp_path / "old.pt"
    with open(path, "wb") as f:
        f.write(b"\x80\x02")
        f.truncate(memory_bytes() + 1)
    with pytest.raises(LlmvizError) as e:
        llmviz.load_model(str(path))
    assert str(e.value) == (f"{path}: {memory_bytes() + 1:,} bytes, more than this machine's memory "
                            f"({memory_bytes():,} bytes)")


def test_a_real_checkpoint_still_loads_after_the_archive_checks(tmp_path):
    path = checkpoint(tmp_path, nanogpt_obj())
    assert llmviz.load_model(str(path)).run([1, 2])["logits"].shape == (2, V)


# ---- The CLI: one line on stderr, no traceback, no warning, no path inside the llmviz package ----

@pytest.mark.parametrize("case", ["zip bomb", "rope_theta NaN", "low == high", "max_position_embeddings 10**15",
                                  "I32 weight", "3e38 weight"])
def test_cli_refuses_at_load_in_one_line(tmp_path, case):
    from pathlib import Path

    if case == "zip bomb":
        path = bomb(2 << 30)(tmp_path)
        message = f"{path}: member 'ckpt/data.pkl' would inflate to 2,147,483,648 bytes from {len(deflated_zeros(2 << 30)):,}"
    else:
        make, named, rule = AT_LOAD[case]
        path = make(tmp_path)
        message = f"{named(path)}: {rule}"
    script = Path(sys.executable).parent / "llmviz"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "llmviz.serve.cli"]
    r = subprocess.run(command + ["generate", "AB", "--model", str(path)], capture_output=True, text=True, timeout=120)
    package = str(Path(llmviz.__file__).parent)
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("Error: " + message)
    assert "Traceback" not in r.stderr and "Warning" not in r.stderr + r.stdout
    assert package not in r.stderr + r.stdout
