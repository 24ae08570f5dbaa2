"""Generation speed on a GPT-2-small-shaped model (random weights), measured in the same run:

  A. a 128-token prompt and 32 greedy new tokens: llmviz `Model.generate` (KV cache) against transformers'
     `generate(do_sample=False)` with its KV cache, on the same weights; the tokens must agree;
  B. one cached step at 256 tokens (the cache holds 255) against a full forward pass of the 256 tokens.

Targets: A at most 1.5x transformers; B at least 5x faster than the full pass.

    python benchmarks/generation_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import llmviz
from llmviz.core.model import KVCache
from reference import hf_gpt2_folder


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        hf = hf_gpt2_folder(Path(tmp), n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024)
        model = llmviz.load_model(tmp)
    prompt = np.random.default_rng(0).integers(0, 50257, 128).tolist()
    ours = model.generate(prompt, 32).tokens
    with torch.no_grad():
        theirs = hf.generate(torch.tensor([prompt]), max_new_tokens=32, do_sample=False, pad_token_id=0,
                             attention_mask=torch.ones(1, 128, dtype=torch.long))[0, 128:].tolist()
    assert ours == theirs, "greedy tokens differ"

    def hf_generate():
        with torch.no_grad():
            hf.generate(torch.tensor([prompt]), max_new_tokens=32, do_sample=False, pad_token_id=0,
                        attention_mask=torch.ones(1, 128, dtype=torch.long))

    a_ours, a_ours_all = timed(lambda: model.generate(prompt, 32), args.repeats)
    a_hf, a_hf_all = timed(hf_generate, args.repeats)

    long = np.random.default_rng(1).integers(0, 50257, 256).tolist()
    cache = KVCache(model)
    model.step(cache, long[:255], keep=())

    def one_step():
        c = cache.copy()
        model.step(c, long[255:], keep=())

    b_step, b_step_all = timed(one_step, args.repeats)
    b_full, b_full_all = timed(lambda: model.run(long, keep=()), args.repeats)

    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads); medians of {args.repeats}")
    print("A. 128-token prompt, 32 greedy new tokens (the same tokens from both)")
    print(f"   llmviz generate (KV cache)      {a_ours * 1000:8.0f} ms   {[round(t * 1000) for t in a_ours_all]}")
    print(f"   transformers generate            {a_hf * 1000:8.0f} ms   {[round(t * 1000) for t in a_hf_all]}")
    print(f"   ratio {a_ours / a_hf:.2f}x (target <= 1.5x: {'met' if a_ours / a_hf <= 1.5 else 'NOT met'})")
    print("B. the 256th token")
    print(f"   one cached step                  {b_step * 1000:8.1f} ms   {[round(t * 1000, 1) for t in b_step_all]}")
    print(f"   a full pass of 256 tokens        {b_full * 1000:8.1f} ms   {[round(t * 1000, 1) for t in b_full_all]}")
    print(f"   the cached step is {b_full / b_step:.1f}x faster (target >= 5x: {'met' if b_full / b_step >= 5 else 'NOT met'})")


if __name__ == "__main__":
    main()
