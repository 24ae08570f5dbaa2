"""llmviz: every number of a GPT's forward pass, computed in numpy and drawn in 3D."""

from .core.config import PRESETS, ModelConfig
from .core.errors import LlmvizError
from .core.graph import Graph
from .core.model import Generation, Model, Trace
from .io.loading import load_model

__all__ = ["PRESETS", "Generation", "Graph", "LlmvizError", "Model", "ModelConfig", "Trace", "load_model", "show"]


def show(model, text=None, **load):
    """A notebook widget of a model (or a name or path) on `text`: the same page as `llmviz serve`, fed by the
    kernel. Needs the notebook extra (anywidget). See llmviz.serve.notebook."""
    from .serve.notebook import show as widget

    return widget(model, text, **load)
__version__ = "0.1.0"
