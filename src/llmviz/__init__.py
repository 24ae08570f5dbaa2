"""llmviz: every number of a GPT's forward pass, computed in numpy and drawn in 3D."""

from .config import PRESETS, ModelConfig
from .errors import LlmvizError
from .graph import Graph
from .loading import load_model
from .model import Generation, Model, Trace

__all__ = ["PRESETS", "ModelConfig", "Graph", "Model", "Trace", "Generation", "LlmvizError", "load_model", "show"]


def show(model, text=None, **load):
    """A notebook widget of a model (or a name or path) on `text`: the same page as `llmviz serve`, fed by the
    kernel. Needs the notebook extra (anywidget). See llmviz.notebook."""
    from .notebook import show as widget

    return widget(model, text, **load)
__version__ = "0.1.0"
