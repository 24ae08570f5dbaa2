"""Train nano-gpt on minGPT's sort task and write its weights and model card (in the weights' metadata, and beside
them as `<weights file>.md`). Neither replaces a file unless asked to (`force`), checked before training starts.

The task: six tokens from {A, B, C}; the model reads them and must write them sorted.
A training example is the 12-token sequence input + sorted output, fed as 11 tokens
(block size 11); the loss counts only the positions that predict the output.
Needs the `train` extra (torch).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import torch

from ..core.arch.gpt2 import canonical_state, weights_from_state
from ..core.config import PRESETS
from ..core.model import Model
from ..io.files import card_path, check_new_file, replacing
from ..io.loading import save_weights
from ..io.tokenizer import CharTokenizer
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
    out, card = Path(out), card_path(out)
    for path in (out, card):
        check_new_file(path, force)
    cfg = PRESETS["nano-gpt"]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = TorchGPT(cfg, pdrop=0.1)
    decay = [p for n, p in net.named_parameters() if p.dim() >= 2 and "wpe" not in n and "wte" not in n]
    no_decay = [p for n, p in net.named_parameters() if not (p.dim() >= 2 and "wpe" not in n and "wte" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=5e-4, betas=(0.9, 0.95))
    t0, losses = time.time(), []
    net.train()
    for step in range(steps):
        x, y = sort_batch(64, gen)
        _, loss = net(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 500 == 0 or step == steps - 1:
            log(f"step {step:5d}  loss {loss.item():.5f}")
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    model = Model(cfg, weights_from_state(canonical_state(state), cfg, layout="linear"), CharTokenizer(CHARS), "trained")
    acc = sort_accuracy(model)
    stats = {"steps": steps, "seed": seed, "final_loss": float(np.mean(losses[-100:])), "accuracy": acc,
             "seconds": round(time.time() - t0, 1), "torch": torch.__version__}
    log(f"greedy sort accuracy on all {len(CHARS) ** LENGTH} inputs: {acc:.2%}")
    text = model_card(stats)
    with replacing(out, force) as tmp_weights, replacing(card, force) as tmp_card:
        save_weights(model, tmp_weights, metadata={"model_card": text})
        tmp_card.write_text(text, encoding="utf-8")
    log(f"wrote {out} ({out.stat().st_size} bytes) and {card}")
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
