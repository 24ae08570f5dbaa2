"""llmviz in a notebook: `llmviz.show(model, text)` returns a widget (anywidget) that draws the same page as
`llmviz serve`: the 3D view, hover with formulas, the walkthrough, generation and the panels.

    w = llmviz.show("nano-gpt", "CBABBC")
    w.text = "AAB"        # runs the model on a new input
    w.selected            # the pinned cell: {"tensor": ..., "index": [...]}
    w.step                # the walkthrough's chapter.step, as "5.2"
    w.export("site")      # the same view as a folder any static web host serves

The page runs in an iframe inside the widget and asks for its data with messages, which the kernel answers
by calling the server's own app in process: the same endpoints, no HTTP server and no network. Needs the
`notebook` extra (anywidget).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

try:
    import anywidget
    import traitlets
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError("llmviz.show needs anywidget: pip install 'llmviz[notebook]'") from e

from ..core.model import Model
from ..io.loading import load_model
from .export import STEPS, export
from .inprocess import call
from .routes.page import page_with, static_dir
from .server import create_app


def page(model: str, text: str | None) -> str:
    """The llmviz page with its script and styles inline (an iframe's srcdoc reads no files), told its model
    and input, and to ask for data through its host."""
    folder = static_dir()
    search = "?model=" + quote(model) + ("" if text is None else "&input=" + quote(text))
    state = f"<script>window.__llmvizEmbedded = true; window.__llmvizSearch = {json.dumps(search)};</script>"
    css = (folder / "style.css").read_text(encoding="utf-8")
    js = (folder / "app.js").read_text(encoding="utf-8").replace("</script", "<\\/script")
    html = page_with(f'{state}<script type="module">{js}</script>')
    return html.replace('<link rel="stylesheet" href="style.css">', f"<style>{css}</style>")


class Widget(anywidget.AnyWidget):
    _esm = static_dir() / "widget.js"
    _page = traitlets.Unicode().tag(sync=True)
    text = traitlets.Unicode().tag(sync=True)
    selected = traitlets.Dict().tag(sync=True)
    step = traitlets.Unicode("").tag(sync=True)

    def __init__(self, model: Model, text: str | None = None):
        text = text if text is not None else (model.config.example or None)
        super().__init__(_page=page(model.name, text), text=text or "")
        self._app = create_app([model])
        self._app.state.served.warm()  # (its requests are calls in process: no server start to warm it)
        self._model = model
        self.on_msg(self._on_message)

    def export(self, out, inputs: list[str] | None = None, steps: int = STEPS, force: bool = False) -> dict:
        """Write this view as a static site into the folder `out` (see llmviz.serve.export): on `inputs`, by default
        the widget's own input. A folder holding other files is refused unless `force` (they are then kept)."""
        return export(self._model, inputs or [self.text], out, steps, force)

    def _on_message(self, _widget, content, buffers) -> None:
        if not isinstance(content, dict) or content.get("kind") != "request":
            return
        work = self._answer(content)
        try:
            asyncio.get_running_loop().create_task(work)  # the kernel's loop: answer without blocking it
        except RuntimeError:
            asyncio.run(work)

    async def _answer(self, req: dict) -> None:
        status, kind, body = await call(self._app, req.get("method", "GET"), str(req.get("url", "/")), req.get("body"))
        self.send({"kind": "response", "id": req.get("id"), "status": status, "type": kind}, buffers=[body])


def show(model: Model | str, text: str | None = None, **load) -> Widget:
    """A notebook widget of this model (or the name or path `load_model` takes) on `text` (default: its example)."""
    return Widget(model if isinstance(model, Model) else load_model(model, **load), text)
