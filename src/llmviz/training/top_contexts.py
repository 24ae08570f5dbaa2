"""Each MLP neuron's top-activating contexts in a training text, found once at training time and stored beside the
weights (`<name>.neurons.json`) for the neuron view (views/neurons.py).

A context is BEFORE characters, the marked one, and AFTER more. The activation stored is the neuron's
(`blocks.L.mlp.hook_post`) at the marked character when the model reads the context from its first character to the
marked one (BEFORE + 1 tokens), so that anyone can recompute it from the snippet alone; the characters after the
mark are only there to read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.model import Model
from ..io.files import check_new_file, write_bytes
from ..io.loading import NEURONS_FORMAT

BEFORE, AFTER, TOP = 20, 5, 8
CANDIDATES = 64  # the highest activations kept per neuron while scanning, from which TOP distinct ones are chosen


def top_contexts(model: Model, data: np.ndarray, positions: int = 200_000, seed: int = 0, batch: int = 1024,
                 log=print) -> dict:
    """For every MLP neuron of `model`, its TOP contexts among `positions` positions of `data` (token ids) drawn at
    random (`seed`): the highest activations at distinct snippets at least AFTER + 1 characters apart."""
    cfg, tok = model.config, model.tokenizer
    n = min(positions, len(data) - BEFORE - AFTER)
    where = BEFORE + np.random.default_rng(seed).permutation(len(data) - BEFORE - AFTER)[:n]
    best = np.full((cfg.n_layer, CANDIDATES, cfg.d_mlp), -np.inf, np.float32)
    at = np.zeros((cfg.n_layer, CANDIDATES, cfg.d_mlp), np.int64)
    hooks = [f"blocks.{L}.mlp.hook_post" for L in range(cfg.n_layer)]
    for i in range(0, n, batch):
        pos = where[i:i + batch]
        rec = model.batch_values(data[pos[:, None] + np.arange(-BEFORE, 1)[None]], hooks)
        acts = np.stack([rec[h][:, -1] for h in hooks])  # [L, B, d_mlp]
        vals = np.concatenate([best, acts], axis=1)
        whence = np.concatenate([at, np.broadcast_to(pos[None, :, None], acts.shape)], axis=1)
        top = np.argsort(-vals, axis=1, kind="stable")[:, :CANDIDATES]
        best, at = np.take_along_axis(vals, top, 1), np.take_along_axis(whence, top, 1)
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
