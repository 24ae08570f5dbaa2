"""llmviz: every number of a GPT's forward pass, computed in numpy and drawn in 3D."""

from .core.config import PRESETS, ModelConfig
from .core.errors import LlmvizError
from .core.graph import Graph
from .core.model import Generation, Model, Trace
from .io.loading import load_model

__all__ = ["PRESETS", "Generation", "Graph", "LlmvizError", "Model", "ModelConfig", "Trace", "load_model", "show"]


def show(model, text=None, **load):
    """A notebook widget of a model (or a name or path, or a Trace: its model on its input) on `text`: the same page
    as `llmviz serve`, fed by the kernel. Needs the notebook extra (anywidget). See llmviz.serve.notebook."""
    from .serve.notebook import show as widget

    if isinstance(model, Trace):
        model, text = model.model, model.model.decode(model.past_tokens + model.tokens) if text is None else text
    return widget(model, text, **load)


def _show_trace(trace: Trace):
    """This trace's input in a notebook widget: `llmviz.show(trace)`.

    Trace lives in the core (llmviz.core.model), which computes the model and imports nothing from the layers built
    on it; the widget is the serve layer's (llmviz.serve.notebook). So the package, which offers llmviz.show and
    may reach every layer, gives Trace this method: every Trace has it, since the core is only ever imported through
    this package, and the widget is only imported when it is called."""
    return show(trace)


Trace.show = _show_trace
