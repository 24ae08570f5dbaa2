"""Train nano-gpt on minGPT's sort task and write its weights and model card (in the weights' metadata, and beside
them as `<weights file>.md`). Neither replaces a file unless asked to (`force`), checked before training starts.

The task: six tokens from {A, B, C}; the model reads them and must write them sorted.
A training example is the 12-token sequence input + sorted output, fed as 11 tokens
(block size 11); the loss counts only the positions that predict the output.
Needs the `train` extra (torch).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from ..core.config import PRESETS
from ..core.model import Model
from ..io.tokenizer import CharTokenizer
from .fit import check_outputs, fit, to_model, write_model
from .torch_gpt import TorchGPT

LENGTH, CHARS = 6, "ABC"


def sort_batch(batch_size: int, gen: torch.Generator):
    inp = torch.randint(len(CHARS), (batch_size, LENGTH), generator=gen)
    seq = torch.cat([inp, inp.sort(dim=1).values], dim=1)
    x, y = seq[:, :-1].clone(), seq[:, 1:].clone()
    y[:, : LENGTH - 1] = -1  # no loss where the model is still reading the input
    return x, y


def sort_accuracy(model: Model) -> float:
    """Fraction of all 3^6 inputs that greedy decoding sorts exactly."""
    inputs = ["".join(p) for p in itertools.product(CHARS, repeat=LENGTH)]
    return sum(model.generate(s, LENGTH).text == "".join(sorted(s)) for s in inputs) / len(inputs)


def train_nano_gpt(out: str | Path, steps: int = 3000, seed: int = 3407, log=print, force: bool = False) -> dict:
    """Train nano-gpt and write its weights to `out` and its model card to `out`.md (card_path), with the card in
    the weights' metadata too ("model_card"). An existing file at either is refused before training, unless
    `force`."""
    check_outputs(out, force)
    cfg = PRESETS["nano-gpt"]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = TorchGPT(cfg, pdrop=0.1)
    run = fit(net, lambda _: sort_batch(64, gen), steps, lr=5e-4, log=log)
    model = to_model(net, cfg, CharTokenizer(CHARS))
    acc = sort_accuracy(model)
    stats = {"steps": steps, "seed": seed, "final_loss": run["final_loss"], "accuracy": acc,
             "seconds": run["seconds"], "torch": torch.__version__}
    log(f"greedy sort accuracy on all {len(CHARS) ** LENGTH} inputs: {acc:.2%}")
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
  weight decay 0.1 on matrices), gradient clipping 1.0, dropout 0.1, seed {s['seed']}, torch {s['torch']},
  CPU, {s['seconds']} s.
- **Result**: mean loss over the last 100 steps {s['final_loss']:.5f}; greedy decoding sorts
  {s['accuracy']:.2%} of all 729 possible inputs (checked with llmviz's numpy forward pass).
"""
