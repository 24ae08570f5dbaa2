"""What every training run of a bundled model shares: the optimiser and its loop, turning the torch model into an
llmviz Model, and writing the weights with their model card. Needs the `train` extra (torch).

Each task (train.py: nano-gpt's sort; chars.py: a character-level model of a text) supplies its config, its batches
and its card; the rest is here, once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from ..core.arch.gpt2 import canonical_state, weights_from_state
from ..core.config import ModelConfig
from ..core.model import Model
from ..io.files import card_path, check_new_file, replacing
from ..io.loading import save_weights
from .torch_gpt import TorchGPT

Batch = Callable[[int], tuple[torch.Tensor, torch.Tensor]]  # step -> (inputs, targets), targets -1 where not counted


def check_outputs(out, force: bool, extra: Iterable[Path] = ()) -> list[Path]:
    """The files a run will write (the weights, their card beside them, and any `extra`), each refused now, before
    training starts, if it exists and `force` is not set."""
    paths = [Path(out), card_path(out), *extra]
    for path in paths:
        check_new_file(path, force)
    return paths


def adamw(net: TorchGPT, lr: float, weight_decay: float = 0.1) -> torch.optim.AdamW:
    """minGPT's AdamW: weight decay on the matrices only (not on the embeddings, biases or norms), betas 0.9/0.95."""
    def decays(name: str, p) -> bool:
        return p.dim() >= 2 and "wpe" not in name and "wte" not in name

    params = list(net.named_parameters())
    return torch.optim.AdamW([{"params": [p for n, p in params if decays(n, p)], "weight_decay": weight_decay},
                              {"params": [p for n, p in params if not decays(n, p)], "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95))


def fit(net: TorchGPT, batch: Batch, steps: int, lr: float, log=print, every: int = 500,
        warmup: int = 0, decay_to: float | None = None, evaluate: Callable[[], float] | None = None) -> dict:
    """Train `net` for `steps` steps of AdamW with gradient clipping at 1.0. The learning rate is `lr`, or, with
    `warmup` and `decay_to`, rises linearly over `warmup` steps and then follows a cosine down to `decay_to`.
    Logs the loss every `every` steps (and `evaluate()`, if given, there). Returns the losses and the seconds taken."""
    opt = adamw(net, lr)
    t0, losses = time.time(), []
    net.train()
    for step in range(steps):
        if decay_to is not None:
            for group in opt.param_groups:
                group["lr"] = schedule(step, steps, lr, warmup, decay_to)
        x, y = batch(step)
        _, loss = net(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % every == 0 or step == steps - 1:
            extra = ""
            if evaluate is not None:
                net.eval()
                extra = f"  validation {evaluate():.4f}"
                net.train()
            log(f"step {step:5d}  loss {loss.item():.5f}{extra}  ({time.time() - t0:.0f} s)")
    net.eval()
    return {"losses": losses, "final_loss": float(np.mean(losses[-100:])), "seconds": round(time.time() - t0, 1)}


def schedule(step: int, steps: int, lr: float, warmup: int, low: float) -> float:
    """Linear warm-up to `lr`, then a cosine down to `low` at the last step."""
    if step < warmup:
        return lr * (step + 1) / warmup
    done = (step - warmup) / max(1, steps - 1 - warmup)
    return low + 0.5 * (lr - low) * (1 + np.cos(np.pi * min(1.0, done)))


def to_model(net: TorchGPT, cfg: ModelConfig, tokenizer, source: str = "trained") -> Model:
    """The torch model's weights as an llmviz Model of the same graph."""
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    return Model(cfg, weights_from_state(canonical_state(state), cfg, layout="linear"), tokenizer, source)


def write_model(model: Model, out, card: str, force: bool, storage: str = "float32", log=print) -> None:
    """Write the weights to `out` (as `storage`: "float32" or "float16") with the card in their metadata
    ("model_card"), and the card beside them (card_path)."""
    out = Path(out)
    with replacing(out, force) as tmp_weights, replacing(card_path(out), force) as tmp_card:
        save_weights(model, tmp_weights, metadata={"model_card": card}, storage=storage)
        tmp_card.write_text(card, encoding="utf-8")
    log(f"wrote {out} ({out.stat().st_size} bytes) and {card_path(out)}")
