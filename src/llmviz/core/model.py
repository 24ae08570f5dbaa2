"""A GPT in numpy whose forward pass is the model graph, run in order.

    model = llmviz.load_model("nano-gpt")
    trace = model.run("CBABBC")          # every tensor of the forward pass, by name
    trace["blocks.0.attn.hook_pattern"]  # [head, pos, key_pos]
    model.generate("CBABBC").text        # 'ABBBCC'
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..io.safetensors_file import to_bytes as safetensors_bytes
from ..io.safetensors_file import write as safetensors_write
from . import weights as stored
from .backward import Gradients, backward, targets_for
from .config import ModelConfig
from .edits import Edit, by_tensor, parse_edits, with_sources
from .edits import apply as apply_edits
from .errors import InputTooLong, LlmvizError, NoWeights, NumericTrouble
from .graph import NAMED_BY, Graph
from .ops import OPS
from .progress import report
from .sampling import Draw, Sampling, sample
from .weights import owner, streamed, widen

Prompt = str | Sequence[int] | Sequence[float]  # (an image's pixels or a point's numbers: floats; see Model.pixels, Model.point)
PIXEL_MAX = 16.0  # an image model's pixels go from 0 (blank) to 16 (ink), as scikit-learn's 8 × 8 digits
POINT_MAX = 100.0  # a point classifier's numbers go from −100 to 100

READ_STORED = ("linear", "embed")  # ops that widen a large weight themselves, a block at a time (core/weights.py)

# numpy asks the kernel for huge pages on every large array (madvise). Where transparent huge pages defragment
# on request (defrag = madvise, the common default), each such allocation may stall on memory compaction: a
# full trace allocates gigabytes at once, and fresh arrays filled 4-5x slower here with the hint than without.
# The hint changes speed only, never a number.
if hasattr(np, "_core") and hasattr(np._core.multiarray, "_set_madvise_hugepage"):
    np._core.multiarray._set_madvise_hugepage(False)


class Stopped(Exception):
    """A forward pass or a generation was asked to stop (its client went away, or the server is stopping)."""


class Model:
    """A config, its graph, its tokenizer and (unless structure only) its weights.

    `weights` maps each weight name of the graph to an array in the storage dtype: as the file stores it
    (float32, float16, or bfloat16 as uint16 bits), memory-mapped, for a Hugging Face folder; float32 by default for
    other files; or as loaded with dtype=... (see core/weights.py). `trace[name]` is always float32.
    """

    engine: ClassVar[str] = "numpy"  # what computes its passes (io/nnsight_engine.py: "nnsight")

    def __init__(self, config: ModelConfig, weights: MutableMapping[str, np.ndarray] | None, tokenizer, source: str = ""):
        self.config = config
        self.graph = Graph(config)
        self.weights = weights
        if weights is not None:  # a tied weight is the weight it names, its axes reordered: never a copy
            for name in self.graph.names("weight"):
                if "tied_to" in self.graph[name].attrs:
                    weights[name] = tie(self.graph, name, weights[self.graph[name].attrs["tied_to"]])
        self.tokenizer = tokenizer
        self.source = source
        self.stored: dict = {}  # a quantized model's weights as stored (core/quant.py: name -> Stored)
        self.precision = "f32"  # the format its weights are stored in (core/quant.FORMATS)
        self._widened: int | None = None  # (pass_bytes: the largest float32 copy of a weight an op makes)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def has_weights(self) -> bool:
        return self.weights is not None

    def pass_bytes(self, n_pos: int, keep: Collection[str] | None = None) -> int:
        """The most memory a forward pass of n_pos tokens takes at once, keeping `keep` (default: the residual stream):
        the graph's tensors held (Graph.peak_bytes), and the float32 copy of the weight an op widens at that moment,
        whole, or a block of it where streamed (core/weights.py). The weights themselves are the model's, or mapped."""
        if self._widened is None:
            self._widened = max((4 * (stored.BLOCK if streamed(w) else w.size) for w in (self.weights or {}).values()
                                 if w.dtype != np.float32), default=0)
        return self.graph.peak_bytes(n_pos, self.graph.checkpoints() if keep is None else keep) + self._widened

    def unavailable(self) -> dict[str, str]:
        """The page's features this model cannot offer, each with why (ModelInfo.cannot): a model of over COPIES_UP_TO
        parameters has no Gradients view, whose backward pass holds every weight's gradient in float32 at once."""
        n = self.config.n_params
        if n <= stored.COPIES_UP_TO:
            return {}
        return {"gradients": f"{self.name}'s gradients would be a float32 copy of its {n:,} weights "
                             f"({4 * n / 2**30:,.1f} GiB): the Gradients view is offered up to "
                             f"{stored.COPIES_UP_TO:,} parameters"}

    def require_tokens(self) -> None:
        """A model that writes tokens: a classifier (of an image, or of a point) is refused by name."""
        if self.config.classifier:
            raise LlmvizError(f"{self.name} classifies {'an image' if self.config.image_side else 'a point'}: it reads "
                              "no text and writes no next token")

    def require_weights(self) -> MutableMapping[str, np.ndarray]:
        """The weights; a structure-only model says it has none."""
        if self.weights is None:
            raise NoWeights(f"{self.name} is structure only: no weights are loaded, so there is nothing to compute")
        return self.weights

    def encode(self, prompt: Prompt | np.ndarray) -> list[Any]:  # (list[int]; an image model's: list[float])
        """Token ids for a string or a list of ids, checked against the vocabulary and the context; for an image model
        (config.image_side), its image's pixels (Model.pixels)."""
        if self.config.image_side:
            return self.pixels(prompt)
        if self.config.input_size:
            return self.point(prompt)
        if isinstance(prompt, str) and self.tokenizer is None:
            try:  # without a tokenizer, text is token ids: "464 2068 7586"
                prompt = [int(p) for p in prompt.replace(",", " ").split()]
            except ValueError:
                raise LlmvizError(f"{self.name} has no tokenizer: give token ids separated by spaces, "
                                  "such as '464 2068'") from None
        if isinstance(prompt, str):
            ids = self.tokenizer.encode(prompt)
        else:
            if any(isinstance(i, float) and not i.is_integer() for i in prompt):
                raise LlmvizError(f"token ids are whole numbers (got {next(i for i in prompt if isinstance(i, float))})")
            ids = [int(i) for i in prompt]
            bad = [i for i in ids if not 0 <= i < self.config.vocab_size]
            if bad:
                raise LlmvizError(f"token id {bad[0]} is out of range: {self.name} has ids 0 to {self.config.vocab_size - 1}")
        if not ids:
            raise LlmvizError("the input is empty: give at least one token")
        if len(ids) > self.config.n_ctx:
            raise InputTooLong(f"the input has {len(ids)} tokens; {self.name}'s context holds at most {self.config.n_ctx}")
        return ids

    def pixels(self, image) -> list[float]:
        """An image model's input, checked: an image_side × image_side array of numbers from 0 to 16, or its side²
        numbers row by row (as a trace holds them: its `tokens`), or those written as text, separated by spaces or
        commas (what the page and the command line send). Returns the pixels row by row (the graph's `pixels`)."""
        side = self.config.image_side
        a_side = f"{'an' if str(side).startswith('8') or side in (11, 18) else 'a'} {side} × {side}"
        want = f"give {a_side} array of numbers from 0 (blank) to {PIXEL_MAX:g} (ink)"
        if isinstance(image, str):
            try:
                image = np.array([float(p) for p in image.replace(",", " ").split()], np.float64)
            except ValueError:
                raise LlmvizError(f"{self.name} reads an image, not text: {want}, or as text its {side * side} numbers "
                                  "row by row") from None
            if image.size != side * side:
                raise LlmvizError(f"{self.name} reads an image: {want}, or as text its {side * side} numbers row by row "
                                  f"(got {image.size})")
            image = image.reshape(side, side)
        try:
            a = np.asarray(image, dtype=np.float64)
        except (ValueError, TypeError):
            raise LlmvizError(f"{self.name} reads an image: {want}") from None
        if a.shape == (side * side,):  # its pixels row by row
            a = a.reshape(side, side)
        if a.shape != (side, side):
            raise LlmvizError(f"{self.name} reads {a_side} image, not an array of shape {list(a.shape)}: {want}")
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > PIXEL_MAX:
            bad = a[~(np.isfinite(a) & (a >= 0) & (a <= PIXEL_MAX))][0]
            raise LlmvizError(f"pixel value {bad:g} is out of range: {want}")
        return a.astype(np.float32).reshape(-1).tolist()

    def point(self, point) -> list[float]:
        """A point classifier's input (config.input_size numbers: a neuron's point), checked: a list or array of
        that many finite numbers from −POINT_MAX to POINT_MAX, or those written as text, separated by spaces or
        commas."""
        n = self.config.input_size
        want = f"give {n} numbers from −{POINT_MAX:g} to {POINT_MAX:g}, such as '0.5 -1.2'"
        try:
            a = np.array([float(p) for p in point.replace(",", " ").split()] if isinstance(point, str) else point,
                         np.float64).reshape(-1)
        except (ValueError, TypeError):
            raise LlmvizError(f"{self.name} reads a point, not text: {want}") from None
        if a.size != n:
            raise LlmvizError(f"{self.name} reads a point of {n} numbers (got {a.size}): {want}")
        if not (np.isfinite(a).all() and np.abs(a).max() <= POINT_MAX):
            raise LlmvizError(f"{self.name}'s input {a[~(np.isfinite(a) & (np.abs(a) <= POINT_MAX))][0]:g} is out of "
                              f"range: {want}")
        return a.astype(np.float32).tolist()

    def token_strs(self, ids: Sequence[int]) -> list[str]:
        """Each token as readable text (a BPE token's leading space shown as ␣); ids without a tokenizer (an image
        model's pixels, a point's numbers: their values)."""
        if self.config.classifier:
            return [f"{v:g}" for v in ids]
        return self.tokenizer.token_strs(ids) if self.tokenizer else [str(i) for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        """Tokens back to plain text; ids separated by spaces without a tokenizer (an image model's pixels: their
        values, as Model.pixels reads them)."""
        return self.tokenizer.decode(ids) if self.tokenizer else " ".join(self.token_strs(ids))

    def run(self, prompt: Prompt, keep: Collection[str] | None = None,
            visit: Callable[[str, np.ndarray], None] | None = None, stop: Callable[[], bool] | None = None,
            only: Collection[str] | None = None, edits: Sequence[Edit | Mapping] = ()) -> Trace:
        """The forward pass: compute every tensor of the graph, in order.

        keep: the tensors to hold on to (default: all). Any other tensor is dropped once its last reader has
        run, and the trace recomputes it from the nearest kept residual tensors when asked for it (pass
        `graph.checkpoints()` to keep just those: memory for a long input stays small).
        visit: called with each tensor as soon as it is computed (to reduce or copy it while it exists).
        stop: checked between ops; when it returns true the pass ends with `Stopped`.
        only: compute just the tensors these need (the trace predicts nothing unless that includes the output).
        edits: interventions (core/edits.py), each made right after its tensor is computed, so that everything
        downstream reads the edited numbers; the trace is the edited pass, and recomputes with them too.
        """
        self.require_weights()
        ids = self.encode(prompt)
        made = self.edits(edits, len(ids), stop) if edits else []
        out = Output(self.graph, visit)
        keep = None if keep is None else set(keep)
        names = self.graph.names() if only is None else self.graph.ancestors(only)
        values = self._compute(self.graph, ids, {}, names, keep, out.visit, stop, by_tensor(made))
        return Trace(self, ids, values, out.predicted, out.next_probs, next_logits=out.next_logits, edits=made)

    def edits(self, raw: Sequence[Edit | Mapping], n_pos: int, stop: Callable[[], bool] | None = None) -> list[Edit]:
        """Edits (their JSON form or Edit objects) checked against this model for an input of n_pos tokens, each
        patch with its numbers from the clean pass of its input (see core/edits.py)."""
        self.require_weights()
        checked = parse_edits(self.graph, raw, n_pos, self.encode)

        def source(ids: list[int], names: list[str]) -> dict[str, np.ndarray]:
            return self._compute(self.graph, ids, {}, self.graph.ancestors(names), set(names), stop=stop)

        return with_sources(checked, source)

    def gradients(self, prompt: Prompt, targets: Sequence[int] | None = None,
                  stop: Callable[[], bool] | None = None) -> Gradients:
        """The backward pass (core/backward.py): the mean next-token cross-entropy over positions 0 … T−2 (targets:
        the input shifted by one, or the T − 1 given, −1 where a position is not counted) and its gradient with respect to every weight (`.weights`,
        named as `model.weights`) and every activation (g["blocks.0.hook_resid_post"]). The forward pass keeps the
        residual stream and the logits; the backward pass recomputes each layer's other tensors from it when it
        reaches that layer (as a Trace does), so that one layer's activations are held at a time."""
        self.require_weights()
        ids = self.encode(prompt)
        image = self.config.classifier  # an image (or a point): its input is the numbers, its target its class
        wanted = self._labels([targets]) if image else targets_for(ids, targets, self.config.vocab_size)
        logits = self.graph[self.graph.output].inputs[0]
        trace = self.run(prompt if image else ids, keep=[*self.graph.checkpoints(), logits], stop=stop, only=[logits])
        g = backward(self.graph, trace, self.require_weights(), logits, wanted)
        g.tokens = ids
        return g

    def batch_values(self, batch: Sequence[Sequence[int]] | np.ndarray, names: Collection[str]) -> dict[str, np.ndarray]:
        """The tensors `names` of a batch of inputs of one length, computed in one pass whose tensors have a leading
        batch axis (each op computes the same numbers for each example as for it alone): for training and
        evaluation, with no trace."""
        ids = self._batch_ids(batch)
        return self._compute(self.graph, ids, {}, self.graph.ancestors(list(names)), set(names))

    def batch_logits(self, batch: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
        """The logits [batch, pos, vocab] of a batch of inputs of one length (batch_values)."""
        logits = self.graph[self.graph.output].inputs[0]
        return self.batch_values(batch, [logits])[logits]

    def batch_gradients(self, batch: Sequence[Sequence[int]] | np.ndarray, targets: Sequence[Sequence[int]]) -> Gradients:
        """The gradients of a batch of inputs of one length (a training step's), in one pass with a leading batch
        axis: the mean cross-entropy over every counted position of every example (targets: a row per example, as
        `gradients` takes them, −1 where a position is not counted). `.weights` as `gradients`; the activations'
        gradients have the batch axis first."""
        ids = self._batch_ids(batch)
        if self.config.classifier:  # a batch of images (or points), each with its class ([label] or label)
            wanted = self._labels(targets)
        else:
            rows = [targets_for(list(x), t, self.config.vocab_size) for x, t in zip(ids.tolist(), targets, strict=True)]
            wanted = np.full(ids.shape, -1, np.int64)
            for i, r in enumerate(rows):
                wanted[i, :len(r)] = r
        logits = self.graph[self.graph.output].inputs[0]
        values = self._compute(self.graph, ids, {}, self.graph.ancestors([logits]), keep=None)
        values.update((n, self._leaf(self.graph, n, ids)) for n in self.graph.names("weight"))  # (as float32)
        return backward(self.graph, values, self.require_weights(), logits, wanted)

    def _labels(self, targets) -> np.ndarray:
        """An image model's targets: one class per image (a label, or a list of one label)."""
        try:
            if targets is None or any(t is None for t in targets):
                raise TypeError
            labels = np.asarray(targets, dtype=np.float64).reshape(len(targets))
        except (ValueError, TypeError):
            raise LlmvizError("targets: give one class per image (a whole number from 0 to "
                              f"{self.config.vocab_size - 1})") from None
        classes = self.config.vocab_size
        bad = labels[(labels != labels.round()) | (labels < 0) | (labels >= classes)]
        if bad.size:
            raise LlmvizError(f"targets: {bad[0]:g} is not a class: give whole numbers from 0 to {classes - 1}")
        return labels.astype(np.int64)

    def _batch_images(self, batch) -> np.ndarray:
        side = self.config.image_side
        a = np.asarray(batch, dtype=np.float32) if isinstance(batch, np.ndarray) else None
        if a is None or a.ndim != 3 or a.shape[1:] != (side, side) or not len(a):
            a = np.array([self.pixels(x) for x in batch], np.float32)  # each image checked, and named if refused
            if not len(a):
                raise LlmvizError(f"a batch is a list of {side} × {side} images, and this one is empty")
        elif not (np.isfinite(a).all() and a.min() >= 0 and a.max() <= PIXEL_MAX):
            raise LlmvizError(f"a batch's pixels must be numbers from 0 to {PIXEL_MAX:g}")
        return a.reshape(len(a), side * side)

    def _batch_ids(self, batch: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
        self.require_weights()
        if self.config.image_side:
            return self._batch_images(batch)
        if self.config.input_size:  # points: each checked as `point` checks one
            a = np.asarray(batch, np.float32) if isinstance(batch, np.ndarray) else None
            if a is None or a.ndim != 2 or a.shape[1] != self.config.input_size or not len(a):
                a = np.array([self.point(x) for x in batch], np.float32).reshape(-1, self.config.input_size)
            elif not (np.isfinite(a).all() and np.abs(a).max() <= POINT_MAX):
                raise LlmvizError(f"a batch's points must be numbers from −{POINT_MAX:g} to {POINT_MAX:g}")
            return a
        try:
            ids = np.asarray(batch, dtype=np.int64)
        except ValueError:
            raise LlmvizError("a batch's inputs must all have the same number of tokens") from None
        if ids.ndim != 2 or not ids.size:
            raise LlmvizError(f"a batch is a list of inputs of token ids, each of the same length (got shape {ids.shape})")
        self.encode(ids[0].tolist())  # its length checked against the context
        if ids.min() < 0 or ids.max() >= self.config.vocab_size:
            raise LlmvizError(f"a batch's token ids must be from 0 to {self.config.vocab_size - 1}")
        return ids

    def step(self, cache: KVCache, new: Prompt, keep: Collection[str] | None = None,
             visit: Callable[[str, np.ndarray], None] | None = None, stop: Callable[[], bool] | None = None) -> Trace:
        """One step of generation with a KV cache: compute only the new positions, reading every earlier
        position's keys and values from `cache` (empty: the prompt's whole pass), then add theirs to it.

        The trace is the step's: its graph is `Graph(config, past=len(cache))`, its `pos` are the new
        positions, and each layer's `attn.cache_k` / `attn.cache_v` hold the keys and values so far.
        keep, visit, stop: as for `run` (the cache's tensors are always kept).
        """
        self.require_weights()
        ids = [int(i) for i in (new if not isinstance(new, str) else self.encode(new))]
        if not ids:
            raise LlmvizError("a step needs at least one new token")
        if len(cache) + len(ids) > self.config.n_ctx:
            raise InputTooLong(f"the context is full: {self.name} holds {self.config.n_ctx} tokens, and this step would "
                               f"make {len(cache) + len(ids)}")
        self.encode(cache.tokens + ids)  # checks every id against the vocabulary
        graph = Graph(self.config, past=len(cache)) if len(cache) else self.graph
        known = {name: a for i, pair in enumerate(graph.kv_in) for c, name in zip("kv", pair)
                 if (a := cache.kv[c][i]) is not None}  # a cache of len(cache) positions holds every layer's
        out = Output(graph, visit)
        held = None if keep is None else set(keep).union(*graph.kv_out)
        values = self._compute(graph, ids, known, graph.names(), held, out.visit, stop)
        trace = Trace(self, ids, {**known, **values} if keep is None else values, out.predicted, out.next_probs,
                      graph=graph, past_tokens=list(cache.tokens), next_logits=out.next_logits)
        for i, pair in enumerate(graph.kv_out):  # the keys and values so far become the cache
            for c, name in zip("kv", pair):
                cache.kv[c][i] = values[name]
        cache.tokens += ids
        return trace

    def _compute(self, graph: Graph, ids: list[int] | np.ndarray, known: Mapping[str, np.ndarray], names: list[str],
                 keep: set | None, visit=None, stop=None,
                 edits: Mapping[str, Sequence[Edit]] | None = None) -> dict[str, np.ndarray]:
        """Compute `names` (in graph order) from `known` tensors, the weights and the tokens; a tensor `edits`
        names is edited as soon as it is computed, before anything reads it."""
        last, order = graph.last_readers(names), graph.position()
        values: dict[str, np.ndarray] = {}

        def get(name, op):
            if name in values:
                return values[name]
            if name in known:
                return known[name]
            return self._leaf(graph, name, ids, stored=op in READ_STORED)

        n_layer, layer = self.config.n_layer, -1
        for name in names:
            if stop is not None and stop():
                raise Stopped("stopped before the forward pass finished")
            t = graph[name]
            if t.layer is not None and t.layer != layer:  # a layer begins: the ones before it are done
                layer = t.layer
                report(layer, n_layer, "layer")
            if t.kind == "weight":  # read where it is used (a weight is kept only if `keep` names it)
                if keep is not None and name in keep and name not in known:
                    values[name] = self._leaf(graph, name, ids, values)
                continue
            if t.kind == "input":
                if (keep is None or name in keep) and name not in known:
                    values[name] = self._leaf(graph, name, ids)
                continue
            try:  # an op whose numbers leave float32's range stops the pass (an op that expects it says so itself)
                with np.errstate(over="raise", invalid="raise", divide="raise"):
                    values[name] = OPS[t.op or ""](*(get(i, t.op) for i in t.inputs), **t.attrs)
                    if edits and name in edits:
                        values[name] = apply_edits(graph, values[name], edits[name])
            except FloatingPointError as e:
                raise NumericTrouble(f"computing {name} went out of float32's range ({e}): {self.name}'s weights or "
                                     "this input drive the forward pass to numbers it cannot hold") from None
            if visit is not None:
                visit(name, values[name])
            if keep is not None:
                i = order[name]
                for n in (*t.inputs, name):
                    if n in values and n not in keep and last.get(n, -1) <= i:
                        del values[n]
        if layer >= 0:
            report(n_layer, n_layer, "layer")
        return values

    def _leaf(self, graph: Graph, name: str, ids: list[int] | np.ndarray, values: Mapping[str, np.ndarray] | None = None,
              stored: bool = False) -> np.ndarray:
        """A weight as float32, or the input tokens (an image model's pixels, float32). stored: a large weight as it is
        kept (an op of READ_STORED widens it a block at a time)."""
        if graph[name].kind == "input":
            return np.asarray(ids, dtype=np.float32 if self.config.classifier else np.int64)
        tied = graph[name].attrs.get("tied_to")
        if tied and values and tied in values:
            return tie(graph, name, values[tied])  # the same numbers, widened once
        w = self.require_weights()[name]
        return w if stored and streamed(w) else widen(w)

    def generate(self, prompt: Prompt, max_new_tokens: int | None = None, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 stop: Callable[[], bool] | None = None, min_p: float | None = None,
                 on_token: Callable[[Draw], None] | None = None) -> Generation:
        """Sample tokens one at a time with a KV cache (each step computes only the new position) and the
        sampling chain of `sampling.sample`; temperature 0 is greedy. The same seed and settings give the
        same tokens.

        With no max_new_tokens, generate until the context is full (at most 32 tokens). A context that
        overflows keeps its last n_ctx tokens, as minGPT does (that window is computed afresh).
        stop: checked between ops; when it returns true generation ends with `Stopped`.
        on_token: called with each draw as soon as it is made.
        """
        self.require_weights()
        self.require_tokens()
        ids = self.encode(prompt)
        if max_new_tokens is None:
            max_new_tokens = max(1, min(self.config.n_ctx + 1 - len(ids), 32))
        if max_new_tokens < 0:
            raise LlmvizError(f"max_new_tokens must be 0 or more (got {max_new_tokens})")
        if seed is not None and not 0 <= seed < 2**63:
            raise LlmvizError(f"seed must be from 0 to 2**63 - 1 (got {seed})")
        settings = Sampling(temperature, top_k, top_p, min_p)
        rng = np.random.default_rng(seed)
        cache, pending, draws = KVCache(self), ids, []
        for _ in range(max_new_tokens):
            if len(cache) + len(pending) > self.config.n_ctx:  # full: start again from the last n_ctx tokens
                cache, pending = KVCache(self), (cache.tokens + pending)[-self.config.n_ctx:]
            logits = self.step(cache, pending, keep=(), stop=stop).next_logits
            assert logits is not None  # a step always predicts
            draw = sample(logits, settings, rng)
            draws.append(draw)
            pending = [draw.token]
            if on_token is not None:
                on_token(draw)
        new = [d.token for d in draws]
        return Generation(ids, new, self.token_strs(new), self.decode(new), [d.prob for d in draws], draws)


class Output:
    """Watches a pass for what it predicts: the most probable token after each position, and the last
    position's logits and probabilities (the next token's distribution), whether or not they are kept."""

    def __init__(self, graph: Graph, visit=None):
        self.graph, self.then = graph, visit
        self.logits_name = graph[graph.output].inputs[0]  # the output is the softmax of the logits
        self.predicted: list[int] = []
        self.next_probs: np.ndarray | None = None
        self.next_logits: np.ndarray | None = None

    def visit(self, name: str, a: np.ndarray) -> None:
        if name == self.graph.output:  # [pos, vocab]; an image model's, [class]: one row
            rows = a if a.ndim > 1 else a[None]
            if rows.shape[-1] == 1:  # a binary classifier's σ(z), the probability of class 1: [1 − σ(z), σ(z)]
                rows = np.concatenate([1 - rows, rows], -1)
            self.predicted = rows.argmax(-1).tolist()
            self.next_probs = rows[-1].copy()
        elif name == self.logits_name:
            self.next_logits = (a if a.ndim > 1 else a[None])[-1].copy()
        if self.then is not None:
            self.then(name, a)


class KVCache:
    """What generation keeps between steps: the tokens so far and, for each layer, their keys and values
    ([position, kv_head, d_head]). Memory: 2 · n_layer · n_kv_head · d_head · positions · 4 bytes."""

    def __init__(self, model: Model):
        self.tokens: list[int] = []
        self.kv: dict[str, list[np.ndarray | None]] = {"k": [None] * model.config.n_layer, "v": [None] * model.config.n_layer}

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def nbytes(self) -> int:
        """The memory its arrays hold (an array that is a view counts the whole array it views)."""
        owners = {id(o): o for o in (owner(a) for c in "kv" for a in self.kv[c] if a is not None)}
        return sum(o.nbytes for o in owners.values())

    def copy(self) -> KVCache:
        """A cache to go on from without changing this one (steps replace, never change, the arrays)."""
        other = KVCache.__new__(KVCache)
        other.tokens, other.kv = list(self.tokens), {c: list(a) for c, a in self.kv.items()}
        return other

    def truncate(self, n: int) -> None:
        """Keep the first n positions only (copied, so that the longer arrays are freed): Undo."""
        self.tokens = self.tokens[:n]
        self.kv = {c: [None if a is None or n == 0 else a[:n].copy() for a in arrays] for c, arrays in self.kv.items()}

    def tail(self, start: int) -> KVCache:
        """The positions from `start` on, copied: what a branch keeps of its own (see join)."""
        other = KVCache.__new__(KVCache)
        other.tokens = self.tokens[start:]
        other.kv = {c: [None if a is None else a[start:].copy() for a in arrays] for c, arrays in self.kv.items()}
        return other

    @staticmethod
    def join(parts: Sequence[KVCache]) -> KVCache:
        """One cache of the parts' positions in order: a prefix that branches share, then one branch's own."""
        if len(parts) == 1:
            return parts[0].copy()
        other = parts[0].copy()
        other.tokens = [t for p in parts for t in p.tokens]
        other.kv = {c: [np.concatenate([p.kv[c][i] for p in parts]) for i in range(len(arrays))]
                    for c, arrays in parts[0].kv.items()}
        return other


def tie(graph: Graph, name: str, source: np.ndarray) -> np.ndarray:
    """A tied weight's numbers: those of the weight it names (`source`), its axes in this weight's order."""
    src = graph[graph[name].attrs["tied_to"]].axes
    return source.transpose([src.index(a) for a in graph[name].axes])


@dataclass
class Generation:
    prompt: list[int]
    tokens: list[int]  # the new tokens only
    token_strs: list[str]  # each new token, readable
    text: str  # the new tokens decoded to plain text
    probs: list[float] = field(default_factory=list)  # probability of each chosen token when it was chosen
    draws: list = field(default_factory=list)  # each choice with its sampling stages (sampling.Draw)


class Trace(Mapping):
    """Every tensor of one forward pass by its graph name: the input, weights, activations, aggregates.

    float32 (tokens int64), no batch axis; axes as in `model.graph[name].axes`. A trace run with `keep`
    holds only those tensors; any other one is recomputed when asked for, from the kept tensors it depends
    on (with the residual stream kept, that is its own layer), and the last such group is remembered.

    `trace.show()`, its input in a notebook widget, is given to Trace by the llmviz package (llmviz/__init__.py),
    which owns llmviz.show: the core imports nothing from the layers that draw it.
    """

    show: ClassVar[Callable[[Trace], Any]]  # a method (see above: set by llmviz/__init__.py)
    fetched: frozenset[str] | None = None  # every tensor, computable when asked (another engine's: what it returned)

    def __init__(self, model: Model, tokens: list[int], values: dict[str, np.ndarray], predicted: list[int],
                 next_probs: np.ndarray | None = None, graph: Graph | None = None, past_tokens: Sequence[int] = (),
                 next_logits: np.ndarray | None = None, edits: Sequence[Edit] = ()):
        self.model = model
        self.graph = graph or model.graph  # a step with a KV cache has a graph of its own (see Model.step)
        self.tokens = tokens  # the positions computed: all of them, or a step's new ones
        self.past_tokens = list(past_tokens)  # the tokens before them, whose keys and values came from a cache
        self.kept = values  # the tensors the pass kept (any other is recomputed when asked for)
        self.predicted_ids = predicted
        self.next_probs = next_probs  # the last position's probabilities: the prediction of the next token
        self.next_logits = next_logits  # and its logits
        self.edits = list(edits)  # the interventions of this pass (core/edits.py), made again when it recomputes
        self._recent: dict[str, np.ndarray] = {}  # recomputed tensors of one layer
        self._recent_layer: int | None = None
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.kept:
            return self.kept[name]
        if name not in self.graph:
            raise KeyError(f"{name!r} is not a tensor of {self.model.name}'s graph")
        if self.graph[name].kind == "weight":  # the model's, widened to float32
            return self.model._leaf(self.graph, name, self.tokens)
        with self._lock:
            if name not in self._recent:
                # What was recomputed for the same layer stays: reading a layer's tensors one by one costs
                # one pass over that layer. Another layer starts afresh, so at most one layer is held.
                layer = self.graph[name].layer
                if self._recent_layer != layer:
                    self._recent, self._recent_layer = {}, layer
                self._recent.update(self._recompute(name))
            return self._recent[name]

    def _recompute(self, name: str) -> dict[str, np.ndarray]:
        known = {**self._recent, **self.kept}
        return self.model._compute(self.graph, self.tokens, known, self.graph.ancestors([name], known), keep=None,
                                   edits=by_tensor(self.edits))

    def __contains__(self, name) -> bool:  # without computing anything
        return name in self.graph

    def __iter__(self):
        return iter(self.graph.tensors)

    def __len__(self) -> int:
        return len(self.graph.tensors)

    @property
    def nbytes(self) -> int:
        """Memory this trace holds beyond the model's weights (recomputed tensors included)."""
        own = {id(w) for w in self.model.weights.values()} if self.model.weights else set()
        extra = [a for a in (self.next_probs, self.next_logits, *(e.source for e in self.edits)) if a is not None]
        held = {id(v): v for v in [*self.kept.values(), *self._recent.values(), *extra]}
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
        if by == "input":  # `pos` counts the positions computed; key and cached positions count from the start
            return self.model.token_strs([(self.past_tokens + self.tokens)[i + (len(self.past_tokens) if axis == "pos" else 0)]])[0]
        return self.model.token_strs([i])[0] if by == "vocabulary" else None

    def computed(self) -> list[str]:
        """Names of the tensors the forward pass computed (not weights)."""
        return self.graph.names("input", "activation", "aggregate")

    def metadata(self) -> dict[str, str]:
        """The tokens, and the predicted next tokens when this pass computed them."""
        meta = {"model": self.model.name, "tokens": json.dumps(self.tokens), "token_strs": json.dumps(self.token_strs)}
        if self.predicted_ids:
            meta["predicted"] = json.dumps(self.predicted)
        if self.edits:
            meta["edits"] = json.dumps([e.to_json() for e in self.edits])
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
            names = self.graph.names() if include_weights else self.computed()
        return {n: _plain(self[n]) for n in names}


def _plain(a: np.ndarray) -> np.ndarray:
    dtype = np.int32 if a.dtype.kind in "iu" else np.float32
    return a if a.dtype == dtype else a.astype(dtype)  # the writer reads strided views in place
