"""Attention: rotary position embeddings of the queries and keys (their frequencies, and the graph's rotated
tensors), each query against each key (scaled, the future masked), and the pattern's mix of the values. With
grouped-query attention the keys and values have fewer heads (`kv_head`): query head h reads key-value head
h // group."""

from __future__ import annotations

import math

import numpy as np

from .base import Op, at_cells, cells_along, fmt, local
from .rows import by_rows


def attn_scores(q, k, scale, kv_group=1):
    """[pos, head, d_head] x [key_pos, kv_head, d_head] -> [head, pos, key_pos], future keys = -inf. With a KV
    cache there are more keys than queries: the queries are the last positions, so query i sits at key
    position i + (keys - queries). kv_group: query heads per key head (1: one key head each). A batch's inputs have
    a leading batch axis, and so has the result."""
    qh = np.ascontiguousarray(np.swapaxes(q, -3, -2))  # contiguous per head: matmul then uses BLAS
    kh = np.ascontiguousarray(np.moveaxis(_per_head(k, kv_group), -1, -2))  # [head, d_head, key_pos]
    s = np.matmul(qh, kh)
    tq, tk = s.shape[-2:]
    keys = np.arange(tk)

    def scale_and_mask(rows):
        block = s[..., rows, :]
        block /= np.float32(scale)
        future = keys > np.arange(rows.start, rows.stop)[:, None] + (tk - tq)  # after each query's own position
        np.copyto(block, -np.inf, where=future)

    by_rows(scale_and_mask, tq, s.size)
    return s


ATTN_SCORES = Op(
    'attn_scores', 'q · k / √A, −∞ for future keys',
    'Dot product of each query with each earlier key, scaled; future keys are masked.',
    attn_scores, plain=(
        "# q, k: one head's queries and keys, one row per position\n"
        'd_head = q.shape[-1]\n'
        'scores = q @ k.T / np.sqrt(d_head)\n'
        'future = np.triu(np.ones(scores.shape, bool), k=1)  # a key after its query\n'
        'scores[future] = -np.inf'), backward=lambda g, out, q, k, scale, kv_group=1: attn_scores_backward(
            g, out, q, k, scale, kv_group), chain=lambda i, at, g, out, q, k, scale, kv_group=1: attn_scores_chain(
                i, at, g, out, q, k, scale, kv_group))


def attn_scores_chain(i, at, g, out, q, k, scale, kv_group=1):
    """A query's number q[p, h, a] meets every key it may see: Σ over them of g · k[j, h, a] / √A. A key's number
    k[j, kh, a] meets every query that sees it, of each head that shares it: Σ g · q[p, h, a] / √A."""
    if i == 0:
        p, h, a = at
        cells = cells_along(out.shape, {0: h, 1: p})
        d = k[:, h // kv_group, a]
    else:
        j, kh, a = at
        cells = cells_along(out.shape, {2: j})
        cells = cells[(cells[:, 0] // kv_group == kh)]
        d = q[cells[:, 1], cells[:, 0], a]
    seen = np.isfinite(at_cells(out, cells))  # (a masked score does not read the key)
    d = d.astype(np.float64)[seen] / scale
    return local("Σ g · k / √A" if i == 0 else "Σ g · q / √A", cells[seen], at_cells(g, cells[seen]), d,
                 rows=[("√A", scale)])


def _group_sum(a, kv_group):
    """[head, key_pos, d_head] -> [kv_head, key_pos, d_head]: the query heads that share a key-value head, added."""
    return a if kv_group == 1 else a.reshape(*a.shape[:-3], a.shape[-3] // kv_group, kv_group, *a.shape[-2:]).sum(-3)


def _per_head(kv, kv_group):
    """[key_pos, kv_head, d_head] -> [head, key_pos, d_head]: each query head's keys or values."""
    h = np.ascontiguousarray(np.swapaxes(kv, -3, -2))
    return np.repeat(h, kv_group, axis=-3) if kv_group > 1 else h


def attn_scores_backward(g, out, q, k, scale, kv_group=1):
    """g [head, pos, key_pos] (0 where a key is masked) back to q [pos, head, d_head] and k [key_pos, kv_head, d_head]."""
    g = np.where(np.isfinite(out), g, np.float32(0)) / np.float32(scale)
    gq = np.swapaxes(np.matmul(g, _per_head(k, kv_group)), -3, -2)  # [pos, head, d_head]
    gk = _group_sum(np.matmul(np.swapaxes(g, -1, -2), np.swapaxes(q, -3, -2)), kv_group)  # [kv_head, key_pos, d_head]
    return np.ascontiguousarray(gq), np.ascontiguousarray(np.swapaxes(gk, -3, -2))


def weighted_sum(pattern, v, kv_group=1):
    """[head, pos, key_pos] x [key_pos, kv_head, d_head] -> [pos, head, d_head]."""
    z = np.matmul(pattern, _per_head(v, kv_group))
    return np.ascontiguousarray(np.swapaxes(z, -3, -2))


WEIGHTED_SUM = Op(
    'weighted_sum', 'Σ p · v',
    'Mix the value vectors, weighted by the attention pattern.',
    weighted_sum, plain=(
        "# p: one head's attention pattern, v: its values, one row per position\n"
        'z = p @ v'), backward=lambda g, out, pattern, v, kv_group=1: weighted_sum_backward(g, pattern, v, kv_group),
    chain=lambda i, at, g, out, pattern, v, kv_group=1: weighted_sum_chain(i, at, g, out, pattern, v, kv_group))


def weighted_sum_chain(i, at, g, out, pattern, v, kv_group=1):
    """A weight of the pattern p[h, q, j] scales key j's value vector into z[q, h, :]: Σ over its channels of g · v.
    A value's number v[j, kh, a] is mixed into z[q, h, a] of every query and head that reads it: Σ g · p."""
    if i == 0:
        h, q, j = at
        cells = cells_along(out.shape, {0: q, 1: h})
        return local("Σ g · v", cells, at_cells(g, cells), v[j, h // kv_group, :])
    j, kh, a = at
    cells = cells_along(out.shape, {2: a})
    cells = cells[cells[:, 1] // kv_group == kh]
    return local("Σ g · p", cells, at_cells(g, cells), pattern[cells[:, 1], cells[:, 0], j])


def weighted_sum_backward(g, pattern, v, kv_group=1):
    """g [pos, head, d_head] back to the pattern [head, pos, key_pos] and the values [key_pos, kv_head, d_head]."""
    gh = np.swapaxes(g, -3, -2)  # [head, pos, d_head]
    gp = np.matmul(gh, np.swapaxes(_per_head(v, kv_group), -1, -2))
    gv = _group_sum(np.matmul(np.swapaxes(pattern, -1, -2), gh), kv_group)  # [kv_head, key_pos, d_head]
    return gp, np.ascontiguousarray(np.swapaxes(gv, -3, -2))


def rotary(x, inv_freq, offset=0, rotary_dims=None, turn=1):
    """Rotate each pair of channels (i, i + R/2) of each position p by the angle p · inv_freq[i], where R =
    rotary_dims is how many of each head's first channels turn (None: all of them); the channels after the first R
    pass through unchanged (partial rotary, as GPT-NeoX's and Phi's). The rotary position embedding as Hugging
    Face computes it (angles in float32). turn=-1: by −θ (the backward pass: a rotation's gradient is the gradient
    turned back)."""
    n = x.shape[-3]  # x: [pos, head, d_head], after a batch's axis if it has one
    r = x.shape[-1] if rotary_dims is None else rotary_dims
    half = r // 2
    angles = np.arange(offset, offset + n, dtype=np.float32)[:, None] * np.asarray(inv_freq, np.float32)[None, :]
    cos, sin = np.cos(angles)[:, None, :], np.float32(turn) * np.sin(angles)[:, None, :]
    a, b = x[..., :half], x[..., half:r]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin, x[..., r:]], axis=-1)


ROTARY = Op(
    'rotary', 'rotate (a, b) by θ = position × frequency',
    'Rotary position embedding: each pair of channels of a query or key turns by an angle that grows with the '
    'position, so that q · k depends on how far apart the two positions are (where only the first channels of a '
    'head turn, the others pass through unchanged).',
    rotary, backward=lambda g, out, x, inv_freq, offset=0, rotary_dims=None: (rotary(g, inv_freq, offset, rotary_dims, -1),),
    chain=lambda k, at, g, out, x, inv_freq, offset=0, rotary_dims=None: rotary_chain(at, g, x, inv_freq, offset,
                                                                                     rotary_dims))


def rotary_chain(at, g, x, inv_freq, offset=0, rotary_dims=None):
    """A channel of a turning pair (a, b) reaches both numbers of its pair's rotation: a → a cos θ − b sin θ and
    b cos θ + a sin θ, so ∂/∂a is cos θ there and sin θ in its partner; ∂/∂b, cos θ and −sin θ. A channel past the
    turned ones passes through."""
    p, h, c = at
    r = x.shape[-1] if rotary_dims is None else rotary_dims
    half = r // 2
    if c >= r:
        return local("g", np.array([at]), g[at], 1.0, text=lambda v: f"{fmt(v)} (× 1: this channel does not turn)")
    i = c % half
    theta = np.float32(offset + p) * np.float32(inv_freq[i])
    cos, sin = np.cos(theta), np.sin(theta)
    partner = c + half if c < half else c - half
    cells = np.array([at, (p, h, partner)])
    d = [cos, sin if c < half else -sin]
    return local("g · cos θ + g′ · sin θ" if c < half else "g · cos θ − g′ · sin θ", cells, at_cells(g, cells), d,
                 rows=[("θ", theta), ("cos θ", cos), ("sin θ", sin)])


def inv_freq(cfg) -> list[float]:
    """Each rotated channel pair's frequency, θ^(−2i/R) for the R = cfg.d_rotary channels that turn, with Llama 3's
    scaling if the config has it (as transformers computes them, in float32)."""
    if cfg.rope_theta is None:
        raise ValueError(f"rope_theta must be a number > 0 (got None): {cfg.name}'s positions are rotary")
    R = cfg.d_rotary
    freq = 1.0 / (cfg.rope_theta ** (np.arange(0, R, 2, dtype=np.int64).astype(np.float32) / R))
    if cfg.rope_type == "llama3":
        low, high = cfg.rope_original_max / cfg.rope_low_freq_factor, cfg.rope_original_max / cfg.rope_high_freq_factor
        wavelen = 2 * math.pi / freq
        scaled = np.where(wavelen > low, freq / cfg.rope_factor, freq)
        smooth = (cfg.rope_original_max / wavelen - cfg.rope_low_freq_factor) / (cfg.rope_high_freq_factor - cfg.rope_low_freq_factor)
        smoothed = (1 - smooth) * scaled / cfg.rope_factor + smooth * scaled
        medium = ~(wavelen < high) & ~(wavelen > low)
        freq = np.where(medium, smoothed, scaled)
    return [float(f) for f in np.asarray(freq, np.float32)]


def rotate(at, c: str, x: str, head_axis: str, title: str) -> str:
    """Declare the rotated queries or keys (c: "Q" or "K") in the attention scope `at`: `hook_rot_q` or `hook_rot_k`,
    x turned by the rotary embedding, its positions after any cached ones (a step's graph has `past` of them)."""
    cfg = at.config
    return at.op(f"hook_rot_{c.lower()}", ["pos", head_axis, "d_head"], "rotary", (x,), title, inv_freq=inv_freq(cfg),
                 offset=at.g.past, rotary_dims=cfg.d_rotary, label=f"{c} rotated")
