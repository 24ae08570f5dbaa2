"""A GPT in numpy whose forward pass is the model graph, run in order.

    model = llmviz.load_model("nano-gpt")
    trace = model.run("CBABBC")          # every tensor of the forward pass, by name
    trace["blocks.0.attn.hook_pattern"]  # [head, pos, key_pos]
    model.generate("CBABBC").text        # 'ABBBCC'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np

from . import ops
from .config import ModelConfig
from .errors import InputTooLong, LlmvizError, NoWeights
from .graph import Graph
from .safetensors_file import bf16_to_f32

Prompt = Union[str, Sequence[int]]


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

    def run(self, prompt: Prompt) -> "Trace":
        """The forward pass: compute every tensor of the graph, in order, and keep them all."""
        self.require_weights()
        ids = self.encode(prompt)
        values: dict[str, np.ndarray] = {}
        for t in self.graph:
            if t.name == "unembed.W_U" and self.config.tied_unembed:
                values[t.name] = values["embed.W_E"].T  # tied: the same numbers, widened once
            elif t.kind == "weight":
                values[t.name] = widen(self.weights[t.name])
            elif t.kind == "input":
                values[t.name] = np.asarray(ids, dtype=np.int64)
            else:
                values[t.name] = ops.OPS[t.op](*(values[i] for i in t.inputs), **t.attrs)
        return Trace(self, ids, values)

    def generate(self, prompt: Prompt, max_new_tokens: int | None = None, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> "Generation":
        """Sample tokens one at a time; temperature 0 is greedy (always the most probable token).

        With no max_new_tokens, generate until the context is full (at most 32 tokens).
        A context that overflows keeps its last n_ctx tokens, as minGPT does.
        """
        self.require_weights()
        ids = self.encode(prompt)
        if max_new_tokens is None:
            max_new_tokens = max(1, min(self.config.n_ctx + 1 - len(ids), 32))
        if max_new_tokens < 0 or temperature < 0 or (top_k is not None and top_k < 1) \
                or (top_p is not None and not 0 < top_p <= 1):
            raise LlmvizError("need max_new_tokens >= 0, temperature >= 0, top_k >= 1 and 0 < top_p <= 1")
        rng = np.random.default_rng(seed)
        new: list[int] = []
        probs_of_choice: list[float] = []
        for _ in range(max_new_tokens):
            probs = self.run((ids + new)[-self.config.n_ctx:])["probs"][-1]
            nxt = _sample(probs, temperature, top_k, top_p, rng)
            new.append(nxt)
            probs_of_choice.append(float(probs[nxt]))
        return Generation(ids, new, self.token_strs(new), self.decode(new), probs_of_choice)


def widen(w: np.ndarray) -> np.ndarray:
    """A weight as float32 for computing: float16 is cast, bfloat16 (kept as uint16 bits) is expanded."""
    if w.dtype == np.float32:
        return w
    return bf16_to_f32(w) if w.dtype == np.uint16 else w.astype(np.float32)


def _sample(probs: np.ndarray, temperature: float, top_k, top_p, rng) -> int:
    if temperature == 0:
        return int(np.argmax(probs))
    logp = np.log(np.maximum(probs.astype(np.float64), 1e-30)) / temperature
    p = np.exp(logp - logp.max())
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

    float32 (tokens int64), no batch axis; axes as in `model.graph[name].axes`.
    """

    def __init__(self, model: Model, tokens: list[int], values: dict[str, np.ndarray]):
        self.model = model
        self.tokens = tokens
        self.values = values

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.values[name]
        except KeyError:
            raise KeyError(f"{name!r} is not a tensor of {self.model.name}'s graph") from None

    def __iter__(self):
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def token_strs(self) -> list[str]:
        return self.model.token_strs(self.tokens)

    @property
    def predicted(self) -> list[str]:
        """The most probable next token after each position, readable."""
        return self.model.token_strs(self["probs"].argmax(-1).tolist())

    def computed(self) -> list[str]:
        """Names of the tensors the forward pass computed (not weights)."""
        return self.model.graph.names("input", "activation", "aggregate")

    def metadata(self) -> dict[str, str]:
        return {
            "model": self.model.name,
            "tokens": json.dumps(self.tokens),
            "token_strs": json.dumps(self.token_strs),
            "predicted": json.dumps(self.predicted),
        }

    def to_bytes(self, include_weights: bool = False) -> bytes:
        """The trace in safetensors format: a JSON header of names, dtypes, shapes and offsets, then one
        little-endian buffer. Tokens are stored as int32, everything else as float32."""
        from safetensors.numpy import save

        names = self.model.graph.names() if include_weights else self.computed()
        tensors = {n: _plain(self[n]) for n in names}
        return save(tensors, metadata=self.metadata())

    def save(self, path, include_weights: bool = True) -> None:
        with open(path, "wb") as f:
            f.write(self.to_bytes(include_weights))


def _plain(a: np.ndarray) -> np.ndarray:
    dtype = np.int32 if a.dtype.kind in "iu" else np.float32
    return np.ascontiguousarray(a, dtype=dtype)
