"""llmviz: every number of a GPT's forward pass, computed in numpy and drawn in 3D."""

from .config import PRESETS, ModelConfig
from .errors import LlmvizError
from .graph import Graph
from .loading import load_model
from .model import Generation, Model, Trace

__all__ = ["PRESETS", "ModelConfig", "Graph", "Model", "Trace", "Generation", "LlmvizError", "load_model"]
__version__ = "0.1.0"
