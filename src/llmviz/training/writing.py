"""Writing a trained model: its weights with their model card, beside them and in their metadata; the files a run
will write are checked before it starts, so that a long run never ends by refusing to write.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..core.model import Model
from ..io.files import card_path, check_new_file, replacing
from ..io.loading import save_weights


def check_outputs(out, force: bool, extra: Iterable[Path] = ()) -> list[Path]:
    """The files a run will write (the weights, their card beside them, and any `extra`), each refused now, before
    training starts, if it exists and `force` is not set."""
    paths = [Path(out), card_path(out), *extra]
    for path in paths:
        check_new_file(path, force)
    return paths


def write_model(model: Model, out, card: str, force: bool, storage: str = "float32", log=print) -> None:
    """Write the weights to `out` (as `storage`: "float32" or "float16") with the card in their metadata
    ("model_card"), and the card beside them (card_path)."""
    out = Path(out)
    with replacing(out, force) as tmp_weights, replacing(card_path(out), force) as tmp_card:
        save_weights(model, tmp_weights, metadata={"model_card": card}, storage=storage)
        tmp_card.write_text(card, encoding="utf-8")
    log(f"wrote {out} ({out.stat().st_size} bytes) and {card_path(out)}")
