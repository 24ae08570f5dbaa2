"""Declaring the tensors of a model graph: what one tensor is (TensorSpec), and Scope, through which an architecture
(llmviz.core.arch) declares its tensors from inside a part of the model, plus how every architecture begins (the
tokens and W_E) and ends (the unembedding and the probabilities).

Every tensor is declared once, here or by an op's own declaring helper (ops/norm.py's `layer_norm`, ops/attention.py's
`rotate`), with its name, axes, kind, title, op and inputs, and its short label in the 3D view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    label: str = ""  # its short label on its block in the 3D view (`Q`, `σ`, `attn out`), declared with it

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


class Scope:
    """Declares tensors into a graph (llmviz.core.graph.Graph) from inside a part of the model: the part's name
    prefixes each tensor (`blocks.0.attn` + `hook_q`), is its group, and gives its layer. A name that holds a dot
    is already whole. Every tensor gets its short label in the view with it (`label=`).

        blk = Scope(g, "blocks.0", layer=0)
        attn = blk.sub("attn")
        W_Q = attn.weight("W_Q", ["head", "d_model", "d_head"], "Query weight, layer 0", label="W_Q")
        q = attn.linear("hook_q", x, W_Q, None, "Query vector, layer 0", label="Q")
    """

    def __init__(self, g, prefix: str = "", layer: int | None = None, group: str | None = None):
        self.g, self.prefix, self.layer = g, prefix, layer
        self.group = prefix if group is None else group

    @property
    def config(self):
        """The model's ModelConfig."""
        return self.g.config

    def sub(self, name: str, layer: int | None = None) -> Scope:
        return Scope(self.g, self.name(name), self.layer if layer is None else layer)

    def name(self, local: str) -> str:
        return local if "." in local or not self.prefix else f"{self.prefix}.{local}"

    def tensor(self, name, axes, kind, title, op=None, inputs=(), *, label: str, **attrs) -> str:
        return self.g.add(self.name(name), axes, kind, title, self.group, op, inputs, self.layer, label, **attrs)

    def input(self, name, axes, title, *, label: str) -> str:
        return self.tensor(name, axes, "input", title, label=label)

    def weight(self, name, axes, title, *, label: str, **attrs) -> str:
        """A learned weight. tied_to: another weight whose numbers these are (with its axes reordered)."""
        return self.tensor(name, axes, "weight", title, label=label, **attrs)

    def bias(self, name, axes, title, *, label: str) -> str | None:
        """A bias weight, or None for a model without biases (nanoGPT's bias=False)."""
        return self.weight(name, axes, title, label=label) if self.config.bias else None

    def op(self, name, axes, op, inputs, title, *, label: str, **attrs) -> str:
        return self.tensor(name, axes, "activation", title, op, inputs, label=label, **attrs)

    def aggregate(self, name, axes, op, inputs, title, *, label: str, **attrs) -> str:
        return self.tensor(name, axes, "aggregate", title, op, inputs, label=label, **attrs)

    def residual(self, name, inputs, title) -> str:
        """The residual stream after an add: the stream first, then what the branches computed from it (one, or in a
        parallel block attention's and the MLP's outputs both)."""
        return self.op(name, self.g[inputs[0]].axes, "add", tuple(inputs), title, label="residual")

    def carry(self, x, layer: int) -> str:
        """`hook_resid_pre` of a layer after the first: the stream the layer before left, passed on unchanged."""
        return self.op("hook_resid_pre", ["pos", "d_model"], "identity", (x,), f"Residual stream into layer {layer}",
                       label="residual")

    def linear(self, name, x, w, b, title, *, label: str) -> str:
        """Declare `b + x · W`, contracting every axis that x and W share; the output axes follow. x's axes are
        counted from its end (x_dims < 0), so that a batch of inputs, with a leading batch axis, computes the same."""
        xa, wa = self.g[x].axes, self.g[w].axes
        shared = [a for a in xa if a in wa]
        axes = [a for a in xa if a not in shared] + [a for a in wa if a not in shared]
        return self.op(name, axes, "linear", (x, w) if b is None else (x, w, b), title, label=label, contract=shared,
                       x_dims=[xa.index(a) - len(xa) for a in shared], w_dims=[wa.index(a) for a in shared])

    def softmax(self, name, x, title, *, label: str) -> str:
        """The softmax of x's last axis, as its three visible steps: the max, the sum of exponentials, the result."""
        axes, full = self.g[x].axes, self.name(name)
        m = self.aggregate(f"{full}_max", axes[:-1], "softmax_max", (x,), f"Max over the last axis of {title.lower()}",
                           label="max")
        s = self.aggregate(f"{full}_sum_exp", axes[:-1], "softmax_sum_exp", (x, m),
                           f"Sum of exp over the last axis for {title.lower()}", label="Σexp")
        return self.op(name, axes, "softmax", (x, m, s), title, label=label)

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
                                   f"Cached {plain.lower()}s of earlier positions, layer {layer}", label=f"{c.upper()} cache"))
            out.append(self.op(f"cache_{c}", ["key_pos", head_axis, "d_head"], "concat", (past[-1], new),
                               f"{plain}s so far (cache and this step), layer {layer}", label=f"{c.upper()} so far"))
        if past:
            g.kv_in.append((past[0], past[1]))
        g.kv_out.append((out[0], out[1]))
        return out[0], out[1]


def token_embedding(g) -> tuple[Scope, str, str]:
    """The input tokens and the token-embedding matrix: how every architecture begins (its lookup is
    `embed.op("hook_embed", ..., "embed", (W_E, tokens), ...)`)."""
    embed = Scope(g, group="embed")
    tokens = embed.input("tokens", ["pos"], "Input tokens", label="tokens")
    return embed, tokens, embed.weight("embed.W_E", ["vocab", "d_model"], "Token embedding matrix", label="W_E")


def unembedding(g, x: str, W_E: str) -> str:
    """The logits (W_U is W_E transposed when tied) and the next-token probabilities: how every architecture ends."""
    top, cfg = Scope(g, group="unembed"), g.config
    tied = {"tied_to": W_E} if cfg.tied_unembed else {}
    W_U = top.weight("unembed.W_U", ["d_model", "vocab"], "Unembedding matrix" + (" (W_E transposed)" if tied else ""),
                     label="W_U", **tied)
    b_U = top.weight("unembed.b_U", ["vocab"], "Unembedding bias", label="b_U") if cfg.unembed_bias else None
    return top.softmax("probs", top.linear("logits", x, W_U, b_U, "Logits", label="logits"), "Next-token probabilities",
                       label="probs")
