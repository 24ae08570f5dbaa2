"""A GPT in numpy whose forward pass is the model graph, run in order.

    model = llmviz.load_model("nano-gpt")
    trace = model.run("CBABBC")          # every tensor of the forward pass, by name
    trace["blocks.0.attn.hook_pattern"]  # [head, pos, key_pos]
    model.generate("CBABBC").text        # 'ABBBCC'
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np

from . import ops
from .config import ModelConfig
from .errors import InputTooLong, LlmvizError, NoWeights
from .graph import NAMED_BY, Graph
from .safetensors_file import bf16_to_f32
from .safetensors_file import to_bytes as safetensors_bytes
from .safetensors_file import write as safetensors_write

Prompt = Union[str, Sequence[int]]


class Stopped(Exception):
    """A forward pass or a generation was asked to stop (its client went away, or the server is stopping)."""


class Model:
    """A config, its graph, its tokenizer and (unless structure only) its weights.

    `weights` maps each weight name of the graph to an array in the storage dtype (float32 by default;
    float16, or bfloat16 as uint16 bits, when loaded with dtype=...). `trace[name]` is always float32.
    """

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray] | None, tokenizer, source: str = ""):
        self.config = config
        self.graph = Graph(config)
        self.weights = weights
        self.tokenizer = tokenizer
        self.source = source

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def has_weights(self) -> bool:
        return self.weights is not None

    def require_weights(self) -> None:
        if self.weights is None:
            raise NoWeights(f"{self.name} is structure only: no weights are loaded, so there is nothing to compute")

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids for a string or a list of ids, checked against the vocabulary and the context."""
        if isinstance(prompt, str) and self.tokenizer is None:
            try:  # without a tokenizer, text is token ids: "464 2068 7586"
                prompt = [int(p) for p in prompt.replace(",", " ").split()]
            except ValueError:
                raise LlmvizError(f"{self.name} has no tokenizer: give token ids separated by spaces, "
                                  "such as '464 2068'") from None
        if isinstance(prompt, str):
            ids = self.tokenizer.encode(prompt)
        else:
            ids = [int(i) for i in prompt]
            bad = [i for i in ids if not 0 <= i < self.config.vocab_size]
            if bad:
                raise LlmvizError(f"token id {bad[0]} is out of range: {self.name} has ids 0 to {self.config.vocab_size - 1}")
        if not ids:
            raise LlmvizError("the input is empty: give at least one token")
        if len(ids) > self.config.n_ctx:
            raise InputTooLong(f"the input has {len(ids)} tokens; {self.name}'s context holds at most {self.config.n_ctx}")
        return ids

    def token_strs(self, ids: Sequence[int]) -> list[str]:
        """Each token as readable text (a BPE token's leading space shown as ␣); ids without a tokenizer."""
        return self.tokenizer.token_strs(ids) if self.tokenizer else [str(i) for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        """Tokens back to plain text; ids separated by spaces without a tokenizer."""
        return self.tokenizer.decode(ids) if self.tokenizer else " ".join(str(i) for i in ids)

    def run(self, prompt: Prompt, keep: Collection[str] | None = None,
            visit: Callable[[str, np.ndarray], None] | None = None, stop: Callable[[], bool] | None = None,
            only: Collection[str] | None = None) -> "Trace":
        """The forward pass: compute every tensor of the graph, in order.

        keep: the tensors to hold on to (default: all). Any other tensor is dropped once its last reader has
        run, and the trace recomputes it from the nearest kept residual tensors when asked for it (pass
        `graph.checkpoints()` to keep just those: memory for a long input stays small).
        visit: called with each tensor as soon as it is computed (to reduce or copy it while it exists).
        stop: checked between ops; when it returns true the pass ends with `Stopped`.
        only: compute just the tensors these need (the trace predicts nothing unless that includes the output).
        """
        self.require_weights()
        ids = self.encode(prompt)
        predicted: list[int] = []
        last: list[np.ndarray] = []

        def seen(name, a):
            if name == self.graph.output:
                predicted[:] = a.argmax(-1).tolist()
                last.append(a[-1].copy())
            if visit is not None:
                visit(name, a)

        keep = None if keep is None else set(keep)
        names = self.graph.names() if only is None else self.graph.ancestors(only)
        values = self._compute(ids, {}, names, keep, seen, stop)
        return Trace(self, ids, values, predicted, last[0] if last else None)

    def _compute(self, ids: list[int], known: Mapping[str, np.ndarray], names: list[str], keep: set | None,
                 visit=None, stop=None) -> dict[str, np.ndarray]:
        """Compute `names` (in graph order) from `known` tensors, the weights and the tokens."""
        graph, last, order = self.graph, self.graph.last_readers(), self.graph.position()
        values: dict[str, np.ndarray] = {}

        def get(name):
            if name in values:
                return values[name]
            if name in known:
                return known[name]
            return self._leaf(name, ids)

        for name in names:
            if stop is not None and stop():
                raise Stopped("stopped before the forward pass finished")
            t = graph[name]
            if t.kind in ("weight", "input"):
                if keep is None or name in keep:
                    values[name] = self._leaf(name, ids, values)
                continue
            values[name] = ops.OPS[t.op](*(get(i) for i in t.inputs), **t.attrs)
            if visit is not None:
                visit(name, values[name])
            if keep is not None:
                i = order[name]
                for n in (*t.inputs, name):
                    if n in values and n not in keep and last.get(n, -1) <= i:
                        del values[n]
        return values

    def _leaf(self, name: str, ids: list[int], values: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """A weight as float32, or the input tokens."""
        if self.graph[name].kind == "input":
            return np.asarray(ids, dtype=np.int64)
        if name == "unembed.W_U" and self.config.tied_unembed and values and "embed.W_E" in values:
            return values["embed.W_E"].T  # tied: the same numbers, widened once
        return widen(self.weights[name])

    def generate(self, prompt: Prompt, max_new_tokens: int | None = None, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 stop: Callable[[], bool] | None = None) -> "Generation":
        """Sample tokens one at a time; temperature 0 is greedy (always the most probable token), and a
        temperature close to 0 tends to it. The same seed and settings give the same tokens.

        With no max_new_tokens, generate until the context is full (at most 32 tokens).
        A context that overflows keeps its last n_ctx tokens, as minGPT does.
        stop: checked between ops; when it returns true generation ends with `Stopped`.
        """
        self.require_weights()
        ids = self.encode(prompt)
        if max_new_tokens is None:
            max_new_tokens = max(1, min(self.config.n_ctx + 1 - len(ids), 32))
        check_sampling(max_new_tokens, temperature, top_k, top_p, seed)
        rng = np.random.default_rng(seed)
        new: list[int] = []
        probs_of_choice: list[float] = []
        for _ in range(max_new_tokens):
            probs = self.next_probs((ids + new)[-self.config.n_ctx:], stop)
            nxt = _sample(probs, temperature, top_k, top_p, rng)
            new.append(nxt)
            probs_of_choice.append(float(probs[nxt]))
        return Generation(ids, new, self.token_strs(new), self.decode(new), probs_of_choice)

    def next_probs(self, ids: list[int], stop: Callable[[], bool] | None = None) -> np.ndarray:
        """The next-token probabilities after `ids`, from a forward pass that keeps no tensor."""
        out: list[np.ndarray] = []

        def last_row(name, a):
            if name == self.graph.output:
                out.append(a[-1].copy())

        self.run(ids, keep=(), visit=last_row, stop=stop)
        if not np.isfinite(out[0]).all():
            raise LlmvizError(f"{self.name} computed probabilities that are not finite numbers (NaN or inf): "
                              "its weights or activations overflow")
        return out[0]


def check_sampling(max_new_tokens: int, temperature: float, top_k, top_p, seed) -> None:
    """Refuse sampling settings that have no meaning, naming the setting and its allowed range."""
    for ok, what in [
        (max_new_tokens >= 0, f"max_new_tokens must be 0 or more (got {max_new_tokens})"),
        (np.isfinite(temperature) and temperature >= 0, f"temperature must be a number >= 0 (got {temperature})"),
        (top_k is None or top_k >= 1, f"top_k must be 1 or more (got {top_k})"),
        (top_p is None or (np.isfinite(top_p) and 0 < top_p <= 1), f"top_p must be in (0, 1] (got {top_p})"),
        (seed is None or 0 <= seed < 2**63, f"seed must be from 0 to 2**63 - 1 (got {seed})"),
    ]:
        if not ok:
            raise LlmvizError(what)


def widen(w: np.ndarray) -> np.ndarray:
    """A weight as float32 for computing: float16 is cast, bfloat16 (kept as uint16 bits) is expanded."""
    if w.dtype == np.float32:
        return w
    return bf16_to_f32(w) if w.dtype == np.uint16 else w.astype(np.float32)


def _sample(probs: np.ndarray, temperature: float, top_k, top_p, rng) -> int:
    if temperature == 0:
        return int(np.argmax(probs))
    logp = np.log(np.maximum(probs.astype(np.float64), 1e-300))
    with np.errstate(over="ignore"):  # shifted first: a tiny temperature leaves only the top token (−x/T = −∞)
        p = np.exp((logp - logp.max()) / temperature)
    order = np.argsort(-p)
    keep = np.zeros_like(p, dtype=bool)
    keep[order[: top_k or len(p)]] = True
    if top_p is not None:
        sorted_p = p[order] / p.sum()
        cutoff = int(np.searchsorted(np.cumsum(sorted_p), top_p)) + 1  # smallest set with mass >= top_p
        keep[order[cutoff:]] = False
    p = np.where(keep, p, 0.0)
    return int(rng.choice(len(p), p=p / p.sum()))


@dataclass
class Generation:
    prompt: list[int]
    tokens: list[int]  # the new tokens only
    token_strs: list[str]  # each new token, readable
    text: str  # the new tokens decoded to plain text
    probs: list[float] = field(default_factory=list)  # probability of each chosen token when it was chosen


class Trace(Mapping):
    """Every tensor of one forward pass by its graph name: the input, weights, activations, aggregates.

    float32 (tokens int64), no batch axis; axes as in `model.graph[name].axes`. A trace run with `keep`
    holds only those tensors; any other one is recomputed when asked for, from the kept tensors it depends
    on (with the residual stream kept, that is its own layer), and the last such group is remembered.
    """

    def __init__(self, model: Model, tokens: list[int], values: dict[str, np.ndarray], predicted: list[int],
                 next_probs: np.ndarray | None = None):
        self.model = model
        self.tokens = tokens
        self.values = values
        self.predicted_ids = predicted
        self.next_probs = next_probs  # the last position's probabilities: the prediction of the next token
        self._recent: dict[str, np.ndarray] = {}  # recomputed tensors of one layer
        self._recent_layer: int | None = None
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.values:
            return self.values[name]
        if name not in self.model.graph:
            raise KeyError(f"{name!r} is not a tensor of {self.model.name}'s graph")
        with self._lock:
            if name not in self._recent:
                # What was recomputed for the same layer stays: reading a layer's tensors one by one costs
                # one pass over that layer. Another layer starts afresh, so at most one layer is held.
                layer = self.model.graph[name].layer
                if self._recent_layer != layer:
                    self._recent, self._recent_layer = {}, layer
                self._recent.update(self._recompute(name))
            return self._recent[name]

    def _recompute(self, name: str) -> dict[str, np.ndarray]:
        known = {**self._recent, **self.values}
        return self.model._compute(self.tokens, known, self.model.graph.ancestors([name], known), keep=None)

    def __contains__(self, name) -> bool:  # without computing anything
        return name in self.model.graph

    def __iter__(self):
        return iter(self.model.graph.tensors)

    def __len__(self) -> int:
        return len(self.model.graph.tensors)

    @property
    def nbytes(self) -> int:
        """Memory this trace holds beyond the model's weights (recomputed tensors included)."""
        own = {id(w) for w in self.model.weights.values()} if self.model.weights else set()
        held = {id(v): v for v in [*self.values.values(), *self._recent.values()]}
        return sum(v.nbytes for v in held.values() if id(v) not in own and id(v.base) not in own)

    def forget(self) -> None:
        """Let go of the recomputed tensors (they are recomputed again when asked for)."""
        with self._lock:
            self._recent, self._recent_layer = {}, None

    @property
    def token_strs(self) -> list[str]:
        return self.model.token_strs(self.tokens)

    @property
    def predicted(self) -> list[str]:
        """The most probable next token after each position, readable."""
        return self.model.token_strs(self.predicted_ids)

    def index_name(self, axis: str, i: int) -> str | None:
        """What an index of an axis stands for: the input's token at a position, the token string of a
        vocabulary entry (see graph.NAMED_BY); None for other axes."""
        by = NAMED_BY.get(axis)
        if by == "input":
            return self.token_strs[i]
        return self.model.token_strs([i])[0] if by == "vocabulary" else None

    def computed(self) -> list[str]:
        """Names of the tensors the forward pass computed (not weights)."""
        return self.model.graph.names("input", "activation", "aggregate")

    def metadata(self) -> dict[str, str]:
        """The tokens, and the predicted next tokens when this pass computed them."""
        meta = {"model": self.model.name, "tokens": json.dumps(self.tokens), "token_strs": json.dumps(self.token_strs)}
        if self.predicted_ids:
            meta["predicted"] = json.dumps(self.predicted)
        return meta

    def to_bytes(self, include_weights: bool = False, names: Sequence[str] | None = None) -> memoryview:
        """The trace in safetensors format: a JSON header of names, dtypes, shapes and offsets, then one
        little-endian buffer. Tokens are stored as int32, everything else as float32. names: just these."""
        return safetensors_bytes(self._tensors(include_weights, names), self.metadata())

    def save(self, path, include_weights: bool = True) -> None:
        """The same bytes as to_bytes, written to a file one tensor at a time."""
        safetensors_write(path, self._tensors(include_weights), self.metadata())

    def _tensors(self, include_weights: bool, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        if names is None:
            names = self.model.graph.names() if include_weights else self.computed()
        return {n: _plain(self[n]) for n in names}


def _plain(a: np.ndarray) -> np.ndarray:
    dtype = np.int32 if a.dtype.kind in "iu" else np.float32
    return a if a.dtype == dtype else a.astype(dtype)  # the writer reads strided views in place
