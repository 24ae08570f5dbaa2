"""Each MLP neuron's top-activating contexts in a training text, found once at training time and stored beside the
weights (`<name>.neurons.json`) for the neuron view (views/neurons.py). Needs the `train` extra (torch).

A context is BEFORE characters, the marked one, and AFTER more. The activation stored is the neuron's
(`blocks.L.mlp.hook_post`) at the marked character when the model reads the context from its first character to the
marked one (BEFORE + 1 tokens), so that anyone can recompute it from the snippet alone; the characters after the
mark are only there to read.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..io.files import check_new_file, write_bytes
from ..io.loading import NEURONS_FORMAT
from .torch_gpt import TorchGPT

BEFORE, AFTER, TOP = 20, 5, 8
CANDIDATES = 64  # the highest activations kept per neuron while scanning, from which TOP distinct ones are chosen


def top_contexts(net: TorchGPT, data: torch.Tensor, tok, positions: int = 200_000, seed: int = 0, batch: int = 1024,
                 log=print) -> dict:
    """For every MLP neuron of `net`, its TOP contexts among `positions` positions of `data` (token ids) drawn at
    random (`seed`): the highest activations at distinct snippets at least AFTER + 1 characters apart."""
    cfg = net.cfg
    gen = torch.Generator().manual_seed(seed)
    n = min(positions, len(data) - BEFORE - AFTER)
    where = BEFORE + torch.randperm(len(data) - BEFORE - AFTER, generator=gen)[:n]
    best = torch.full((cfg.n_layer, CANDIDATES, cfg.d_mlp), -float("inf"))
    at = torch.zeros((cfg.n_layer, CANDIDATES, cfg.d_mlp), dtype=torch.long)
    net.eval()
    with torch.no_grad():
        for i in range(0, n, batch):
            pos = where[i:i + batch]
            x = data[pos[:, None] + torch.arange(-BEFORE, 1)[None]]
            rec: dict = {}
            net(x, record=rec)
            acts = torch.stack([rec[f"blocks.{L}.mlp.hook_post"][:, -1] for L in range(cfg.n_layer)])  # [L, B, d_mlp]
            vals = torch.cat([best, acts], dim=1)
            whence = torch.cat([at, pos[None, :, None].expand(cfg.n_layer, -1, cfg.d_mlp)], dim=1)
            best, top = vals.topk(CANDIDATES, dim=1)
            at = whence.gather(1, top)
            if i // batch % 50 == 0:
                log(f"neuron contexts: {min(i + batch, n):,} of {n:,} positions")
    text = tok.decode(data.tolist())
    layers = []
    for L in range(cfg.n_layer):
        neurons = []
        for j in range(cfg.d_mlp):
            chosen: list[tuple[int, str, float]] = []
            for v, p in zip(best[L, :, j].tolist(), at[L, :, j].tolist()):
                snippet = text[p - BEFORE:p + AFTER + 1]
                if all(s != snippet and abs(q - p) > AFTER for q, s, _ in chosen):
                    chosen.append((p, snippet, v))
                if len(chosen) == TOP:
                    break
            neurons.append([[s, round(v, 3)] for _, s, v in chosen])
        layers.append(neurons)
    return {"format": NEURONS_FORMAT, "hook": "blocks.{layer}.mlp.hook_post", "before": BEFORE, "after": AFTER,
            "scanned": n, "layers": layers}


def write_contexts(contexts: dict, path, force: bool, log=print) -> None:
    path = Path(path)
    check_new_file(path, force)
    write_bytes(path, json.dumps(contexts, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), force)
    log(f"wrote {path} ({path.stat().st_size} bytes)")
