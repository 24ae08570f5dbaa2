"""Tokenizers turn text into token ids and back, and name each token readably."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..core.errors import LlmvizError

VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}  # how whitespace tokens are shown
BYTE_FALLBACK = re.compile(r"<0x[0-9A-Fa-f]{2}>")


class CharTokenizer:
    """One character per token, e.g. nano-gpt's A, B, C -> 0, 1, 2."""

    def __init__(self, chars: Sequence[str]):
        if not isinstance(chars, (str, list, tuple)) or not all(isinstance(c, str) and c for c in chars):
            raise LlmvizError("a character vocabulary is a string or a list of non-empty strings")
        self.chars = list(chars)
        self.ids = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def allowed(self) -> str:
        shown = ", ".join(VISIBLE.get(c, c) for c in self.chars[:24])
        return shown if len(self.chars) <= 24 else f"its {len(self.chars)} characters ({shown}, …)"

    def encode(self, text: str) -> list[int]:
        for i, c in enumerate(text):
            if c not in self.ids:
                raise LlmvizError(f"unknown token {c!r} at position {i}: this model accepts only {self.allowed()}")
        return [self.ids[c] for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def token_strs(self, ids: Sequence[int]) -> list[str]:
        return [VISIBLE.get(self.chars[i], self.chars[i]) for i in ids]

    def to_dict(self) -> dict:
        return {"type": "chars", "chars": self.chars}


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE writes each byte as a printable character (space is 'Ġ', newline 'Ċ'); this undoes it."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, n = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def readable(raw: bytes) -> str:
    """Bytes of one token as text a person can read: spaces and newlines made visible, and bytes that are
    not whole UTF-8 characters shown as \\xNN."""
    text = raw.decode("utf-8", errors="backslashreplace")
    return "".join(VISIBLE.get(c, c) for c in text)


class HFTokenizer:
    """A Hugging Face `tokenizer.json` (GPT-2's byte-level BPE or any other), read by the `tokenizers` library."""

    def __init__(self, path):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise LlmvizError("reading tokenizer.json needs the tokenizers package: pip install tokenizers") from None
        try:
            self.tok = Tokenizer.from_file(str(path))
        except Exception as e:  # the library raises plain Exception for a bad file
            raise LlmvizError(f"{path}: not a readable tokenizer.json ({e})") from None
        import json

        decoder = json.loads(self.tok.to_str()).get("decoder") or {}
        self.byte_level = decoder.get("type") == "ByteLevel"
        self.bytes_of = _byte_decoder()
        self.path = str(path)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids))

    def token_strs(self, ids: Sequence[int]) -> list[str]:
        out = []
        for i in ids:
            s = self.tok.id_to_token(int(i))
            if s is None:
                out.append(f"<{i}>")
            elif self.byte_level and all(c in self.bytes_of for c in s):
                out.append(readable(bytes(self.bytes_of[c] for c in s)))
            elif BYTE_FALLBACK.fullmatch(s):  # SentencePiece's byte fallback: <0x0A> is the byte 0x0A
                out.append(f"\\x{s[3:5]}")
            else:  # SentencePiece marks a word's leading space with ▁
                out.append("".join(VISIBLE.get(c, c) for c in s.replace("\u2581", " ")))
        return out

    def to_dict(self) -> dict:
        return {"type": "bpe" if self.byte_level else "hf", "vocab_size": self.vocab_size}
