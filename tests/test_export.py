"""`llmviz export`: a folder any static host serves. What the exported page answers (computed in node by the same
code the page runs: frontend/src/exported.ts) equals the server's answers: every stored response, and every scene
byte for byte once its weights are filled back in. Hover explains cells in the page (explain.ts, the only copy),
here from the export's stored numbers: for cells of every tensor of six architectures, of a whole pass and of a
generation step, exactly as the served page explains them from the numbers /api/cells gives it, and each one's
value and recomputed result the trace's. Then the folder itself: its size, the CLI, and Chromium on a plain static
file server."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest

import llmviz
from llmviz.core.config import ModelConfig
from llmviz.core.errors import LlmvizError
from llmviz.core.graph import Graph
from llmviz.core.model import KVCache, Model
from llmviz.core.ops import OPS, fmt
from llmviz.io.loading import BUNDLED
from llmviz.serve.cli import main as cli
from llmviz.serve.export import MANIFEST, Export, export, manifest_bytes, read_manifest, request_key
from llmviz.serve.inprocess import call, run_to_end
from llmviz.serve.schemas import json_safe
from llmviz.serve.server import create_app
from pagexplain import explain_all

EXPORTCHECK = Path(__file__).resolve().parent.parent / "frontend" / "dist-test" / "exportcheck.mjs"


def browser(folder: Path, requests: list[dict]) -> list[tuple[int, str, bytes]]:
    """What the exported page answers to these requests."""
    out = subprocess.run(["node", str(EXPORTCHECK), str(folder)], input=json.dumps(requests), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return [(r["status"], r["type"], base64.b64decode(r["body"])) for r in json.loads(out.stdout)]


def same(a, b, where="") -> None:
    """Equal JSON: text exactly, numbers to 1e-9 (both are float64 sums of the same float32 numbers)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, (int, float)) and not isinstance(a, bool) and isinstance(b, (int, float)):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def cells(shape: tuple[int, ...], rng, n: int = 24) -> list[tuple[int, ...]]:
    """Every cell of a small tensor; of a large one its first, its last and n random ones."""
    size = int(np.prod(shape))
    if size <= n:
        return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in range(size)]
    picks = {0, size - 1, *rng.choice(size, n, replace=False).tolist()}
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in sorted(picks)]


def gpt(activation: str) -> Model:
    cfg = ModelConfig(f"tiny-{activation}", n_layer=1, n_head=2, n_embd=16, vocab_size=11, n_ctx=16,
                      activation=activation, tied_unembed=True)
    graph, rng = Graph(cfg), np.random.default_rng(1)
    weights = {n: rng.normal(0, 0.5, graph[n].shape(graph.sizes(0))).astype(np.float32)
               for n in graph.names("weight") if "tied_to" not in graph[n].attrs}
    return Model(cfg, weights, None, source=cfg.name)


def modern(tmp_path_factory, case: str) -> Model:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from test_modern import save
    from test_neox_phi import CASES
    from test_neox_phi import save as save_neox_phi

    folder = tmp_path_factory.mktemp(case)
    (save_neox_phi if case in CASES else save)(folder, case)
    return llmviz.load_model(str(folder))


# Every op of every architecture: GPT-2 (three activations), Llama with GQA, Gemma, Qwen2 with biases, GPT-NeoX with a
# partial rotary and the parallel block (a three-input add), Phi.
MODELS = ["nano-gpt", "relu", "gelu", "llama-gqa3", "gemma-geglu", "qwen2-headdim", "neox-quarter-parallel", "phi-half",
          "shakespeare-char"]
_BUILT: dict[str, Model] = {}


def model_named(name: str, tmp_path_factory, nano) -> Model:
    """One of MODELS, built once per session."""
    if name not in _BUILT:
        _BUILT[name] = (nano if name == "nano-gpt" else gpt(name) if name in ("relu", "gelu")
                        else llmviz.load_model(name) if name in BUNDLED else modern(tmp_path_factory, name))
    return _BUILT[name]


def explained(folder: Path, model: str, context: list[int], past: int, cells: list[dict]) -> list[dict] | dict:
    """The exported page's explanations of cells of a stored pass ({"error"} if it cannot)."""
    [(_, _, body)] = browser(folder, [{"explain": {"model": model, "context": context, "past": past, "cells": cells}}])
    return json.loads(body)


def is_right(e: dict, t, tensor: str, index: tuple) -> None:
    """An explanation shows the trace's value, its formula's result ends in it, and its sources are what the op read."""
    spec, where = t.graph[tensor], f"{tensor}{list(index)}"
    v = float(t[tensor][index])
    value = e["value"] if isinstance(e["value"], float) else float(e["value"])
    assert value == v or (math.isnan(v) and math.isnan(value)), where
    assert [i["i"] for i in e["index"]] == list(index), where
    assert e["target"] == {"tensor": tensor, "ranges": {a: [i, i] for a, i in zip(spec.axes, index)}, "role": "target"}
    if spec.kind in ("weight", "input"):
        assert e["formula"] is None and e["sources"] == [] and (e.get("parameter") or e.get("note")), where
        return
    f = e["formula"]
    result = float(f["result"])
    if v == -math.inf:
        assert result == -math.inf and f["masked"], where
    else:
        assert result == pytest.approx(v, rel=1e-4, abs=1e-5), (where, f["text"])
        # the text ends in the result (in float64: its 4th digit may differ from the float32 value's in a tie)
        assert f["text"].endswith((e["value_text"], fmt(result))) or "no attention" in f["text"] \
            or spec.op in ("embed", "pos_embed", "softmax_max"), (where, f["text"])
    assert e["sources"] and {r["tensor"] for r in e["sources"]} <= set(spec.inputs), where
    for r in e["sources"]:
        shape = t[r["tensor"]].shape
        assert list(r["ranges"]) == list(t.graph[r["tensor"]].axes), where
        assert all(0 <= lo <= hi < n for (lo, hi), n in zip(r["ranges"].values(), shape)), where


@pytest.fixture(scope="module", params=MODELS)
def passes(request, tmp_path_factory, nano):
    """A model's passes written as an export writes them (a whole pass, and a step on a KV cache of all but its
    last token), with cells of every tensor of each: (model, folder, [(past, trace, cells)])."""
    name = request.param
    m = model_named(name, tmp_path_factory, nano)
    ids = [2, 1, 0, 1, 1, 2] if name == "nano-gpt" else [3, 1, 4, 1, 5, 9, 2]
    folder = tmp_path_factory.mktemp(f"export-{name}")
    (folder / "data").mkdir()
    ex = Export(m, [], folder)
    ex.trace(ids, 0)
    ex.trace(ids, len(ids) - 1)
    ex.save_manifest()
    rng = np.random.default_rng(0)
    cache = KVCache(m)
    m.step(cache, ids[:-1], keep=())
    out = []
    for past, t in ((0, m.run(ids)), (len(ids) - 1, m.step(cache, ids[-1:]))):
        asked = []
        for tensor in t.graph.names():
            asked += [(tensor, index) for index in cells(t[tensor].shape, rng)]
            # a region (a downsampled cell stands for one): its cell of largest magnitude is explained
            asked.append((tensor, {a: [0, n - 1] for a, n in zip(t.graph[tensor].axes, t[tensor].shape)}))
        out.append((past, t, asked))
    return m, ids, folder, out


def test_hover_in_the_export_explains_every_tensor_as_the_served_page(passes):
    """Every tensor of each pass: the exported page's explanations (its stored numbers) are the served page's (the
    numbers /api/cells gives, fetched as the explanation asks: one fetch for a cell, two for a region), and right."""
    m, ids, folder, runs = passes
    n = 0
    for past, t, asked in runs:
        queries = [{"tensor": x, "region" if isinstance(i, dict) else "index": i if isinstance(i, dict) else list(i)}
                   for x, i in asked]
        stored = explained(folder, m.name, ids, past, queries)
        served = explain_all(t, asked, stats=True)
        assert len(stored) == len(served) == len(asked)
        for (tensor, index), e, s in zip(asked, stored, served):
            where = f"{m.name} past={past} {tensor}{index}"
            assert e == json.loads(json.dumps(json_safe(s["explanation"]))), where
            if isinstance(index, dict):  # the region's cell of largest magnitude (the first, in a tie)
                a = t[tensor]
                mag = np.where(np.isfinite(a), np.abs(a), -1.0)
                index = tuple(int(i) for i in np.unravel_index(int(np.argmax(mag)), a.shape))
                assert s["rounds"] <= 2, where
            else:
                assert s["rounds"] == 1, where
            is_right(s["explanation"], t, tensor, tuple(index))
            n += 1
    assert n > 600


def test_every_op_is_explained_in_the_browser_too(tmp_path_factory, nano):
    """The models above compute every op the server has (in a whole pass or a step on a KV cache, as `passes` runs
    them): each op's copy in explain.ts was checked. Stands alone: it reads the models' graphs."""
    seen = set()
    for name in MODELS:
        m = model_named(name, tmp_path_factory, nano)
        for g in (m.graph, Graph(m.config, past=1)):
            seen |= {g[t].op for t in g.names() if g[t].op}
    neuron = llmviz.load_model("neuron").graph  # (its σ: explained by the page as test_neuron.py checks)
    seen |= {neuron[t].op for t in neuron.names() if neuron[t].op}
    assert set(OPS) <= seen, f"no tested model computes {set(OPS) - seen}"


@pytest.fixture(scope="module")
def nano_export(tmp_path_factory, nano):
    folder = tmp_path_factory.mktemp("nano-export") / "site"
    summary = export(nano, ["CBABBC"], folder)
    return folder, summary


def same_answers_as_the_server(folder: Path, model: Model) -> int:
    """Each response the export stores (scenes with their weights filled back in) is byte for byte what the server
    answers to the same request. Returns how many scenes were compared."""
    manifest = read_manifest(folder)
    requests = []
    for key in manifest["responses"]:
        method, path, pairs, body = json.loads(key)
        query = urlencode([tuple(p) for p in pairs])
        requests.append({"method": method, "url": path + (f"?{query}" if query else ""),
                         **({} if body is None else {"body": body})})
    answers = browser(folder, requests)
    app = create_app([model])
    scenes = 0
    for req, (status, kind, body) in zip(requests, answers):
        want = run_to_end(call(app, req["method"], req["url"], json.dumps(req["body"]) if "body" in req else None))
        if req["url"] == "/api/models":  # the export lists its own model only
            assert [m["name"] for m in json.loads(body)] == [model.name]
            continue
        assert (status, kind) == want[:2], req
        assert body == want[2], f"{req}: the export's answer differs from the server's"
        scenes += req["url"] == "/api/scene"
    return scenes


def test_every_stored_answer_is_the_servers(nano_export, nano):
    """Every stored answer is the server's, and a generation session replays the server's steps."""
    folder, _ = nano_export
    assert same_answers_as_the_server(folder, nano) >= 6  # the input's, and each generation step's on the cache

    body = {"model": "nano-gpt", "text": "CBABBC", "temperature": 0, "seed": 0}
    steps = browser(folder, [{"method": "POST", "url": "/api/sessions", "body": body}]
                    + [{"method": "POST", "url": "/api/sessions/exported/step", "body": {"count": 1}}] * 3
                    + [{"method": "POST", "url": "/api/sessions/exported/undo"}])
    states = [json.loads(b) for _, _, b in steps]
    assert [s["view_text"] for s in states] == ["CBABBC", "CBABBCA", "CBABBCAB", "CBABBCABB", "CBABBCAB"]
    assert [st[0] for st in steps] == [201, 200, 200, 200, 200]


def test_a_wide_model_with_downsampled_weights_and_a_step_limit(tmp_path):
    """Weights too large to draw whole are downsampled in the scene: stored as they are, not filled in. Generation
    stops at --steps with a message."""
    from conftest import random_model

    m = random_model()
    export(m, ["3 1 4 1 5 9"], tmp_path / "site", steps=2)
    manifest = read_manifest(tmp_path / "site")
    scene = next(k for k in manifest["responses"] if '"/api/scene"' in k)
    _, _, payload = browser(tmp_path / "site", [{"method": "POST", "url": "/api/scene",
                                                 "body": json.loads(scene)[3]}])[0]
    n = int.from_bytes(payload[:8], "little")
    blocks = json.loads(json.loads(payload[8:8 + n])["__metadata__"]["scene"])["blocks"]
    assert any(b["kind"] == "weight" and b["tile"] != [1, 1] for b in blocks)  # the case this test is for
    assert same_answers_as_the_server(tmp_path / "site", m) >= 3
    # A weight drawn downsampled has a file of its own, read by a hover only when it needs it.
    files = {n: w["file"] for n, w in manifest["weights"].items()}
    assert list(files.values()).count(files["embed.W_E"]) == 1  # 5,000 × 64, drawn downsampled
    assert list(files.values()).count(files["blocks.0.attn.W_Q"]) > 1  # drawn whole, with the others so drawn
    ids, t = [3, 1, 4, 1, 5, 9], m.run([3, 1, 4, 1, 5, 9])
    cells = [("hook_embed", (2, 7)), ("blocks.0.attn.hook_q", (1, 2, 3)), ("embed.W_E", (4000, 5)), ("logits", (5, 4321))]
    got = explained(tmp_path / "site", m.name, ids, 0, [{"tensor": x, "index": list(i)} for x, i in cells])
    for (tensor, index), e, s in zip(cells, got, explain_all(t, cells)):
        assert e == json.loads(json.dumps(json_safe(s))), tensor
        is_right(s, t, tensor, index)
    assert got[3]["index"][1]["shown"] == "4321"  # (a vocabulary without a tokenizer: ids)
    body = {"model": m.name, "text": "3 1 4 1 5 9", "temperature": 0, "seed": 0}
    steps = browser(tmp_path / "site", [{"method": "POST", "url": "/api/sessions", "body": body}]
                    + [{"method": "POST", "url": "/api/sessions/exported/step", "body": {"count": 1}}] * 3)
    assert [s for s, _, _ in steps] == [201, 200, 200, 409]
    assert json.loads(steps[3][2])["detail"].startswith("this page holds the first 2 generated tokens only")


def test_what_was_not_exported_gets_a_clear_404(nano_export):
    folder, _ = nano_export
    other = browser(folder, [
        {"method": "POST", "url": "/api/scene", "body": {"model": "nano-gpt", "text": "AAB", "heads": "side"}},
        {"explain": {"model": "nano-gpt", "context": [0, 0, 1], "past": 0, "cells": [{"tensor": "probs", "index": [0, 0]}]}},
        {"method": "POST", "url": "/api/sessions", "body": {"model": "nano-gpt", "text": "CBABBC", "temperature": 1,
                                                          "seed": 0}},
    ])
    said = [json.loads(body).get("detail") or json.loads(body)["error"] for _, _, body in other]
    assert [status for status, _, _ in other] == [404] * 3
    assert said[0] == ('"AAB" is not saved in this page: it holds nano-gpt on the saved input CBABBC and what the model '
                       "writes after it only. Pick a saved input above; to try any input, run llmviz on a computer "
                       "(llmviz serve).")
    assert said[1].startswith("This is not saved in this page")
    assert said[2].startswith("This page holds generation with the panel's first settings only (greedy: temperature 0, "
                              "seed 0), not temperature 1. Other settings need llmviz serve")


def test_the_folder_fits_the_size_budget_and_names_only_itself(nano_export):
    folder, summary = nano_export
    files = [p for p in folder.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    assert total == summary["bytes"] <= 1_000_000
    html = (folder / "index.html").read_text()
    assert "/api/" not in html and "http://" not in html and "https://" not in html
    assert {p.name for p in folder.iterdir()} == {"index.html", "style.css.gz", "app.js.gz", "data"}


def test_cli_exports_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "site"
    with pytest.raises(SystemExit) as done:
        cli(["export", "--model", "nano-gpt", "--input", "CBABBC", "--input", "AABCCB", "--out", str(out)])
    assert done.value.code == 0
    said = capsys.readouterr().out
    assert "2 inputs" in said and str(out) in said
    assert read_manifest(out)["inputs"] == ["CBABBC", "AABCCB"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    for args, message in [
        (["--input", "CBAXBC", "--out", str(tmp_path / "x")], "'X'"),
        (["--input", "CBABBC", "--out", str(tmp_path / "notes")],
         f"{tmp_path / 'notes' / 'mine.txt'} is not part of an earlier llmviz export"),
        (["--out", str(tmp_path / "y")], "--input"),
    ]:
        with pytest.raises(SystemExit) as failed:
            cli(["export", "--model", "nano-gpt", *args])
        assert failed.value.code != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too), by its path relative to it, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_export_again_replaces_its_own_files_only(tmp_path, nano):
    """An earlier export is replaced without --force: its listed files the new one does not use are deleted, and
    nothing else (a file beside the folder, the folder itself)."""
    site = tmp_path / "site"
    (tmp_path / "beside.txt").write_text("beside\n")
    export(nano, ["CBABBC"], site)
    first = read_manifest(site)
    assert first["format"] == "llmviz-export-1"
    assert sorted(files(site)) == first["files"]  # the manifest lists every file the export wrote, itself included
    export(nano, ["AABCCB"], site)
    second = read_manifest(site)
    assert second["inputs"] == ["AABCCB"] and sorted(files(site)) == second["files"]
    assert set(first["files"]) - set(second["files"])  # the first input's own answers are gone
    assert (tmp_path / "beside.txt").read_text() == "beside\n"
    assert same_answers_as_the_server(site, nano) >= 1


def test_a_tampered_manifest_deletes_nothing_outside_the_folder(tmp_path, nano):
    """Paths in the manifest that leave the folder, are absolute, or are symlinks are never deleted; a symlink in the
    folder is something else in the way."""
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("outside.txt", "absolute.txt", "linked.txt"):
        (elsewhere / name).write_text(f"{name} stays\n")
    export(nano, ["CBABBC"], site)
    manifest = read_manifest(site)
    manifest["files"] += ["../elsewhere/outside.txt", str(elsewhere / "absolute.txt"), "data/../../elsewhere/outside.txt",
                          "link.txt", "", 7, None]
    (site / MANIFEST).write_bytes(manifest_bytes(manifest))
    export(nano, ["AABCCB"], site)  # an earlier export: replaced, and what it lists outside the folder kept
    assert files(elsewhere) == {n: f"{n} stays\n".encode() for n in ("absolute.txt", "linked.txt", "outside.txt")}

    manifest = read_manifest(site)
    manifest["files"] += ["link.txt"]
    (site / MANIFEST).write_bytes(manifest_bytes(manifest))
    (site / "link.txt").symlink_to(elsewhere / "linked.txt")
    with pytest.raises(LlmvizError, match="^" + re.escape(f"{site / 'link.txt'} is not part of an earlier llmviz export")):
        export(nano, ["CBABBC"], site)
    export(nano, ["CBABBC"], site, force=True)
    assert (site / "link.txt").is_symlink() and (elsewhere / "linked.txt").read_text() == "linked.txt stays\n"


def test_a_data_symlink_is_never_written_through(tmp_path, nano):
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "manifest.json").write_text("theirs\n")
    site.mkdir()
    (site / "data").symlink_to(elsewhere)
    with pytest.raises(LlmvizError, match="^" + re.escape(f"{site / 'data'} is not part of an earlier llmviz export")):
        export(nano, ["CBABBC"], site)
    with pytest.raises(LlmvizError, match="^" + re.escape(f"{site / 'data'} is not a folder")):
        export(nano, ["CBABBC"], site, force=True)
    assert files(elsewhere) == {"manifest.json": b"theirs\n"}


def test_a_failure_midway_leaves_the_earlier_export_whole(tmp_path, nano, monkeypatch):
    """Until the new manifest is in place the earlier export is untouched, and the data files written so far are
    taken away again; a failed export into a new folder leaves no folder."""
    site = tmp_path / "site"
    export(nano, ["CBABBC"], site)
    before = files(site)

    def broken(self):
        raise OSError("No space left on device")

    monkeypatch.setattr(Export, "save_manifest", broken)
    with pytest.raises(OSError, match="No space left"):
        export(nano, ["AABCCB"], site)
    assert files(site) == before
    with pytest.raises(OSError, match="No space left"):
        export(nano, ["AABCCB"], tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_request_keys_are_written_as_exported_ts_writes_them():
    """The same literals as frontend/test/export.test.ts: a stored answer is found by the key the page computes."""
    from llmviz.serve.export import _canonical

    assert _canonical({"b": [1, {"d": 1, "c": 2}], "a": "é"}) == '{"a":"é","b":[1,{"c":2,"d":1}]}'
    assert request_key("get", "/api/walkthrough?model=nano-gpt&input=CBABBC", None) == \
        '["GET","/api/walkthrough",[["input","CBABBC"],["model","nano-gpt"]],null]'
    assert _canonical({"temperature": 1.0, "top_p": 0.9}) == '{"temperature":1,"top_p":0.9}'


def test_a_bpe_model_with_spaces_and_accents_in_its_inputs(tmp_path):
    """Text that needs escaping in an address (the walkthrough's query) and a byte-level BPE tokenizer."""
    pytest.importorskip("torch")
    pytest.importorskip("tokenizers")
    from reference import hf_gpt2_folder, train_bpe

    hf_gpt2_folder(tmp_path / "bpe", train_bpe(300), vocab_size=300, n_embd=32, n_layer=1, n_head=2, n_positions=32)
    m = llmviz.load_model(str(tmp_path / "bpe"))
    export(m, ["héllo wörld", "the fox"], tmp_path / "site", steps=1)
    assert same_answers_as_the_server(tmp_path / "site", m) >= 4
    manifest = read_manifest(tmp_path / "site")
    assert request_key("GET", "/api/walkthrough?model=bpe&input=h%C3%A9llo+w%C3%B6rld", None) in manifest["responses"]
