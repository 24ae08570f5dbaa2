"""Where each tensor of the model graph sits in the 3D scene. Derived from the graph alone.

Each tensor is a block of cells: a grid with one axis across (x), one down (y) and, for tensors with
a `head` axis, one slab per head, side by side (or stacked in depth, z). One world unit is one cell.

- Across: `pos` if the tensor has it (each column is one token), else its first axis (for a weight,
  the axis it is multiplied along, so W_E's columns are the vocabulary and a lookup picks a column).
  Attention scores and patterns are drawn as people draw them: one row per query (`pos`), one column
  per key (`key_pos`), so each row sums to 1 and the masked future keys fill the upper right.
- Down: the remaining axis; a vector stands as one column, a per-position number as one row.
- Rows of the scene follow the data flow top to bottom: one row per op, with tensors computed from the
  same input side by side (Q, K and V; the token and position embeddings). Weights sit to the right of
  the tensor they feed, aggregates (mean, max, ...) beside the tensor they feed.
- The residual stream (the input and every `add`) runs down a centre column; the branches (layer norm,
  attention, MLP) sit to its right and rejoin it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .graph import Graph, TensorSpec

GAP = 3.0  # cells between blocks in a row
HEAD_GAP = 1.0  # cells between heads laid side by side
WIDE_WEIGHT = 4  # a weight this many times wider than its row's activations sits at the row's end
ROW_GAP = 10.0  # cells between rows
MERGE_HEADS_ABOVE = 32  # with more heads, a stack is one box (bounded draw cost at GPT-3 scale)

# Short names for labels, keyed by the last part of a tensor's name (GPT-2's; a tensor that means something else
# under the same name, such as RMSNorm's `hook_scale`, declares its own label with it: TensorSpec.label).
SHORT = {
    "tokens": "tokens", "W_E": "W_E", "W_pos": "W_pos", "hook_embed": "token emb", "hook_pos_embed": "pos emb",
    "hook_resid_pre": "residual", "hook_resid_mid": "residual", "hook_resid_post": "residual",
    "hook_mean": "μ", "hook_scale": "σ", "hook_normalized": "x̂", "hook_out": "LN out", "w": "γ", "b": "β",
    "hook_q": "Q", "hook_k": "K", "hook_v": "V", "W_Q": "W_Q", "W_K": "W_K", "W_V": "W_V",
    "b_Q": "b_Q", "b_K": "b_K", "b_V": "b_V", "hook_attn_scores": "scores", "hook_pattern_max": "max",
    "hook_pattern_sum_exp": "Σexp", "hook_pattern": "softmax", "hook_z": "z", "W_O": "W_O", "b_O": "b_O",
    "hook_attn_out": "attn out", "hook_pre": "MLP pre", "hook_post": "activation", "W_in": "W_in", "b_in": "b_in",
    "W_out": "W_out", "b_out": "b_out", "hook_mlp_out": "MLP out", "W_U": "W_U", "b_U": "b_U",
    "logits": "logits", "probs_max": "max", "probs_sum_exp": "Σexp", "probs": "probs",
    "past_k": "K cache", "past_v": "V cache", "cache_k": "K so far", "cache_v": "V so far",
}


def short_name(name: str, spec: TensorSpec | None = None) -> str:
    """A block's label: the one its tensor declares, else SHORT's for its name's last part, else that part
    without `hook_` (never a whole hook name such as blocks.0.attn.hook_rot_q)."""
    if spec is not None and spec.label:
        return spec.label
    last = name.rsplit(".", 1)[-1]
    return SHORT.get(last, last.removeprefix("hook_"))


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


def block_axes(t: TensorSpec) -> tuple[str | None, str | None, str | None]:
    z = next((a for a in ("head", "kv_head") if a in t.axes), None)  # heads: slabs in depth, or side by side
    axes = [a for a in t.axes if a != z]
    if len(axes) == 2:
        x = "key_pos" if "key_pos" in axes else "pos" if "pos" in axes else axes[0]
        return x, next(a for a in axes if a != x), z
    if len(axes) == 1:
        return (axes[0], None, z) if axes[0] == "pos" else (None, axes[0], z)
    return None, None, z


def make_block(t: TensorSpec, sizes: dict[str, int]) -> Block:
    x, y, z = block_axes(t)
    n_head = sizes[z] if z else 1
    return Block(t.name, x, y, z, sizes[x] if x else 1, sizes[y] if y else 1, n_head,
                 merged=bool(z) and n_head > MERGE_HEADS_ABOVE, residual=t.residual)


def build_layout(graph: Graph, n_pos: int, heads: str = "side") -> Layout:
    """heads: "side" lays the heads of a tensor side by side, "stack" one behind the other (a stack of more
    than MERGE_HEADS_ABOVE heads is always one box)."""
    sizes = graph.sizes(n_pos)
    specs = list(graph)

    # 1. Rows. A computed tensor continues the row of its input when it keeps the same axis down (layer
    #    norm steps, GELU, softmax) or reads the same inputs as the row's first tensor (Q/K/V, token and
    #    position embeddings); a residual add rejoins the row of the branch it adds, in the centre column.
    #    Otherwise it opens a row below. Weights and aggregates join the row of the tensor they feed.
    rows: list[list[str]] = []
    row_of: dict[str, int] = {}
    down = {t.name: block_axes(t)[1] for t in specs}
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
        has_residual = any(graph[n].residual for n in here)
        same_layer = lead is not None and lead.layer == t.layer  # each layer starts a row of its own
        if here and same_layer and (siblings or chained) and not (residual and has_residual):
            here.append(t.name)
        else:
            rows.append([t.name])
        row_of[t.name] = len(rows) - 1

    # Order in a row: each activation, then its aggregates, then its weights (in input order); a weight far
    # wider than the row's activations (GPT-2's 50,257-wide W_E) goes after them all, so that the token
    # path stays together.
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
        b = blocks[t.name] = make_block(t, sizes)
        b.row = row_of[t.name]
        if b.depth > 1:  # a merged stack is one box, as deep as its heads stacked
            b.x_step, b.z_step = (b.cols + HEAD_GAP, 0.0) if heads == "side" and not b.merged else (0.0, 2.0)
    for out in ordered_rows:
        path = max((blocks[n].width for n in out if graph[n].kind != "weight"), default=0.0)
        wide = [n for n in out if graph[n].kind == "weight" and blocks[n].width > WIDE_WEIGHT * path]
        out[:] = [n for n in out if n not in wide] + wide

    # 2. Place rows top to bottom: residual tensors in the centre column at x = 0, the rest from the
    #    branch column rightwards. Stacks of heads go back in depth.
    branch_x = n_pos + 6 * GAP
    y = 0.0
    for names in ordered_rows:
        x_res, x_branch, height = 0.0, branch_x, 0.0
        for n in names:
            b = blocks[n]
            if b.residual:
                b.x, x_res = x_res, x_res + b.width + GAP
            else:
                b.x, x_branch = x_branch, x_branch + b.width + GAP
            b.y = y
            height = max(height, b.height)
        y -= height + ROW_GAP

    links = [(i, t.name) for t in specs if t.kind in ("activation",)
             for i in t.inputs if graph[i].kind in ("activation", "input")]
    layout = Layout([blocks[t.name] for t in specs], links)
    layout.sections = _sections(graph, layout)
    xs = [b.x for b in layout.blocks] + [b.x + b.width for b in layout.blocks]
    layout.bounds = (min(xs), 0.0, max(xs), min(b.y - b.height for b in layout.blocks))
    return layout


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
            add("embed", "Embedding", b)
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
