"""A tree of possible continuations: the top k next tokens after an input, then after each of those, and so
on, each with the model's probability of that token after its parent's path.

    tree = branches(model, "CBABBC", k=2, depth=2)
    tree["children"][0]    # {"id": 0, "token": "A", "prob": 0.99995, "text": "CBABBCA", "children": [...]}

`text` is the node's whole path as plain text (the input, then the tokens down to it).

Each node is one step on a KV cache: a node computes only its one new position. The input's keys and values
are computed once and shared by the whole tree; a node keeps only its own position's (see `KVCache.tail`), and
its children's steps read the input's cache followed by those of the nodes on its path (`KVCache.join`). A node
is computed only when it gets children. So the tree's memory grows by one position's keys and values a node,
whatever the input's length; `tree_bytes` counts it before anything is computed.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import LlmvizError
from ..core.graph import Graph
from ..core.model import KVCache, Model, Prompt

MAX_K, MAX_DEPTH, MAX_NODES = 20, 6, 2000
NODE_BYTES = 1024  # a node's dict and numbers, beside its text


def branches(model: Model, prompt: Prompt, k: int = 3, depth: int = 1, max_nodes: int = 200,
             stop=None) -> dict:
    """The tree below `prompt`, breadth first, to `depth` levels of the `k` most probable tokens, with at most
    `max_nodes` nodes (the most probable first at each level) and never past the context."""
    model.require_weights()
    check(k, depth, max_nodes)
    ids = model.encode(prompt)
    prefix = KVCache(model)
    root = {"tokens": ids, "token_strs": model.token_strs(ids), "text": model.decode(ids), "children": []}
    first = model.step(prefix, ids, keep=(), stop=stop).next_probs
    level: list[tuple[dict, list[KVCache], list[int]]] = [(root, [], ids)]  # a node, its ancestors' own caches, path
    count, joined, joined_for = 0, prefix, None
    for d in range(depth):
        below = []
        for node, above, path in level:
            if count >= max_nodes:
                return root
            if node is root:
                probs, own = first, []
            else:  # its one position, on the input's cache and its ancestors' (siblings share that join)
                if joined_for is not above:
                    joined, joined_for = KVCache.join([prefix, *above]), above
                cache = joined.copy()
                probs = model.step(cache, path[-1:], keep=(), stop=stop).next_probs
                own = [*above, cache.tail(len(joined))]
            assert probs is not None  # a step always predicts
            for i in _top(probs, k):
                if count >= max_nodes:
                    return root
                child = {"id": i, "token": model.token_strs([i])[0], "prob": float(probs[i]),
                         "text": model.decode(path + [i]), "children": []}
                node["children"].append(child)
                count += 1
                if d + 1 < depth and len(path) + 1 <= model.config.n_ctx:
                    below.append((child, own, path + [i]))
        level = below
    return root


def check(k: int, depth: int, max_nodes: int) -> None:
    for name, v, hi in (("k", k, MAX_K), ("depth", depth, MAX_DEPTH), ("max_nodes", max_nodes, MAX_NODES)):
        if not 1 <= v <= hi:
            raise LlmvizError(f"{name} must be from 1 to {hi}, not {v}")


def node_count(model: Model, n_tokens: int, k: int, depth: int, max_nodes: int) -> int:
    """How many nodes `branches` makes for an input of n_tokens: k a node, level by level, to the context's end."""
    k, total, width = min(k, model.config.vocab_size), 0, 1
    for _d in range(min(depth, model.config.n_ctx - n_tokens + 1)):
        width *= k
        total += width
    return min(total, max_nodes)


def tree_bytes(model: Model, n_tokens: int, k: int, depth: int, max_nodes: int, text_bytes: int) -> int:
    """The memory `branches` needs at most for an input of n_tokens (text_bytes: its text's length): the input's
    pass and cache, each node's own position and its text, and one node's step (its ancestors' caches joined, the
    step's working set)."""
    cfg, nodes = model.config, node_count(model, n_tokens, k, depth, max_nodes)
    longest = min(n_tokens + depth, cfg.n_ctx)
    kept = cfg.kv_cache_bytes(n_tokens) + nodes * (cfg.kv_cache_bytes(1) + NODE_BYTES + 2 * (text_bytes + 16 * depth))
    step = 3 * cfg.kv_cache_bytes(longest) + Graph(cfg, past=longest - 1).peak_bytes(1, ())
    return kept + max(model.graph.peak_bytes(n_tokens, ()), step)


def _top(probs: np.ndarray, k: int) -> list[int]:
    k = min(k, probs.size)
    part = np.argpartition(-probs, k - 1)[:k]
    return [int(i) for i in part[np.argsort(-probs[part], kind="stable")]]
