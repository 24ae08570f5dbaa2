"""Activation patching, swept: run a corrupted input with one activation taken from the clean input's pass, for
every place at once, and see where the clean answer comes back.

    s = patching(model, "CBABBCABB", "CBACBCABB")   # target: the last position, the clean prediction there (B)
    s["clean_prob"], s["corrupted_prob"]            # the target token's probability in each pass
    s["resid"]["probs"][layer][pos]                 # with the residual stream at (layer, pos) patched
    s["heads"]["probs"][layer][head]                # with one head's hook_z (every position) patched

Two sweeps, each cell a forward pass of the corrupted input with one patch, equal to
`model.run(corrupted, edits=[{"tensor": ..., "where": ..., "set": {"from_tokens": clean}}])`:

- the residual stream: the stream into each layer (`blocks.L.hook_resid_pre`) and the stream the final norm reads
  (the last layer's `hook_resid_post`), one position at a time. These are the logit lens's rows (views/lens.py):
  the first is the embeddings, the last is what the unembedding decodes, so patching the target's own position
  there gives the clean answer back whole.
- every head: its `hook_z` at every position (what the head writes, before W_O mixes the heads).

`recovered` is (p − p_corrupted) / (p_clean − p_corrupted): 0 where the patch changes nothing, 1 where it gives the
clean probability back (null when the two baselines are equal).

Each cell recomputes only what its patch can change. Attention is causal, so only positions from the patched one
to the target matter:

- the input is cut after the target;
- some cells need no pass, their answer being the corrupted probability: a patch after the target, a patch of the
  final residual at another position than the target's (the final norm and the unembedding read one position), and
  a patch of numbers equal in both passes (the residual stream before the first token that differs, say);
- a residual patch at (layer L, position q) runs layers L onward for positions q to the target only, as a
  generation step does on a KV cache: the step's graph (`Graph(config, past=q)`) reads the corrupted pass's keys and
  values of the positions before q;
- a head's patch runs from its layer's attention output on;
- the final norm and the unembedding run for each cell's target row alone, the rows of all cells at once (so the
  unembedding's weights, the largest, are read once for hundreds of cells).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..core.errors import LlmvizError
from ..core.graph import Graph
from ..core.model import Model, Prompt
from .attribution import check_target
from .lens import boundaries

SMALL_VOCAB = 64  # up to this many tokens, suggest() tries every one at every position
SUGGEST_RUNS = 48  # at most this many candidate corruptions are tried
TAIL_NUMBERS = 2**24  # the unembedding of at most this many logits at once (64 MiB of float32)
READ = 24  # what reading one weight costs, in multiply-adds: about, on this project's 2-core machine


def patching(model: Model, clean: Prompt, corrupted: Prompt, position: int | None = None, token: int | None = None,
             stop: Callable[[], bool] | None = None) -> dict:
    """Both sweeps of `corrupted` patched from `clean` (inputs of the same length) for the probability of `token`
    (default: the clean pass's prediction) at `position` (default: the last)."""
    model.require_weights()
    a, b = model.encode(clean), model.encode(corrupted)
    if len(a) != len(b):
        raise LlmvizError(f"the clean input has {len(a)} tokens and the corrupted one {len(b)}: patching takes "
                          "each activation from the same place in an input of the same length")
    p, token = check_target(model, len(a), position, token)
    return Sweep(model, a[:p + 1], b[:p + 1], stop).run(a, b, token)


class Sweep:
    """The clean and corrupted passes of inputs cut after the target (its last position), and the patched passes."""

    def __init__(self, model: Model, clean: list[int], corrupted: list[int], stop=None):
        self.model, self.graph, self.stop = model, model.graph, stop
        g = self.graph
        self.bounds = boundaries(g)
        self.final = self.bounds[-1]
        self.z = [f"blocks.{i}.attn.hook_z" for i in range(g.config.n_layer)]
        self.kv = [name for pair in g.kv_out for name in pair]
        self.ids = corrupted
        self.clean = model.run(clean, keep=[*self.bounds, *self.z], stop=stop)
        self.corrupt = model.run(corrupted, keep=[*self.bounds, *self.z, *self.kv], stop=stop)
        self._steps: dict[int, Graph] = {0: g}

    def run(self, clean_ids: list[int], corrupted_ids: list[int], token: int | None) -> dict:
        m, g, T, target = self.model, self.graph, len(clean_ids), len(self.ids) - 1
        L, H = g.config.n_layer, g.config.n_head
        assert self.clean.next_probs is not None and self.corrupt.next_probs is not None
        t = int(np.argmax(self.clean.next_probs)) if token is None else token
        p_clean, p_corrupt = float(self.clean.next_probs[t]), float(self.corrupt.next_probs[t])
        # Every cell the corrupted probability, until its pass says otherwise; the passes that run end at the final
        # residual's target row, and those rows go through the final norm and the unembedding together.
        resid = [[p_corrupt] * T for _ in self.bounds]
        heads = [[p_corrupt] * H for _ in range(L)]
        cells: list[tuple[list[float], int]] = []
        rows: list[np.ndarray] = []
        for grid, row in [*((resid[i], (q, self.resid(i, q))) for i in range(len(self.bounds)) for q in range(target + 1)),
                          *((heads[k], (h, self.head(k, h))) for k in range(L) for h in range(H))]:
            if row[1] is not None:
                cells.append((grid, row[0]))
                rows.append(row[1])
        for (grid, c), p in zip(cells, self._tails(rows, t)):
            grid[c] = p

        def recovered(grid):
            d = p_clean - p_corrupt
            return [[(v - p_corrupt) / d if d != 0 else None for v in row] for row in grid]

        return {
            "model": m.name, "position": target, "token": t, "token_str": m.token_strs([t])[0],
            "tokens": clean_ids, "token_strs": m.token_strs(clean_ids), "corrupted_tokens": corrupted_ids,
            "corrupted_strs": m.token_strs(corrupted_ids), "corrupted_text": m.decode(corrupted_ids),
            "clean_prob": p_clean, "corrupted_prob": p_corrupt,
            "resid": {"tensors": self.bounds,
                      "labels": [f"resid_pre of layer {i}" for i in range(L)] + [f"resid_post of layer {L - 1}"],
                      "probs": resid, "recovered": recovered(resid)},
            "heads": {"tensors": self.z, "probs": heads, "recovered": recovered(heads)},
        }

    def resid(self, i: int, q: int) -> np.ndarray | None:
        """The target's row of the final residual with boundary i's residual at position q taken from the clean pass
        (layers i onward, positions q to the target, on the corrupted pass's keys and values of the positions before
        q); None where the patch cannot change the target (the corrupted pass is its answer)."""
        name, n = self.bounds[i], self.graph.config.n_layer
        if np.array_equal(self.clean[name][q], self.corrupt[name][q]):
            return None  # the same numbers: the corrupted pass itself
        if name == self.final:  # read by the final norm and the unembedding of its own position only
            return self.clean[name][q] if q == len(self.ids) - 1 else None
        x = self.corrupt[name][q:].copy()
        x[0] = self.clean[name][q]
        step = self._step(q)
        known = {name: x}
        if q:
            for j in range(i, n):
                for past, whole in zip(step.kv_in[j], self.graph.kv_out[j]):
                    known[past] = self.corrupt[whole][:q]
        return self._to_final(step, self.ids[q:], known)[-1]

    def head(self, layer: int, h: int) -> np.ndarray | None:
        """The target's row of the final residual with head h's hook_z of this layer (every position) from the clean
        pass; None where both passes' are equal."""
        name = self.z[layer]
        if np.array_equal(self.clean[name][:, h], self.corrupt[name][:, h]):
            return None
        z = self.corrupt[name].copy()
        z[:, h] = self.clean[name][:, h]
        known = {f"blocks.{layer}.hook_resid_pre": self.corrupt[f"blocks.{layer}.hook_resid_pre"], name: z}
        return self._to_final(self.graph, self.ids, known)[-1]

    def _step(self, q: int) -> Graph:
        if q not in self._steps:
            self._steps[q] = Graph(self.graph.config, past=q)
        return self._steps[q]

    def _to_final(self, graph: Graph, ids: list[int], known: dict) -> np.ndarray:
        """The final residual stream (what the final norm reads) computed from `known`."""
        names = graph.ancestors([self.final], known)
        return self.model._compute(graph, ids, known, names, {self.final}, stop=self.stop)[self.final]

    def _tails(self, rows: list[np.ndarray], t: int) -> list[float]:
        """The final norm, the unembedding and the softmax of rows of the final residual stream (a few hundred at a
        time: the unembedding's weights are read once for them all): each row's P(t)."""
        g, out = self.graph, list[float]()
        chunk = max(1, TAIL_NUMBERS // self.model.config.vocab_size)
        for k in range(0, len(rows), chunk):
            known = {self.final: np.stack(rows[k:k + chunk])}
            names = g.ancestors([g.output], known)
            probs = self.model._compute(g, self.ids[:1] * len(known[self.final]), known, names, {g.output}, stop=self.stop)
            out.extend(float(p) for p in probs[g.output][:, t])
        return out


def suggest(model: Model, clean: Prompt, position: int | None = None, token: int | None = None,
            stop: Callable[[], bool] | None = None, runs: int = SUGGEST_RUNS) -> list[int]:
    """A corrupted input for `clean`: one token changed, the change (among those tried) that most lowers the
    probability of the clean prediction (or `token`) at `position`. A small vocabulary tries every token at every
    position up to the target, the nearest first; a large one, the input's own other tokens; at most `runs` of them,
    spread evenly over the candidates."""
    model.require_weights()
    ids = model.encode(clean)
    p, token = check_target(model, len(ids), position, token)
    prefix = ids[:p + 1]
    base = model.run(prefix, keep=(), stop=stop).next_probs
    assert base is not None
    t = int(np.argmax(base)) if token is None else token
    V = model.config.vocab_size
    pool = range(V) if V <= SMALL_VOCAB else sorted(set(ids))
    candidates = [(q, v) for q in range(p, -1, -1) for v in pool if v != prefix[q]]
    if not candidates:  # one token the whole vocabulary long: the only change is another id
        candidates = [(p, (prefix[p] + 1) % V)]
    if len(candidates) > runs:
        candidates = [candidates[round(k * (len(candidates) - 1) / max(1, runs - 1))] for k in range(runs)]
    best, low = candidates[0], 2.0
    for q, v in candidates:
        probs = model.run(prefix[:q] + [v] + prefix[q + 1:], keep=(), stop=stop).next_probs
        assert probs is not None
        if probs[t] < low:
            best, low = (q, v), float(probs[t])
    q, v = best
    return ids[:q] + [v] + ids[q + 1:]


def sweep_cost(model: Model, n_pos: int, position: int | None = None) -> int:
    """About what a sweep of inputs of n_pos tokens (the target at `position`) costs, counting every cell as if it
    ran: multiply-adds, plus READ for every weight read (a cell's pass over a few positions is bound by reading its
    layers' weights, once each, more than by multiplying)."""
    g, cfg = model.graph, model.config
    T = n_pos if position is None else position + 1
    if not cfg.n_layer:  # (the learning path's bigram table)
        raise LlmvizError(f"{cfg.name} has no layers: patching sweeps the stream into each layer and each head")
    L, H, unembed = cfg.n_layer, cfg.n_head, cfg.n_embd * cfg.vocab_size
    one, two = g.multiply_adds(1), g.multiply_adds(2)  # a pass is a·n + b·n² multiply-adds over n positions
    b = (two - 2 * one) // 2
    a = one - b - unembed
    parts = cfg.param_parts()
    weights = (parts["attention"] + parts["mlp"] + parts["other"]) // L  # one layer's

    def layers(k: int, n: int) -> int:  # k layers over n positions
        return k * ((a * n + b * n * n) // L + READ * weights)

    passes = 2 * (layers(L, T) + T * unembed + READ * unembed)
    resid = sum(layers(L - i, T - q) for i in range(L) for q in range(T))
    heads = H * sum(layers(L - i, T) for i in range(L))
    cells = L * T + 1 + L * H  # each one's target row through the unembedding, many rows a read of its weights
    chunk = max(1, TAIL_NUMBERS // cfg.vocab_size)
    return passes + resid + heads + cells * unembed + -(-cells // chunk) * READ * unembed
