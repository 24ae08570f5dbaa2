"""Real-size Llama shapes (issue 27): a random bf16 checkpoint of Llama-3.2-1B's or Llama-3-8B's shape, written
tensor by tensor (never the whole model in memory), and a full trace of 32 tokens by llmviz against transformers'
`from_pretrained` in float32 plus a forward with hidden states and attentions, each in a fresh process.

    python benchmarks/big_llama.py --shape 1b [--out /tmp/llama-1b] [--repeats 2]
    python benchmarks/big_llama.py --shape 8b --only llmviz     (16 GB of bf16; transformers in float32 needs 32 GB)

Prints, per engine and run: seconds for load plus trace, the process's anonymous memory when it is done (RssAnon: not
the file pages a memory map shares) and its peak resident set, and llmviz's time as a ratio of transformers' in the same run. Targets (issue 27):
the 1B shape at most 1.0x transformers' time with under 1.5 GiB of anonymous memory; the 8B shape within this
machine, in under 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SHAPES = {  # Hugging Face LlamaConfig fields
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=131072,
               rope_theta=500000.0, tie_word_embeddings=True, rms_norm_eps=1e-5,
               rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192}),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, head_dim=128, vocab_size=128256, max_position_embeddings=8192,
               rope_theta=500000.0, tie_word_embeddings=False, rms_norm_eps=1e-5),
}
TOKENS = 32
LOGITS = {e: Path(tempfile.gettempdir()) / f"llmviz-big-llama-{e}.npy" for e in ("llmviz", "transformers")}
SHARD_BYTES = 5 * 10**9  # transformers' default max_shard_size


def tensors(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Each weight of a Llama checkpoint (Hugging Face's names) and its shape."""
    H, D, F, V = cfg["hidden_size"], cfg["head_dim"], cfg["intermediate_size"], cfg["vocab_size"]
    q, kv = cfg["num_attention_heads"] * D, cfg["num_key_value_heads"] * D
    out = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out |= {p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,),
                p + "self_attn.q_proj.weight": (q, H), p + "self_attn.k_proj.weight": (kv, H),
                p + "self_attn.v_proj.weight": (kv, H), p + "self_attn.o_proj.weight": (H, q),
                p + "mlp.gate_proj.weight": (F, H), p + "mlp.up_proj.weight": (F, H), p + "mlp.down_proj.weight": (H, F)}
    if not cfg["tie_word_embeddings"]:
        out["lm_head.weight"] = (V, H)
    return out


def bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16's bits (round half to even)."""
    bits = a.astype(np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def make(shape: str, out: Path, seed: int = 0) -> Path:
    """A random checkpoint folder (config.json, and bf16 weights as transformers saves them: one model.safetensors
    up to 5 GB, else shards with model.safetensors.index.json), written one slab of rows at a time: normal weights
    with std 0.02, norms 1. Kept if it is there already."""
    cfg = {**SHAPES[shape], "model_type": "llama", "architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16",
           "hidden_act": "silu", "attention_bias": False, "mlp_bias": False}
    out.mkdir(parents=True, exist_ok=True)
    if (out / "config.json").exists():
        return out
    shapes = tensors(cfg)
    shards: list[dict[str, tuple[int, ...]]] = [{}]
    size = 0
    for name, s in shapes.items():
        n = 2 * int(np.prod(s))
        if size + n > SHARD_BYTES and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][name] = s
        size += n
    files = (["model.safetensors"] if len(shards) == 1
             else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    rng = np.random.default_rng(seed)
    for file, part in zip(files, shards):
        write_shard(out / file, part, rng)
    if len(files) > 1:
        index = {"metadata": {"total_size": sum(2 * int(np.prod(s)) for s in shapes.values())},
                 "weight_map": {n: f for f, part in zip(files, shards) for n in part}}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    (out / "config.json").write_text(json.dumps(cfg, indent=1))  # (last: its presence means the folder is whole)
    return out


def write_shard(path: Path, shapes: dict[str, tuple[int, ...]], rng) -> None:
    header, offset = {}, 0
    for name, s in shapes.items():
        n = 2 * int(np.prod(s))
        header[name] = {"dtype": "BF16", "shape": list(s), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for s in shapes.values():
            if len(s) == 1:  # a norm's gain
                f.write(bf16_bits(np.ones(s, np.float32)).tobytes())
                continue
            for rows in np.array_split(np.arange(s[0]), max(1, s[0] // 4096)):  # (a slab of rows at a time)
                f.write(bf16_bits(rng.standard_normal((len(rows), *s[1:]), np.float32) * 0.02).tobytes())


RUN = r"""
import json, re, sys, time
def anon():  # the process's anonymous memory now, and its peak resident set (kB -> bytes)
    s = open("/proc/self/status").read()
    return {k: int(re.search(k + r":\s+(\d+) kB", s).group(1)) * 1024 for k in ("RssAnon", "VmHWM")}
engine, folder, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ids = [(i * 7919) % 1000 + 1 for i in range(n)]
t0 = time.perf_counter()
if engine == "llmviz":
    import llmviz
    m = llmviz.load_model(folder)
    t = m.run(ids)
    logits = t["logits"][-1]
else:
    import torch, transformers
    net = transformers.AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        o = net(torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
    logits = o.logits[0, -1].numpy()
seconds = time.perf_counter() - t0
import numpy
numpy.save(out, numpy.asarray(logits, numpy.float32))
print(json.dumps({"seconds": seconds, **anon(), "top": int(logits.argmax())}))
"""


def run(engine: str, folder: Path) -> dict:
    """One engine's load and trace in a fresh process; its last position's logits are left in LOGITS[engine]."""
    r = subprocess.run([sys.executable, "-c", RUN, engine, str(folder), str(TOKENS), str(LOGITS[engine])],
                       capture_output=True, text=True)
    if r.returncode:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=list(SHAPES), default="1b")
    ap.add_argument("--out", type=Path, help="the checkpoint folder (default: /tmp/llmviz-llama-SHAPE)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", choices=["llmviz", "transformers"])
    args = ap.parse_args()
    folder = make(args.shape, args.out or Path(f"/tmp/llmviz-llama-{args.shape}"))
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    print(f"{args.shape}: {folder} ({size / 2**30:.2f} GiB of bf16), a full trace of {TOKENS} tokens, each engine in a "
          "fresh process")
    engines = [args.only] if args.only else ["transformers", "llmviz"]
    for i in range(args.repeats):
        got = {e: run(e, folder) for e in engines}
        for e, r in got.items():
            if "error" in r:
                print(f"  run {i + 1} {e:>12}: failed: {r['error']}")
            else:
                print(f"  run {i + 1} {e:>12}: {r['seconds']:6.1f} s, RssAnon {r['RssAnon'] / 2**30:5.2f} GiB, "
                      f"peak RSS {r['VmHWM'] / 2**30:5.2f} GiB, top token {r['top']}")
        if all("seconds" in r for r in got.values()) and len(got) == 2:
            diff = float(np.abs(np.load(LOGITS["llmviz"]) - np.load(LOGITS["transformers"])).max())
            print(f"  run {i + 1}: llmviz ÷ transformers = {got['llmviz']['seconds'] / got['transformers']['seconds']:.2f}x; "
                  f"last position's logits differ by at most {diff:.2e}")


if __name__ == "__main__":
    main()
