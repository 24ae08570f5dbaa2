"""The model graph: every tensor of a GPT's forward pass, declared once.

Each tensor has a TransformerLens-style name, named axes, a kind (input, weight,
activation or aggregate), its short label in the view and, unless it is a weight or
the input, the op that computes it and the tensors it reads. A config's architecture
(llmviz.core.arch) declares its tensors through a Scope (scope.py). The numpy forward
pass (`model.py`) runs this list in order with the ops of llmviz.core.ops; the JSON
form (`Graph.to_json`) is what the browser draws, what hover provenance explains and
what the walkthrough points at.
"""

from __future__ import annotations

from .arch import architecture
from .axes import AXES, NAMED_BY
from .config import ModelConfig
from .ops import OPS
from .scope import KINDS, Scope, TensorSpec

__all__ = ["AXES", "KINDS", "NAMED_BY", "Graph", "Scope", "TensorSpec"]


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
        architecture(config.arch).build(self)

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
        """Declare one tensor (an architecture does it through a Scope): after every tensor it reads, with the short
        label its block shows in the view."""
        assert name not in self.tensors, name
        assert label, f"{name} has no label: declare its short label in the view with it"
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
            "past": self.past,
            "axes": self.axes_json(),
            "ops": self.ops_json(),
            "tensors": [
                {
                    "name": t.name, "title": t.title, "label": t.label, "kind": t.kind, "group": t.group,
                    "layer": t.layer, "axes": list(t.axes), "shape": [sizes[a] for a in t.axes],
                    "op": t.op, "inputs": list(t.inputs), "attrs": t.attrs,
                }
                for t in self
            ],
        }
