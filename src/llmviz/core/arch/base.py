"""What an architecture module is: everything llmviz knows of one architecture, in one module, behind this Protocol.
core/arch/__init__.py lists the modules; tests/test_architectures.py checks that each has every member, with its signature."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from ..config import ModelConfig
from ..errors import BadModelFile


@runtime_checkable
class Architecture(Protocol):
    """One architecture (a module such as gpt2.py satisfies it):

    - its name (a config's `arch`), the Hugging Face `model_type`s it reads, and how the supported list names it;
    - its graph: `build` declares every tensor of a forward pass, through Scopes (llmviz.core.scope), in order;
    - its parameter count by part, which must equal the graph's weights (ModelConfig.param_parts);
    - its Hugging Face config.json: every setting it computes read, any other that changes the numbers refused by
      name, and the ModelConfig it makes;
    - its checkpoints' weight names: `canonical` strips a file's prefixes, and `weights_from_state` turns a state
      dict with canonical names into the graph's weights, each checked (see llmviz.io.convert).
    """

    @property
    def NAME(self) -> str:
        """Its name: a config's `arch` (`gpt2`)."""

    @property
    def MODEL_TYPES(self) -> tuple[str, ...]:
        """The Hugging Face `model_type`s whose config.json and weights it reads (`gpt2`; `llama`, `mistral`, ...)."""

    @property
    def NAMES(self) -> str:
        """What the list of supported architectures says of it."""

    def build(self, g) -> None:
        """Declare the graph `g`'s tensors (g.config is its ModelConfig; g.past its cached positions)."""

    def param_parts(self, cfg: ModelConfig) -> dict[str, int]:
        """The learned parameters: embedding, attention, mlp and other (the norms), adding up to the count."""

    def config_from_hf(self, cfg: dict, name: str, source, shown: str = "") -> ModelConfig:
        """A config.json's settings as a ModelConfig; a setting llmviz does not compute raises BadModelFile."""

    def canonical(self, name: str) -> str:
        """A checkpoint's tensor name without its prefixes, as weights_from_state reads it."""

    def weights_from_state(self, state: Mapping[str, np.ndarray], config: ModelConfig, source: str = "",
                           dtype: str = "float32") -> dict[str, np.ndarray]:
        """The graph's weights (its names, its axes, in the storage dtype) from a state dict with canonical names."""


def own_model(what: str) -> tuple:
    """The Hugging Face members of an architecture that is llmviz's own (the learning path's: no config.json or
    checkpoint of another library describes it): `config_from_hf` and `weights_from_state` refuse, naming `what` the
    model is ("a bigram table"), and `canonical` keeps a name as it is. Its weights load from llmviz's own files."""
    def config_from_hf(cfg: dict, name: str, source, shown: str = "") -> ModelConfig:
        raise BadModelFile(f"{source}: {what} is llmviz's own model, not read from a Hugging Face config.json")

    def canonical(name: str) -> str:
        return name

    def weights_from_state(state: Mapping[str, np.ndarray], config: ModelConfig, source: str = "",
                           dtype: str = "float32") -> dict[str, np.ndarray]:
        raise BadModelFile(f"{source}: {what} is llmviz's own model: load its llmviz .safetensors file")

    return config_from_hf, canonical, weights_from_state
