"""Precision and quantization (core/quant.py) against references: a q8_0 or q4_0 pass equals transformers run on the
same weights quantized and dequantized by the `gguf` package's reference functions, as llama.cpp stores them; each
weight's stored codes and scales are gguf's, byte for byte; bf16 and f16 round as torch's casts; int8 (per output
channel) as a plain numpy reference; what is not quantized is untouched; and nano-gpt says which matrices could not
be cut into blocks of 32."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

import llmviz  # noqa: E402
from hf_models import random_net  # noqa: E402
from llmviz.core.errors import LlmvizError  # noqa: E402
from llmviz.core.quant import FORMATS, input_axes, quantized  # noqa: E402

QTYPES = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}
CASTS = {"bf16": torch.bfloat16, "f16": torch.float16}
VOCAB = 97
NETS = {  # input dims are multiples of 32: every matrix is cut into ggml's blocks
    "gpt2-tied": ("GPT2Config", "GPT2LMHeadModel",
                  dict(n_layer=2, n_head=4, n_embd=64, n_positions=32, vocab_size=VOCAB, attn_implementation="eager")),
    "llama-gqa": ("LlamaConfig", "LlamaForCausalLM",
                  dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=64,
                       attn_implementation="eager")),
}
MATRICES = {  # the weights a format quantizes, in llmviz's names (of each layer)
    "gpt2-tied": {"embed.W_E"} | {f"blocks.{i}.{w}" for i in range(2)
                                  for w in ("attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "mlp.W_in", "mlp.W_out")},
    "llama-gqa": {"embed.W_E", "unembed.W_U"} | {
        f"blocks.{i}.{w}" for i in range(2)
        for w in ("attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "mlp.W_in", "mlp.W_gate", "mlp.W_out")},
}
IDS = [int(i) for i in np.random.default_rng(1).integers(0, VOCAB, 13)]


@pytest.fixture(scope="module", params=list(NETS))
def pair(request, tmp_path_factory):
    """(case, the transformers model with noise on every parameter, the same model loaded by llmviz)."""
    cfg_cls, model_cls, config = NETS[request.param]
    net = random_net(cfg_cls, model_cls, config)
    folder = tmp_path_factory.mktemp(request.param)
    net.save_pretrained(folder)
    return request.param, net, llmviz.load_model(str(folder))


def gguf_roundtrip(w: np.ndarray, fmt: str) -> np.ndarray:
    """A matrix [out, in] quantized and read back by the gguf package's reference functions."""
    return gguf.quants.dequantize(gguf.quants.quantize(np.ascontiguousarray(w, np.float32), QTYPES[fmt]), QTYPES[fmt])


def hf_stored(net, fmt: str):
    """A copy of the transformers model with every 2-D weight but the position embedding stored in `fmt` and read
    back, as llama.cpp's converter stores it: the weight as [out, in] (GPT-2's Conv1D keeps [in, out]: transposed
    first), blocks along the input; a tied embedding is the one matrix."""
    net = copy.deepcopy(net)
    with torch.no_grad():
        for name, p in net.named_parameters():  # (a tied weight appears once)
            if p.dim() != 2 or name.endswith("wpe.weight"):
                continue
            conv1d = isinstance(net.get_submodule(name.rsplit(".", 1)[0]), transformers.pytorch_utils.Conv1D)
            if fmt in CASTS:
                p.copy_(p.to(CASTS[fmt]).float())
                continue
            w = p.detach().numpy()
            back = gguf_roundtrip(w.T if conv1d else w, fmt)
            p.copy_(torch.from_numpy(back.T if conv1d else back))
    return net


def assert_same_pass(net, model, case: str) -> None:
    """Every hidden state and the logits of llmviz's pass equal transformers' within 1e-4."""
    with torch.no_grad():
        out = net(torch.tensor([IDS]), output_hidden_states=True)
    t = model.run(IDS)
    n = model.config.n_layer
    for i in range(n):
        np.testing.assert_allclose(t[f"blocks.{i}.hook_resid_pre"], out.hidden_states[i][0], atol=1e-4, rtol=0,
                                   err_msg=f"{case} {model.name} layer {i}")
    np.testing.assert_allclose(t["ln_final.hook_out"], out.hidden_states[n][0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(t["logits"], out.logits[0], atol=1e-4, rtol=0, err_msg=f"{case} {model.name}")


@pytest.mark.parametrize("fmt", ["q8_0", "q4_0", "bf16", "f16"])
def test_a_quantized_pass_equals_transformers_on_the_same_stored_weights(pair, fmt):
    case, net, model = pair
    q = quantized(model, fmt)
    assert q.name == f"{model.name}:{fmt}" and q.precision == fmt
    reference = hf_stored(net, fmt)
    assert_same_pass(reference, q, case)
    with torch.no_grad():  # and it is a different pass: the format changed the numbers
        moved = np.abs(reference(torch.tensor([IDS])).logits[0].numpy() - model.run(IDS)["logits"]).max()
    assert moved > 1e-3 if fmt == "q4_0" else moved > 1e-6


def test_the_quantized_weights_are_every_matrix_but_the_position_embedding(pair):
    case, _, model = pair
    for fmt in ("q8_0", "q4_0", "int8", "bf16"):
        q = quantized(model, fmt)
        assert set(q.stored) == MATRICES[case]
        assert {s.fmt for s in q.stored.values()} == {fmt}  # every input dim divides into blocks of 32
        for name, w in model.weights.items():  # the rest, bit for bit: position embedding, biases, norms
            if name not in q.stored and not model.graph[name].attrs.get("tied_to"):
                assert q.weights[name].tobytes() == np.asarray(w, np.float32).tobytes(), (fmt, name)
        if case == "gpt2-tied":  # the unembedding is the quantized embedding, transposed
            np.testing.assert_array_equal(q.weights["unembed.W_U"], q.stored["embed.W_E"].values.T)


def rows(model, name: str, a: np.ndarray) -> np.ndarray:
    """A weight's cells laid out as ggml lays them: [outputs, inputs], its input axes (input_axes) last."""
    axes, inputs = model.graph[name].axes, input_axes(model.graph)[name]
    order = [axes.index(x) for x in axes if x not in inputs] + [axes.index(x) for x in inputs]
    t = a.transpose(order)
    return t.reshape(-1, int(np.prod([a.shape[axes.index(x)] for x in inputs])))


@pytest.mark.parametrize("fmt", ["q8_0", "q4_0"])
def test_each_stored_weight_is_ggufs_bytes(pair, fmt):
    """Each weight's codes, block scales and values equal what gguf.quants.quantize writes, read byte by byte:
    q8_0 blocks of a float16 d and 32 int8s; q4_0 blocks of a float16 d and 16 bytes, element j in the low nibble
    of byte j and element j + 16 in its high nibble."""
    _, _, model = pair
    q = quantized(model, fmt)
    for name, s in q.stored.items():
        w = rows(model, name, s.original)
        raw = gguf.quants.quantize(w, QTYPES[fmt])
        blocks = raw.reshape(w.shape[0], w.shape[1] // 32, -1)
        d = blocks[..., :2].copy().view(np.float16)[..., 0].astype(np.float32)
        if fmt == "q8_0":
            codes = blocks[..., 2:].copy().view(np.int8)
        else:
            packed = blocks[..., 2:]
            codes = np.concatenate([packed & 0x0F, packed >> 4], axis=-1)
        assert rows(model, name, s.codes).tobytes() == codes.reshape(w.shape).tobytes(), name
        assert rows(model, name, s.codes).dtype == (np.int8 if fmt == "q8_0" else np.uint8)
        np.testing.assert_array_equal(rows(model, name, s.scales), np.repeat(d, 32, axis=-1).reshape(w.shape), name)
        np.testing.assert_array_equal(rows(model, name, s.values), gguf.quants.dequantize(raw, QTYPES[fmt]), name)
        block = rows(model, name, s.block)
        assert block[0, 31] == block[0, 0] != block[0, 32] and block.max() + 1 == w.size // 32
        assert s.nbytes() == raw.nbytes  # as many bytes as ggml writes


@pytest.mark.parametrize("fmt", ["bf16", "f16"])
def test_sixteen_bit_weights_round_as_torchs_casts(pair, fmt):
    _, _, model = pair
    q = quantized(model, fmt)
    for name, s in q.stored.items():
        cast = torch.from_numpy(s.original).to(CASTS[fmt]).float().numpy()
        assert s.values.tobytes() == cast.tobytes(), name
        assert s.codes is None and s.scales is None and s.nbytes() == 2 * s.original.size


def test_int8_is_per_output_channel_symmetric(pair):
    """scale = max |row| / 127 for each output (a row of [out, in]); code = w / scale rounded, halves away from
    zero, in −127 … 127; value = code × scale."""
    _, _, model = pair
    q = quantized(model, "int8")
    for name, s in q.stored.items():
        w = rows(model, name, s.original)
        scale = np.abs(w).max(axis=1, keepdims=True) / np.float32(127)
        x = w * (np.float32(1) / scale)
        codes = np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))
        assert codes.min() >= -127 and codes.max() <= 127
        np.testing.assert_array_equal(rows(model, name, s.codes), codes.astype(np.int8), name)
        np.testing.assert_array_equal(rows(model, name, s.scales), np.broadcast_to(scale, w.shape), name)
        np.testing.assert_array_equal(rows(model, name, s.values), codes.astype(np.float32) * scale, name)
        np.testing.assert_array_equal(rows(model, name, s.block), np.broadcast_to(np.arange(len(w))[:, None], w.shape))
        assert np.all(np.abs(rows(model, name, s.error)) <= scale / 2 + np.abs(w) * 2.0 ** -20)  # half a step (and rounding)
        assert s.nbytes() == w.size + 4 * len(w)


def test_nano_gpt_in_q4_0_says_which_matrices_fell_back_to_f16():
    """nano-gpt's rows are 48 wide: only the MLP's output matrices (192 inputs) divide into blocks of 32; every
    other matrix is stored as f16, and Stored.fmt and the precision table say so, and why."""
    from llmviz.views.precision import fallbacks

    nano = llmviz.load_model("nano-gpt")
    q = quantized(nano, "q4_0")
    got = {name: s.fmt for name, s in q.stored.items()}
    assert {n for n, f in got.items() if f == "q4_0"} == {f"blocks.{i}.mlp.W_out" for i in range(3)}
    assert got["embed.W_E"] == got["blocks.0.attn.W_O"] == got["unembed.W_U"] == "f16"
    notes = fallbacks(q)
    assert len(notes) == len(q.stored) - 3
    assert notes[0] == {"weight": "embed.W_E", "stored_as": "f16",
                        "why": "its rows have 48 inputs (d_model), not a multiple of 32: ggml cannot cut them into "
                               "q4_0's blocks of 32"}
    assert next(n for n in notes if n["weight"] == "blocks.0.attn.W_O")["why"].startswith(
        "its rows have 48 inputs (head × d_head)")
    assert fallbacks(quantized(nano, "int8")) == []  # per channel: any row length


def test_bad_formats_are_refused_by_name():
    nano = llmviz.load_model("nano-gpt")
    with pytest.raises(LlmvizError, match=r"unknown format 'q3_k': llmviz stores weights as f32, f16, bf16, int8, "
                                          r"q8_0, q4_0"):
        quantized(nano, "q3_k")
    with pytest.raises(LlmvizError, match=r"nano-gpt:q8_0 is already quantized \(q8_0\)"):
        quantized(quantized(nano, "q8_0"), "q4_0")
    assert quantized(nano, "f32") is nano and FORMATS[0] == "f32"


# --- the precision table (views/precision.py, GET /api/models/{name}/precision) ---

@pytest.fixture(scope="module")
def client():
    from conftest import local_client
    from llmviz.serve.server import create_app

    return local_client(create_app([llmviz.load_model("nano-gpt"), llmviz.load_model("shakespeare-char")]))


def test_the_precision_table_counts_bytes_and_errors_as_stored(client):
    """shakespeare-char's rows (128 and 512 wide) divide into blocks of 32: every matrix is stored as asked, so its
    bytes are the formats' own: f16 and bf16 2 per weight, int8 1 plus a float32 scale per output, q8_0 34 and q4_0
    18 per block of 32; the position embedding, biases and norms stay 4 bytes each."""
    from llmviz.serve.schemas import PrecisionTable

    r = client.get("/api/models/shakespeare-char/precision")
    assert r.status_code == 200, r.text
    table = PrecisionTable.model_validate(r.json())
    m = llmviz.load_model("shakespeare-char")
    matrices = {n: m.weights[n] for n in input_axes(m.graph)}
    n_q = sum(w.size for w in matrices.values())
    rows_out = sum(w.size // np.prod([w.shape[m.graph[n].axes.index(a)] for a in input_axes(m.graph)[n]])
                   for n, w in matrices.items())  # each matrix's outputs: its cells over its inputs
    rest = 4 * (m.config.n_params - n_q)
    per_format = {"f32": 4 * m.config.n_params, "f16": 2 * n_q + rest, "bf16": 2 * n_q + rest,
                  "int8": n_q + 4 * rows_out + rest, "q8_0": n_q // 32 * 34 + rest, "q4_0": n_q // 32 * 18 + rest}
    assert [f.format for f in table.formats] == list(FORMATS)
    assert {f.format: f.bytes for f in table.formats} == per_format
    assert table.input == m.config.example and table.tokens == len(m.encode(m.config.example))
    ref = m.run(m.config.example)
    top = int(ref["probs"][-1].argmax())
    assert table.top_token == m.token_strs([top])[0]
    for row in table.formats:
        q = quantized(m, row.format)
        t = q.run(m.config.example)
        assert row.logits_max == pytest.approx(float(np.abs(t["logits"] - ref["logits"]).max()), abs=1e-7)
        assert row.top_prob == pytest.approx(float(t["probs"][-1, top]), abs=1e-7)
        errors = np.concatenate([s.error.ravel() for s in q.stored.values()]) if q.stored else np.zeros(1)
        assert row.weight_rms == pytest.approx(float(np.sqrt((errors.astype(np.float64) ** 2).mean())), rel=1e-6)
        assert row.weight_max == float(np.abs(errors).max())
        assert row.fallback == [] and row.refused is None and row.pass_ms > 0
    q4 = table.formats[-1]
    assert q4.weight_rms > table.formats[FORMATS.index("q8_0")].weight_rms > 0  # fewer bits, more error
    assert "timed once" in table.timing


def test_the_precision_table_says_what_fell_back_and_refuses_what_it_cannot_compare(client):
    r = client.get("/api/models/nano-gpt/precision")
    assert r.status_code == 200
    rows = {f["format"]: f for f in r.json()["formats"]}
    assert rows["f32"]["bytes"] == 4 * llmviz.load_model("nano-gpt").config.n_params
    assert [f["weight"] for f in rows["q4_0"]["fallback"]][:2] == ["embed.W_E", "blocks.0.attn.W_Q"]
    assert rows["int8"]["fallback"] == [] and rows["f16"]["fallback"] == []
    r = client.get("/api/models/nano-gpt:q4_0/precision")
    assert r.status_code == 422 and r.json()["detail"] == (
        "nano-gpt:q4_0 is already stored as q4_0: the precision table compares the float32 model with each format, "
        "so ask for the model itself")
    assert client.get("/api/models/gpt3/precision").status_code == 409
    r = client.get("/api/models/nano-gpt:q5/precision")
    assert r.status_code == 422 and r.json()["detail"].startswith("unknown format 'q5': llmviz stores weights as f32")


# --- load_model(quantize=...) and the command line ---

def test_load_model_quantizes():
    q = llmviz.load_model("nano-gpt", quantize="q4_0")
    assert q.name == "nano-gpt:q4_0" and q.precision == "q4_0" and q.stored["blocks.2.mlp.W_out"].fmt == "q4_0"
    assert llmviz.load_model("nano-gpt", quantize="f32").precision == "f32"
    with pytest.raises(LlmvizError, match="unknown format 'int4'"):
        llmviz.load_model("nano-gpt", quantize="int4")


def cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "llmviz.serve.cli", *args], capture_output=True, text=True, timeout=120)


def test_the_cli_generates_and_traces_quantized(tmp_path):
    from llmviz.io.safetensors_file import SafetensorsFile

    r = cli("generate", "CBABBC", "--quantize", "q4_0")
    assert (r.returncode, r.stdout, r.stderr) == (0, "ABBBCC\n", "")
    out = tmp_path / "t.safetensors"
    r = cli("trace", "CBABBC", "--quantize", "int8", "-o", str(out))
    assert r.returncode == 0, r.stderr
    f = SafetensorsFile(out)
    expected = quantized(llmviz.load_model("nano-gpt"), "int8").run("CBABBC")
    np.testing.assert_array_equal(f.read("logits"), expected["logits"])
    np.testing.assert_array_equal(f.read("blocks.0.mlp.W_out"), expected["blocks.0.mlp.W_out"])


def test_the_cli_refuses_a_bad_format_in_one_line():
    r = cli("generate", "CBABBC", "--quantize", "q3_k")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("Error: Invalid value for '--quantize': 'q3_k' is not one of 'f32', 'f16', 'bf16', "
                               "'int8', 'q8_0', 'q4_0'")
    r = cli("generate", "x", "--model", "gpt3", "--quantize", "q8_0")
    assert r.returncode == 1 and r.stderr.strip() == \
        "Error: gpt3 is structure only: no weights are loaded, so there is nothing to compute"


@pytest.mark.slow
def test_serve_quantize_opens_the_page_on_each_model_in_that_format_and_keeps_the_original():
    import subprocess
    import sys

    from waiting import json_when_up

    proc = subprocess.Popen([sys.executable, "-m", "llmviz.serve.cli", "serve", "--no-browser", "--port", "0",
                             "--model", "nano-gpt", "--model", "shakespeare-char", "--quantize", "q8_0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("llmviz is serving nano-gpt:q8_0, shakespeare-char:q8_0 at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split()[0]
        assert url.endswith("/?model=nano-gpt:q8_0")
        root = url.split("?")[0]
        models = {m["name"]: m for m in json_when_up(root + "api/models")}
        assert list(models)[:2] == ["nano-gpt", "shakespeare-char"]  # the originals, with their formats
        assert "shakespeare-char:q8_0" in [p["model"] for p in models["shakespeare-char"]["precisions"]]
        info = json_when_up(root + "api/models/shakespeare-char:q8_0")
        assert info["name"] == "shakespeare-char:q8_0" and info["source"] == "bundled with llmviz, stored as q8_0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_refuses_a_model_it_cannot_quantize_in_one_line():
    r = cli("serve", "--no-browser", "--port", "0", "--model", "gpt3", "--quantize", "int8")
    assert r.returncode == 1 and r.stderr.strip() == \
        "Error: gpt3 is structure only: no weights are loaded, so there is nothing to compute"
