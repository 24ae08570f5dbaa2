"""Peak memory of `llmviz serve` under heavy requests, on a GPT-2-small-shaped model (random weights).

Scenarios, each on a freshly started server:
  A. a 1,024-token trace, then the scene and three hovers (explain) of the same input;
  B. three distinct 1,024-token scenes in sequence;
  C. twenty concurrent scenes of distinct 64-token inputs.

Reports the server's peak resident memory (VmHWM) and the status of every request. The baseline is the
same server as it was before the memory work (git revision BASELINE), run in the same session from a git
worktree; a watchdog kills a server past KILL_AT and reports it as killed. Target: under 3 GiB, every
request answered (200, or a clear 413/503).

    python benchmarks/server_memory.py [--baseline REV] [--no-baseline]
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
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "cb56b6a"  # the server before the memory work
GiB = 2**30
KILL_AT = 10 * GiB
TARGET = 3 * GiB
T = 1024


def make_model(folder: Path) -> Path:
    """GPT-2 small's shape with random weights (tied unembedding, as GPT-2), as an llmviz weights file."""
    sys.path.insert(0, str(ROOT / "src"))
    from llmviz.config import PRESETS, ModelConfig
    from llmviz.graph import Graph
    from llmviz.loading import save_weights
    from llmviz.model import Model

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
        self.proc = subprocess.Popen([sys.executable, "-m", "llmviz.cli", "serve", "--no-browser", "--port", str(port),
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
        req = urllib.request.Request(self.url + path, json.dumps(body).encode(), {"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                r.read()
                return r.status
        except urllib.error.HTTPError as e:
            e.read()
            return e.code
        except (urllib.error.URLError, ConnectionError, OSError):
            return 0  # no answer: the server died

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
    for tensor, index in [("blocks.5.attn.hook_pattern", [3, 1000, 10]), ("probs", [1023, 7]),
                          ("blocks.11.mlp.hook_post", [512, 100])]:
        out[("explain", s.post("/api/explain", {"model": "gpt2-shape", "tokens": ids, "tensor": tensor,
                                                "index": index}))] += 1
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


SCENARIOS = {
    "A: 1,024-token trace, scene, 3 explains": scenario_a,
    "B: 3 distinct 1,024-token scenes in sequence": scenario_b,
    "C: 20 concurrent 64-token scenes": scenario_c,
}


def measure(src: Path, model: Path) -> dict:
    out = {}
    for name, run in SCENARIOS.items():
        s = Server(src, model)
        start = time.perf_counter()
        try:
            statuses = run(s)
        finally:
            peak, idle, killed = s.peak(), s.idle, s.killed
            s.stop()
        out[name] = {"peak": peak, "idle": idle, "killed": killed, "seconds": time.perf_counter() - start,
                     "statuses": dict(sorted((f"{k} {v}", n) for (k, v), n in statuses.items()))}
    return out


def gib(n):
    return f"{n / GiB:.2f} GiB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the baseline server")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_model(tmp)
        print(f"model: GPT-2 small shape, {model.stat().st_size / GiB:.2f} GiB of float32 weights")
        results = {"llmviz": measure(ROOT / "src", model)}
        if not args.no_baseline:
            base = tmp / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), args.baseline],
                           check=True)
            try:
                results[f"baseline {args.baseline}"] = measure(base / "src", model)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    names = list(results)
    for scenario in SCENARIOS:
        print(f"\n{scenario}")
        for n in names:
            r = results[n][scenario]
            peak = f"> {gib(KILL_AT)} (killed)" if r["killed"] else gib(r["peak"])
            print(f"  {n:18s} peak {peak:>22s}  idle {gib(r['idle'])}  {r['seconds']:6.1f} s  {r['statuses']}")
        mine = results["llmviz"][scenario]
        verdict = "met" if mine["peak"] < TARGET and all(k.split()[1] in ("200", "413", "503")
                                                          for k in mine["statuses"]) else "NOT met"
        if len(names) > 1:
            print(f"  ratio llmviz / baseline peak: {mine['peak'] / results[names[1]][scenario]['peak']:.2f}x"
                  f"{' (baseline killed: the ratio is an upper bound)' if results[names[1]][scenario]['killed'] else ''}")
        print(f"  target < {gib(TARGET)}, every request answered: {verdict}")


if __name__ == "__main__":
    main()
