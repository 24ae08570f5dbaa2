"""The model graph: every tensor of a GPT's forward pass, declared once.

Each tensor has a TransformerLens-style name, named axes, a kind (input, weight,
activation or aggregate) and, unless it is a weight or the input, the op that
computes it and the tensors it reads. Each architecture (llmviz.core.arch) declares its
tensors through a Scope. The numpy forward pass (`model.py`) runs this list in
order with the ops of llmviz.core.ops; the JSON form (`Graph.to_json`) is what the
browser draws, what hover provenance explains and what the walkthrough points at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .axes import AXES, NAMED_BY
from .config import ModelConfig
from .ops import OPS

KINDS = ("input", "weight", "activation", "aggregate")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    axes: tuple[str, ...]
    kind: str
    title: str
    group: str
    op: str | None = None
    inputs: tuple[str, ...] = ()
    attrs: dict = field(default_factory=dict)
    layer: int | None = None
    label: str = ""  # its short label in the 3D view; "" for the one layout.SHORT gives its name's last part

    def shape(self, sizes: dict[str, int]) -> tuple[int, ...]:
        return tuple(sizes[a] for a in self.axes)

    def nbytes(self, sizes: dict[str, int]) -> int:
        """Its size as computed: float32 (the input tokens, int64)."""
        n = 1
        for a in self.axes:
            n *= sizes[a]
        return n * (8 if self.kind == "input" else 4)

    @property
    def residual(self) -> bool:
        """The residual stream: the input tokens and every add (and the identity that carries it into a layer)."""
        return (self.kind == "input" and self.axes == ("pos",)) or self.op in ("add", "identity")


class Graph:
    """The ordered list of tensors of one model's forward pass."""

    def __init__(self, config: ModelConfig, past: int = 0):
        """past: the positions already computed and cached (generation with a KV cache). With past > 0 the graph
        is one step's: its `pos` are the new positions only, each layer reads its cached keys and values
        (`attn.past_k`, `attn.past_v`, inputs) and attends over `key_pos` = the cache and the new positions."""
        self.config = config
        self.past = past
        self.tensors: dict[str, TensorSpec] = {}
        self.kv_in: list[tuple[str, str]] = []  # per layer: the cached keys and values a step reads (past > 0)
        self.kv_out: list[tuple[str, str]] = []  # per layer: the keys and values so far, which become the cache
        _build(self, config)

    def __getitem__(self, name: str) -> TensorSpec:
        return self.tensors[name]

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def __iter__(self):
        return iter(self.tensors.values())

    def names(self, *kinds: str) -> list[str]:
        return [t.name for t in self if not kinds or t.kind in kinds]

    def sizes(self, n_pos: int) -> dict[str, int]:
        """Every axis's size for n_pos new positions (after `past` cached ones)."""
        return {**self.config.axis_sizes(), "pos": n_pos, "key_pos": self.past + n_pos, "past_pos": self.past}

    @property
    def output(self) -> str:
        """The last tensor: the next-token probabilities."""
        return next(reversed(self.tensors))

    def patterns(self) -> list[str]:
        """Each layer's attention pattern ([head, pos, key_pos], the softmax of the scores), in layer order."""
        return [t.name for t in self if t.op == "softmax" and t.axes == ("head", "pos", "key_pos")]

    def checkpoints(self) -> list[str]:
        """The computed residual-stream tensors. Kept, they are enough to recompute any other tensor of a
        forward pass from its own layer alone (see model.Trace)."""
        return [t.name for t in self if t.residual and t.kind != "input"]

    def position(self) -> dict[str, int]:
        """Each tensor's place in graph order."""
        if not hasattr(self, "_position"):
            self._position = {n: i for i, n in enumerate(self.tensors)}
        return self._position

    def last_readers(self, among=None) -> dict[str, int]:
        """For each tensor read by an op, the position (in graph order) of the last op that reads it; among: only
        these ops run (a tensor none of them reads has no last reader: it can go once it is computed)."""
        order = self.position()
        if among is not None and len(among) < len(self.tensors):
            return {i: order[n] for n in sorted(among, key=order.__getitem__) for i in self[n].inputs}
        if not hasattr(self, "_last_readers"):
            self._last_readers = {i: order[t.name] for t in self for i in t.inputs}
        return self._last_readers

    def multiply_adds(self, n_pos: int) -> int:
        """Multiply-adds of a pass over n_pos new positions (after `past` cached ones): the matrix products
        and attention's two products; the rest is small beside them."""
        sizes, total = self.sizes(n_pos), 0
        for t in self:
            if t.op == "linear":
                contracted = 1
                for a in t.attrs["contract"]:
                    contracted *= sizes[a]
                total += t.nbytes(sizes) // 4 * contracted
            elif t.op in ("attn_scores", "weighted_sum"):
                total += sizes["head"] * n_pos * sizes["key_pos"] * sizes["d_head"]
        return total

    def ancestors(self, names, known=()) -> list[str]:
        """The tensors that computing `names` takes (themselves included), in graph order, stopping at `known`."""
        needed, todo = set(), list(names)
        while todo:
            n = todo.pop()
            if n in needed or n in known:
                continue
            needed.add(n)
            todo.extend(self[n].inputs)
        return [n for n in self.tensors if n in needed]

    def peak_bytes(self, n_pos: int, keep=None, only=None) -> int:
        """The most memory a forward pass over n_pos tokens holds at once, in bytes, when it keeps the tensors
        in `keep` (None: all) and drops every other one after its last reader; `only`: it computes just what
        these tensors need. Weights are not counted (the model holds them); each op is counted twice over
        while it runs, for its output and a temporary."""
        computed = None if only is None else set(self.ancestors(only))
        sizes, last = self.sizes(n_pos), self.last_readers(computed)
        live = peak = 0
        held: dict[str, int] = {}
        for i, t in enumerate(self):
            if t.kind == "weight" or (computed is not None and t.name not in computed):
                continue
            size = t.nbytes(sizes)
            peak = max(peak, live + 2 * size)
            held[t.name] = size
            live += size
            for name in [*t.inputs, t.name]:
                if name in held and keep is not None and name not in keep and last.get(name, -1) <= i:
                    live -= held.pop(name)
        return peak

    def add(self, name, axes, kind, title, group, op=None, inputs=(), layer=None, label="", **attrs) -> str:
        assert name not in self.tensors, name
        for i in inputs:
            assert i in self.tensors, f"{name} reads {i}, which is not declared before it"
        self.tensors[name] = TensorSpec(name, tuple(axes), kind, title, group, op, tuple(inputs), attrs, layer, label)
        return name

    def axes_json(self) -> dict:
        """Each named axis this graph uses: its letter, what it counts, its colour and its size (null for the
        input's length)."""
        sizes = {**self.config.axis_sizes(), "pos": None, "key_pos": None, "past_pos": self.past or None}
        used = {a for t in self for a in t.axes}
        return {k: {"label": lab, "description": d, "color": c, "size": sizes[k], "named_by": NAMED_BY.get(k)}
                for k, (lab, d, c) in AXES.items() if k in used}

    @staticmethod
    def ops_json() -> dict:
        return {k: {"formula": op.formula, "description": op.description, "symbol": op.symbol} for k, op in OPS.items()}

    def to_json(self) -> dict:
        sizes = {**self.config.axis_sizes(), "pos": None, "key_pos": None, "past_pos": self.past or None}
        return {
            "model": self.config.to_dict(),
            "axes": self.axes_json(),
            "ops": self.ops_json(),
            "tensors": [
                {
                    "name": t.name, "title": t.title, "kind": t.kind, "group": t.group,
                    "layer": t.layer, "axes": list(t.axes), "shape": [sizes[a] for a in t.axes],
                    "op": t.op, "inputs": list(t.inputs), "attrs": t.attrs,
                }
                for t in self
            ],
        }


class Scope:
    """Declares tensors into a graph from inside a part of the model: the part's name prefixes each tensor
    (`blocks.0.attn` + `hook_q`), is its group, and gives its layer. A name that holds a dot is already whole.

        blk = Scope(g, "blocks.0", layer=0)
        attn = blk.sub("attn")
        q = attn.linear("hook_q", x, attn.weight("W_Q", [...], "Query weight, layer 0"), None, "Query vector, layer 0")
    """

    def __init__(self, g: Graph, prefix: str = "", layer: int | None = None, group: str | None = None):
        self.g, self.prefix, self.layer = g, prefix, layer
        self.group = prefix if group is None else group

    @property
    def config(self) -> ModelConfig:
        return self.g.config

    def sub(self, name: str, layer: int | None = None) -> Scope:
        return Scope(self.g, self.name(name), self.layer if layer is None else layer)

    def name(self, local: str) -> str:
        return local if "." in local or not self.prefix else f"{self.prefix}.{local}"

    def tensor(self, name, axes, kind, title, op=None, inputs=(), label="", **attrs) -> str:
        """label: its short label in the view, where the name's last part is not enough (see layout.short_name)."""
        return self.g.add(self.name(name), axes, kind, title, self.group, op, inputs, self.layer, label, **attrs)

    def input(self, name, axes, title) -> str:
        return self.tensor(name, axes, "input", title)

    def weight(self, name, axes, title, **attrs) -> str:
        """A learned weight. tied_to: another weight whose numbers these are (with its axes reordered)."""
        return self.tensor(name, axes, "weight", title, **attrs)

    def bias(self, name, axes, title) -> str | None:
        """A bias weight, or None for a model without biases (nanoGPT's bias=False)."""
        return self.weight(name, axes, title) if self.config.bias else None

    def op(self, name, axes, op, inputs, title, **attrs) -> str:
        return self.tensor(name, axes, "activation", title, op, inputs, **attrs)

    def aggregate(self, name, axes, op, inputs, title, **attrs) -> str:
        return self.tensor(name, axes, "aggregate", title, op, inputs, **attrs)

    def add(self, name, a, b, title) -> str:
        return self.op(name, self.g[a].axes, "add", (a, b), title)

    def linear(self, name, x, w, b, title, label="") -> str:
        """Declare `b + x · W`, contracting every axis that x and W share; the output axes follow."""
        xa, wa = self.g[x].axes, self.g[w].axes
        shared = [a for a in xa if a in wa]
        axes = [a for a in xa if a not in shared] + [a for a in wa if a not in shared]
        return self.op(name, axes, "linear", (x, w) if b is None else (x, w, b), title, contract=shared,
                       x_dims=[xa.index(a) for a in shared], w_dims=[wa.index(a) for a in shared], label=label)

    def softmax(self, name, x, title) -> str:
        """The softmax of x's last axis, as its three visible steps: the max, the sum of exponentials, the result."""
        axes, full = self.g[x].axes, self.name(name)
        m = self.aggregate(f"{full}_max", axes[:-1], "softmax_max", (x,), f"Max over the last axis of {title.lower()}")
        s = self.aggregate(f"{full}_sum_exp", axes[:-1], "softmax_sum_exp", (x, m),
                           f"Sum of exp over the last axis for {title.lower()}")
        return self.op(name, axes, "softmax", (x, m, s), title)

    def kv_cache(self, keys: str, values: str, head_axis: str, layer: int) -> tuple[str, str]:
        """A layer's keys and values. In a generation step's graph (past > 0) they are the cached ones of the
        earlier positions (inputs `past_k`, `past_v`) followed by this step's (`cache_k`, `cache_v`). The graph
        records which tensors feed and form each layer's cache (kv_in, kv_out)."""
        g, out, past = self.g, [], []
        for c, new, plain in (("k", keys, "Key"), ("v", values, "Value")):
            if not g.past:
                out.append(new)
                continue
            past.append(self.input(f"past_{c}", ["past_pos", head_axis, "d_head"],
                                   f"Cached {plain.lower()}s of earlier positions, layer {layer}"))
            out.append(self.op(f"cache_{c}", ["key_pos", head_axis, "d_head"], "concat", (past[-1], new),
                               f"{plain}s so far (cache and this step), layer {layer}"))
        if past:
            g.kv_in.append((past[0], past[1]))
        g.kv_out.append((out[0], out[1]))
        return out[0], out[1]

    def layer_norm(self, name, x, title) -> str:
        """LayerNorm in its four visible steps: μ, σ, (x − μ) / σ, then the gain γ and bias β."""
        ln = self.sub(name)
        w = ln.weight("w", ["d_model"], f"{title} gain γ")
        b = ln.bias("b", ["d_model"], f"{title} bias β")
        mean = ln.aggregate("hook_mean", ["pos"], "ln_mean", (x,), f"{title} mean μ")
        scale = ln.aggregate("hook_scale", ["pos"], "ln_scale", (x, mean), f"{title} std σ", eps=self.config.layer_norm_eps)
        norm = ln.op("hook_normalized", ["pos", "d_model"], "ln_normalize", (x, mean, scale), f"{title} normalized")
        return ln.op("hook_out", ["pos", "d_model"], "ln_affine", (norm, w) if b is None else (norm, w, b), f"{title} output")


def token_embedding(g: Graph) -> tuple[Scope, str, str]:
    """The input tokens and the token-embedding matrix: how every architecture begins (its lookup is
    `embed.op("hook_embed", ..., "embed", (W_E, tokens), ...)`)."""
    embed = Scope(g, group="embed")
    return embed, embed.input("tokens", ["pos"], "Input tokens"), embed.weight("embed.W_E", ["vocab", "d_model"],
                                                                              "Token embedding matrix")


def unembedding(g: Graph, x: str, W_E: str) -> str:
    """The logits (W_U is W_E transposed when tied) and the next-token probabilities: how every architecture ends."""
    top, cfg = Scope(g, group="unembed"), g.config
    tied = {"tied_to": W_E} if cfg.tied_unembed else {}
    W_U = top.weight("unembed.W_U", ["d_model", "vocab"], "Unembedding matrix" + (" (W_E transposed)" if tied else ""), **tied)
    b_U = top.weight("unembed.b_U", ["vocab"], "Unembedding bias") if cfg.unembed_bias else None
    return top.softmax("probs", top.linear("logits", x, W_U, b_U, "Logits"), "Next-token probabilities")


def _build(g: Graph, cfg: ModelConfig) -> None:
    from .arch import architecture  # the architectures build with this module's Scope

    architecture(cfg.arch).build(g)
