"""The precision table (views/precision.py) for nano-gpt and for a GPT-2-small-shaped model with random weights.

    python benchmarks/precision.py [--repeats 5] [--tokens 32]

For each format: the weights' bytes as stored (and bits per weight), the weights' error (RMS, relative RMS, largest),
the logits' largest error against the float32 pass and the probability of the float32 pass's top token at the last
position, the seconds to quantize, and the time of a pass as a ratio against the float32 pass: the two passes alternate,
`repeats` times each, and the ratio is of their fastest (so that the load of a shared machine falls on both alike).
Every format computes in float32 on its weights read back, so a ratio near 1 is what is expected: fewer bits save
memory in llmviz, not time.

nano-gpt reads its example, CBABBC. The GPT-2-small shape (structure_only("gpt2"): 12 layers, 768 wide, 50,257
tokens) gets minGPT's random initialisation (training/numpy_train.initial_weights: std 0.02) and `tokens` random
token ids: its rows of 768 and 3,072 divide into blocks of 32, so every matrix is stored as asked; nano-gpt's 48-wide
rows do not, and fall back to f16 (listed).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from llmviz.core.model import Model
from llmviz.core.quant import quantized
from llmviz.io.loading import load_model, structure_only
from llmviz.training.numpy_train import initial_weights
from llmviz.views.precision import precision_table


def gpt2_small_random(seed: int = 0) -> Model:
    shape = structure_only("gpt2")
    return Model(shape.config, initial_weights(shape.graph, seed), None, source="random weights, GPT-2-small's shape")


def fastest_pair(a: Model, b: Model, ids, repeats: int) -> tuple[float, float]:
    """The fastest of `repeats` passes of a and of b, in ms, their passes alternating."""
    times: dict[Model, list[float]] = {a: [], b: []}
    for _ in range(repeats):
        for m in (a, b):
            start = time.perf_counter()
            m.run(ids, keep=("logits", "probs"))
            times[m].append((time.perf_counter() - start) * 1000)
    return min(times[a]), min(times[b])


def show(model: Model, prompt, repeats: int) -> None:
    made: dict[str, float] = {}
    ratio: dict[str, tuple[float, float]] = {}
    ids = model.encode(prompt)

    def stored(fmt: str) -> Model:
        start = time.perf_counter()
        q = quantized(model, fmt)
        made[fmt] = time.perf_counter() - start
        ratio[fmt] = fastest_pair(model, q, ids, repeats)
        return q

    t = precision_table(model, prompt, stored=stored)
    print(f"\n{model.name} ({model.config.n_params:,} weights) on {t['tokens']} tokens; top token at the last position "
          f"in float32: {t['top_token']!r}")
    print(f"{'format':6} {'MB':>8} {'bits/w':>6} {'RMS err':>9} {'rel RMS':>8} {'max err':>9} {'logits Δmax':>11} "
          f"{'top p':>9} {'same':>4} {'quant s':>7} {'f32 ms':>8} {'ms':>8} {'× f32':>6}")
    for r in t["formats"]:
        fastest = min(f for f, _ in ratio.values())  # (the float32 row: its fastest pass in the whole run)
        f32, ms = ratio.get(r["format"], (fastest, fastest))
        print(f"{r['format']:6} {r['bytes'] / 1e6:8.3f} {r['bits_per_weight']:6.2f} {r['weight_rms']:9.2e} "
              f"{r['weight_rel_rms']:8.2%} {r['weight_max']:9.2e} {r['logits_max']:11.2e} {r['top_prob']:9.4g} "
              f"{'yes' if r['top_same'] else 'NO':>4} {made.get(r['format'], 0.0):7.2f} {f32:8.2f} {ms:8.2f} "
              f"{ms / f32:6.2f}")
    for r in t["formats"]:
        if r["fallback"]:
            print(f"  {r['format']}: {len(r['fallback'])} matrices stored as f16 instead, e.g. "
                  f"{r['fallback'][0]['weight']}: {r['fallback'][0]['why']}")
    print(f"  (pass times: each format's passes alternate with float32's, {repeats} of each; the fastest of each)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="passes of each format and of float32, alternating")
    p.add_argument("--tokens", type=int, default=32, help="random token ids for the GPT-2-small shape")
    args = p.parse_args()
    nano = load_model("nano-gpt")
    show(nano, nano.config.example, args.repeats)
    gpt2 = gpt2_small_random()
    ids = [int(i) for i in np.random.default_rng(1).integers(0, gpt2.config.vocab_size, args.tokens)]
    show(gpt2, ids, args.repeats)


if __name__ == "__main__":
    main()
