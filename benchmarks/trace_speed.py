"""How long a full llmviz trace takes, against transformers' eager GPT-2 forward on the same weights.

    python benchmarks/trace_speed.py [--repeats 7]

Baseline: `GPT2LMHeadModel(...)(ids, output_hidden_states=True, output_attentions=True)` under
torch.no_grad(), eager attention, float32, CPU, same weights, same run. The ratio printed is
llmviz time / baseline time (lower is better; the target is <= 1.5).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import transformers

import llmviz
from llmviz.config import ModelConfig
from llmviz.loading import weights_from_gpt2_state
from llmviz.model import Model


def median_seconds(repeats: int, *fns) -> list[float]:
    """Median wall time of each function; the functions take turns, so drift on a shared machine hits all alike."""
    for fn in fns:
        fn()  # warm up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def gpt2_small_pair(seed: int = 0):
    """A GPT-2-small-shaped transformers model with random weights, and the llmviz model of the same weights."""
    torch.manual_seed(seed)
    hf_cfg = transformers.GPT2Config(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024,
                                     attn_implementation="eager")
    hf = transformers.GPT2LMHeadModel(hf_cfg).eval()
    cfg = ModelConfig("gpt2-random", 12, 12, 768, 50257, 1024)
    state = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    return hf, Model(cfg, weights_from_gpt2_state(state, cfg, layout="conv1d"), None, "random")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
          f"numpy {np.__version__}; median of {args.repeats}")

    nano = llmviz.load_model("nano-gpt")
    [t] = median_seconds(args.repeats * 10, lambda: nano.run("CBABBC"))
    print(f"nano-gpt, 6 tokens: llmviz trace {t * 1e3:.2f} ms")

    hf, model = gpt2_small_pair()
    print(f"{'model':22s} {'tokens':>6s} {'llmviz trace':>13s} {'transformers':>13s} {'ratio':>6s}")
    for n in (64, 256):
        ids = np.random.default_rng(n).integers(0, 50257, n)
        x = torch.tensor(ids[None])

        def baseline():
            with torch.no_grad():
                hf(x, output_hidden_states=True, output_attentions=True)

        ours, base = median_seconds(args.repeats, lambda: model.run(ids.tolist()), baseline)
        print(f"{'gpt2-small (random)':22s} {n:6d} {ours * 1e3:10.1f} ms {base * 1e3:10.1f} ms {ours / base:6.2f}x")


if __name__ == "__main__":
    main()
