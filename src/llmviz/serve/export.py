"""`llmviz export`: the page and every answer it needs for a few inputs, written to a folder that any static web
host serves. No server code runs and no request leaves the folder.

The answers are the server's own: each request the page makes for an exported input (the scene, the
walkthrough, the lens, the attention maps, the branch tree, the attribution and patching tabs as they open, a
generation session step by step) is sent to
the server's app in this process (see inprocess.call) and its response stored, gzip-compressed, under
`data/`. `data/manifest.json` maps each request to its file; the page's exported transport
(frontend/src/exported.ts) looks requests up there. Hover explanations are computed in the browser
(frontend/src/explain.ts, the one copy of every explanation) from the float32 numbers of each pass, stored here;
tests/test_export.py checks that they equal the served page's, cell by cell.

Every scene holds the same weights: each scene's file leaves the cells of the weights it draws whole out, and the
page fills them in from the float32 weights, which it has for hover (one file for those; every other weight a
file of its own, fetched when a hover needs it).

The folder: the manifest says it is llmviz's ("format") and lists every file the export wrote ("files"). An export
goes into a new or empty folder, or one that holds an earlier export and nothing else; anything else in the folder
is refused (the first such file named) before anything is computed, unless `force`, and then it is kept: the
export is written beside it, replacing only files of its own names. The new data files are written first, then
the manifest and the page; only then are the earlier export's listed files that the new one does not use deleted
(each a regular file inside the folder, reached through no symlink: a listed path that is not is never deleted).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np

from ..core.errors import LlmvizError
from ..core.graph import Graph
from ..core.model import KVCache, Model
from ..core.weights import widen
from ..io.files import InTheWay, refuse_to_replace, write_bytes
from ..io.safetensors_file import to_bytes as safetensors_bytes
from .inprocess import call, run_to_end
from .routes.page import page_with, static_dir
from .schemas import json_safe
from .server import create_app

BRANCH_K, BRANCH_DEPTH = 3, 2  # what the branch panel asks for first (frontend/src/branchtree.ts)
BRANCH_EXPAND = 2  # levels below the first tree whose expansion is stored too
LENS_K = 5  # the lens panel's top tokens (frontend/src/lensgrid.ts)
GENERATE = {"temperature": 0, "seed": 0}  # the generation panel's settings as it opens: greedy
STEPS = 8  # generated tokens stored per input, at most (nano-gpt's context ends after 6)
MANIFEST = "data/manifest.json.gz"  # gzip-compressed JSON, as the data files
OLD_MANIFEST = "data/manifest.json"  # (an earlier version's export kept it uncompressed)
FORMAT = "llmviz-export-1"  # the manifest's "format": what marks a folder as an earlier llmviz export
PAGE_FILES = ("index.html", "style.css.gz", "app.js.gz")  # the export's files outside data/


def request_key(method: str, url: str, body) -> str:
    """One request, written the same way here and in exported.ts: the method, the path, the query's pairs
    sorted and the JSON body with its keys sorted."""
    parts = urlsplit(url)
    pairs = sorted(parse_qsl(parts.query, keep_blank_values=True))
    return _canonical([method.upper(), parts.path, [list(p) for p in pairs], body])


def _canonical(x) -> str:
    return json.dumps(_plain_numbers(x), ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _plain_numbers(x):
    """A float that is a whole number is written as JavaScript writes it: 1, not 1.0."""
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, dict):
        return {k: _plain_numbers(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain_numbers(v) for v in x]
    return x


@dataclass
class Export:
    model: Model
    inputs: list[str]
    out: Path
    max_steps: int = STEPS
    files: dict[str, int] = field(default_factory=dict)  # path -> bytes written
    responses: dict = field(default_factory=dict)
    sessions: dict = field(default_factory=dict)
    traces: dict = field(default_factory=dict)
    drawn: set = field(default_factory=set)  # the weights some scene draws whole (filled in by the page)
    steps: dict = field(default_factory=dict)  # a generated text -> the KV-cache step whose view is stored
    created: list = field(default_factory=list)  # the data files that were not there before (removed on failure)

    def write(self, data: bytes, ext: str) -> str:
        """A data file named by its content (two equal answers share one), gzip-compressed."""
        name = f"data/{hashlib.sha256(data).hexdigest()[:20]}.{ext}.gz"
        if name not in self.files:
            packed = gzip.compress(data, 9, mtime=0)
            if not os.path.lexists(self.out / name):
                self.created.append(name)
            write_bytes(self.out / name, packed)
            self.files[name] = len(packed)
        return name

    def float32(self, data: bytes) -> dict:
        """A safetensors file of float32 (and int32) numbers, its buffer byte-shuffled."""
        at = 8 + int.from_bytes(data[:8], "little")
        return {"file": self.write(data[:at] + shuffled(data[at:], 4), "bin"), "shuffle": [at, 4]}

    def stored(self, status: int, kind: str, body: bytes) -> dict:
        ext = "json" if "json" in kind else "bin"
        return {"file": self.write(body, ext), "status": status, "type": kind}

    def trace(self, ids: list[int], past: int) -> None:
        """The float32 numbers of one pass (of the last len(ids) - past tokens on a KV cache of the first `past`),
        with its graph and the names of its tokens: what explain.ts reads to explain a cell."""
        m = self.model
        key = _canonical([m.name, ids, past])
        if key in self.traces:
            return
        if past:
            cache = KVCache(m)
            m.step(cache, ids[:past], keep=())
            t = m.step(cache, ids[past:])
            graph = Graph(m.config, past=past)
        else:
            t, graph = m.run(ids), m.graph
        g = json_safe(graph.to_json())
        self.traces[key] = {
            "numbers": self.float32(bytes(t.to_bytes(names=t.computed()))),
            "graph": self.write(_canonical(g).encode(), "json"),
            "token_strs": t.token_strs, "past": past,
        }

    def weight_files(self) -> dict[str, dict]:
        """Each weight's float32 file: the weights a scene draws whole share one (the page needs them all to
        draw), every other weight has its own (a hover fetches the one it reads)."""
        m = self.model
        weights = m.weights
        assert weights is not None  # an export computes passes: its model has weights
        names = m.graph.names("weight")
        drawn = [n for n in names if n in self.drawn]

        def file(group) -> dict:
            return self.float32(bytes(safetensors_bytes({n: np.ascontiguousarray(widen(weights[n])) for n in group}, {})))

        shared = file(drawn) if drawn else {}
        return {n: shared if n in self.drawn else file([n]) for n in names}

    def save_manifest(self) -> dict:
        """data/manifest.json: every stored answer, session and pass, the weights and the vocabulary's tokens;
        its format, and every file of the export (data files, the manifest and the page's files)."""
        m = self.model
        weights = self.weight_files()
        vocab = self.write(_canonical([m.token_strs([i])[0] for i in range(m.config.vocab_size)]).encode(), "json")
        manifest = {
            "format": FORMAT, "model": m.name, "inputs": self.inputs, "responses": self.responses,
            "sessions": self.sessions, "traces": self.traces, "steps": self.steps, "weights": weights, "vocab": vocab,
            "files": sorted([*self.files, MANIFEST, *PAGE_FILES]),
        }
        write_bytes(self.out / MANIFEST, manifest_bytes(manifest))
        return manifest


async def _record(ex: Export, app) -> None:
    m, name = ex.model, ex.model.name

    async def ask(method: str, url: str, body=None, keep: bool = True) -> tuple[int, str, bytes]:
        status, kind, data = await call(app, method, url, None if body is None else json.dumps(body))
        if status >= 500:
            raise LlmvizError(f"exporting {method} {url} failed: {data[:200].decode(errors='replace')}")
        if keep:
            key = request_key(method, url, body)
            scene = url == "/api/scene" and status == 200
            ex.responses[key] = _scene_entry(ex, kind, data) if scene else ex.stored(status, kind, data)
        return status, kind, data

    _, kind, data = await ask("GET", "/api/models", keep=False)  # this model only: the export holds no other
    ex.responses[request_key("GET", "/api/models", None)] = ex.stored(
        200, kind, json.dumps([x for x in json.loads(data) if x["name"] == name]).encode())
    await ask("GET", f"/api/models/{name}/embedding-map")  # (the same for every input: its weights')
    if m.config.arch == "neuron":  # its plot, of its own weights (a learner's weights need llmviz serve)
        await ask("GET", f"/api/models/{name}/decision")
    for text in ex.inputs:
        ids = m.encode(text)
        for heads in ({"heads": "side"}, {}):  # the page's first request names no layout: the default, side by side
            await ask("POST", "/api/scene", {"model": name, "text": text, **heads})
            if text == m.config.example:  # the scene asked for with no input is the example's
                await ask("POST", "/api/scene", {"model": name, **heads})
        await ask("GET", "/api/walkthrough?" + urlencode({"model": name, "input": text}))
        await ask("POST", "/api/lens", {"model": name, "text": text, "k": LENS_K})
        await ask("POST", "/api/attention", {"model": name, "text": text})
        await ask("POST", "/api/attribution", {"model": name, "text": text})  # (the tabs' first answers: their
        await ask("POST", "/api/patching", {"model": name, "clean": text})  # other choices need llmviz serve)
        await _branches(ask, name, ids)
        await _generation(ex, ask, name, text)
        ex.trace(ids, 0)


async def _branches(ask, name: str, ids: list[int]) -> None:
    """The first tree, and each node's expansion down to BRANCH_EXPAND levels below it."""
    status, _, data = await ask("POST", "/api/branches", {"model": name, "tokens": ids, "k": BRANCH_K, "depth": BRANCH_DEPTH})
    if status != 200:  # (a model without next tokens, a classifier: its refusal is stored, and answers the page)
        return
    level = [[c["id"] for c in path] for path in _paths(json.loads(data)["children"], BRANCH_DEPTH)]
    for _ in range(BRANCH_EXPAND):
        nxt = []
        for path in level:
            status, _, data = await ask("POST", "/api/branches", {"model": name, "tokens": ids + path, "k": BRANCH_K, "depth": 1})
            if status == 200:
                nxt += [path + [c["id"]] for c in json.loads(data)["children"]]
        level = nxt


def _paths(children: list[dict], depth: int) -> list[list[dict]]:
    """The paths from the root to every node `depth` levels down."""
    if depth == 1:
        return [[c] for c in children]
    return [[c, *p] for c in children for p in _paths(c["children"], depth - 1)]


async def _generation(ex: Export, ask, name: str, text: str) -> None:
    """A greedy session from `text` to its end, each step's answer, each undo's, and each step's view on the KV
    cache (its scene, and its numbers for hover)."""
    body = {"model": name, "text": text, **GENERATE}
    status, kind, data = await ask("POST", "/api/sessions", body, keep=False)
    if status != 201:
        ex.sessions[_canonical(body)] = {"start": ex.stored(status, kind, data)}
        return
    sid = json.loads(data)["session"]

    def kept(status, kind, data):
        return ex.stored(status, kind, data.replace(sid.encode(), b"exported"))

    entry = {"start": kept(status, kind, data), "steps": [], "undo": []}
    while len(entry["steps"]) < ex.max_steps:
        status, kind, data = await ask("POST", f"/api/sessions/{sid}/step", {"count": 1}, keep=False)
        if status != 200:
            entry["over"] = kept(status, kind, data)
            break
        state = json.loads(data)
        entry["steps"].append(kept(status, kind, data))
        shown = min(len(state["tokens"]), state["n_ctx"])
        view = ex.model.encode(state["view_text"])
        await ask("POST", "/api/scene", {"model": name, "text": state["view_text"], "heads": "side", "past": shown - 1})
        ex.steps[state["view_text"]] = shown - 1
        ex.trace(view, shown - 1)
        if state["done"]:
            status, kind, data = await ask("POST", f"/api/sessions/{sid}/step", {"count": 1}, keep=False)
            entry["over"] = kept(status, kind, data)
            break
    if "over" not in entry:  # more could be generated, but the export stops here
        detail = (f"this page holds the first {ex.max_steps} generated tokens only: to generate more, run llmviz serve "
                  "(or export again with more --steps)")
        entry["over"] = ex.stored(409, "application/json", json.dumps({"detail": detail}).encode())
    for _ in entry["steps"]:
        entry["undo"].insert(0, kept(*await ask("POST", f"/api/sessions/{sid}/undo", keep=False)))
    await ask("DELETE", f"/api/sessions/{sid}", keep=False)
    ex.sessions[_canonical(body)] = entry


def _scene_entry(ex: Export, kind: str, data: bytes) -> dict:
    """A scene, stored without the cells of its weights (the same in every scene): exported.ts's fillWeights
    puts them back from the float32 weights (tests/test_export.py checks that the bytes come back whole). Its
    atlas is byte-shuffled, for gzip."""
    scene, atlas, at = _read_scene(data)
    for b in scene["blocks"]:
        if from_weights(b):
            ex.drawn.add(b["tensor"])
            for x, y, w, h in b["slabs"]:
                atlas[y:y + h, x:x + w] = 0
    entry = ex.stored(200, kind, data[:at] + shuffled(atlas.tobytes(), 2))
    entry.update(shuffle=[at, 2], weights=True)
    return entry


def from_weights(block: dict) -> bool:
    """Whether a block's cells are its weight's numbers one for one (as float16), which the page can make
    from the float32 weights: a weight drawn whole, neither tiled nor merged (exported.ts's fromWeights)."""
    return block["kind"] == "weight" and block["tile"] == [1, 1] and not block["merged"] and bool(block["slabs"])


def shuffled(data: bytes, width: int) -> bytes:
    """Byte j of every `width`-byte number together, then byte j + 1: gzip packs float arrays tighter so."""
    return np.frombuffer(data, np.uint8).reshape(-1, width).T.tobytes()


def _read_scene(data: bytes) -> tuple[dict, np.ndarray, int]:
    """A scene payload's scene, its atlas, and where the atlas's bytes start."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    info = header["atlas"]
    start, end = info["data_offsets"]
    assert end == len(data) - 8 - n
    atlas = np.frombuffer(data[8 + n + start:8 + n + end], np.float16).reshape(info["shape"]).copy()
    return json.loads(header["__metadata__"]["scene"]), atlas, 8 + n + start


def page(ex: Export, weights: dict) -> str:
    """The llmviz page, told it is an export (its data in data/) and which view opens with no address, loading
    its styles from style.css.gz and its script from app.js.gz (hidden until the styles are in). While it loads, it asks for the manifest and the weights its scenes draw, and
    (opened with no address, or on the first input) the first view's scene: as the served page's early requests
    do."""
    model, first = ex.model.name, ex.inputs[0]
    scene = ex.responses[request_key("POST", "/api/scene", {"model": model, "text": first})]["file"]
    setup = f"""<script>
    window.__llmvizExport = {json.dumps(MANIFEST)};
    (function () {{
      var q = new URLSearchParams(location.search), files = {json.dumps(sorted({w["file"] for n, w in weights.items() if n in ex.drawn}))};
      if (!q.has("model")) q.set("model", {json.dumps(model)});  // an address that names nothing opens the first input
      if (q.get("model") === {json.dumps(model)} && !q.has("input")) q.set("input", {json.dumps(first)});
      if (q.get("model") === {json.dumps(model)} && q.get("input") === {json.dumps(first)} && !q.has("past")) files.push({json.dumps(scene)});
      window.__llmvizSearch = "?" + q;
      window.__llmvizManifest = fetch({json.dumps(MANIFEST)});
      window.__llmvizPrefetch = {{}};
      files.forEach(function (f) {{ window.__llmvizPrefetch[f] = fetch(f); }});
    }})();
  </script>"""
    loader = (static_dir() / "export-loader.js").read_text(encoding="utf-8")
    hide = "<style>body { visibility: hidden; }</style>"  # (export-loader.js shows it once style.css.gz is in)
    return page_with(f'{setup}<script type="module">{loader}</script>').replace(
        '<link rel="stylesheet" href="style.css">', hide)


def own_file(out: Path, rel) -> str | None:
    """`rel` as a path relative to `out`, if it names a regular file inside `out` reached through no symlink (not
    absolute, no `..`); else None."""
    if not isinstance(rel, str) or not rel or "\\" in rel or os.path.isabs(rel) or Path(rel).drive:
        return None
    parts = PurePosixPath(rel).parts
    if not parts or ".." in parts:
        return None
    at = out
    for part in parts[:-1]:
        at = at / part
        if at.is_symlink() or not at.is_dir():
            return None
    try:
        return "/".join(parts) if stat.S_ISREG(os.lstat(at / parts[-1]).st_mode) else None
    except OSError:
        return None


def manifest_bytes(manifest: dict) -> bytes:
    """The manifest as its file holds it: canonical JSON, gzip-compressed."""
    return gzip.compress(_canonical(manifest).encode(), 9, mtime=0)


def read_manifest(out: str | Path, name: str = MANIFEST) -> dict:
    """An export's manifest (an earlier version's uncompressed one: name=OLD_MANIFEST)."""
    raw = (Path(out) / name).read_bytes()
    return json.loads(gzip.decompress(raw) if name == MANIFEST else raw)


def earlier_export(out: Path) -> set[str]:
    """The files of an earlier llmviz export in `out`, as its manifest lists them, each a regular file inside `out`
    (own_file; a listed path that is not is left out, so it is never deleted). Empty if `out` holds no manifest
    marked as llmviz's."""
    for name in (MANIFEST, OLD_MANIFEST):
        if not own_file(out, name):
            continue
        try:
            manifest = read_manifest(out, name)
        except (OSError, ValueError, EOFError, gzip.BadGzipFile):
            continue
        if isinstance(manifest, dict) and manifest.get("format") == FORMAT and isinstance(manifest.get("files"), list):
            return {name} | {p for p in (own_file(out, f) for f in manifest["files"]) if p}
    return set()


def _first_foreign(out: Path, own: set[str]) -> str | None:
    """The first thing in `out`, in sorted order, that is not one of the `own` files: a file, a symlink, or a folder
    that holds none of them and is not empty (named as a whole, not walked). Symlinks are not followed."""
    keep = {"data"} | {p.as_posix() for f in own for p in PurePosixPath(f).parents}

    def first(folder: Path, prefix: str) -> str | None:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                found = first(Path(entry.path), rel + "/") if rel in keep else None if _empty(entry.path) else rel
            else:
                found = None if rel in own else rel
            if found:
                return found
        return None

    return first(out, "")


def check_folder(out, force: bool = False) -> set[str]:
    """Refuse to export into `out` (one line naming the first file in the way) unless it is new, empty, or holds an
    earlier llmviz export and nothing else, or `force` is set; refuse in any case a folder where the export writes
    a file, or anything but a folder at `out` or `out`/data. Returns the earlier export's files."""
    out = Path(out)
    if not os.path.lexists(out):
        return set()
    if not out.is_dir():
        raise InTheWay(f"{out} is not a folder: give a folder for the export (new, empty, or an earlier export)")
    own = earlier_export(out)
    foreign: str | None
    mine = [n for n in (MANIFEST, OLD_MANIFEST) if own_file(out, n)]
    if mine and not own:  # named first: it is why the folder is not an earlier export
        foreign, why = mine[0], "is not marked as an llmviz export's manifest"
    else:
        foreign, why = _first_foreign(out, own), "is not part of an earlier llmviz export"
    if foreign:
        refuse_to_replace(out / foreign, force, why, "export into a new or empty folder, or pass --force to write the "
                          "export beside it (files of its own names are replaced, nothing else)")
    data = out / "data"
    if data.is_symlink() or (data.exists() and not data.is_dir()):
        raise InTheWay(f"{data} is not a folder: the export writes its data files there; move it away")
    for name in (*PAGE_FILES, MANIFEST):
        if (out / name).is_dir() and not (out / name).is_symlink():
            raise InTheWay(f"{out / name} is a folder: the export writes a file there; move it away")
    return own


def export(model: Model, inputs: list[str], out: str | Path, steps: int = STEPS, force: bool = False) -> dict:
    """Write the export of `model` on `inputs` into the folder `out` (new, empty, or an earlier export, which is
    replaced; with `force`, any folder: its other files are kept), with up to `steps` generated tokens per input.
    Returns what was written: {"files": n, "bytes": total, "inputs": [...]}."""
    model.require_weights()
    if not inputs:
        raise LlmvizError("give at least one input (--input TEXT)")
    inputs = list(dict.fromkeys(inputs))
    for text in inputs:
        model.encode(text)  # an unknown token or an input longer than the context: refused before anything is written
    out = Path(out)
    earlier = check_folder(out, force)
    made = [f for f in (out, out / "data") if not f.exists()]
    (out / "data").mkdir(parents=True, exist_ok=True)
    ex = Export(model, inputs, out, steps)
    manifest = None
    try:
        run_to_end(_record(ex, create_app([model])))
        manifest = ex.save_manifest()
        static = static_dir()
        write_bytes(out / "app.js.gz", gzip.compress((static / "app.js").read_bytes(), 9, mtime=0))
        write_bytes(out / "style.css.gz", gzip.compress((static / "style.css").read_bytes(), 9, mtime=0))
        write_bytes(out / "index.html", page(ex, manifest["weights"]).encode())
    except BaseException:
        if manifest is None:  # the earlier export is whole: take away only what this one added
            for name in ex.created:
                (out / name).unlink(missing_ok=True)
            for folder in reversed(made):
                _remove_if_empty(folder)
        raise
    for rel in sorted(earlier - set(manifest["files"])):
        if own_file(out, rel):
            (out / rel).unlink()
            for parent in PurePosixPath(rel).parents[:-1]:
                _remove_if_empty(out / parent)
    sizes = [(out / f).stat().st_size for f in manifest["files"]]
    return {"files": len(sizes), "bytes": sum(sizes), "inputs": inputs}


def _empty(folder) -> bool:
    with os.scandir(folder) as entries:
        return next(entries, None) is None


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()
