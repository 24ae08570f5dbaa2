"""Looking up vectors, and the residual stream's plumbing: token and position embeddings, the KV cache's
concatenation, the residual add and the identity that carries the stream into a layer."""

from __future__ import annotations

import numpy as np

from .base import Op, fmt, region


def embed(W_E, tokens):
    return W_E[tokens]


def explain_embed(trace, t, at, value):
    W_name, tok_name = t.inputs
    tok = trace.tokens[at["pos"]]
    result = float(trace[W_name][tok, at["d_model"]])
    return {"text": f"W_E[{tok}, {at['d_model']}] = {fmt(result)}: token {trace.token_strs[at['pos']]!r} (id {tok}) picks "
                    f"W_E[{tok}], the vector of id {tok}", "result": result, "rows": [["token id", str(tok)]],
            "sources": [region(trace, tok_name, {"pos": at["pos"]}, "input"),
                        region(trace, W_name, {"vocab": tok, "d_model": at["d_model"]}, "weight")]}


EMBED = Op(
    'embed', 'W_E[token]',
    "Look up each token's vector in the token-embedding matrix (in the view, its column).",
    embed, explain_embed)


def pos_embed(W_pos, tokens, offset=0):
    """The rows of the positions these tokens sit at: after `offset` cached positions."""
    return W_pos[offset: offset + len(tokens)]


def explain_pos_embed(trace, t, at, value):
    W_name, _tok_name = t.inputs
    n = at["pos"] + t.attrs.get("offset", 0)  # after the cached positions, with a KV cache
    result = float(trace[W_name][n, at["d_model"]])
    return {"text": f"W_pos[{n}, {at['d_model']}] = {fmt(result)}: position {n} picks W_pos[{n}], the vector of position {n}",
            "result": result, "rows": [],
            "sources": [region(trace, W_name, {"n_ctx": n, "d_model": at["d_model"]}, "weight")]}


POS_EMBED = Op(
    'pos_embed', 'W_pos[t]',
    "Look up each position's vector in the position-embedding matrix (in the view, its column).",
    pos_embed, explain_pos_embed)


def concat(past, new):
    """The cache so far, then this step's rows: [past_pos + pos, ...]."""
    return np.concatenate([past, new], axis=0)


def explain_concat(trace, t, at, value):
    past_name, new_name = t.inputs
    j, past = at["key_pos"], trace.graph.past
    rest = {a: at[a] for a in at if a != "key_pos"}
    if j < past:
        result = float(trace[past_name][(j, *rest.values())])
        return {"text": f"from the cache: computed at an earlier step, position {j} = {fmt(result)}", "result": result,
                "rows": [], "sources": [region(trace, past_name, {"past_pos": j, **rest}, "input")]}
    result = float(trace[new_name][(j - past, *rest.values())])
    return {"text": f"new at this step: position {j} = {fmt(result)}", "result": result, "rows": [],
            "sources": [region(trace, new_name, {"pos": j - past, **rest}, "input")]}


CONCAT = Op(
    'concat', '[past; new]',
    "The keys (or values) so far: the cache from earlier steps, then this step's.",
    concat, explain_concat)


def add(*xs):
    """The sum of two tensors (the residual connection: the stream plus what a branch computed from it), or of three
    (a parallel block: the stream plus attention's output plus the MLP's, both computed from the same stream)."""
    out = xs[0] + xs[1]
    for x in xs[2:]:
        out += x
    return out


def explain_add(trace, t, at, value):
    a_name, b_name = t.inputs
    graph = trace.graph
    a = float(trace[a_name][tuple(at[x] for x in graph[a_name].axes)])
    b = float(trace[b_name][tuple(at[x] for x in graph[b_name].axes)])
    result = a + b
    return {"text": f"a + b = {fmt(a)} + {fmt(b)} = {fmt(result)}", "result": result,
            "rows": [[f"a: {graph[a_name].title}", fmt(a)], [f"b: {graph[b_name].title}", fmt(b)]],
            "sources": [region(trace, a_name, dict(at), "input"), region(trace, b_name, dict(at), "input")]}


ADD = Op('add', 'a + b', 'Add tensors element by element (the residual connection).', add, explain_add, symbol='+')


def identity(x):
    return x


def explain_identity(trace, t, at, value):
    x_name = t.inputs[0]
    result = float(trace[x_name][tuple(at[a] for a in trace.graph[x_name].axes)])
    return {"text": f"the same number as {x_name}: {fmt(result)}", "result": result, "rows": [],
            "sources": [region(trace, x_name, dict(at), "input")]}


IDENTITY = Op(
    'identity', 'x',
    "The same tensor, passed on: the previous layer's output is this layer's input.",
    identity, explain_identity)


def scale(x, factor, factor_name=""):
    return x * np.float32(factor)


def explain_scale(trace, t, at, value):
    x_name = t.inputs[0]
    x = float(trace[x_name][tuple(at[a] for a in trace.graph[x_name].axes)])
    c, name = float(t.attrs["factor"]), t.attrs.get("factor_name", "c")
    return {"text": f"x × {name} = {fmt(x)} × {fmt(c)} = {fmt(x * c)}", "result": x * c, "rows": [["x", fmt(x)], [name, fmt(c)]],
            "sources": [region(trace, x_name, dict(at), "input")]}


SCALE = Op('scale', 'x × c', 'Multiply every number by one constant (Gemma scales its token embedding by √C).',
           scale, explain_scale)
