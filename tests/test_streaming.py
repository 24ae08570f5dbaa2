"""Real-size models, streamed (issue 27): a Hugging Face folder's weights are mapped in place in the file's dtype and
widened to float32 only while an op uses them (a large one a block at a time); a large tensor is checked the first
time it is read, before any number computed from it exists; a pass's memory plan counts what it widens; the core
reports its progress layer by layer. The benchmark at real size is benchmarks/big_llama.py."""

import json
import mmap
import re
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import llmviz  # noqa: E402
from hf_models import random_net  # noqa: E402
from llmviz.core import weights as stored_weights  # noqa: E402
from llmviz.core.errors import BadModelFile  # noqa: E402
from llmviz.core.progress import watching  # noqa: E402
from llmviz.io import convert  # noqa: E402
from llmviz.views.scene import SceneBuilder, run_scene  # noqa: E402

pytestmark = pytest.mark.unit

LLAMA = dict(vocab_size=97, hidden_size=48, intermediate_size=80, num_hidden_layers=3, max_position_embeddings=64,
             num_attention_heads=6, num_key_value_heads=2, tie_word_embeddings=True, attn_implementation="eager")
GPT2 = dict(vocab_size=97, n_embd=48, n_layer=2, n_head=4, n_positions=32, attn_implementation="eager")
IDS = [3, 9, 27, 81, 50, 7]


def save(folder, kind: str) -> np.ndarray:
    """A random model saved in bfloat16, and transformers' logits of IDS with those weights in float32 (computed
    before the cast: cast, the model's rotary frequencies would be rounded too)."""
    cls = {"llama": ("LlamaConfig", "LlamaForCausalLM", LLAMA), "gpt2": ("GPT2Config", "GPT2LMHeadModel", GPT2)}[kind]
    net = random_net(*cls)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.to(torch.bfloat16).float())
        want = net(torch.tensor([IDS])).logits[0].numpy()
    net.to(torch.bfloat16).save_pretrained(folder)
    return want


@pytest.fixture(scope="module")
def llama_bf16(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama-bf16")
    return folder, save(folder, "llama")


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks of 64 numbers, and every tensor of 64 or more checked on first use: the tiny models stream as an 8B
    model's weights do."""
    monkeypatch.setattr(stored_weights, "BLOCK", 64)
    monkeypatch.setattr(convert, "CHECK_LATER", 64)


def mapped(a: np.ndarray) -> bool:
    base = stored_weights.owner(a).base
    return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


def test_a_folder_loads_mapped_in_its_files_dtype(llama_bf16):
    folder, _ = llama_bf16
    model = llmviz.load_model(str(folder))
    w = model.weights["blocks.0.mlp.W_gate"]
    assert w.dtype == np.uint16 and not w.flags.writeable and mapped(w)  # bfloat16's bits, in the file
    assert all(mapped(a) for n, a in model.weights.items() if a.size >= convert.CHECK_LATER)
    # read whole on request, as before
    assert llmviz.load_model(str(folder), dtype="float32").weights["blocks.0.mlp.W_gate"].dtype == np.float32


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_streamed_pass_equals_transformers_and_the_float32_pass(tmp_path, tiny_blocks, kind):
    want = save(tmp_path, kind)
    model = llmviz.load_model(str(tmp_path))
    got = model.run(IDS)
    np.testing.assert_allclose(got["logits"], want, atol=1e-4)
    whole = llmviz.load_model(str(tmp_path), dtype="float32").run(IDS)
    for name in whole.computed():
        np.testing.assert_allclose(got[name], whole[name], rtol=1e-5, atol=1e-4, err_msg=name)
    assert not any(model.graph[n].kind == "weight" for n in got.kept)  # the trace holds no weight
    assert got["unembed.W_U"].dtype == np.float32  # asked for, a weight is widened


def test_a_streamed_product_is_the_whole_product(tiny_blocks):
    from llmviz.core.ops.linear import linear

    rng = np.random.default_rng(0)
    W = convert.f32_to_bf16(rng.standard_normal((5, 7, 11), np.float32)).transpose(1, 0, 2)  # a strided view
    x = rng.standard_normal((3, 7), np.float32)
    assert stored_weights.streamed(W)
    want = np.tensordot(x, stored_weights.widen(W), axes=([1], [0]))
    np.testing.assert_allclose(linear(x, W, contract=["d"], x_dims=[-1], w_dims=[0]), want, rtol=1e-6, atol=1e-6)


def test_the_scene_of_a_streamed_model_equals_the_float32_ones(tmp_path, tiny_blocks, monkeypatch):
    from llmviz.views import scene

    save(tmp_path, "llama")
    monkeypatch.setattr(scene, "DISPLAY_BUDGET", {"weight": 3000, "computed": 1_000_000})  # weights shown tiled
    streamed = SceneBuilder(llmviz.load_model(str(tmp_path)), len(IDS))
    whole = SceneBuilder(llmviz.load_model(str(tmp_path), dtype="float32"), len(IDS))
    for name in ("embed.W_E", "blocks.1.mlp.W_out", "blocks.0.attn.W_Q", "unembed.W_U"):
        a = streamed.weight_grid(name, streamed.model.weights[name])
        b = whole.grid(name, whole.model.weights[name])
        assert a[2] == b[2] and a[2] != [1, 1], name  # the same tiles, and tiled
        np.testing.assert_array_equal(a[0], b[0], err_msg=name)
        assert a[1] == b[1]


def corrupt(folder, tensor: str, value: float) -> None:
    """Write `value` into the first number of a bf16 tensor of the folder's model.safetensors."""
    path = folder / "model.safetensors"
    raw = bytearray(path.read_bytes())
    n = struct.unpack("<Q", raw[:8])[0]
    start = json.loads(raw[8:8 + n])[tensor]["data_offsets"][0]
    raw[8 + n + start: 8 + n + start + 2] = convert.f32_to_bf16(np.float32([value])).tobytes()
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("value,message", [(float("nan"), "values that are not finite numbers"),
                                           (3e6, "holds values up to 3e+06")])
def test_a_bad_weight_is_refused_by_name_before_any_number_from_it(tmp_path, tiny_blocks, value, message):
    save(tmp_path, "llama")
    corrupt(tmp_path, "model.layers.1.mlp.up_proj.weight", value)
    model = llmviz.load_model(str(tmp_path))  # the headers only: nothing read yet
    seen = []
    with pytest.raises(BadModelFile, match=rf"tensor 'layers.1.mlp.up_proj.weight' (holds \S+ )?{re.escape(message)}") as e:
        model.run(IDS, visit=lambda name, a: seen.append(name))
    assert "\n" not in str(e.value)
    assert "blocks.1.mlp.hook_pre_linear" not in seen and "blocks.0.hook_resid_post" in seen
    with pytest.raises(BadModelFile, match="up_proj"):  # and again: a refused tensor is never taken as checked
        model.run(IDS)


def refusal(check) -> str | None:
    try:
        check()
    except BadModelFile as e:
        return str(e)
    return None


def test_the_check_reads_the_bits_as_check_weight_reads_the_numbers():
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float16):
        for bad in (np.inf, -np.inf, np.nan, 2e6, -2e6, 9e5, -9e5, 6e4, 0.0):
            a = (rng.standard_normal(100) * 10).astype(np.float32)
            a[17] = bad
            with np.errstate(over="ignore"):
                a = a.astype(dtype)
            assert refusal(lambda a=a: convert.check_stored(a, "f", "t")) == \
                refusal(lambda a=a: convert.check_weight(a.astype(np.float32), "float32", "f", "t")), (dtype, bad)
    bits = convert.f32_to_bf16(np.float32([0.5, -999424.0, 1003520.0]))
    convert.check_stored(bits[:2], "f", "t")  # 999,424 is bfloat16's largest number within 1e6
    with pytest.raises(BadModelFile, match="up to 1e\\+06"):
        convert.check_stored(bits, "f", "t")


def test_the_pass_reports_each_layer(llama_bf16):
    model = llmviz.load_model(str(llama_bf16[0]))
    reports = []
    with watching(lambda done, total, what: reports.append((done, total, what))):
        run_scene(model, IDS)
    layers = [r for r in reports if r[2] == "layer"]
    assert layers == [(i, 3, "layer") for i in range(4)]
    weights = [r for r in reports if r[2] == "weights"]
    assert weights and weights[0][0] == 0 and all(t == weights[0][1] for _, t, _ in weights)


def test_the_memory_plan_counts_what_a_pass_widens(llama_bf16, tiny_blocks):
    model = llmviz.load_model(str(llama_bf16[0]))
    plain = model.graph.peak_bytes(6, model.graph.checkpoints())
    assert model.pass_bytes(6) == plain + 4 * stored_weights.BLOCK  # every weight here streams: one block at a time
    whole = llmviz.load_model(str(llama_bf16[0]), dtype="float32")
    assert whole.pass_bytes(6) == plain  # float32 weights are read where they are


def test_a_model_too_large_to_copy_offers_no_gradients(monkeypatch):
    """Over COPIES_UP_TO parameters, a model's backward pass would hold a float32 copy of its weights: the page is told
    (ModelInfo.cannot, which hides the button) and the request is refused with the same reason."""
    from conftest import local_client
    from llmviz.serve.server import create_app

    nano = llmviz.load_model("nano-gpt")
    client = local_client(create_app([nano]))
    assert client.get("/api/models").json()[0]["cannot"] == {}
    monkeypatch.setattr(stored_weights, "COPIES_UP_TO", 1000)
    why = client.get("/api/models").json()[0]["cannot"]["gradients"]
    assert f"a float32 copy of its {nano.config.n_params:,} weights" in why
    r = client.post("/api/scene", json={"model": "nano-gpt", "text": "CBABBC", "gradients": True})
    assert r.status_code == 413 and r.json()["detail"] == why
