"""Where each tensor of the model graph sits in the 3D scene. Derived from the graph alone.

Each tensor is a block of cells: a grid with one axis across (x), one down (y) and, for tensors with
a `head` axis, one slab per head, side by side (or stacked in depth, z). One world unit is one cell.

- Across: `pos` if the tensor has it (each column is one token), else its first axis (for a weight,
  the axis it is multiplied along, so W_E's columns are the vocabulary and a lookup picks a column).
  Attention scores and patterns are drawn as people draw them: one row per query (`pos`), one column
  per key (`key_pos`), so each row sums to 1 and the masked future keys fill the upper right.
- Down: the remaining axis; a vector stands as one column, a per-position number as one row.
- An image (an image classifier's input, `pixel` alone, config.image_side² long) is drawn as the image: its pixels
  across, wrapped row by row into a square (`wrap` cells a row), row 0 at the top, as the drawing pad shows it.
- A long vocabulary (LONG_VOCAB) always lies across: GPT-2's logits have one row per position.
- Rows of the scene follow the data flow top to bottom: one row per op, with tensors computed from the
  same input side by side (Q, K and V; the token and position embeddings). Weights sit to the right of
  the tensor they feed, aggregates (mean, max, ...) beside the tensor they feed.
- The residual stream (the input and every `add`) runs down a centre column; the branches (layer norm,
  attention, MLP) sit to its right and rejoin it.
- The model uses the width of a screen (see arrangement): a layer's MLP, with its norm, may stand beside its
  attention rather than below it, and the layers stand in columns side by side, the residual stream down the left of
  each, stepping from the foot of one column to the head of the next.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

from ..core.config import ModelConfig
from ..core.graph import Graph, TensorSpec

GAP = 3.0  # cells between blocks in a row
HEAD_GAP = 1.0  # cells between heads laid side by side
WIDE_WEIGHT = 4  # a weight this many times wider than its row's activations sits at the row's end
ROW_GAP = 10.0  # cells between rows
ASPECT = 2.2  # the whole model's width for its height that arrangement() aims at (1280 × 800 below the
# toolbar, seen at three-quarters with the model's title above it)
COLUMN_GAP = 0.2  # between columns of layers, as a share of a column's width (room for the layers' titles)
# A vocabulary longer than this (GPT-2's 50,257) lies across in every tensor that has it, as in the embedding
# matrix: the unembedding, the logits and the probabilities are as wide as the embedding above them (one row per
# position), not a needle 50,257 cells tall beside the layers. A short one (nano-gpt's 3) follows the rules above.
LONG_VOCAB = 512
MERGE_HEADS_ABOVE = 32  # with more heads, a stack is one box (bounded draw cost at GPT-3 scale)

@dataclass
class Block:
    tensor: str
    x_axis: str | None  # the axis across; None for a single column
    y_axis: str | None  # the axis down; None for a single row
    z_axis: str | None  # "head" for a stack of slabs
    cols: int
    rows: int
    depth: int  # slabs (heads); 1 otherwise
    merged: bool = False  # a many-head stack drawn as one box
    x: float = 0.0  # top-left-front corner of the first slab
    y: float = 0.0
    z: float = 0.0
    z_step: float = 0.0  # distance between slabs stacked in depth
    x_step: float = 0.0  # distance between slabs side by side
    residual: bool = False
    row: int = 0
    wrap: int | None = None  # the axis across laid row by row, this many cells a row: cell (r, c) is index r × wrap + c

    @property
    def width(self) -> float:
        return float(self.cols) + (self.depth - 1) * self.x_step

    @property
    def height(self) -> float:
        return float(self.rows)


@dataclass
class Layout:
    blocks: list[Block]
    links: list[tuple[str, str]]  # producer -> consumer, between blocks of computed tensors
    sections: list[dict] = field(default_factory=list)  # labelled boxes: Embedding, Transformer i, Attention ...
    bounds: tuple[float, float, float, float] = (0, 0, 0, 0)  # x0, y0 (top), x1, y1 (bottom)
    bands: list[tuple[float, float, float, float]] = field(default_factory=list)  # the residual stream down each column


def _rule_axes(t: TensorSpec) -> tuple[str | None, str | None, str | None]:
    z = next((a for a in ("head", "kv_head") if a in t.axes), None)  # heads: slabs in depth, or side by side
    axes = [a for a in t.axes if a != z]
    if len(axes) == 2:
        x = "key_pos" if "key_pos" in axes else "pos" if "pos" in axes else axes[0]
        return x, next(a for a in axes if a != x), z
    if len(axes) == 1:
        return (axes[0], None, z) if axes[0] in ("pos", "pixel") else (None, axes[0], z)  # (an image: across, as tokens)
    return None, None, z


def block_axes(t: TensorSpec, sizes: dict[str, int] | None = None) -> tuple[str | None, str | None, str | None]:
    """The axes across, down and in depth (see the module's rules); with the sizes, a long vocabulary lies across."""
    x, y, z = _rule_axes(t)
    if sizes and "vocab" in t.axes and x != "vocab" and sizes["vocab"] > LONG_VOCAB:
        x, y = "vocab", (y if x is None else x)
    return x, y, z


def image_wrap(t: TensorSpec, sizes: dict[str, int], image_side: int) -> int | None:
    """The cells a row of an image tensor's block (its pixels alone, image_side² of them): the image's side; None for
    any other tensor."""
    if image_side > 0 and t.axes == ("pixel",) and sizes["pixel"] == image_side ** 2:
        return image_side
    return None


def make_block(t: TensorSpec, sizes: dict[str, int], image_side: int = 0) -> Block:
    x, y, z = block_axes(t, sizes)
    n_head = sizes[z] if z else 1
    wrap = image_wrap(t, sizes, image_side)
    cols, rows = (wrap, wrap) if wrap else (sizes[x] if x else 1, sizes[y] if y else 1)
    return Block(t.name, x, y, z, cols, rows, n_head, merged=bool(z) and n_head > MERGE_HEADS_ABOVE,
                 residual=t.residual, wrap=wrap)


def build_layout(graph: Graph, n_pos: int, heads: str = "side", arranged: tuple[bool, int] | None = None) -> Layout:
    """heads: "side" lays the heads of a tensor side by side, "stack" one behind the other (a stack of more
    than MERGE_HEADS_ABOVE heads is always one box). arranged: the MLP beside its attention or not, and the
    columns of layers (default: the model's own, see arrangement)."""
    sizes = graph.sizes(n_pos)
    specs = list(graph)

    # 1. Rows. A computed tensor continues the row of its input when it keeps the same axis down (layer
    #    norm steps, GELU, softmax) or reads the same inputs as the row's first tensor (Q/K/V, token and
    #    position embeddings); a residual add rejoins the row of the branch it adds, in the centre column.
    #    Otherwise it opens a row below. Weights and aggregates join the row of the tensor they feed.
    rows: list[list[str]] = []
    row_of: dict[str, int] = {}
    axes = {t.name: block_axes(t, sizes) for t in specs}
    down = {n: a[1] for n, a in axes.items()}
    for t in specs:
        if t.kind in ("weight", "aggregate"):
            continue
        acts = [i for i in t.inputs if graph[i].kind in ("activation", "input")]
        here = rows[-1] if rows else []
        residual = t.residual
        lead = graph[here[0]] if here else None
        siblings = lead is not None and lead.kind != "input" and set(acts) == {
            i for i in lead.inputs if graph[i].kind in ("activation", "input")}
        chained = bool(acts) and acts[-1] in here and down[acts[-1]] == down[t.name] and t.op != "identity"
        chained &= axes[t.name][0] != "vocab"  # a long vocabulary across: a row of its own (the probabilities)
        has_residual = any(graph[n].residual for n in here)
        same_layer = lead is not None and lead.layer == t.layer  # each layer starts a row of its own
        if here and same_layer and (siblings or chained) and not (residual and has_residual):
            here.append(t.name)
        else:
            rows.append([t.name])
        row_of[t.name] = len(rows) - 1

    # Order in a row: each activation, then its aggregates, then its weights (in input order); a weight far
    # wider than the row's activations (GPT-2's 50,257-wide W_E) goes after them all, so that the token path
    # stays together; a long vocabulary's weight that feeds activations as long (W_U, the logits) has a row of
    # its own just above theirs, so that the model is as wide as one of them, not two.
    blocks: dict[str, Block] = {}
    ordered_rows: list[list[str]] = []
    for r, names in enumerate(rows):
        out = []
        for n in names:
            out.append(n)
            extra = [i for i in graph[n].inputs if graph[i].kind == "aggregate"]
            extra += [i for i in graph[n].inputs if graph[i].kind == "weight"]
            for i in extra:
                if i not in row_of:
                    row_of[i] = r
                    out.append(i)
        ordered_rows.append(out)
    for t in specs:
        b = blocks[t.name] = make_block(t, sizes, graph.config.image_side)
        b.row = row_of[t.name]
        if b.depth > 1:  # a merged stack is one box, as deep as its heads stacked
            b.x_step, b.z_step = (b.cols + HEAD_GAP, 0.0) if heads == "side" and not b.merged else (0.0, 2.0)
    split: list[list[str]] = []
    for out in ordered_rows:
        path = max((blocks[n].width for n in out if graph[n].kind != "weight"), default=0.0)
        own = [n for n in out if graph[n].kind == "weight" and blocks[n].x_axis == "vocab" and path > LONG_VOCAB]
        wide = [n for n in out if graph[n].kind == "weight" and blocks[n].width > WIDE_WEIGHT * path and n not in own]
        rest = [n for n in out if n not in wide and n not in own] + wide
        split += [own, rest] if own and rest else [rest or own]
    ordered_rows = split
    for r, out in enumerate(ordered_rows):
        for n in out:
            blocks[n].row = r

    # 2. Place the rows (see _place_rows), with each layer's MLP beside its attention or below it, and the layers in
    #    k columns: the model's arrangement (see arrangement), the same whatever the input or the generation step.
    beside, k = arranged or arrangement(graph.config, heads)
    _place_rows(graph, ordered_rows, blocks, n_pos, beside)
    if k == 0:  # (rows placed for arrangement() to score, not yet in columns)
        return Layout(list(blocks.values()), [])
    _wrap_layers(graph, list(blocks.values()), k)

    links = [(i, t.name) for t in specs if t.kind in ("activation",)
             for i in t.inputs if graph[i].kind in ("activation", "input")]
    layout = Layout([blocks[t.name] for t in specs], links)
    layout.sections = _sections(graph, layout)
    xs = [b.x for b in layout.blocks] + [b.x + b.width for b in layout.blocks]
    layout.bounds = (min(xs), 0.0, max(xs), min(b.y - b.height for b in layout.blocks))
    layout.bands = _bands(layout.blocks)
    return layout


def _bands(blocks: list[Block]) -> list[tuple[float, float, float, float]]:
    """The residual stream's band down each column of layers (x0, top, x1, bottom), in the order it flows."""
    columns: dict[float, list[Block]] = {}
    for b in blocks:
        if b.residual:
            columns.setdefault(b.x, []).append(b)
    return [(x - 1, max(b.y for b in bs) + 2, x + max(b.width for b in bs) + 1, min(b.y - b.height for b in bs) - 2)
            for x, bs in sorted(columns.items())]


def _feeds_mlp(t: TensorSpec) -> bool:
    """The MLP and the norm in front of it (GPT-2's ln2, Llama's post-attention RMSNorm)."""
    return t.layer is not None and t.group.endswith((".mlp", ".ln2"))


def _place_rows(graph: Graph, ordered_rows: list[list[str]], blocks: dict[str, Block], n_pos: int, beside: bool) -> None:
    """Place rows top to bottom: residual tensors in the centre column at x = 0, the rest from the branch column
    rightwards. Stacks of heads go back in depth.

    With `beside`, a layer's MLP sits beside its attention, in the order data flows: its norm and its rows form a
    column of their own that starts level with the layer's first row, right of everything else in the layer, while the
    residual stream stays one path down the centre column (the MLP's add below the attention's; a parallel block's one
    add, of attention's output and the MLP's, below both)."""
    rows: list[tuple[list[str], bool]] = []  # each row, and whether it is in the MLP's column
    for names in ordered_rows:
        lead = graph[names[0]]
        mlp = [n for n in names if beside and _feeds_mlp(graph[n])]
        if mlp and not _feeds_mlp(lead):  # the norm that feeds the MLP: at the head of the MLP's column
            rows += [([n for n in names if n not in mlp], False), (mlp, True)]
        else:
            rows.append((names, bool(mlp)))
    branch_x = n_pos + 6 * GAP
    y = 0.0  # the top of the next row
    bottom = 0.0  # the lowest edge placed so far
    res_bottom = 1.0  # the residual column's lowest edge so far
    layer_top: dict[int, float] = {}  # the top of a layer's first row
    right: dict[int, float] = {}  # the right edge of a layer's rows outside its MLP's column
    mlp_at: dict[int, float] = {}  # where a layer's MLP's column starts across
    mlp_y = 0.0  # the top of the next row in the MLP's column
    for names, in_mlp in rows:
        layer = graph[names[0]].layer
        x_res, x_branch, height = 0.0, branch_x, 0.0
        if in_mlp and layer is not None:
            if layer not in mlp_at:
                mlp_at[layer] = right.get(layer, branch_x) + 2 * GAP
                mlp_y = layer_top.get(layer, y)
            x_branch, y = mlp_at[layer], mlp_y
            if any(blocks[n].residual for n in names):  # its add stays below the attention's, in the centre column,
                read = [blocks[i] for n in names if blocks[n].residual for i in graph[n].inputs if i not in names]
                y = min(y, res_bottom - ROW_GAP, *(b.y - b.height - ROW_GAP for b in read))  # and below what it adds
        elif layer is not None:
            layer_top.setdefault(layer, y)
        for n in names:
            b = blocks[n]
            if b.residual:
                b.x, x_res = x_res, x_res + b.width + GAP
                res_bottom = min(res_bottom, y - b.height)
            else:
                b.x, x_branch = x_branch, x_branch + b.width + GAP
            b.y = y
            height = max(height, b.height)
        if layer is not None and not in_mlp:
            right[layer] = max(right.get(layer, 0.0), x_branch - GAP)
        bottom = min(bottom, y - height)
        if in_mlp:
            mlp_y = y - height - ROW_GAP
        y = bottom - ROW_GAP


ARRANGED_AT = 8  # positions of the pass an arrangement is chosen for


@functools.lru_cache(maxsize=64)
def arrangement(config: ModelConfig, heads: str = "side") -> tuple[bool, int]:
    """Whether a layer's MLP sits beside its attention, and in how many columns the layers stand: whichever makes
    the whole model's width for its height closest to ASPECT. Chosen once per model (for a pass over ARRANGED_AT
    positions, with no KV cache), so that a longer input or a generation step moves no section."""
    graph = Graph(config)
    scored = []
    for beside in (True, False):
        placed = build_layout(graph, ARRANGED_AT, heads, (beside, 0))
        err, k = _columns(graph, placed.blocks)
        scored.append((err, not beside, k))
    _, below, k = min(scored)
    return not below, k


def _layer_groups(graph: Graph, blocks: list[Block]):
    """Each block's group (the embedding, a layer, the output), the groups' extents (x0, top, x1, bottom), the layers,
    and how far apart two columns of layers are."""
    layer_of = {b.tensor: graph[b.tensor].layer for b in blocks}
    layers = sorted({v for v in layer_of.values() if v is not None})
    first_layer = min((i for i, b in enumerate(blocks) if layer_of[b.tensor] is not None), default=0)
    group = {n: ("layer", v) if v is not None else ("embed" if i < first_layer else "output")
             for i, (n, v) in enumerate(layer_of.items())}
    spans: dict[Any, tuple[float, float, float, float]] = {}  # by group: a layer ("layer", i), "embed" or "output"
    for b in blocks:
        x0, top, x1, bottom = spans.get(group[b.tensor], (math.inf, -math.inf, -math.inf, math.inf))
        spans[group[b.tensor]] = (min(x0, b.x), max(top, b.y), max(x1, b.x + b.width), min(bottom, b.y - b.height))
    step = max((spans[("layer", i)][2] for i in layers), default=0.0) * (1 + COLUMN_GAP)
    return group, spans, layers, step


def _shifts(spans: dict, layers: list[int], step: float, k: int) -> dict:
    """How far each group moves with the layers in k columns: layers 0 to m-1 down the first column, m to 2m-1 down
    the next, and so on; the embedding stays above the first column, the output goes below the last layer."""
    per = -(-len(layers) // k)
    tops = [spans[("layer", i)][1] for i in layers]
    out: dict[Any, tuple[float, float]] = {("layer", i): ((i // per) * step, tops[i % per] - tops[i]) for i in layers}
    out["embed"] = (0.0, 0.0)
    out["output"] = out[("layer", layers[-1])] if layers else (0.0, 0.0)
    return out


def _columns(graph: Graph, blocks: list[Block]) -> tuple[float, int]:
    """How many columns of layers make the model's width for its height closest to ASPECT, and how far from it
    (a log ratio) that is."""
    _, spans, layers, step = _layer_groups(graph, blocks)

    def error(k: int) -> float:
        sh = _shifts(spans, layers, step, k)
        boxes = [(s[0] + sh[g][0], s[1] + sh[g][1], s[2] + sh[g][0], s[3] + sh[g][1]) for g, s in spans.items()]
        w = max(b[2] for b in boxes) - min(b[0] for b in boxes)
        h = max(b[1] for b in boxes) - min(b[3] for b in boxes)
        return abs(math.log(w / max(h, 1e-9) / ASPECT))

    return min((error(k), k) for k in range(1, max(len(layers), 1) + 1))


def _wrap_layers(graph: Graph, blocks: list[Block], k: int) -> None:
    """Lay the layers out in k columns side by side (see _shifts), each column with the residual stream down its
    left. The stream leaves the foot of one column for the head of the next, as a newspaper's text does."""
    if k < 2:
        return
    group, spans, layers, step = _layer_groups(graph, blocks)
    sh = _shifts(spans, layers, step, k)
    for b in blocks:
        dx, dy = sh[group[b.tensor]]
        b.x += dx
        b.y += dy


def _sections(graph: Graph, layout: Layout) -> list[dict]:
    """Labelled boxes around the embedding, each transformer layer, its attention and MLP, and the output."""
    groups: dict[str, tuple[str, str | None, list[Block]]] = {}

    def add(key, title, b, parent=None):
        groups.setdefault(key, (title, parent, []))[2].append(b)

    for b in layout.blocks:
        t = graph[b.tensor]
        if t.layer is not None:
            add(f"blocks.{t.layer}", f"Layer {t.layer}", b)
            if t.group.endswith(".attn"):
                add(t.group, "Attention", b, f"blocks.{t.layer}")
            elif t.group.endswith(".mlp"):
                add(t.group, "MLP", b, f"blocks.{t.layer}")
        elif t.group == "embed":
            add("embed", "Input image" if graph.config.image_side else "Input point" if graph.config.input_size
                else "Embedding", b)
        else:
            add("output", "Output", b)
    out = []
    for key, (title, parent, bs) in groups.items():
        out.append({
            "key": key, "title": title, "parent": parent,
            "x0": min(b.x for b in bs), "x1": max(b.x + b.width for b in bs),
            "y0": max(b.y for b in bs), "y1": min(b.y - b.height for b in bs),
        })
    return out
