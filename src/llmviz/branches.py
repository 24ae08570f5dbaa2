"""A tree of possible continuations: the top k next tokens after an input, then after each of those, and so
on, each with the model's probability of that token after its parent's path.

    tree = branches(model, "CBABBC", k=2, depth=2)
    tree["children"][0]    # {"id": 0, "token": "A", "prob": 0.99995, "text": "CBABBCA", "children": [...]}

`text` is the node's whole path as plain text (the input, then the tokens down to it).

Each level is one step on a KV cache: a child computes only its one new position.
"""

from __future__ import annotations

import numpy as np

from .errors import LlmvizError
from .model import KVCache, Model, Prompt

MAX_K, MAX_DEPTH, MAX_NODES = 20, 6, 2000


def branches(model: Model, prompt: Prompt, k: int = 3, depth: int = 1, max_nodes: int = 200,
             stop=None) -> dict:
    """The tree below `prompt`, breadth first, to `depth` levels of the `k` most probable tokens, with at most
    `max_nodes` nodes (the most probable first at each level) and never past the context."""
    model.require_weights()
    for name, v, hi in (("k", k, MAX_K), ("depth", depth, MAX_DEPTH), ("max_nodes", max_nodes, MAX_NODES)):
        if not 1 <= v <= hi:
            raise LlmvizError(f"{name} must be from 1 to {hi}, not {v}")
    ids = model.encode(prompt)
    cache = KVCache(model)
    root = {"tokens": ids, "token_strs": model.token_strs(ids), "text": model.decode(ids), "children": []}
    level = [(root, cache, ids, model.step(cache, ids, keep=(), stop=stop).next_probs)]
    count = 0
    for d in range(depth):
        below = []
        for node, cache, path, probs in level:
            for i in _top(probs, k):
                if count >= max_nodes:
                    return root
                child = {"id": int(i), "token": model.token_strs([int(i)])[0], "prob": float(probs[i]),
                         "text": model.decode(path + [int(i)]), "children": []}
                node["children"].append(child)
                count += 1
                if d + 1 < depth and len(path) + 1 <= model.config.n_ctx:
                    c = cache.copy()
                    below.append((child, c, path + [int(i)], model.step(c, [int(i)], keep=(), stop=stop).next_probs))
        level = below
    return root


def _top(probs: np.ndarray, k: int) -> list[int]:
    k = min(k, probs.size)
    part = np.argpartition(-probs, k - 1)[:k]
    return [int(i) for i in part[np.argsort(-probs[part], kind="stable")]]
