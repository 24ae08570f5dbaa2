"""The architectures llmviz runs, one module each: its graph (`build`), how it reads a Hugging Face
config.json (`config_from_hf`), and how a checkpoint's weight names map to the graph's (`canonical`,
`weights_from_state`).
"""

from __future__ import annotations

from types import ModuleType

from ..errors import BadModelFile
from . import gpt2, llama

MODULES = (gpt2, llama)
# Each Hugging Face model_type, and each module's own name (a config's `arch`), to its module.
ARCHITECTURES: dict[str, ModuleType] = {t: m for m in MODULES for t in (m.MODEL_TYPE, *getattr(m, "MODEL_TYPES", ()))}


def supported() -> str:
    return "; ".join(m.NAMES for m in MODULES)


def architecture(model_type: str, source=None) -> ModuleType:
    """The module of a model_type; anything else is refused with the supported list."""
    if model_type not in ARCHITECTURES:
        raise BadModelFile(f"{source}: unsupported architecture {model_type!r}: llmviz supports {supported()}")
    return ARCHITECTURES[model_type]
