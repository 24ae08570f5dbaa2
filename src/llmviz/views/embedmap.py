"""The embedding map: the rows of the token embedding W_E (and of the position embedding W_pos, for a model with
learned positions) projected onto their first two principal components, so that a learner sees which vectors are
alike.

    m = embedding_map(llmviz.load_model("nano-gpt"))
    m["maps"][0]["variance"]          # [PC1's share, PC2's share] of the rows' variance
    m["maps"][0]["points"][0]         # {"id": 0, "label": "A", "x": ..., "y": ..., "vector": [...], "norm": ...}

PCA: the rows are centred on their mean; the components are the right singular vectors of the centred matrix (for
a tall matrix, such as GPT-2's 50,257 rows, the eigenvectors of its C × C scatter matrix, summed in chunks: the
same vectors, without a copy of the whole matrix). Each component's sign is chosen so that its loading of largest
magnitude is positive, so the same weights always give the same picture. A point's coordinates are its centred row
times the two components; a component's share of the variance is its eigenvalue over their sum.

A large vocabulary is shown by its MAX_POINTS lowest ids (the components are still those of every row), and a
row longer than VECTOR_SHOWN numbers is sent as its first VECTOR_SHOWN and its norm; the answer says both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.graph import Graph
from ..core.model import Model
from ..core.weights import widen

MAX_POINTS = 2000  # points per plot, at most: the lowest ids
VECTOR_SHOWN = 64  # numbers of each row sent for its hover, at most
SVD_CELLS = 4_000_000  # a matrix up to this size is decomposed whole (SVD); a larger one through its scatter matrix
CHUNK_ROWS = 4096  # rows summed at a time into the scatter matrix
LOOKUPS = {"embed": "tokens", "pos_embed": "positions"}  # an embedding lookup's op -> what its table's rows stand for


def mapped(graph: Graph) -> dict[str, str]:
    """The weights that have a map: each embedding lookup's table (the first input of an `embed` or `pos_embed`
    op), as {tensor: "tokens" | "positions"}."""
    found = ((graph[n].inputs, LOOKUPS.get(graph[n].op or "")) for n in graph.names())
    return {inputs[0]: which for inputs, which in found if which}


def components(X: np.ndarray, svd_cells: int = SVD_CELLS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of the rows of X: (their mean, the first two components as a 2 × C array with the sign convention
    applied, the variance fractions of those two). A matrix of one column, or whose rows are all equal, has a
    zero second (or first) component with a fraction of 0."""
    n, c = X.shape
    mean = np.zeros(c)
    for start in range(0, n, CHUNK_ROWS):
        mean += widen(X[start:start + CHUNK_ROWS]).sum(axis=0, dtype=np.float64)
    mean /= max(n, 1)
    if n * c <= svd_cells:
        _, s, vt = np.linalg.svd(widen(X).astype(np.float64) - mean, full_matrices=False)
        values, vectors = s ** 2, vt
    else:  # the scatter matrix Xcᵀ Xc, a chunk of rows at a time: its eigenvectors are the right singular vectors
        scatter = np.zeros((c, c))
        for start in range(0, n, CHUNK_ROWS):
            chunk = widen(X[start:start + CHUNK_ROWS]).astype(np.float64) - mean
            scatter += chunk.T @ chunk
        values, vecs = np.linalg.eigh(scatter)
        values, vectors = np.clip(values[::-1], 0, None), vecs[:, ::-1].T
    total = float(values.sum())
    top = np.zeros((2, c))
    fractions = np.zeros(2)
    k = min(2, len(values))
    top[:k] = vectors[:k]
    if total > 0:
        fractions[:k] = values[:k] / total
    for i in range(2):
        if fractions[i] == 0:
            top[i] = 0  # no variance along it: no direction to speak of
        elif top[i, np.argmax(np.abs(top[i]))] < 0:
            top[i] = -top[i]
    return mean, top, fractions


def matrix_map(model: Model, tensor: str, which: str) -> dict[str, Any]:
    """One matrix's map: its rows' coordinates on the first two components, labelled, each with its vector."""
    W = model.require_weights()[tensor]
    n, c = W.shape
    mean, top, fractions = components(W)
    shown = min(n, MAX_POINTS)
    rows = widen(W[:shown]).astype(np.float64)
    xy = (rows - mean) @ top.T
    labels = model.token_strs(list(range(shown))) if which == "tokens" else [str(i) for i in range(shown)]
    vectors = widen(W[:shown, :VECTOR_SHOWN]).astype(np.float32)
    norms = np.sqrt((rows ** 2).sum(axis=1))
    kind = "token ids" if which == "tokens" else "positions"
    notes = []
    if shown < n:
        notes.append(f"showing the {shown:,} lowest {kind} of {n:,} (the components are those of all {n:,} rows)")
    if n == 3:
        notes.append("three points always lie in one plane: the two components keep all of their variance")
    elif n == 2:
        notes.append("two points always lie on one line: the first component keeps all of their variance")
    if c > VECTOR_SHOWN:
        notes.append(f"each vector: its first {VECTOR_SHOWN} of {c:,} numbers, and its length")
    spec = model.graph[tensor]
    return {
        "which": which, "tensor": tensor, "title": spec.title, "label": spec.label, "rows": n, "d_model": c,
        "variance": [float(f) for f in fractions],
        "scale": float(np.abs(widen(W)).max()) if W.size else 0.0,  # the block's colour scale in the view
        "note": "; ".join(notes) or None,
        "points": [{"id": i, "label": labels[i], "x": float(xy[i, 0]), "y": float(xy[i, 1]),
                    "vector": shortest(vectors[i]), "norm": float(norms[i])} for i in range(shown)],
    }


def shortest(row: np.ndarray) -> list[float]:
    """float32 numbers as the shortest decimals that read back as the same float32 (0.1234, not 0.12340000271797180):
    the same numbers in about half the JSON."""
    return [float(str(x)) for x in row]


def embedding_map(model: Model) -> dict[str, Any]:
    """Every embedding matrix's map (tokens first); a model without learned positions says how it places tokens."""
    model.require_weights()
    maps = sorted(mapped(model.graph).items(), key=lambda kv: kv[1] != "tokens")
    out = [matrix_map(model, tensor, which) for tensor, which in maps]
    note = None
    if not any(m["which"] == "positions" for m in out):
        note = ("This model has no position embedding to map: it turns each query and key by an angle that grows "
                "with the position (rotary embedding), so positions have no vectors of their own.")
    return {"model": model.name, "maps": out, "note": note}
