"""A Llama-family model at SmolLM-135M's shape (30 layers, hidden 576, 9 heads, 3 key-value heads, MLP 1536,
vocabulary 49,152; random weights): a full llmviz trace against transformers' eager LlamaForCausalLM forward
with hidden states and attentions, on the same weights in the same run; and the memory loading takes.

    python benchmarks/modern_speed.py [--repeats 9] [--lengths 128]

Targets: the trace at 128 tokens at most 1.5x transformers; loading grows the process by at most 1.2x the
weights' size (float32).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llmviz
from trace_speed import median_seconds

SMOLLM = dict(num_hidden_layers=30, hidden_size=576, num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536,
              vocab_size=49152, max_position_embeddings=2048, tie_word_embeddings=True, rms_norm_eps=1e-5)

LOAD = r"""
import json, re, sys
def peak():
    return int(re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
import llmviz
base = peak(); llmviz.load_model(sys.argv[1]); print(json.dumps({"load": peak() - base}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--lengths", type=int, nargs="+", default=[128])
    args = ap.parse_args()
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(attn_implementation="eager", **SMOLLM)).eval()
    weights = sum(p.numel() for p in hf.parameters()) * 4
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        model = llmviz.load_model(tmp)
        print(f"SmolLM-135M shape, random weights ({weights / 2**20:.0f} MiB float32), torch {torch.__version__} "
              f"({torch.get_num_threads()} threads); median of {args.repeats}, the two taking turns")
        print(f"{'tokens':>6s} {'llmviz trace':>13s} {'transformers':>13s} {'ratio':>6s}")
        for n in args.lengths:
            ids = np.random.default_rng(n).integers(0, SMOLLM["vocab_size"], n)
            x = torch.tensor(ids[None])

            def baseline(x=x):
                with torch.no_grad():
                    hf(x, output_hidden_states=True, output_attentions=True)

            ours, base = median_seconds(args.repeats, lambda ids=ids: model.run(ids.tolist()), baseline)
            print(f"{n:6d} {ours * 1e3:10.1f} ms {base * 1e3:10.1f} ms {ours / base:6.2f}x   (target at most 1.5x)")
        out = subprocess.run([sys.executable, "-c", LOAD, tmp], capture_output=True, text=True, check=True)
        load = json.loads(out.stdout.strip().splitlines()[-1])["load"]
        print(f"loading grows a fresh process by {load / 2**20:.0f} MiB: {load / weights:.2f}x the weights "
              f"(target at most 1.2x)")


if __name__ == "__main__":
    main()
