"""A minGPT-style GPT in PyTorch, and minGPT's training loop: the tests' independent reference for the numpy forward
pass, backward pass and trainer (training/numpy_train.py), and the torch side of benchmarks/training_speed.py. (It
trained the bundled nano-gpt and shakespeare-char before llmviz trained in numpy.)

Its parameter names are minGPT's/nanoGPT's (`transformer.h.0.attn.c_attn.weight`, nn.Linear [out, in]),
so `arch.gpt2.weights_from_state(..., layout="linear")` converts it to the graph's weights.
Pass `record={}` to `forward` to receive its intermediates under the graph's names.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

from llmviz.core.arch.gpt2 import canonical_state, weights_from_state
from llmviz.core.config import ModelConfig
from llmviz.core.model import Model
from llmviz.training.numpy_train import schedule


def new_gelu(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACTIVATIONS = {"gelu_new": new_gelu, "gelu": F.gelu, "relu": F.relu, "silu": F.silu}


def layer_norm(ln: nn.LayerNorm, x, prefix: str, rec: dict | None):
    out = ln(x)
    if rec is not None:
        mean = x.mean(-1)
        scale = torch.sqrt(x.var(-1, unbiased=False) + ln.eps)
        rec[f"{prefix}.hook_mean"], rec[f"{prefix}.hook_scale"] = mean, scale
        rec[f"{prefix}.hook_normalized"] = (x - mean[..., None]) / scale[..., None]
        rec[f"{prefix}.hook_out"] = out
    return out


class CausalSelfAttention(nn.Module):
    bias: torch.Tensor  # the causal mask, a buffer

    def __init__(self, cfg: ModelConfig, pdrop: float):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.attn_dropout = nn.Dropout(pdrop)
        self.resid_dropout = nn.Dropout(pdrop)
        self.register_buffer("bias", torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx)).view(1, 1, cfg.n_ctx, cfg.n_ctx))

    def forward(self, x, prefix: str, rec: dict | None, scale: float):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head) for t in (q, k, v))  # [B, T, H, A]
        att = (q.transpose(1, 2) @ k.transpose(1, 2).transpose(-2, -1)) / scale
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        pattern = F.softmax(att, dim=-1)
        z = self.attn_dropout(pattern) @ v.transpose(1, 2)  # [B, H, T, A]
        z = z.transpose(1, 2)  # [B, T, H, A]
        y = self.resid_dropout(self.c_proj(z.contiguous().view(B, T, C)))
        if rec is not None:
            rec.update({f"{prefix}.hook_q": q, f"{prefix}.hook_k": k, f"{prefix}.hook_v": v,
                        f"{prefix}.hook_attn_scores": att, f"{prefix}.hook_pattern": pattern,
                        f"{prefix}.hook_z": z})
        return y


class MLP(nn.Module):
    """nanoGPT's MLP's two linear maps (its state names: mlp.c_fc, mlp.c_proj)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, cfg.d_mlp, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.d_mlp, cfg.n_embd, bias=cfg.bias)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, pdrop: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg, pdrop)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.mlp = MLP(cfg)
        self.mlp_dropout = nn.Dropout(pdrop)
        self.act = ACTIVATIONS[cfg.activation]

    def forward(self, x, prefix: str, rec: dict | None, scale: float):
        attn_out = self.attn(layer_norm(self.ln_1, x, f"{prefix}.ln1", rec), f"{prefix}.attn", rec, scale)
        mid = x + attn_out
        pre = self.mlp.c_fc(layer_norm(self.ln_2, mid, f"{prefix}.ln2", rec))
        post = self.act(pre)
        mlp_out = self.mlp_dropout(self.mlp.c_proj(post))
        if rec is not None:
            rec.update({f"{prefix}.hook_resid_pre": x, f"{prefix}.hook_attn_out": attn_out,
                        f"{prefix}.hook_resid_mid": mid, f"{prefix}.mlp.hook_pre": pre,
                        f"{prefix}.mlp.hook_post": post, f"{prefix}.hook_mlp_out": mlp_out,
                        f"{prefix}.hook_resid_post": mid + mlp_out})
        return mid + mlp_out


class Trunk(nn.Module):
    """nanoGPT's `transformer`: the embeddings, the blocks and the final norm (its state names: transformer.wte, …)."""

    def __init__(self, cfg: ModelConfig, pdrop: float):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_ctx, cfg.n_embd)
        self.drop = nn.Dropout(pdrop)
        self.h = nn.ModuleList([Block(cfg, pdrop) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)


class TorchGPT(nn.Module):
    def __init__(self, cfg: ModelConfig, pdrop: float = 0.0):
        super().__init__()
        self.cfg = cfg
        self.transformer = Trunk(cfg, pdrop)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        if cfg.tied_unembed:  # nanoGPT's weight tying
            self.lm_head.weight = self.transformer.wte.weight
        for pn, p in self.named_parameters():  # minGPT's scaled init of the residual projections
            if pn.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets=None, record: dict | None = None):
        T = idx.size(1)
        tok, pos = self.transformer.wte(idx), self.transformer.wpe(torch.arange(T, device=idx.device))[None]
        x = self.transformer.drop(tok + pos)
        for i, block in enumerate(self.transformer.h):
            x = block(x, f"blocks.{i}", record, self.cfg.attn_scale(i))
        logits = self.lm_head(layer_norm(self.transformer.ln_f, x, "ln_final", record))
        if record is not None:
            record.update({"hook_embed": tok, "hook_pos_embed": pos.expand_as(tok), "logits": logits,
                           "probs": F.softmax(logits, dim=-1)})
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


# ---- minGPT's training loop ----

Batch = Callable[[int], tuple[torch.Tensor, torch.Tensor]]  # step -> (inputs, targets), targets -1 where not counted


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


def to_model(net: TorchGPT, cfg: ModelConfig, tokenizer, source: str = "trained") -> Model:
    """The torch model's weights as an llmviz Model of the same graph."""
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    return Model(cfg, weights_from_state(canonical_state(state), cfg, layout="linear"), tokenizer, source)
