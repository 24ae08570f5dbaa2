"""Tokenizers turn text into token ids and back, and name each token readably."""

from __future__ import annotations

from typing import Sequence

from .errors import LlmvizError


class CharTokenizer:
    """One character per token, e.g. nano-gpt's A, B, C -> 0, 1, 2."""

    def __init__(self, chars: Sequence[str]):
        self.chars = list(chars)
        self.ids = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def allowed(self) -> str:
        return ", ".join(self.chars)

    def encode(self, text: str) -> list[int]:
        for i, c in enumerate(text):
            if c not in self.ids:
                raise LlmvizError(f"unknown token {c!r} at position {i}: this model accepts only {self.allowed()}")
        return [self.ids[c] for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.token_strs(ids))

    def token_strs(self, ids: Sequence[int]) -> list[str]:
        return [self.chars[i] for i in ids]

    def to_dict(self) -> dict:
        return {"type": "chars", "chars": self.chars}
