"""The architectures llmviz runs, one module each (see base.Architecture): its graph (`build`), its parameter count
(`param_parts`), how it reads a Hugging Face config.json (`config_from_hf`), and how a checkpoint's weight names
map to the graph's (`canonical`, `weights_from_state`).
"""

from __future__ import annotations

from ..config import PARAM_PARTS
from ..errors import BadModelFile
from . import attn_only, bigram, gpt2, llama, mlp, neox, neuron, phi
from .base import Architecture

MODULES: tuple[Architecture, ...] = (gpt2, llama, neox, phi, bigram, attn_only, mlp, neuron)  # each satisfies the Protocol (a type checker checks it)
ARCHITECTURES: dict[str, Architecture] = {m.NAME: m for m in MODULES}  # by name: a config's `arch`
BY_MODEL_TYPE: dict[str, Architecture] = {t: m for m in MODULES for t in m.MODEL_TYPES}  # by Hugging Face model_type
PARAM_PARTS.update({m.NAME: m.param_parts for m in MODULES})  # ModelConfig.param_parts counts by its architecture's


def supported() -> str:
    return "; ".join(m.NAMES for m in MODULES)


def architecture(name: str) -> Architecture:
    """The module of a config's `arch`."""
    if name not in ARCHITECTURES:
        raise BadModelFile(f"unknown architecture {name!r}: llmviz has {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def for_model_type(model_type: str, source=None) -> Architecture:
    """The module that reads a Hugging Face model_type; anything else is refused with the supported list."""
    if model_type not in BY_MODEL_TYPE:
        raise BadModelFile(f"{source}: unsupported architecture {model_type!r}: llmviz supports {supported()}")
    return BY_MODEL_TYPE[model_type]
