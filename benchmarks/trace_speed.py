"""How long and how much memory a full llmviz trace takes, against transformers' eager GPT-2 forward
on the same weights, in the same run.

    python benchmarks/trace_speed.py [--repeats 9] [--lengths 64 128 256 512 1024]

Baseline: `GPT2LMHeadModel(...)(ids, output_hidden_states=True, output_attentions=True)` under
torch.no_grad(), eager attention, float32, CPU, same weights. Ratios are llmviz / baseline (lower is
better; the time target is <= 1.5). Memory is the peak resident-set growth of a fresh process, measured
after its imports: loading the model, and one forward pass of the loaded model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

import llmviz

GPT2_SMALL = dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024)

# Run in a fresh process: peak RSS growth (bytes) of loading, then of one forward pass.
MEASURE = r"""
import json, re, sys
import numpy as np
which, folder, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def peak():  # VmHWM: this address space's peak RSS (ru_maxrss would carry the parent's over fork + exec)
    return int(re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
ids = np.random.default_rng(n).integers(0, 50257, n)
if which == "llmviz":
    import llmviz
    base = peak(); model = llmviz.load_model(folder); loaded = peak()
    model.run(ids.tolist()); ran = peak()
else:
    import torch, transformers
    torch.set_grad_enabled(False)
    base = peak(); model = transformers.GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager"); loaded = peak()
    model(torch.tensor(ids[None]), output_hidden_states=True, output_attentions=True); ran = peak()
print(json.dumps({"load": loaded - base, "forward": ran - loaded}))
"""


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


def time_pair(hf, model, n: int, repeats: int) -> tuple[float, float]:
    """Median seconds of an llmviz trace and of the transformers forward, on the same n random tokens."""
    ids = np.random.default_rng(n).integers(0, 50257, n)
    x = torch.tensor(ids[None])

    def baseline():
        with torch.no_grad():
            hf(x, output_hidden_states=True, output_attentions=True)

    ours, base = median_seconds(repeats, lambda: model.run(ids.tolist()), baseline)
    return ours, base


def random_gpt2_folder(folder: Path, seed: int = 0) -> transformers.GPT2LMHeadModel:
    """A GPT-2-small-shaped transformers model with random weights, saved as a Hugging Face folder."""
    torch.manual_seed(seed)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(attn_implementation="eager", **GPT2_SMALL)).eval()
    hf.save_pretrained(folder)
    return hf


def measure(which: str, folder: Path, n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, which, str(folder), str(n)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512, 1024],
                    help="prompt lengths to time (the target: at most 1.5x at every length up to 1024)")
    args = ap.parse_args()
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
          f"numpy {np.__version__}; median of {args.repeats}, the two taking turns")

    nano = llmviz.load_model("nano-gpt")
    [t] = median_seconds(args.repeats * 10, lambda: nano.run("CBABBC"))
    print(f"nano-gpt, 6 tokens: llmviz trace {t * 1e3:.2f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        hf = random_gpt2_folder(folder)
        model = llmviz.load_model(str(folder))
        weights = sum(p.numel() for p in hf.parameters()) * 4

        print("\nGPT-2 small shape, random weights: time")
        print(f"{'tokens':>6s} {'llmviz trace':>13s} {'transformers':>13s} {'ratio':>6s}")
        for n in args.lengths:
            ours, base = time_pair(hf, model, n, args.repeats)
            print(f"{n:6d} {ours * 1e3:10.1f} ms {base * 1e3:10.1f} ms {ours / base:6.2f}x")
        del hf, model  # free them before the memory measurements

        print(f"\nGPT-2 small shape: peak memory growth of a fresh process (weights: {weights / 2**20:.0f} MiB float32)")
        ours, base = measure("llmviz", folder, 128), measure("transformers", folder, 128)
        mib = 2 ** 20
        print(f"{'':24s} {'llmviz':>10s} {'transformers':>13s} {'ratio':>6s}")
        print(f"{'load':24s} {ours['load'] / mib:7.0f} MiB {base['load'] / mib:10.0f} MiB "
              f"{ours['load'] / base['load']:6.2f}x   (llmviz load / weights = {ours['load'] / weights:.2f})")
        print(f"{'forward, 128 tokens':24s} {ours['forward'] / mib:7.0f} MiB {base['forward'] / mib:10.0f} MiB "
              f"{ours['forward'] / max(base['forward'], 1):6.2f}x")
        total_ours, total_base = ours["load"] + ours["forward"], base["load"] + base["forward"]
        print(f"{'load + forward':24s} {total_ours / mib:7.0f} MiB {total_base / mib:10.0f} MiB "
              f"{total_ours / total_base:6.2f}x   (transformers maps its weights lazily: they count when first used)")


if __name__ == "__main__":
    main()
