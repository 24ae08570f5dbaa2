"""What interventions cost: a forward pass with an edit against the plain pass, and a whole patching sweep.

    python benchmarks/interventions.py [--repeats 7] [--rounds 3] [--tokens 128]

(a) `Model.run(ids, edits=[zero one head's hook_z])` against `Model.run(ids)` on a GPT-2-small-shaped model (the
    `gpt2` preset's config, random numpy weights), 128 tokens. The two run back to back, `repeats` pairs a round;
    each round gives the median of the pairs' ratios, and the range over the rounds is printed. Target: at most 1.2x.
(b) nano-gpt's patching sweep (views/patching.py: every layer x position of the residual stream and every head) on
    a real pair, against one plain pass of the same input. Target: the sweep under 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import llmviz
from llmviz.core.config import PRESETS
from llmviz.core.graph import Graph
from llmviz.core.model import Model
from llmviz.views.patching import patching

EDIT = [{"tensor": "blocks.5.attn.hook_z", "where": {"head": 3}, "set": "zero"}]


def gpt2_small(seed: int = 0) -> Model:
    cfg = PRESETS["gpt2"]
    graph, rng = Graph(cfg), np.random.default_rng(seed)
    weights = {n: (rng.standard_normal(graph[n].shape(graph.sizes(0)), dtype=np.float32) * np.float32(0.02))
               for n in graph.names("weight") if "tied_to" not in graph[n].attrs}
    return Model(cfg, weights, None, source="random gpt2-small shape")


def seconds(fn) -> tuple[float, float]:
    """Wall and CPU seconds (this process's, every thread's) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def paired(repeats: int, a, b) -> tuple[float, float, float, float]:
    """Median wall seconds of a and of b, and the medians of b / a over back-to-back pairs (in turn a-b and b-a) in
    wall time and in CPU time, so that the load of a shared machine, which drifts, hits both sides of each ratio alike
    (CPU time moves less with the machine's load than wall time)."""
    ta, tb = [], []
    for i in range(repeats):
        if i % 2:
            tb.append(seconds(b))
            ta.append(seconds(a))
        else:
            ta.append(seconds(a))
            tb.append(seconds(b))
    return (statistics.median(x for x, _ in ta), statistics.median(y for y, _ in tb),
            statistics.median(y[0] / x[0] for x, y in zip(ta, tb)), statistics.median(y[1] / x[1] for x, y in zip(ta, tb)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args()

    edit_cost(args)
    sweep_cost(args)


def edit_cost(args) -> None:
    model = gpt2_small()
    ids = np.random.default_rng(1).integers(0, model.config.vocab_size, args.tokens).tolist()
    plain, edited = (lambda: model.run(ids)), (lambda: model.run(ids, edits=EDIT))
    plain(), edited()  # warm up
    rows = []
    for _ in range(args.rounds):
        rows.append(paired(args.repeats, plain, edited))
    ps, es, rs, cs = zip(*rows)
    print(f"(a) GPT-2-small shape, {args.tokens} tokens, zero blocks.5.attn.hook_z head 3 "
          f"({args.rounds} rounds x {args.repeats}):")
    print(f"    plain trace    {min(ps) * 1e3:7.0f}-{max(ps) * 1e3:.0f} ms")
    print(f"    with the edit  {min(es) * 1e3:7.0f}-{max(es) * 1e3:.0f} ms")
    print(f"    ratio          {min(rs):.2f}-{max(rs):.2f}x wall time, {min(cs):.2f}-{max(cs):.2f}x CPU time   "
          "(target <= 1.2x)")


def sweep_cost(args) -> None:
    nano = llmviz.load_model("nano-gpt")
    clean, corrupted = "CBABBCABB", "CBACBCABB"
    sweep, one = (lambda: patching(nano, clean, corrupted)), (lambda: nano.run(clean))
    sweep(), one()
    rows = [paired(args.repeats, one, sweep) for _ in range(args.rounds)]
    os_, ss, per, _ = zip(*rows)
    print(f"(b) nano-gpt patching sweep, {clean} against {corrupted} (4 x 9 residual cells, 9 heads):")
    print(f"    sweep          {min(ss) * 1e3:7.1f}-{max(ss) * 1e3:.1f} ms   (target < 2 s)")
    print(f"    one pass       {min(os_) * 1e3:7.2f}-{max(os_) * 1e3:.2f} ms   (the sweep: "
          f"{min(per):.0f}-{max(per):.0f} passes' time)")


if __name__ == "__main__":
    main()
