"""The guided walkthrough: chapters written in Markdown (src/llmviz/views/chapters/*.md), compiled for one model
and one input into steps whose text carries that forward pass's own numbers.

A chapter file:

    # Embedding
    stage: Embedding

    ## Token row plus position row
    Each token picks one row of {{tensor embed.W_E}}: the first token {{token 0}} is id {{id 0}}.

    @frame hook_embed hook_pos_embed
    @highlight embed.W_E[{{id 0}}]

`# ` starts the chapter (its title); `stage:` names its place on the walkthrough's map (chapters in a row with
one stage share its place; titles and places are each named once, for what they teach; both may hold templates,
such as {{norm_name}}); `only: KEY=VALUE` (also before the first step) makes each of the chapter's steps say
`@only KEY=VALUE`, so that a chapter about one trained model (`only: model=nano-gpt`) is left out of every other
model's walkthrough; each `## ` starts a step. In a step, a line starting with `@` is an action; every other
line is Markdown text (paragraphs, `- ` lists, **bold**, *italics*, `code`).

Templates, `{{...}}`, in text and in actions:
    n_embd n_head n_kv_head d_head n_layer d_mlp vocab_size n_ctx   the model's sizes
    d_rotary                                               the channels of each head that the rotary embedding turns
    kv_group                                               query heads per key/value head (1 without GQA)
    kv_cache_bytes                                         the KV cache's bytes per position (ModelConfig's)
    last_layer params                                      the last layer's index; the parameter count
    d_mlp gpt2  params gpt3 ...                            any of these, of another model (a preset)
    norm_name                                              LayerNorm or RMSNorm
    n_pos last                                             the input's length, its last position
    model                                                  the model's name
    input  token I  id I                                   the input; position I's token and its id
    value CELL                                             one number of the forward pass
    percent CELL                                           a probability (a softmax's or sigmoid's cell), as a percent
    argmax CELL  argmax_token CELL                         where a row is largest (its index; its token)
    argmin CELL                                            where a row is smallest (its index)
    max CELL  min CELL                                     the largest, the smallest number of these cells
    nonzero CELL                                           how many of these cells are not zero (a ReLU's units on)
    size AXIS                                              an axis's length in this pass (pixel: 64 for 8 × 8)
    prediction  prediction_percent                         the predicted next token and its probability
                                                           (every percent as the readout prints it: sampling.percent)
    lens_path last  lens_path busiest  lens_busiest        the logit lens: the top token after the embeddings and
                                                           after each layer, at the last position or at the one
                                                           where it changes most (lens_busiest: that position)
    past                                                   (in a `@view generated` step) the cached positions
    bits FMT CELL                                          one weight's bits in a float format (f32, f16, bf16):
                                                           sign, exponent, mantissa, of its value rounded to FMT
    quant_value FMT CELL  quant_diff FMT CELL              a weight's value as stored in FMT (core/quant.FORMATS) and
                                                           read back; that minus the weight as trained
    quant_code FMT CELL  quant_scale FMT CELL              its stored integer(s) (a range: each, in order) and its
                                                           block's (or channel's) scale; a step whose weight FMT
                                                           cannot block (stored as f16 instead) is left out
    quant_resid FMT LAYER                                  the input run with the weights in FMT against f32
                                                           (views/compare.py): the residual stream's relative error
                                                           at the last position after LAYER (a number, last, embed)
    quant_top FMT  quant_percent FMT  quant_changed FMT    that pass's next token, its probability, and at how many
                                                           positions its most probable next token differs
    quant_stored FMT                                       how many of the weights FMT stores are in FMT ("18 of 20":
                                                           the rest stored as f16, their input not in blocks of 32)
    tensor NAME  tensor NAME|words                         a term for a tensor (linked to its block)
    reads NAME                                             the name of the tensor NAME is computed from (its op's
                                                           first input that is not a weight), for an action: the
                                                           MLP's input is ln2's output in one model, ln1's in another
    axis NAME                                              a term for an axis, in the axis's colour
    edit_top EDITS  edit_percent EDITS                     with these edits made (EDITS: see @edit), the top token
                                                           at the last position and its probability
    sort_accuracy [LETTER] [EDITS]                         for a model trained to sort (its config's task_tokens and
                                                           answer_tokens: nano-gpt's six), the share of every input
                                                           of task_tokens tokens (all 729 of nano-gpt's) whose answer
                                                           the model writes sorted with these edits made; LETTER
                                                           (1, 2, ...): that letter of the answer only, after the
                                                           input and the answer's letters before it (sort_results)

A CELL is `name[i, j, ...]`, one index per axis in the graph's order: a number, `last` (the axis's last
index), a negative number (from the end), `:` (the whole axis) or a range `start:stop` (as Python slices:
`:6` is 0 to 5); missing trailing indices mean `:`.

Actions (each takes about a second; a step runs its actions in order after a short pause):
    @frame NAME ...          the camera frames these blocks (computed from the layout); a step without one
                             frames every tensor its actions name
    @highlight CELL ...      light these cells, dim every other block
    @light CELL ...          keep these cells in view beside the step's subject, undimmed and thinly outlined
                             (where a highlight's subject is haloed), as a KV cache beside the new key
    @reveal NAME rows|cols   the tensor's cells appear in order
    @dot CELL                a row and a column meet and become this cell, the running sum shown
    @softmax CELL            the softmax of one row: max, exp, sum, divide (CELL: a row of a softmax's output)
    @mask NAME               the causal mask appears on the attention scores
    @add NAME                a residual add: the two inputs and the sum
    @travel                  the predicted token travels from the output back to the input
    @tooltip CELL            the tooltip of this cell opens
    @code OP                 this op's code: its plain version (Op.plain: a few lines of plain numpy for one
                             example; null when it has none) and the project's own numpy forward behind it
    @guess CELL              try it: the learner guesses where this row is largest, then sees it
    @temperature CELL        a temperature slider over this row of probabilities: the distribution at each of
                             TEMPERATURES, worked out here from the row's own logits (sampling.tempered)
    @generate                the generator itself takes one step (greedy) on a KV cache: the view becomes
                             that step's (only in a `@view generated` step)
    @open lens|attention|map the Across-layers panel opens on this tab (the logit lens; every head's attention), or
                             the embedding map opens (W_E's rows, and W_pos's, on their first two principal components)
    @model NAME              the camera flies to this model of the scale view (only in a `@view scale` step),
                             and the step's table gains its row (the scale view's: sizes, and where the
                             parameters live, as the server sends them with each model's scene)
    @table NAME ...          the scale view's table of these models (only in a `@view scale` step)
    @edit LABEL :: EDITS     a one-click intervention: a button labelled LABEL that makes these edits to the view's
                             pass (core/edits.py) and shows what changes. EDITS: one edit or a JSON list of them, in
                             /api/intervene's form ({"tensor": ..., "where": {"head": 1}, "set": "zero"}); a `where`
                             index may be "last" (the axis's last index: the input's last position). Checked against
                             the graph like any action (a wrong tensor or axis fails with the file and line), it
                             compiles to the edits as Edit.to_json gives them, the position it is read at, and the
                             readout there before and after: the top token and its probability (sampling.percent).
                             Read at the last position; `@edit LABEL :: EDITS :: at POS` reads at POS (a number,
                             `last`, or negative from the end)
    @only KEY=VALUE          the step is for models of this kind only: norm=layer|rms, positions=learned|rotary,
                             rotary=all|partial|none (a rotary embedding turns every channel of a head or only the
                             first d_rotary), mlp=plain|gated, kv=full|grouped, block=sequential|parallel (attention,
                             then the MLP on the stream it added to; or both on the layer's input, added at once),
                             tokens=characters|pieces (its vocabulary), model=NAME (a step about what one trained
                             model learned: `only: model=nano-gpt` in a chapter's header),
                             weights=loaded|none|fetched (a chapter's steps adapt to the model's parts; a step that
                             speaks of the numbers on screen has a weights=none twin)
    @view generated|scale    the step is shown on another view than the input's pass: `generated`, the next
                             step of generation on a KV cache (the input plus its prediction, the input's keys
                             and values cached; the step's tensors and templates are that step's), or `scale`,
                             the scale view's models side by side

Steps whose text or actions need numbers (token, value, prediction, dot, softmax, ...) are left out for a
model without weights, and the answer says so. So every step that a model without weights keeps must read
whole on its own: it may not lean on a step before it that needs numbers ("Finally ...", "this stream").
"""

from __future__ import annotations

import difflib
import hashlib
import html
import inspect
import itertools
import json
import math
import re
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.arch import architecture
from ..core.config import PRESETS, ModelConfig
from ..core.edits import parse_edits
from ..core.errors import LlmvizError
from ..core.graph import AXES, Graph
from ..core.model import KVCache, Trace
from ..core.ops import OPS, fmt
from ..core.sampling import percent, tempered
from ..core.weights import COPIES_UP_TO
from ..io.tokenizer import CharTokenizer
from .decision import OWN_WEIGHTS
from .lens import logit_lens

CHAPTERS = Path(__file__).parent / "chapters"
NUMBER_TEMPLATES = {"input", "token", "id", "value", "percent", "argmax", "argmin", "argmax_token", "max", "min", "nonzero",
                    "prediction", "prediction_percent",
                    "lens_path", "lens_busiest", "past", "edit_top", "edit_percent", "sort_accuracy", "loss", "loss_count",
                    "scored", "target", "target_percent", "grad_target", "grad", "step_lr", "step_before", "step_after", "step_loss",
                    "bits", "quant_value", "quant_diff", "quant_code", "quant_scale", "quant_resid", "quant_top",
                    "quant_percent", "quant_changed", "quant_stored"}
FLOAT_BITS = {"f32": (np.uint32, 8, 23), "f16": (np.uint16, 5, 10), "bf16": (np.uint32, 8, 7)}  # exponent, mantissa
NUMBER_ACTIONS = {"dot", "softmax", "tooltip", "travel", "guess", "temperature", "generate", "open", "edit"}
ACTIONS = {"frame", "highlight", "light", "reveal", "dot", "softmax", "mask", "add", "travel", "tooltip", "code", "guess",
           "temperature", "generate", "open", "model", "table", "edit"}
VIEWS = {"generated", "scale", "gradients"}
STEP_LR = 1e-3  # the learning rate of the one AdamW step a chapter can take ({{step_after ...}}, {{step_loss}})
TEMPERATURES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # the slider's stops (1: the model's own probabilities)
SHOWN = 12  # a softmax or a guess shows a row of up to this many entries (a longer row: its largest)
# {{...}}; what is inside may hold JSON objects, two deep ({{sort_accuracy {"tensor": ..., "where": {"head": 0}, ...}}})
TEMPLATE = re.compile(r"\{\{\s*((?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*?)\s*\}\}")
SORT_INPUTS = 4096  # sort_accuracy enumerates every input of the task's length: at most this many
CELL = re.compile(r"^([\w.]+)(?:\[(.*)\])?$")
ARG = re.compile(r"[^\s\[]+(?:\[[^\]]*\])?")
SIZES = {  # a model's sizes, as the text prints them; each also of a preset ({{n_embd gpt2}})
    "n_embd": lambda c: str(c.n_embd), "n_head": lambda c: str(c.n_head), "n_kv_head": lambda c: str(c.kv_heads),
    "kv_group": lambda c: str(c.n_head // c.kv_heads), "d_head": lambda c: str(c.d_head),
    "n_layer": lambda c: str(c.n_layer), "last_layer": lambda c: str(c.n_layer - 1), "d_mlp": lambda c: str(c.d_mlp),
    "vocab_size": lambda c: str(c.vocab_size), "n_ctx": lambda c: str(c.n_ctx), "params": lambda c: f"{c.n_params:,}",
    "kv_cache_bytes": lambda c: f"{c.kv_cache_bytes(1):,}", "d_rotary": lambda c: str(c.d_rotary),
}


class WalkthroughError(LlmvizError):
    """A chapter that does not fit a model: the file and line, and what is wrong."""


@dataclass
class Step:
    title: str
    line: int
    text: list[tuple[int, str]] = field(default_factory=list)  # (line, Markdown)
    actions: list[tuple[int, str]] = field(default_factory=list)  # (line, "@name args")
    only: list[tuple[int, str]] = field(default_factory=list)  # (line, "key=value"): the models it is for
    view: tuple[int, str] | None = None  # (line, "generated" | "scale"): shown on another view than the pass


@dataclass
class Chapter:
    file: Path
    title: str
    stage: str
    steps: list[Step]


def parse(path: Path) -> Chapter:
    """One chapter file, read into its steps; a file that is not a chapter raises with file:line."""
    title, stage, steps = None, "", []
    only: list[tuple[int, str]] = []  # the header's `only:` lines: every step's @only
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("# "):
            title = line[2:].strip()
        elif line.startswith("## "):
            steps.append(Step(line[3:].strip(), n, only=list(only)))
        elif not steps and line.startswith("stage:"):
            stage = line.split(":", 1)[1].strip()
        elif not steps and line.startswith("only:"):
            only.append((n, line.split(":", 1)[1].strip()))
        elif line.startswith("@"):
            if not steps:
                raise WalkthroughError(f"{path.name}:{n}: an action before the first step (## title)")
            if line.startswith("@only "):
                steps[-1].only.append((n, line[6:].strip()))
            elif line.startswith("@view "):
                steps[-1].view = (n, line[6:].strip())
            else:
                steps[-1].actions.append((n, line[1:].strip()))
        elif steps:
            steps[-1].text.append((n, line))
        elif line.strip():
            raise WalkthroughError(f"{path.name}:{n}: text before the first step (## title)")
    if title is None:
        raise WalkthroughError(f"{path.name}:1: a chapter starts with its title: '# Title'")
    if not steps:
        raise WalkthroughError(f"{path.name}:1: no steps: each step starts with '## Step title'")
    return Chapter(path, title, stage or title, steps)


def chapters(folder: Path = CHAPTERS) -> list[Chapter]:
    """Every chapter of a folder, in file-name order (01-overview.md, 02-tokens.md, ...)."""
    return [parse(p) for p in sorted(folder.glob("*.md"))]


class Context:
    """What a chapter's templates and actions read: the model, its graph, and (with weights) the trace."""

    def __init__(self, model, trace=None):
        self.model, self.trace = model, trace
        self.config: ModelConfig = model.config
        self.graph: Graph = trace.graph if trace is not None else model.graph
        self.n_pos = len(trace.tokens) if trace is not None else min(8, self.config.n_ctx)  # structure: 8 positions
        self.sizes = self.graph.sizes(self.n_pos)
        self._generated: Context | None = None
        self._lens: dict | None = None
        self._edited: dict[tuple[str, str], dict] = {}  # (EDITS, POS) -> what the edits change there (edited())
        self._gradients = None
        self._stepped = None
        self._formats: dict[str, tuple] = {}  # FMT -> (the model in it, its comparison with this pass)
        self._stored: dict[tuple[str, str], object] = {}  # (FMT, weight) -> the weight as FMT stores it

    def generated(self) -> Context:
        """The context of generation's next step: the prediction appended and computed on a KV cache of the input
        (what the view shows after the generator's greedy Step, with its KV-cache view)."""
        self.needs_numbers()
        if self._generated is None:
            if self.trace.past_tokens or len(self.trace.tokens) >= self.config.n_ctx:
                raise _NotForThisModel()  # a full context has no next step
            cache = KVCache(self.model)
            self.model.step(cache, self.trace.tokens, keep=())
            self._generated = Context(self.model, self.model.step(cache, [self.trace.predicted_ids[-1]]))
        return self._generated

    def lens(self) -> dict:
        self.needs_numbers()
        if self._lens is None:
            self._lens = logit_lens(self.trace, k=1)
        return self._lens

    def needs_numbers(self) -> None:
        if self.trace is None:
            raise _NeedsNumbers()

    def needs_copies(self) -> None:
        """A step whose numbers take a float32 copy of the weights (gradients, a training step, a format): told for a
        model of up to COPIES_UP_TO parameters (core/weights.py); a larger one's walkthrough leaves it out."""
        self.needs_numbers()
        if self.config.n_params > COPIES_UP_TO:
            raise _NotForThisModel()

    def gradients(self):
        """The backward pass of this input's next-token loss (Model.gradients: the mean over positions 0 … T−2)."""
        self.needs_copies()
        if self.trace.past_tokens or len(self.trace.tokens) < 2:
            raise _NotForThisModel()  # (one token predicts nothing it can be scored on)
        if self._gradients is None:
            self._gradients = self.model.gradients(self.trace.tokens)
        return self._gradients

    def stepped(self):
        """One AdamW step (STEP_LR, the trainer's other settings) on this input's loss, from the model's weights: a
        copy of them after it, and the loss after it."""
        from ..core.model import Model
        from ..training.numpy_train import AdamW, clip, decayed

        if self._stepped is None:
            g = self.gradients()
            weights = {n: np.array(w, np.float32) for n, w in self.model.require_weights().items()}
            grads = {n: w.copy() for n, w in g.weights.items()}
            clip(grads, 1.0)
            AdamW(weights, lr=STEP_LR, decays=decayed(self.graph)).step(weights, grads)
            after = Model(self.config, weights, self.model.tokenizer, source="one step")
            self._stepped = (weights, after.gradients(self.trace.tokens).loss)
        return self._stepped

    def in_format(self, fmt: str) -> tuple:
        """The model with its weights stored in `fmt` (core/quant.py), and this input's pass with them against this one
        (views/compare.compare)."""
        from ..core.quant import quantized
        from .compare import compare

        self.needs_copies()
        if self.trace.past_tokens:
            raise _NotForThisModel()
        if fmt not in self._formats:  # (the numbers read back only: a weight's codes and scales are `stored_in`'s)
            q = quantized(self.model, fmt, keep=False)
            self._formats[fmt] = (q, compare(self.trace, q.run(self.trace.tokens, keep=q.graph.checkpoints())))
        return self._formats[fmt]

    def stored_in(self, fmt: str, name: str):
        """One weight as `fmt` stores it (core/quant.store; None: a weight no format quantizes)."""
        from ..core.quant import input_axes, store
        from ..core.weights import widen

        self.needs_copies()
        inputs = input_axes(self.graph).get(name)
        if inputs is None:
            return None
        if (fmt, name) not in self._stored:
            self._stored[fmt, name] = store(widen(self.model.require_weights()[name]), self.graph[name].axes, inputs, fmt)
        return self._stored[fmt, name]

    def cell(self, ref: str) -> tuple[str, tuple]:
        """'name[i, j]' -> (name, index with slices); checked against the graph."""
        m = CELL.match(ref.replace(" ", ""))
        if not m or m.group(1) not in self.graph:
            name = m.group(1) if m else ref
            close = difflib.get_close_matches(name, self.graph.names(), n=1)
            raise ValueError(f"unknown tensor {name!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
        name, t = m.group(1), self.graph[m.group(1)]
        shape = t.shape(self.sizes)
        parts = [p for p in (m.group(2) or "").split(",") if p != ""] if m.group(2) is not None else []
        if len(parts) > len(shape):
            raise ValueError(f"{name} has {len(shape)} axes ({', '.join(t.axes)}), not {len(parts)}")
        index: list[int | slice] = []
        for p, n, axis in zip(parts, shape, t.axes):
            if ":" in p:  # a range, as Python slices it: start:stop (stop not included), either may be left out
                ends = p.split(":")
                if len(ends) != 2 or not all(re.fullmatch(r"-?\d*", e) for e in ends):
                    raise ValueError(f"index {p!r} of {name}: give a number, last, :, or a range start:stop")
                start, stop, _ = slice(*(int(e) if e else None for e in ends)).indices(n)
                if start >= stop:
                    raise ValueError(f"range {p} of {name}'s axis {axis} is empty (it has 0 to {n - 1})")
                index.append(slice(start, stop))
                continue
            i = n - 1 if p == "last" else int(p) if re.fullmatch(r"-?\d+", p) else None
            if i is None:
                raise ValueError(f"index {p!r} of {name}: give a number, last, or :")
            i = i + n if i < 0 else i
            if not 0 <= i < n:
                raise ValueError(f"index {p} is outside {name}'s axis {axis} (0 to {n - 1})")
            index.append(i)
        return name, tuple(index) + (slice(None),) * (len(shape) - len(index))

    def region(self, ref: str, role: str = "target") -> dict:
        name, index = self.cell(ref)
        t = self.graph[name]
        ranges = {a: [i.indices(n)[0], i.indices(n)[1] - 1] if isinstance(i, slice) else [i, i]
                  for a, i, n in zip(t.axes, index, t.shape(self.sizes))}
        return {"tensor": name, "ranges": ranges, "role": role}

    def values(self, ref: str) -> tuple[str, tuple, np.ndarray]:
        name, index = self.cell(ref)  # checked even without numbers
        self.needs_numbers()
        return name, index, np.asarray(self.trace[name][index])

    def edited(self, text: str, at: str = "last") -> dict:
        """EDITS (an @edit's, or a template's) made to this input's pass: the edits as Edit.to_json gives them, the
        position POS they are read at, and the readout there without and with them (the top token and its
        probability). The edits are checked against the graph before anything needs numbers."""
        if (text, at) in self._edited:
            return self._edited[(text, at)]
        out = self.graph.output
        edits = parse_edits(self.graph, last_index(self.graph, edits_json(text), self.n_pos), self.n_pos, self.model.encode)
        pos = self.cell(f"{out}[{at}]")[1][0]
        if not isinstance(pos, int):
            raise ValueError(f"at {at}: one position (a number, last, or negative from the end)")
        self.needs_numbers()
        if self.trace.past_tokens:
            raise ValueError("edits are made to the input's own pass, not in a `@view generated` step")
        after = self.model.run(self.trace.tokens, keep=[out], edits=edits)[out][pos]
        self._edited[(text, at)] = {"edits": [e.to_json() for e in edits], "pos": pos,
                                    "before": readout(self.model, self.trace[out][pos]), "after": readout(self.model, after)}
        return self._edited[(text, at)]


def readout(model, probs: np.ndarray) -> dict:
    """What the readout shows of one position's probabilities: the top token and its probability."""
    i = int(np.argmax(probs))
    return {"token": model.token_strs([i])[0], "id": i, "prob": float(probs[i]), "percent": percent(float(probs[i]))}


def edits_json(text: str) -> list:
    """EDITS as written in a chapter: one edit or a JSON list of them, in /api/intervene's form."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"edits are JSON, one edit or a list of them ({{\"tensor\": ..., \"where\": {{...}}, "
                         f"\"set\": ...}}): {e.msg} at character {e.pos + 1} of {text!r}") from None
    return raw if isinstance(raw, list) else [raw]


def last_index(graph: Graph, raw: list, n_pos: int, model=None) -> list:
    """The edits for a pass of n_pos tokens: each `where` index "last" made the axis's last index. With the model:
    the edits of a longer pass made to what this one has (each range cut at the end of its axis, an edit left with
    no cells dropped, a patch from the first n_pos tokens of its input)."""
    out = []
    for e in raw:
        where = e.get("where") or {} if isinstance(e, dict) else None
        if not isinstance(where, dict) or e.get("tensor") not in graph:
            out.append(e)  # (parse_edits says what is wrong with it)
            continue
        t = graph[e["tensor"]]
        size = dict(zip(t.axes, t.shape(graph.sizes(n_pos))))
        cells = {}
        for a, r in where.items():
            ends = [size[a] - 1 if i == "last" and a in size else i for i in (r if isinstance(r, list) else [r])]
            if model is not None and a in size and all(isinstance(i, int) for i in ends):
                if ends[0] >= size[a]:
                    break  # nothing of it in this pass
                ends = [min(i, size[a] - 1) for i in ends]
            cells[a] = ends if isinstance(r, list) else ends[0]
        else:
            s = e.get("set")
            if model is not None and isinstance(s, dict) and len(s) == 1 and ("from_text" in s or "from_tokens" in s):
                s = {"from_tokens": model.encode(next(iter(s.values())))[:n_pos]}
            out.append({**e, "where": cells, **({"set": s} if "set" in e else {})})
    return out


_SORTED: dict[tuple[str, str], np.ndarray] = {}  # (the model's fingerprint, the edits' JSON) -> sort_results
_STREAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its clean passes' residual stream
_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> fingerprint(model)
_SORTED_LOCK = threading.Lock()


def fingerprint(model) -> str:
    """A digest of the model's config and weights: two models with the same give the same numbers."""
    if model not in _FINGERPRINTS:
        h = hashlib.blake2b(repr(model.config).encode(), digest_size=16)
        for name in sorted(model.require_weights()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(model.weights[name]).tobytes())
        _FINGERPRINTS[model] = h.hexdigest()
    return _FINGERPRINTS[model]


def sort_task(config: ModelConfig) -> tuple[int, int]:
    """(input tokens, answer tokens) of a model trained to sort its input (nano-gpt: 6, 6); else ValueError."""
    n, k = config.task_tokens, config.answer_tokens
    if not n or k != n or n + k - 1 > config.n_ctx:
        raise ValueError(f"sort_accuracy is for a model trained to sort an input of task_tokens tokens into as many "
                         f"(answer_tokens), such as nano-gpt; {config.name} is not")
    if config.vocab_size ** n > SORT_INPUTS:
        raise ValueError(f"sort_accuracy tries every input: {config.name} has {config.vocab_size ** n:,}, more than "
                         f"{SORT_INPUTS:,}")
    return n, k


def sort_results(model, raw: list) -> np.ndarray:
    """[input, letter]: whether the model, with these edits made, writes that letter of the sorted input right, after
    the input and the answer's letters before it; every input of task_tokens tokens, in itertools.product's order.
    An input's row is all true exactly when greedy decoding, with the edits made to each step's pass, writes its whole
    answer sorted. Edits that reach no further back than their own position (zero, value, scale, patch, on tensors
    without a key_pos axis, no "last") are made once to the pass of the input and the answer's first k - 1 letters,
    whose positions predict every letter at once; any other (a mean over the pass's positions, a `last`) to each
    letter's own pass, cut to what it has (last_index). Each pass starts from the clean pass's residual stream just
    before the first tensor edited (Trace recomputes from it, with the edits). Kept: the results, for any model with
    the same config and weights (fingerprint), and while the model lives, its clean passes' residual stream (nano-gpt:
    729 × 9 × 11 × 48 numbers, 14 MB). Nano-gpt's chapter takes 2–4 s the first time, on two cores."""
    n, k = sort_task(model.config)
    key = (fingerprint(model), json.dumps(raw, sort_keys=True))
    with _SORTED_LOCK:
        if key not in _SORTED:
            _SORTED[key] = _sort_results(model, raw, n, k)
        return _SORTED[key]


def _sort_results(model, raw: list, n: int, k: int) -> np.ndarray:
    graph, full, vocab = model.graph, n + k - 1, model.config.vocab_size
    inputs = [list(ids) for ids in itertools.product(range(vocab), repeat=n)]
    texts = [ids + sorted(ids)[:k - 1] for ids in inputs]
    logits = graph[graph.output].inputs[0]
    if model not in _STREAMS:  # the clean passes' residual stream, [checkpoint][input, pos, d_model]
        names = graph.checkpoints()
        kept = [model.run(t, keep=names, only=[logits]).kept for t in texts]
        _STREAMS[model] = {c: np.stack([x[c] for x in kept]) for c in names}
    stream = _STREAMS[model]
    whole = model.edits(last_index(graph, raw, full), full)
    order = graph.position()
    first = min((order[e.tensor] for e in whole), default=len(order))
    start = [c for c in stream if order[c] < first][-1:]  # the stream just before the first edit
    names_last = any("last" in (r if isinstance(r, list) else [r]) for e in raw for r in (e.get("where") or {}).values())
    at_once = not names_last and not any(e.kind == "mean" or "key_pos" in graph[e.tensor].axes for e in whole)
    passes = [(full, whole)] if at_once else [(n + j, model.edits(last_index(graph, raw, n + j, model), n + j))
                                              for j in range(k)]
    ok = np.zeros((len(inputs), k), dtype=bool)
    for i, text in enumerate(texts):
        answer = sorted(inputs[i])
        for length, edits in passes:
            known = {c: stream[c][i, :length] for c in start}
            top = Trace(model, text[:length], known, [], edits=edits)[logits].argmax(-1)
            if at_once:
                ok[i] = top[n - 1:] == answer
            else:
                ok[i, length - n] = top[-1] == answer[length - n]
    return ok


def _lens_path(tokens: list[str]) -> str:
    """One position's top token at each boundary (embeddings, after layer 0, ...), each run of one token told once:
    "**C** (embeddings), then **A** (after layers 0–1)"."""
    runs: list[list] = []
    for i, t in enumerate(tokens):
        if runs and runs[-1][0] == t:
            runs[-1][2] = i
        else:
            runs.append([t, i, i])
    if len(runs) == 1:
        return f"<strong>{html.escape(tokens[0])}</strong> at every depth, from the embeddings on"

    def where(a: int, b: int) -> str:
        if a == 0:
            return "embeddings" if b == 0 else f"embeddings to after layer {b - 1}"
        return f"after layer {a - 1}" if a == b else f"after layers {a - 1}–{b - 1}"
    return ", then ".join(f"<strong>{html.escape(t)}</strong> ({where(a, b)})" for t, a, b in runs)


class _NeedsNumbers(Exception):
    """A template or action that reads the forward pass's numbers, on a model without weights."""


class _NotForThisModel(Exception):
    """A step about a part this model does not have (its @only names another kind)."""


def kinds(model, trace=None) -> dict[str, str]:
    """What @only can ask of a model: which norm, position scheme, MLP and attention it has, whether its layers run
    attention and the MLP one after the other or side by side, whether its vocabulary is of single characters (a
    CharTokenizer, as nano-gpt's) or of pieces of text, whether its numbers are shown (weights loaded; fetched: some,
    by another engine: io/nnsight_engine.py), and which model it is (its name: for a chapter about what one trained model learned)."""
    c = model.config
    rotary = "none" if not c.rope_theta else "partial" if c.d_rotary < c.d_head else "all"
    return {"norm": c.norm, "positions": "rotary" if c.rope_theta else "learned", "rotary": rotary, "mlp": c.mlp,
            "kv": "grouped" if c.kv_heads < c.n_head else "full", "block": "parallel" if c.parallel else "sequential",
            "tokens": "characters" if isinstance(model.tokenizer, CharTokenizer) else "pieces",
            "weights": "loaded" if trace is not None else "fetched" if model.engine != "numpy" else "none",
            "model": c.name.partition(OWN_WEIGHTS)[0]}  # (a learner's neuron: as its own)


def learning_path(model) -> bool:
    """A model of the learning path (a bigram table, one attention layer: its architecture module says
    LEARNING_PATH = True) is walked through by the chapters written for it alone (`only: model=NAME`): the others speak
    of the parts of a whole transformer, which it lacks."""
    return bool(getattr(architecture(model.config.arch), "LEARNING_PATH", False))


def only_holds(have: dict[str, str], cond: str) -> bool:
    """Whether a model of these kinds (`kinds`) meets one `only` condition, KEY=VALUE|VALUE...; a condition that is
    not one raises ValueError."""
    key, _, values = cond.partition("=")
    if key.strip() not in have or not values:
        raise ValueError(f"@only {cond}: give KEY=VALUE with KEY one of {', '.join(have)}")
    return have[key.strip()] in [v.strip() for v in values.split("|")]


def applies(model, step: Step, have: dict[str, str]) -> bool:
    """Whether this model's walkthrough (a model of kinds `have`) has the step: each of its `only` conditions holds,
    and a learning-path model has only the steps written for it by name (the others speak of a whole transformer's
    parts)."""
    if learning_path(model) and not any(c.partition("=")[0].strip() == "model" for _, c in step.only):
        return False
    return all(only_holds(have, cond) for _, cond in step.only)


def _term(cls: str, data: str, words: str, color: str | None = None) -> str:
    style = f' style="--term:{color}"' if color else ""
    return f'<span class="term {cls}" {data}{style}>{html.escape(words)}</span>'


def template(ctx: Context, expr: str) -> str:
    """One {{...}}: its text (HTML for terms)."""
    word, _, arg = expr.partition(" ")
    c, arg = ctx.config, arg.strip()
    if word == "norm_name" and not arg:
        return "RMSNorm" if c.norm == "rms" else "Layer norm"
    if word in SIZES:  # this model's, or (with an argument) a preset's: {{d_mlp gpt2}}, {{params gpt3}}
        other = PRESETS.get(arg) if arg else c
        if other is None:
            raise ValueError(f"{word} of an unknown model {arg!r}: one of {', '.join(PRESETS)}")
        return SIZES[word](other)
    if word in ("n_pos", "last") and not arg:
        return str(ctx.n_pos - (word == "last"))
    if word == "model":
        return html.escape(c.name)
    if word == "tensor":
        name, _, words = arg.partition("|")
        name = name.strip()
        ctx.cell(name)
        t = ctx.graph[name]
        return _term("tensor", f'data-tensor="{html.escape(name)}" data-kind="{t.kind}"', words.strip() or t.title)
    if word == "reads":
        name = ctx.cell(arg)[0]
        read = [i for i in ctx.graph[name].inputs if ctx.graph[i].kind != "weight"]
        if not read:
            raise ValueError(f"reads {name}: it is computed from no tensor but weights")
        return read[0]
    if word == "size":
        axes = list(dict.fromkeys(a for t in ctx.graph for a in t.axes))
        if arg not in axes:
            raise ValueError(f"size {arg}: {c.name}'s axes are {', '.join(axes)}")
        return str(ctx.sizes[arg])
    if word == "axis":
        if arg not in AXES:
            raise ValueError(f"unknown axis {arg!r}: one of {', '.join(AXES)}")
        return _term("axis", f'data-axis="{arg}"', AXES[arg][0] + f" ({arg})", AXES[arg][2])
    if word not in NUMBER_TEMPLATES:
        raise ValueError(f"unknown template {{{{{expr}}}}}")
    if word == "bits" or word.startswith("quant_"):
        return precision(ctx, word, *(arg.split(" ", 1) if " " in arg else (arg, "")))
    if word in ("edit_top", "edit_percent"):
        if not arg:
            raise ValueError(f"{word} EDITS: the edits (one edit or a JSON list of them)")
        after = ctx.edited(arg)["after"]
        return html.escape(after["token"]) if word == "edit_top" else after["percent"]
    if word == "sort_accuracy":  # [LETTER] [EDITS]
        n, k = sort_task(c)
        letter, _, rest = arg.partition(" ") if re.match(r"\d+(\s|$)", arg) else ("", "", arg)
        if letter and not 1 <= int(letter) <= k:
            raise ValueError(f"sort_accuracy {letter}: the answer has letters 1 to {k}")
        raw = edits_json(rest) if rest.strip() else []
        parse_edits(ctx.graph, last_index(ctx.graph, raw, n + k - 1), n + k - 1, ctx.model.encode)  # checked first
        ctx.needs_numbers()
        ok = sort_results(ctx.model, raw)
        return percent(float(ok[:, int(letter) - 1].mean() if letter else ok.all(axis=1).mean()))
    if word in ("value", "percent"):
        name, _, v = ctx.values(arg)
        if v.ndim:
            raise ValueError(f"{word} {arg}: give one index per axis (one number)")
        if word == "percent" and ctx.graph[name].op not in ("softmax", "sigmoid"):
            raise ValueError(f"percent {arg}: give a cell of a softmax's (or a sigmoid's) output, a probability, not of "
                             f"{name}")
        return fmt(float(v)) if word == "value" else percent(float(v))
    if word in ("max", "min", "nonzero"):
        v = ctx.values(arg)[2]
        return str(int(np.count_nonzero(v))) if word == "nonzero" else fmt(float(v.max() if word == "max" else v.min()))
    if word in ("argmax", "argmin", "argmax_token"):
        name, _, v = ctx.values(arg)
        if v.ndim != 1:
            raise ValueError(f"{word} {arg}: give every index but the last (one row)")
        j = int(np.argmin(v) if word == "argmin" else np.argmax(v))
        if word != "argmax_token":
            return str(j)
        token = ctx.trace.index_name(ctx.graph[name].axes[-1], j)
        if token is None:
            raise ValueError(f"argmax_token {arg}: its last axis is not positions or the vocabulary")
        return html.escape(token)
    if word in ("grad", "step_before", "step_after"):  # one cell's gradient; a weight's value before or after a step
        name, index = ctx.cell(arg)
        t = ctx.graph[name]
        if word != "grad" and t.kind != "weight":
            raise ValueError(f"{word} {arg}: give a cell of a weight (a step changes the weights)")
        if any(isinstance(i, slice) for i in index):
            raise ValueError(f"{word} {arg}: give one index per axis (one number)")
        g = ctx.gradients()
        if word == "step_after":
            return fmt(float(ctx.stepped()[0][name][index]))
        if word == "step_before":
            return fmt(float(ctx.model.weights[name][index]))
        if t.kind == "weight":
            return fmt(float(g.weights[name][index]))
        if name not in g:
            raise ValueError(f"grad {arg}: the loss does not depend on {name}")
        return fmt(float(g[name][index]))
    if word in ("loss", "loss_count", "scored", "target", "target_percent", "grad_target", "step_lr", "step_loss"):
        # the loss of this input's next tokens; at position T − 2 (the last one scored): its target and probability
        g = ctx.gradients()
        n = len(ctx.trace.tokens)
        if word == "loss":
            return fmt(g.loss)
        if word == "loss_count":
            return str(n - 1)
        if word == "scored":
            return str(n - 2)
        if word == "step_lr":
            return f"{STEP_LR:g}"
        if word == "step_loss":
            return fmt(ctx.stepped()[1])
        target = ctx.trace.tokens[n - 1]
        if word == "target":
            return html.escape(ctx.model.token_strs([target])[0])
        if word == "grad_target":
            return fmt(float(g[ctx.graph[ctx.graph.output].inputs[0]][n - 2][target]))
        return percent(float(ctx.trace[ctx.graph.output][n - 2][target]))
    ctx.needs_numbers()
    tr = ctx.trace
    if word in ("lens_path", "lens_busiest"):
        lens = ctx.lens()
        tops = [[pos[0]["token"] for pos in layer] for layer in lens["top"]]  # [boundary][position]
        changes = [sum(a[i] != b[i] for a, b in itertools.pairwise(tops)) for i in range(ctx.n_pos)]
        busiest = max(range(ctx.n_pos), key=lambda i: (changes[i], i))
        if word == "lens_busiest":
            return str(busiest)
        if arg not in ("last", "busiest"):
            raise ValueError("lens_path last|busiest: the last position, or the one whose top token changes most")
        return _lens_path([t[ctx.n_pos - 1 if arg == "last" else busiest] for t in tops])
    if word == "past":
        return str(len(tr.past_tokens))
    if word == "input":  # (a generation step's: the cached tokens, then the new)
        return html.escape(ctx.model.decode(tr.past_tokens + tr.tokens))
    if word in ("token", "id"):
        i = int(arg) if arg not in ("last", "") else ctx.n_pos - 1
        if not -ctx.n_pos <= i < ctx.n_pos:
            raise ValueError(f"token {i}: the input has positions 0 to {ctx.n_pos - 1}")
        return html.escape(tr.token_strs[i]) if word == "token" else str(tr.tokens[i])
    token, p = tr.predicted_ids[-1], float(tr.next_probs[tr.predicted_ids[-1]])
    return html.escape(ctx.model.token_strs([token])[0]) if word == "prediction" else percent(p)


def precision(ctx: Context, word: str, fmt: str, arg: str) -> str:
    """The templates of a weight stored in fewer bits and of the pass computed with it (bits, quant_*)."""
    from ..core.quant import FORMATS, bf16, f16, input_axes, stored_as

    if fmt not in FORMATS:
        raise ValueError(f"{word} {fmt}: give a format, one of {', '.join(FORMATS)}")
    if ctx.model.precision != "f32":
        raise _NotForThisModel()  # (a model stored in fewer bits already: its weights are not the ones trained)
    if word in ("quant_top", "quant_percent", "quant_changed", "quant_resid"):
        c = ctx.in_format(fmt)[1]
        if word == "quant_resid":
            at = {"embed": None, "last": ctx.config.n_layer - 1}.get(arg, int(arg) if re.fullmatch(r"\d+", arg) else -1)
            hit = [p for p in c["layers"] if p["layer"] == at]
            if not hit:
                raise ValueError(f"quant_resid {fmt} {arg}: give a layer (0 to {ctx.config.n_layer - 1}), last or embed")
            return percent(hit[0]["last"])
        top = c["other"]["prediction"]["top"][0]
        return (html.escape(top["token"]) if word == "quant_top" else top["percent"] if word == "quant_percent"
                else str(len(c["changed_positions"])))
    if word == "quant_stored":  # (from the shapes alone: which matrices ggml's blocks can cut)
        sizes, quantize = ctx.graph.sizes(1), input_axes(ctx.graph)
        used = [stored_as(fmt, math.prod(sizes[a] for a in inputs)) for inputs in quantize.values()]
        return f"{used.count(fmt)} of {len(used)}"
    name, index = ctx.cell(arg)
    if ctx.graph[name].kind != "weight":
        raise ValueError(f"{word} {arg}: give a cell of a weight (a format stores the weights)")
    ctx.needs_numbers()
    w = np.asarray(ctx.model.require_weights()[name], np.float32)[index]
    if word == "bits":
        if fmt not in FLOAT_BITS or w.ndim:
            raise ValueError(f"bits {fmt} {arg}: give a float format ({', '.join(FLOAT_BITS)}) and one cell")
        kind, e, m = FLOAT_BITS[fmt]
        v = np.ravel({"f32": w, "f16": f16(w), "bf16": bf16(w)}[fmt]).astype(np.float16 if fmt == "f16" else np.float32)
        raw = int(v.view(kind)[0]) >> (16 if fmt == "bf16" else 0)
        b = format(raw, f"0{1 + e + m}b")
        return (f'<code class="bits" title="sign, exponent, mantissa"><span class="bits-sign">{b[0]}</span> '
                f'<span class="bits-exp">{b[1:1 + e]}</span> <span class="bits-man">{b[1 + e:]}</span></code>')
    if fmt == "f32":
        if word in ("quant_code", "quant_scale"):
            raise ValueError(f"{word} f32: f32 stores the number itself, without codes or scales")
        return f"{float(w):.8g}" if word == "quant_value" else "0"
    stored = ctx.stored_in(fmt, name)
    if stored is None:
        raise ValueError(f"{word} {fmt} {arg}: {name} is not stored in fewer bits (it stays float32)")
    if word in ("quant_code", "quant_scale"):
        if stored.fmt != fmt:
            raise _NotForThisModel()  # (a matrix ggml cannot cut into blocks: stored as f16)
        if stored.codes is None:
            raise ValueError(f"{word} {fmt}: a float format stores the number itself, without codes or scales")
        if word == "quant_scale":
            return f"{float(np.ravel(stored.scales[index])[0]):.6g}"
        return " ".join(str(int(x)) for x in np.ravel(stored.codes[index]))
    v = stored.values[index]
    if v.ndim:
        raise ValueError(f"{word} {fmt} {arg}: give one index per axis (one number)")
    d = float(v) - float(w)
    return f"{float(v):.8g}" if word == "quant_value" else f"{d:+.3g}" if d else "0"


def fill(ctx: Context, text: str) -> str:
    """Every template of a directive's arguments, as plain text."""
    return TEMPLATE.sub(lambda m: html.unescape(re.sub("<[^>]+>", "", template(ctx, m.group(1)))), text)


def markdown(ctx: Context, lines: list[str]) -> str:
    """A step's text as HTML: paragraphs, lists, **bold**, *italics*, `code`, and its templates filled in."""
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []

    def inline(s: str) -> str:
        held: list[str] = []
        def hold(m: re.Match) -> str:  # a template's HTML, kept out of the escaping below
            held.append(template(ctx, m.group(1)))
            return f"\x00{len(held) - 1}\x00"

        s = TEMPLATE.sub(hold, s)
        s = html.escape(s, quote=False)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", s)
        return re.sub("\x00(\\d+)\x00", lambda m: held[int(m.group(1))], s)

    def flush():
        if para:
            out.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in lines:
        s = line.strip()
        if not s:
            flush()
        elif s.startswith("- "):
            if para:
                flush()
            items.append(s[2:])
        elif items and line.startswith("  "):
            items[-1] += " " + s
        else:
            if items:
                flush()
            para.append(s)
    flush()
    return "\n".join(out)


def action(ctx: Context, line: str) -> dict:
    """One @action, as the view plays it."""
    word, _, rest = line.partition(" ")
    if word not in ACTIONS:
        raise ValueError(f"unknown action @{word}: one of {', '.join('@' + a for a in sorted(ACTIONS))}")
    if word == "edit":  # (its edits checked against the graph first, with numbers or without)
        label, sep, edits = rest.partition("::")
        read = re.search(r"::\s*at\s+(\S+)\s*$", edits)  # where the readout is read
        label = fill(ctx, label).strip()
        if not sep or not label or not edits.strip():
            raise ValueError("@edit LABEL :: EDITS (one edit or a JSON list of them), optionally followed by :: at POS")
        return {"type": "edit", "label": label,
                **ctx.edited(fill(ctx, edits[:read.start()] if read else edits).strip(), fill(ctx, read[1]) if read else "last")}
    if word in NUMBER_ACTIONS:
        ctx.needs_numbers()
    args = ARG.findall(fill(ctx, rest))  # split on spaces outside [...]
    if word == "frame":
        if not args:
            raise ValueError("@frame needs at least one tensor")
        return {"type": "frame", "tensors": [ctx.cell(a)[0] for a in args]}
    if word in ("highlight", "light"):
        return {"type": "highlight", "regions": [ctx.region(a, "target" if word == "highlight" else "kept") for a in args]}
    if word == "reveal":
        if len(args) != 2 or args[1] not in ("rows", "cols"):
            raise ValueError("@reveal NAME rows|cols")
        return {"type": "reveal", "tensor": ctx.cell(args[0])[0], "along": args[1]}
    if word == "mask":
        name = ctx.cell(args[0])[0] if len(args) == 1 else ""
        if ctx.graph[name].op != "attn_scores" if name else True:
            raise ValueError("@mask takes one tensor: attention scores")
        return {"type": "mask", "tensor": name}
    if word == "add":
        name = ctx.cell(args[0])[0] if len(args) == 1 else ""
        if not name or ctx.graph[name].op != "add":
            raise ValueError("@add takes one tensor made by an add (a residual stream)")
        return {"type": "add", "tensor": name, "inputs": list(ctx.graph[name].inputs)}
    if word == "code":
        op = args[0] if len(args) == 1 else ""
        if op not in OPS:
            raise ValueError(f"@code takes one op: one of {', '.join(OPS)}")
        fn = inspect.unwrap(OPS[op].forward)  # a rowwise op's own function, not its wrapper's (ops/rows.py)
        return {"type": "code", "op": op, "plain": OPS[op].plain, "source": inspect.getsource(fn),
                "file": str(inspect.getsourcefile(fn)).split("llmviz/", 1)[-1]}
    if word == "generate":
        if not ctx.trace.past_tokens:
            raise ValueError("@generate is for a `@view generated` step (the view it makes)")
        return {"type": "generate", "token": ctx.trace.token_strs[-1]}
    if word == "open":
        if len(args) != 1 or args[0] not in ("lens", "attention", "map"):
            raise ValueError("@open lens|attention|map: the Across-layers panel's tab to open, or the embedding map")
        return {"type": "open", "tab": args[0]}
    if word in ("model", "table"):
        unknown = [a for a in args if a not in PRESETS]
        if not args or unknown or (word == "model" and len(args) != 1):
            raise ValueError(f"@{word} takes {'one model' if word == 'model' else 'models'} of the scale view: "
                             f"one of {', '.join(PRESETS)}" + (f" (not {unknown[0]})" if unknown else ""))
        return {"type": "model", "name": args[0]} if word == "model" else {"type": "table", "models": args}
    if word == "travel":  # from the last position's probabilities to the end of the input
        out, into = ctx.graph.names()[-1], ctx.graph.names("input")[0]
        return {"type": "travel", "token": ctx.model.token_strs([ctx.trace.predicted_ids[-1]])[0],
                "from": ctx.region(f"{out}[last]"), "to": ctx.region(f"{into}[last]")}
    if len(args) != 1:
        raise ValueError(f"@{word} takes one cell")
    name, index, v = ctx.values(args[0])
    t = ctx.graph[name]
    if word in ("dot", "tooltip"):
        if v.ndim:
            raise ValueError(f"@{word} {args[0]}: give one index per axis (one cell)")
        # the page explains the cell (frontend/src/explain.ts), as on hover
        return {"type": word, "cell": ctx.region(args[0]), "index": [int(i) for i in index]}
    if v.ndim != 1:
        raise ValueError(f"@{word} {args[0]}: give every index but the last (one row)")
    row = ctx.region(args[0])
    axis = t.axes[-1]
    shown = np.arange(len(v)) if len(v) <= SHOWN else np.sort(np.argsort(-v)[:SHOWN])
    if word == "guess":  # (a softmax's row: the scores it reads would tell the answer too, so they are hidden with it)
        hides = [{**row, "tensor": t.inputs[0]}] if t.op == "softmax" else []
        return {"type": "guess", "row": row, "hides": hides, "answer": int(np.argmax(v)), "axis": axis,
                "choices": [{"i": int(j), "name": ctx.trace.index_name(axis, int(j)) or str(j)} for j in shown]}
    if t.op != "softmax":
        raise ValueError(f"@{word} takes a row of a softmax's output (such as hook_pattern), not {name}")
    x = np.asarray(ctx.trace[t.inputs[0]][index], dtype=np.float64)
    if word == "temperature":  # each stop's distribution over the whole row; the shown entries, and the rest's share
        at = [tempered(x, T) for T in TEMPERATURES]
        left = [float(1 - p[shown].sum()) for p in at]  # the other entries' share at each temperature
        return {"type": "temperature", "row": row, "of": t.inputs[0], "n": len(v), "temperatures": list(TEMPERATURES),
                "start": TEMPERATURES.index(1.0),
                "entries": [{"i": int(j), "name": ctx.trace.index_name(axis, int(j)) or str(j), "x": float(x[j]),
                             "p": [float(p[j]) for p in at], "percent": [percent(float(p[j])) for p in at]}
                            for j in shown],
                "rest": None if len(v) == len(shown) else {"p": left, "percent": [percent(r) for r in left]}}
    m = float(np.max(x))
    entries = [{"i": int(j), "name": ctx.trace.index_name(axis, int(j)) or str(j), "x": float(x[j]),
                "exp": float(np.exp(x[j] - m)), "p": float(v[j])} for j in shown]
    return {"type": "softmax", "row": row, "of": t.inputs[0], "n": len(v), "max": m,
            "sum": float(np.sum(np.exp(x - m))), "entries": entries}


class _LineError(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


def compile_step(ctx: Context, step: Step) -> dict:
    """One step, compiled: its title, its text as HTML, its actions and the tensors they name. A problem
    raises _LineError with the line it is on; a step that needs numbers a model lacks raises _NeedsNumbers."""
    def at(line, fn, *args):
        try:
            return fn(*args)
        except (ValueError, LlmvizError) as e:
            raise _LineError(line, str(e)) from None

    have = kinds(ctx.model, ctx.trace)
    for n, cond in step.only:
        at(n, only_holds, have, cond)  # (a condition that is not one: its line)
    if not applies(ctx.model, step, have):
        raise _NotForThisModel()
    view: str | dict | None
    view = declared = step.view[1] if step.view else None
    if step.view and view not in VIEWS:
        raise _LineError(step.view[0], f"@view {view}: one of {', '.join(sorted(VIEWS))}")
    if view == "generated":  # (a model without weights has no next step: its steps show the pass's structure)
        ctx, view = (ctx.generated(), view) if ctx.trace is not None else (ctx, None)
    if view == "gradients" and ctx.trace is None:  # (without weights: the structure, and no gradients)
        view = None
    elif view == "gradients":
        ctx.gradients()  # (an input of one token has no loss: not a step for it)
    generates = [n for n, a in step.actions if a.split(" ", 1)[0] == "generate"]
    if [a for _, a in step.actions if a.split(" ", 1)[0] in ("model", "table")] and declared != "scale":
        raise _LineError(step.line, "@model flies in the scale view: give the step `@view scale`")
    if declared == "scale" and any(a.split(" ", 1)[0] not in ("model", "table") for _, a in step.actions):
        raise _LineError(step.line, "a `@view scale` step's actions are @model and @table (the scale view has no "
                                    "forward pass)")
    if generates and declared != "generated":
        raise _LineError(generates[0], "@generate makes the view of a `@view generated` step: give the step that line")
    title = at(step.line, fill, ctx, step.title)
    for n, text in step.text:  # each template on its own line first, so that a problem names its line
        for m in TEMPLATE.finditer(text):
            at(n, template, ctx, m.group(1))
    body = markdown(ctx, [t for _, t in step.text])
    acts = [at(n, action, ctx, a) for n, a in step.actions]
    shown = ({r["tensor"] for a in acts for r in a.get("regions", [])} | {x for a in acts for x in a.get("tensors", [])}
             | {a[k]["tensor"] for a in acts for k in ("cell", "row", "from", "to") if k in a} | {a["of"] for a in acts if "of" in a}
             | {i for a in acts if a["type"] in ("dot", "tooltip") for i in ctx.graph[a["cell"]["tensor"]].inputs}
             | {a["tensor"] for a in acts if "tensor" in a} | {x for a in acts for x in a.get("inputs", [])}
             | {e["tensor"] for a in acts if a["type"] == "edit" for e in a["edits"]})
    if shown and not any(a["type"] == "frame" for a in acts):  # the camera shows what the step is about
        acts.insert(0, {"type": "frame", "tensors": sorted(shown)})
    tensors = shown | set(re.findall(r'data-tensor="([^"]+)"', body))
    if view == "generated":  # what the view is: the generator's step on the input's KV cache
        tr = ctx.trace
        view = {"kind": "generated", "input": ctx.model.decode(tr.past_tokens), "past": len(tr.past_tokens),
                "text": ctx.model.decode(tr.past_tokens + tr.tokens)}
    return {"title": title, "html": body, "actions": acts, "tensors": sorted(tensors),
            "view": {"kind": view} if view in ("scale", "gradients") else view}


def compile_chapters(model, trace=None, folder: Path = CHAPTERS) -> dict:
    """The walkthrough for this model and trace (None: a model without weights, its steps that need no
    numbers). Raises WalkthroughError naming the file and line of the first problem."""
    ctx = Context(model, trace)
    out, dropped = [], 0
    for number, ch in enumerate(chapters(folder), 1):
        steps = []
        for s in ch.steps:
            try:
                steps.append(compile_step(ctx, s))
            except _NeedsNumbers:
                dropped += 1
            except _NotForThisModel:
                pass
            except _LineError as e:
                raise WalkthroughError(f"{ch.file.name}:{e.line}: {e}") from None
        if steps:
            out.append({"number": number, "title": fill(ctx, ch.title), "stage": fill(ctx, ch.stage), "file": ch.file.name,
                        "steps": steps})
    note = ("" if trace is not None else
            f"{model.name} is structure only: the {dropped} steps that need its numbers are left out")
    return {"model": model.name, "tokens": list(trace.tokens) if trace is not None else None,
            "input": model.decode(trace.tokens) if trace is not None else None, "note": note, "chapters": out}


def check(models, folder: Path = CHAPTERS) -> list[str]:
    """Every problem of every chapter against each model (with weights: on its example input), as
    'file:line: message (model)' lines; empty when all is well."""
    try:
        parsed = chapters(folder)
    except WalkthroughError as e:
        return [str(e)]
    problems: dict[str, list[str]] = {}  # "file:line: message" -> the models it fails for
    for model in models:
        trace = model.run(model.config.example) if model.has_weights and model.config.example else None
        ctx = Context(model, trace)
        for ch in parsed:
            for s in ch.steps:
                try:
                    compile_step(ctx, s)
                except (_NeedsNumbers, _NotForThisModel):
                    pass
                except _LineError as e:
                    problems.setdefault(f"{ch.file}:{e.line}: {e}", []).append(model.name)
    return [f"{p} ({', '.join(names)})" for p, names in problems.items()]
