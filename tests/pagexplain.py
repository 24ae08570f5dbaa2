"""The page's explanation of a cell (frontend/src/explain.ts, the only copy), run in node on a pass that Python
computed: what the tests of hover provenance check. Each cell is explained as the served page explains it, its
numbers arriving as the slices it asks for (see frontend/tools/explaincheck.ts). Needs `npm run build` (which
writes frontend/dist-test/explaincheck.mjs)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from llmviz.core.model import Trace

EXPLAINCHECK = Path(__file__).resolve().parent.parent / "frontend" / "dist-test" / "explaincheck.mjs"
_VOCAB: dict[int, list[str]] = {}


def node(jobs: list[dict]) -> list:
    """explaincheck's answers to these jobs."""
    out = subprocess.run(["node", str(EXPLAINCHECK)], input=json.dumps(jobs), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def pass_json(trace: Trace) -> dict:
    """What the page knows of a pass besides its numbers: its graph, its tokens (the cached ones first) and their
    names, and the vocabulary's."""
    m = trace.model
    if id(m) not in _VOCAB:
        _VOCAB[id(m)] = [m.token_strs([i])[0] for i in range(m.config.vocab_size)]
    graph = trace.graph.to_json()
    graph["past"] = trace.graph.past
    return {"model": m.name, "graph": graph, "context": trace.past_tokens + trace.tokens, "token_strs": trace.token_strs,
            "vocab": _VOCAB[id(m)]}


def explain_all(trace: Trace, cells: list[tuple[str, object]], stats: bool = False) -> list[dict]:
    """The page's explanation of each cell: (tensor, index) or (tensor, {axis: [first, last]}) for a region (its cell
    of largest magnitude). An index outside the tensor, or a tensor not in the graph: {"error": message}. stats: each
    answer as {"explanation", "rounds" (fetches of numbers it took), "slices"}."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pass.safetensors"
        trace.save(path, include_weights=True)
        queries = [{"tensor": t, "region" if isinstance(i, dict) else "index": i if isinstance(i, dict) else [int(x) for x in i]}
                   for t, i in cells]
        answers = node([{"kind": "explain", "trace": str(path), "pass": pass_json(trace), "cells": queries}])[0]
    return [a if stats or "error" in a else a["explanation"] for a in answers]


def explain(trace: Trace, tensor: str, index) -> dict:
    """The page's explanation of one cell (an error in what was asked raises ValueError with its message)."""
    a = explain_all(trace, [(tensor, index)])[0]
    if "error" in a:
        raise ValueError(a["error"])
    return a


def assert_explains_every_tensor(trace: Trace) -> None:
    """Each computed tensor's last cell, explained by the page: its value is the trace's, and its formula recomputes it."""
    import numpy as np
    import pytest

    names = [t.name for t in trace.graph if t.kind in ("activation", "aggregate")]
    cells = [(n, tuple(s - 1 for s in np.shape(trace[n]))) for n in names]
    for (name, index), e in zip(cells, explain_all(trace, cells), strict=True):
        v = float(trace[name][index])
        assert float(e["value"]) == v and e["formula"] is not None, name
        assert float(e["formula"]["result"]) == pytest.approx(v, rel=1e-4, abs=1e-5), (name, e["formula"]["text"])
