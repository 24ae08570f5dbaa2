"""The model graph: every tensor of a GPT's forward pass, declared once.

Each tensor has a TransformerLens-style name, named axes, a kind (input, weight,
activation or aggregate) and, unless it is a weight or the input, the op that
computes it and the tensors it reads. The numpy forward pass (`model.py`) runs
this list in order; the JSON form (`Graph.to_json`) is what the browser draws,
what hover provenance explains and what the walkthrough points at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .axes import AXES, NAMED_BY
from .config import ACTIVATIONS, ModelConfig
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

    def last_readers(self) -> dict[str, int]:
        """For each tensor read by an op, the position (in graph order) of the last op that reads it."""
        if not hasattr(self, "_last_readers"):
            order = self.position()
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
        sizes, last = self.sizes(n_pos), self.last_readers()
        computed = None if only is None else set(self.ancestors(only))
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

    def add(self, name, axes, kind, title, group, op=None, inputs=(), layer=None, **attrs) -> str:
        assert name not in self.tensors, name
        for i in inputs:
            assert i in self.tensors, f"{name} reads {i}, which is not declared before it"
        self.tensors[name] = TensorSpec(name, tuple(axes), kind, title, group, op, tuple(inputs), attrs, layer)
        return name

    def axes_json(self) -> dict:
        """Each named axis: its letter, what it counts, its colour and its size (null for the input's length)."""
        sizes = {**self.config.axis_sizes(), "pos": None, "key_pos": None, "past_pos": self.past or None}
        return {k: {"label": lab, "description": d, "color": c, "size": sizes[k], "named_by": NAMED_BY.get(k)}
                for k, (lab, d, c) in AXES.items()}

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


def _linear(g: Graph, name, x, w, b, title, group, layer=None) -> str:
    """Declare `b + x · W`, contracting every axis that x and W share; the output axes follow."""
    xa, wa = g[x].axes, g[w].axes
    shared = [a for a in xa if a in wa]
    axes = [a for a in xa if a not in shared] + [a for a in wa if a not in shared]
    inputs = (x, w) if b is None else (x, w, b)
    return g.add(name, axes, "activation", title, group, "linear", inputs, layer, contract=shared,
                 x_dims=[xa.index(a) for a in shared], w_dims=[wa.index(a) for a in shared])


def _softmax(g: Graph, name, x, title, group, layer=None) -> str:
    axes = g[x].axes
    m = g.add(f"{name}_max", axes[:-1], "aggregate", f"Max over the last axis of {title.lower()}", group,
              "softmax_max", (x,), layer)
    s = g.add(f"{name}_sum_exp", axes[:-1], "aggregate", f"Sum of exp over the last axis for {title.lower()}", group,
              "softmax_sum_exp", (x, m), layer)
    return g.add(name, axes, "activation", title, group, "softmax", (x, m, s), layer)


def _bias(g: Graph, name, axes, title, group, layer=None) -> str | None:
    """A bias weight, or None for a model without biases (nanoGPT's bias=False)."""
    return g.add(name, axes, "weight", title, group, layer=layer) if g.config.bias else None


def _layer_norm(g: Graph, prefix, x, title, layer=None) -> str:
    eps = g.config.layer_norm_eps
    w = g.add(f"{prefix}.w", ["d_model"], "weight", f"{title} gain γ", prefix, layer=layer)
    b = _bias(g, f"{prefix}.b", ["d_model"], f"{title} bias β", prefix, layer)
    mean = g.add(f"{prefix}.hook_mean", ["pos"], "aggregate", f"{title} mean μ", prefix,
                 "ln_mean", (x,), layer)
    scale = g.add(f"{prefix}.hook_scale", ["pos"], "aggregate", f"{title} std σ", prefix,
                  "ln_scale", (x, mean), layer, eps=eps)
    norm = g.add(f"{prefix}.hook_normalized", ["pos", "d_model"], "activation",
                 f"{title} normalized", prefix, "ln_normalize", (x, mean, scale), layer)
    return g.add(f"{prefix}.hook_out", ["pos", "d_model"], "activation", f"{title} output", prefix,
                 "ln_affine", (norm, w) if b is None else (norm, w, b), layer)


def _block(g: Graph, i: int, resid_pre: str) -> str:
    L = f"blocks.{i}"
    at, ml = f"{L}.attn", f"{L}.mlp"
    x = _layer_norm(g, f"{L}.ln1", resid_pre, f"LayerNorm 1, layer {i}", i)
    qkv = {}
    for c, plain in (("Q", "Query"), ("K", "Key"), ("V", "Value")):
        W = g.add(f"{at}.W_{c}", ["head", "d_model", "d_head"], "weight", f"{plain} weight, layer {i}", at, layer=i)
        b = _bias(g, f"{at}.b_{c}", ["head", "d_head"], f"{plain} bias, layer {i}", at, i)
        qkv[c] = _linear(g, f"{at}.hook_{c.lower()}", x, W, b, f"{plain} vector, layer {i}", at, i)
        if g.past and c != "Q":  # a step with a KV cache: the earlier positions' keys and values, then these
            past = g.add(f"{at}.past_{c.lower()}", ["past_pos", "head", "d_head"], "input",
                         f"Cached {plain.lower()}s of earlier positions, layer {i}", at, layer=i)
            qkv[c] = g.add(f"{at}.cache_{c.lower()}", ["key_pos", "head", "d_head"], "activation",
                           f"{plain}s so far (cache and this step), layer {i}", at, "concat", (past, qkv[c]), i)
            qkv["past_" + c] = past
    if g.past:
        g.kv_in.append((qkv["past_K"], qkv["past_V"]))
    g.kv_out.append((qkv["K"], qkv["V"]))
    scores = g.add(f"{at}.hook_attn_scores", ["head", "pos", "key_pos"], "activation",
                   f"Attention scores, layer {i}", at, "attn_scores", (qkv["Q"], qkv["K"]), i,
                   scale=g.config.attn_scale(i))
    pattern = _softmax(g, f"{at}.hook_pattern", scores, f"Attention pattern, layer {i}", at, i)
    z = g.add(f"{at}.hook_z", ["pos", "head", "d_head"], "activation", f"Attention output per head, layer {i}",
              at, "weighted_sum", (pattern, qkv["V"]), i)
    W_O = g.add(f"{at}.W_O", ["head", "d_head", "d_model"], "weight", f"Output projection weight, layer {i}", at, layer=i)
    b_O = _bias(g, f"{at}.b_O", ["d_model"], f"Output projection bias, layer {i}", at, i)
    attn_out = _linear(g, f"{L}.hook_attn_out", z, W_O, b_O, f"Attention output, layer {i}", at, i)
    mid = g.add(f"{L}.hook_resid_mid", ["pos", "d_model"], "activation", f"Residual stream after attention, layer {i}",
                L, "add", (resid_pre, attn_out), i)
    x = _layer_norm(g, f"{L}.ln2", mid, f"LayerNorm 2, layer {i}", i)
    W_in = g.add(f"{ml}.W_in", ["d_model", "d_mlp"], "weight", f"MLP input weight, layer {i}", ml, layer=i)
    b_in = _bias(g, f"{ml}.b_in", ["d_mlp"], f"MLP input bias, layer {i}", ml, i)
    pre = _linear(g, f"{ml}.hook_pre", x, W_in, b_in, f"MLP pre-activation, layer {i}", ml, i)
    act = ACTIVATIONS[g.config.activation]
    post = g.add(f"{ml}.hook_post", ["pos", "d_mlp"], "activation",
                 f"MLP activation ({OPS[act].label}), layer {i}", ml, act, (pre,), i)
    W_out = g.add(f"{ml}.W_out", ["d_mlp", "d_model"], "weight", f"MLP output weight, layer {i}", ml, layer=i)
    b_out = _bias(g, f"{ml}.b_out", ["d_model"], f"MLP output bias, layer {i}", ml, i)
    mlp_out = _linear(g, f"{L}.hook_mlp_out", post, W_out, b_out, f"MLP output, layer {i}", ml, i)
    return g.add(f"{L}.hook_resid_post", ["pos", "d_model"], "activation",
                 f"Residual stream after layer {i}", L, "add", (mid, mlp_out), i)


def _build(g: Graph, cfg: ModelConfig) -> None:
    tokens = g.add("tokens", ["pos"], "input", "Input tokens", "embed")
    W_E = g.add("embed.W_E", ["vocab", "d_model"], "weight", "Token embedding matrix", "embed")
    W_pos = g.add("pos_embed.W_pos", ["n_ctx", "d_model"], "weight", "Position embedding matrix", "embed")
    e = g.add("hook_embed", ["pos", "d_model"], "activation", "Token embedding", "embed", "embed", (W_E, tokens))
    p = g.add("hook_pos_embed", ["pos", "d_model"], "activation", "Position embedding", "embed",
              "pos_embed", (W_pos, tokens), offset=g.past)
    resid = None
    for i in range(cfg.n_layer):
        resid_pre = g.add(f"blocks.{i}.hook_resid_pre", ["pos", "d_model"], "activation",
                          f"Residual stream into layer {i}", f"blocks.{i}", "add" if i == 0 else "identity",
                          (e, p) if i == 0 else (resid,), i)
        resid = _block(g, i, resid_pre)
    x = _layer_norm(g, "ln_final", resid, "Final LayerNorm")
    W_U = g.add("unembed.W_U", ["d_model", "vocab"], "weight",
                "Unembedding matrix" + (" (W_E transposed)" if cfg.tied_unembed else ""), "unembed")
    b_U = g.add("unembed.b_U", ["vocab"], "weight", "Unembedding bias", "unembed") if cfg.unembed_bias else None
    logits = _linear(g, "logits", x, W_U, b_U, "Logits", "unembed")
    _softmax(g, "probs", logits, "Next-token probabilities", "unembed")
