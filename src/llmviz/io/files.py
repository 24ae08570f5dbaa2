"""Writing files without destroying the user's.

The rule every command follows: llmviz never deletes or overwrites a file it did not write unless the user passes
--force, and it says so (one line naming the file) before any long work starts. A file is written under a
temporary name in its own folder and renamed into place, so a failure midway never leaves half a file where an
earlier one was.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import LlmvizError

REPLACE = "pass --force to replace it"


class InTheWay(LlmvizError):
    """A file the user did not ask llmviz to replace is where llmviz would write."""


def refuse_to_replace(path, force: bool, why: str = "exists", instead: str = REPLACE) -> Path:
    """`path`, unless something is there and `force` is not set: then InTheWay, "{path} {why}: {instead}"."""
    path = Path(path)
    if not force and os.path.lexists(path):
        raise InTheWay(f"{path} {why}: {instead}")
    return path


def card_path(weights) -> Path:
    """Where the model card of a weights file goes: beside it, named after it (nano-gpt.safetensors.md), so that it
    can never be a file of another name such as README.md."""
    weights = Path(weights)
    return weights.with_name(weights.name + ".md")


def check_new_file(path, force: bool) -> Path:
    """A file about to be written: its folder exists, no folder is in its place, and it replaces no file unless
    `force` (refuse_to_replace)."""
    path = Path(path)
    if path.is_dir():
        raise InTheWay(f"{path} is a folder: give a file name")
    if not path.parent.is_dir():
        raise LlmvizError(f"cannot write {path}: the folder {path.parent} does not exist")
    return refuse_to_replace(path, force)


@contextmanager
def replacing(path, force: bool = True) -> Iterator[Path]:
    """A temporary file beside `path` to write; renamed to `path` when the block ends without an error, removed
    otherwise. Without `force`, a file that appeared at `path` meanwhile is refused, not replaced. The file gets
    the permissions a new file gets (umask), so that a web server can read what an export writes."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        refuse_to_replace(path, force)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path, data: bytes, force: bool = True) -> None:
    """`data` written to `path` through a temporary file (see replacing)."""
    with replacing(path, force) as tmp:
        tmp.write_bytes(data)
