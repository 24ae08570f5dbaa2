"""Peak memory of `llmviz serve` under heavy requests, on a GPT-2-small-shaped model (random weights).

Scenarios, each on a freshly started server at its default limits:
  A. a 1,024-token trace, then the scene and three hovers (the numbers behind each cell) of the same input;
  B. three distinct 1,024-token scenes in sequence;
  C. twenty concurrent scenes of distinct 64-token inputs;
  D. branch trees: k 20, depth 3 on 100 tokens, then k 20, depth 6 on 1,000 tokens;
  E. eight generation sessions, each from 512 tokens to the full context (1,024), undoing as it goes;
  F. fourteen clients that ask for 1,024 tokens' attention (302 MB answers) and never read the answer;
  G. walkthroughs of three distinct 1,024-token inputs.

Reports the server's peak resident memory (VmHWM) and the status of every request. The baseline is the
same server at git revision BASELINE (before the budgets of issue 19; earlier figures were against cb56b6a, the
server before the memory work), run in the same session from a git worktree; a watchdog kills a server past
KILL_AT and reports it as killed, and a scenario still running after LIMIT seconds is stopped and reported as
such. Target: under 3 GiB, every request answered (200, or a clear 413/503/410).

    python benchmarks/server_memory.py [--baseline REV] [--no-baseline] [--only ABCDEFG]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "3611bd8"  # the server before issue 19's budgets (sessions, unsent answers, branches, the cache's count)
GiB = 2**30
KILL_AT = 10 * GiB
TARGET = 3 * GiB
T = 1024
LIMIT = 600  # seconds a scenario may run


def make_model(folder: Path) -> Path:
    """GPT-2 small's shape with random weights (tied unembedding, as GPT-2), as an llmviz weights file."""
    sys.path.insert(0, str(ROOT / "src"))
    from llmviz.core.config import PRESETS, ModelConfig
    from llmviz.core.graph import Graph
    from llmviz.core.model import Model
    from llmviz.io.loading import save_weights

    path = folder / "gpt2-shape.safetensors"
    if path.exists():
        return path
    cfg = ModelConfig.from_dict({**PRESETS["gpt2"].to_dict(), "name": "gpt2-shape"})
    graph, rng = Graph(cfg), np.random.default_rng(0)
    sizes = graph.sizes(0)
    weights = {}
    for n in graph.names("weight"):
        if n == "unembed.W_U":
            weights[n] = weights["embed.W_E"].T
        else:
            weights[n] = rng.standard_normal(graph[n].shape(sizes), dtype=np.float32) * np.float32(0.02)
    save_weights(Model(cfg, weights, None), path)
    return path


def status_of(pid: int, key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1)) * 1024


class Server:
    def __init__(self, src: Path, model: Path):
        env = {**os.environ, "PYTHONPATH": str(src)}
        with socket.socket() as s:  # a free port (the baseline server printed 0 for --port 0)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "llmviz.serve.cli", "serve", "--no-browser", "--port", str(port),
                                      "--model", str(model)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=env, cwd=tempfile.gettempdir())
        self.url = f"http://127.0.0.1:{port}"
        self.killed = False
        self.watch = threading.Thread(target=self._watchdog, daemon=True)
        self.watch.start()
        for _ in range(600):
            try:
                self.get("/api/models")
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server at {src} did not start") from None
                time.sleep(0.1)
        self.idle = status_of(self.proc.pid, "VmRSS")

    def _watchdog(self):
        while self.proc.poll() is None:
            try:
                if status_of(self.proc.pid, "VmRSS") > KILL_AT:
                    self.killed = True
                    self.proc.kill()
            except (OSError, AttributeError):
                return
            time.sleep(0.05)

    def peak(self) -> int:
        return status_of(self.proc.pid, "VmHWM") if self.proc.poll() is None else KILL_AT

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=600) as r:
            return json.load(r)

    def post(self, path, body) -> int:
        return self.post_json(path, body)[0]

    def post_json(self, path, body) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data, {"content-type": "application/json"}, method="POST")
        return self._ask(req)

    def get_status(self, path) -> int:
        return self._ask(urllib.request.Request(self.url + path))[0]

    def _ask(self, req) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(req, timeout=LIMIT) as r:
                body = r.read()
                return r.status, (json.loads(body) if r.headers.get_content_type() == "application/json" else {})
        except urllib.error.HTTPError as e:
            e.read()
            return e.code, {}
        except (urllib.error.URLError, ConnectionError, OSError):
            return 0, {}  # no answer: the server died

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def tokens(seed, n):
    return np.random.default_rng(seed).integers(0, 50257, n).tolist()


def scenario_a(s: Server) -> Counter:
    ids = tokens(1, T)
    out = Counter()
    out[("trace", s.post("/api/trace", {"model": "gpt2-shape", "tokens": ids}))] += 1
    out[("scene", s.post("/api/scene", {"model": "gpt2-shape", "tokens": ids}))] += 1
    # three hovers: the slices the page's explanation of each cell reads (POST /api/cells, one request a cell)
    pattern, head = {"head": 3, "pos": 1000}, "blocks.5.attn."
    for slices in ([(head + n, pattern) for n in ("hook_pattern", "hook_attn_scores", "hook_pattern_max",
                                                  "hook_pattern_sum_exp")],
                   [("probs", {"pos": 1023, "vocab": 7}), ("logits", {"pos": 1023}), ("probs_max", {"pos": 1023}),
                    ("probs_sum_exp", {"pos": 1023})],
                   [("blocks.11.mlp.hook_post", {"pos": 512, "d_mlp": 100}),
                    ("blocks.11.mlp.hook_pre", {"pos": 512, "d_mlp": 100})]):
        out[("cells", s.post("/api/cells", {"model": "gpt2-shape", "tokens": ids,
                                            "slices": [{"tensor": n, "at": at} for n, at in slices]}))] += 1
    return out


def scenario_b(s: Server) -> Counter:
    return Counter(("scene", s.post("/api/scene", {"model": "gpt2-shape", "tokens": tokens(10 + i, T)}))
                   for i in range(3))


def scenario_c(s: Server) -> Counter:
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        ("scene", s.post("/api/scene", {"model": "gpt2-shape", "tokens": tokens(100 + i, 64)})))) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Counter(results)


def scenario_d(s: Server) -> Counter:
    out = Counter()
    for n, k, depth in [(100, 20, 3), (1000, 20, 6)]:
        out[(f"branches {n} tokens", s.post("/api/branches", {"model": "gpt2-shape", "tokens": tokens(20 + n, n),
                                                               "k": k, "depth": depth}))] += 1
    return out


def scenario_e(s: Server) -> Counter:
    out = Counter()
    sids = []
    for i in range(8):
        status, body = s.post_json("/api/sessions", {"model": "gpt2-shape", "tokens": tokens(200 + i, 512)})
        out[("start", status)] += 1
        sids.append(body.get("session"))
    for _ in range(8):  # 64 tokens a round, each session in turn, one undo a round
        for sid in sids:
            out[("step 64", s.post(f"/api/sessions/{sid}/step", {"count": 64}))] += 1
            out[("undo", s.post(f"/api/sessions/{sid}/undo", None))] += 1
    return out


def scenario_f(s: Server) -> Counter:
    out, idle = Counter(), []
    host, port = s.url.removeprefix("http://").split(":")
    for i in range(14):
        data = json.dumps({"model": "gpt2-shape", "tokens": tokens(300 + i, T)}).encode()
        c = socket.create_connection((host, int(port)))
        c.sendall(b"POST /api/attention HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
        idle.append(c)
    for c in idle:  # each answer's status line, once it comes; the rest of the answer is never read
        c.settimeout(LIMIT)
        try:
            out[("attention, unread", int(c.recv(12)[9:12] or 0))] += 1
        except OSError:
            out[("attention, unread", 0)] += 1
    for c in idle:
        c.close()
    return out


def scenario_g(s: Server) -> Counter:
    out = Counter()
    for i in range(3):
        text = " ".join(map(str, tokens(400 + i, T)))
        out[("walkthrough", s.get_status("/api/walkthrough?" + urllib.parse.urlencode({"model": "gpt2-shape",
                                                                                      "input": text})))] += 1
    return out


SCENARIOS = {
    "A: 1,024-token trace, scene, 3 hovers": scenario_a,
    "B: 3 distinct 1,024-token scenes in sequence": scenario_b,
    "C: 20 concurrent 64-token scenes": scenario_c,
    "D: branches, k 20 depth 3 on 100 tokens, k 20 depth 6 on 1,000": scenario_d,
    "E: 8 sessions from 512 tokens to 1,024, with undo": scenario_e,
    "F: 14 unread 1,024-token attention answers": scenario_f,
    "G: walkthroughs of 3 distinct 1,024-token inputs": scenario_g,
}


def measure(src: Path, model: Path, only: str) -> dict:
    out = {}
    for name, run in SCENARIOS.items():
        if name[0] not in only:
            continue
        s = Server(src, model)
        start = time.perf_counter()
        done: list = []
        worker = threading.Thread(target=lambda done=done, run=run, s=s: done.append(run(s)), daemon=True)
        worker.start()
        worker.join(LIMIT)
        timed_out = worker.is_alive()
        peak, idle, killed = s.peak(), s.idle, s.killed
        s.stop()
        statuses = done[0] if done else Counter({("timed out", 0): 1})
        out[name] = {"peak": peak, "idle": idle, "killed": killed, "timed_out": timed_out,
                     "seconds": time.perf_counter() - start,
                     "statuses": dict(sorted((f"{k} {v}", n) for (k, v), n in statuses.items()))}
    return out


def gib(n):
    return f"{n / GiB:.2f} GiB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the baseline server")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--only", default="".join(k[0] for k in SCENARIOS), help="the scenarios' letters")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_model(tmp)
        print(f"model: GPT-2 small shape, {model.stat().st_size / GiB:.2f} GiB of float32 weights")
        results = {"llmviz": measure(ROOT / "src", model, args.only)}
        if not args.no_baseline:
            base = tmp / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), args.baseline],
                           check=True)
            try:
                results[f"baseline {args.baseline}"] = measure(base / "src", model, args.only)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    names = list(results)
    for scenario in [k for k in SCENARIOS if k[0] in args.only]:
        print(f"\n{scenario}")
        for n in names:
            r = results[n][scenario]
            peak = f"> {gib(KILL_AT)} (killed)" if r["killed"] else gib(r["peak"]) + (" (timed out)" if r["timed_out"] else "")
            print(f"  {n:18s} peak {peak:>22s}  idle {gib(r['idle'])}  {r['seconds']:6.1f} s  {r['statuses']}")
        mine = results["llmviz"][scenario]
        verdict = "met" if mine["peak"] < TARGET and not mine["timed_out"] and all(
            k.split()[-1] in ("200", "201", "204", "413", "503", "410") for k in mine["statuses"]) else "NOT met"
        if len(names) > 1:
            print(f"  ratio llmviz / baseline peak: {mine['peak'] / results[names[1]][scenario]['peak']:.2f}x"
                  f"{' (baseline killed: the ratio is an upper bound)' if results[names[1]][scenario]['killed'] else ''}")
        print(f"  target < {gib(TARGET)}, every request answered: {verdict}")


if __name__ == "__main__":
    main()
