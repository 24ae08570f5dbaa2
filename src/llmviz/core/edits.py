"""Interventions: a forward pass with some cells of its tensors set to other numbers, everything downstream
computed from the edited values.

    model.run("CBABBC", edits=[{"tensor": "blocks.0.attn.hook_z", "where": {"head": 1}, "set": "zero"}])

An edit names a tensor of the graph, the cells to change by the graph's axis names (`where`: an index, or
[start, end] inclusive; an axis not named is all of it) and what they become (`set`):

    "zero"                    0
    "mean"                    the tensor's mean over this input's positions (the `pos` axis), at those cells
    {"value": x}              x
    {"scale": k}              k times what they were
    {"from_text": "..."}      activation patching: the same cells of the same tensor in the (clean) pass of
    {"from_tokens": [...]}    another input of the same length

Edits are applied in the order given, each right after its tensor is computed (model.Model._compute).
Inputs and weights are not edited: the tokens are the input one gives, and a weight edit is not supported yet.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .axes import AXES
from .errors import LlmvizError
from .graph import Graph

KINDS = ("zero", "mean", "value", "scale", "patch")
SET_FORMS = ("'zero', 'mean', {\"value\": x}, {\"scale\": k}, {\"from_text\": \"...\"} or {\"from_tokens\": [...]}")


class BadEdit(LlmvizError):
    """An edit that names no tensor, axis or cell of the pass, or says nothing it can do."""


@dataclass(frozen=True)
class Edit:
    """One edit of a forward pass. where: axis -> (start, end), inclusive; an axis not named is all of it.
    kind: one of KINDS; number: the value (value) or the factor (scale); source_tokens: the patch's input, and
    `source`, once the model has run it, the tensor's numbers in that input's pass."""

    tensor: str
    where: Mapping[str, tuple[int, int]]
    kind: str
    number: float = 0.0
    source_tokens: tuple[int, ...] | None = None
    source_text: str | None = None
    source: np.ndarray | None = field(default=None, compare=False, repr=False)

    def index(self, graph: Graph) -> tuple[slice, ...]:
        """The cells it sets, as an index of the tensor's array."""
        return tuple(slice(self.where[a][0], self.where[a][1] + 1) if a in self.where else slice(None)
                     for a in graph[self.tensor].axes)

    def set_json(self):
        if self.kind in ("zero", "mean"):
            return self.kind
        if self.kind == "patch":
            return {"from_text": self.source_text} if self.source_text is not None else {"from_tokens": list(self.source_tokens or ())}
        return {self.kind: self.number}

    def to_json(self) -> dict:
        return {"tensor": self.tensor, "where": {a: list(r) for a, r in self.where.items()}, "set": self.set_json()}


def parse_edits(graph: Graph, raw: Iterable, n_pos: int, encode: Callable[[Any], list[int]]) -> list[Edit]:
    """Edits from their JSON form (or Edit objects), checked against this graph for an input of n_pos tokens:
    the tensor exists and is an activation, its axes are named right, the cells are in range, `set` is one of
    its forms and a patch's input has n_pos tokens. encode: a text or token ids to checked token ids."""
    if isinstance(raw, (str, bytes, Mapping)):
        raise BadEdit("edits must be a list of edits, each {\"tensor\": ..., \"where\": {...}, \"set\": ...}")
    return [check(graph, e if isinstance(e, Edit) else parse_edit(graph, e, encode), n_pos, encode) for e in raw]


def parse_edit(graph: Graph, raw, encode: Callable[[Any], list[int]]) -> Edit:
    if not isinstance(raw, Mapping):
        raise BadEdit(f"an edit is {{\"tensor\": ..., \"where\": {{...}}, \"set\": ...}}, not {_short(raw)}")
    extra = set(raw) - {"tensor", "where", "set"}
    if extra:
        raise BadEdit(f"an edit has the keys tensor, where and set; {_short(sorted(extra)[0])} is not one of them")
    for key in ("tensor", "set"):
        if key not in raw:
            raise BadEdit(f"an edit needs {key!r}: {{\"tensor\": ..., \"where\": {{...}}, \"set\": ...}}")
    name, where = raw["tensor"], raw.get("where") or {}
    if not isinstance(name, str):
        raise BadEdit(f"an edit's tensor is a name of the graph, not {_short(name)}")
    if not isinstance(where, Mapping):
        raise BadEdit(f"where maps axis names to an index or [start, end] (inclusive), not {_short(where)}")
    ranges = {str(a): _range(name, a, r) for a, r in where.items()}
    return Edit(name, ranges, *_parse_set(raw["set"], encode))


def _range(tensor: str, axis, r) -> tuple[int, int]:
    if _is_int(r):
        return (r, r)
    if isinstance(r, (list, tuple)) and len(r) == 2 and all(_is_int(i) for i in r):
        if r[0] > r[1]:
            raise BadEdit(f"where {axis}=[{r[0]}, {r[1]}] of {tensor}: [start, end] needs start <= end (both inclusive)")
        return (r[0], r[1])
    raise BadEdit(f"where {axis} of {tensor} must be an index or [start, end] (inclusive), not {_short(r)}")


def _parse_set(s, encode) -> tuple:
    """(kind, number, source_tokens, source_text) of a `set`."""
    if s in ("zero", "mean"):
        return (s,)
    if isinstance(s, Mapping) and len(s) == 1:
        (key, v), = s.items()
        if key in ("value", "scale"):
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    and abs(v) <= float(np.finfo(np.float32).max)):
                raise BadEdit(f"set {{\"{key}\": ...}} takes a finite number within float32's range, not {_short(v)}")
            return (key, float(v))
        if key == "from_text":
            if not isinstance(v, str):
                raise BadEdit(f"set {{\"from_text\": ...}} takes a text, not {_short(v)}")
            return ("patch", 0.0, tuple(encode(v)), v)
        if key == "from_tokens":
            if not isinstance(v, (list, tuple)) or not all(_is_int(i) for i in v):
                raise BadEdit(f"set {{\"from_tokens\": ...}} takes a list of token ids, not {_short(v)}")
            return ("patch", 0.0, tuple(encode(list(v))))
    raise BadEdit(f"set must be {SET_FORMS}; got {_short(s)}")


def check(graph: Graph, e: Edit, n_pos: int, encode: Callable[[Any], list[int]] | None = None) -> Edit:
    """The edit, if it fits this graph for an input of n_pos tokens; else BadEdit saying what does."""
    model = graph.config.name
    if e.tensor not in graph:
        close = difflib.get_close_matches(e.tensor, graph.names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise BadEdit(f"unknown tensor {e.tensor!r}: not in {model}'s graph{hint}")
    t = graph[e.tensor]
    if t.kind == "input":
        raise BadEdit(f"{e.tensor} is the input: give other text or tokens instead, or patch an activation from another "
                      "input with {\"from_text\": ...}")
    if t.kind == "weight":
        reader = next((u.name for u in graph if e.tensor in u.inputs), None)
        hint = f" (such as {reader}, which reads it)" if reader else ""
        raise BadEdit(f"{e.tensor} is a weight: editing weights is not supported; edit an activation{hint}")
    if e.kind not in KINDS:
        raise BadEdit(f"set must be {SET_FORMS}; got {e.kind!r}")
    sizes = graph.sizes(n_pos)
    shape = t.shape(sizes)
    allowed = ", ".join(f"{a} (0 to {n - 1})" for a, n in zip(t.axes, shape))
    for a, (lo, hi) in e.where.items():
        if a not in t.axes:
            raise BadEdit(f"{e.tensor} has no axis {a!r}: its axes are {allowed}")
        n = shape[t.axes.index(a)]
        if not 0 <= lo <= hi < n:
            said = str(lo) if lo == hi else f"[{lo}, {hi}]"
            raise BadEdit(f"where {a}={said} is out of range for {e.tensor}: {a} goes from 0 to {n - 1}")
    if e.kind == "mean" and "pos" not in t.axes:
        raise BadEdit(f"set 'mean' is the mean over positions, and {e.tensor} has no pos axis: its axes are {allowed}")
    if e.kind == "patch":
        if e.source_tokens is None:
            raise BadEdit("a patch needs its input: {\"from_text\": ...} or {\"from_tokens\": [...]}")
        if encode is not None and e.source is None:
            encode(list(e.source_tokens))  # an Edit made by hand: its tokens checked against the vocabulary
        if len(e.source_tokens) != n_pos:
            raise BadEdit(f"the patch's input has {len(e.source_tokens)} tokens and this input {n_pos}: activation "
                          "patching takes the same cells from an input of the same length")
    return e


def with_sources(edits: Sequence[Edit], run_source: Callable[[list[int], list[str]], Mapping[str, np.ndarray]]) -> list[Edit]:
    """The edits with each patch's numbers: run_source(tokens, tensor names) is the clean pass of those tokens
    (one per distinct input, computing just the tensors patched from it)."""
    wanted: dict[tuple[int, ...], list[str]] = {}
    for e in edits:
        if e.kind == "patch" and e.source is None:
            assert e.source_tokens is not None
            wanted.setdefault(e.source_tokens, [])
            if e.tensor not in wanted[e.source_tokens]:
                wanted[e.source_tokens].append(e.tensor)
    got = {tokens: run_source(list(tokens), names) for tokens, names in wanted.items()}
    return [replace(e, source=got[e.source_tokens][e.tensor]) if e.kind == "patch" and e.source is None
            and e.source_tokens is not None else e for e in edits]


def by_tensor(edits: Sequence[Edit]) -> dict[str, list[Edit]]:
    out: dict[str, list[Edit]] = {}
    for e in edits:
        out.setdefault(e.tensor, []).append(e)
    return out


def apply(graph: Graph, a: np.ndarray, edits: Sequence[Edit]) -> np.ndarray:
    """A new array: `a` (one tensor's numbers) with these edits made, in order (`a` itself is never changed: an
    op may hand back its input or a view of a weight)."""
    out = np.array(a, dtype=np.float32, copy=True)
    for e in edits:
        i = e.index(graph)
        if e.kind == "zero":
            out[i] = 0.0
        elif e.kind == "value":
            out[i] = e.number
        elif e.kind == "scale":
            out[i] = out[i] * np.float32(e.number)
        elif e.kind == "mean":
            p = graph[e.tensor].axes.index("pos")
            mean = out.mean(axis=p, keepdims=True, dtype=np.float64).astype(np.float32)
            out[i] = np.broadcast_to(mean, out.shape)[i]
        elif e.kind == "patch":
            assert e.source is not None, "a patch's source pass has not been run (edits.with_sources)"
            out[i] = e.source[i]
    return out


def cells(graph: Graph, e: Edit, n_pos: int) -> int:
    """How many numbers an edit sets."""
    t = graph[e.tensor]
    n = 1
    for a, size in zip(t.axes, t.shape(graph.sizes(n_pos))):
        n *= e.where[a][1] - e.where[a][0] + 1 if a in e.where else size
    return n


def describe(graph: Graph, e: Edit) -> str:
    """The edit as a person reads it: "zero blocks.0.attn.hook_z at head 1", "patch blocks.1.hook_resid_post at
    position 3 from “CBACCA”"."""
    what = {"zero": "zero", "mean": "mean-ablate", "value": f"set to {e.number:g}", "scale": f"scale by {e.number:g}",
            "patch": "patch"}[e.kind]
    axes = graph[e.tensor].axes
    at = [f"{AXES[a][1]} {lo}" if lo == hi else f"{AXES[a][1]}s {lo}–{hi}"  # ("attention head 1")
          for a in axes if a in e.where for lo, hi in [e.where[a]]]
    source = ""
    if e.kind == "patch":
        source = f" from “{e.source_text}”" if e.source_text is not None else f" from tokens {list(e.source_tokens or ())}"
    return f"{what} {e.tensor}" + (f" at {', '.join(at)}" if at else " (all of it)") + source


def info(graph: Graph, e: Edit, n_pos: int) -> dict:
    """Where the edit was made, as the answers give it (serve/schemas.EditInfo): every axis's [first, last] cells,
    the `set` as asked, how many numbers it set and what it does, in words."""
    t = graph[e.tensor]
    where = {a: list(e.where.get(a, (0, size - 1))) for a, size in zip(t.axes, t.shape(graph.sizes(n_pos)))}
    return {"tensor": e.tensor, "where": where, "set": e.set_json(), "cells": cells(graph, e, n_pos),
            "label": describe(graph, e)}


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _short(x) -> str:
    try:
        s = json.dumps(x)
    except (TypeError, ValueError):
        s = repr(x)
    return s if len(s) <= 60 else s[:57] + "..."
