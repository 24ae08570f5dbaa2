"""The page: the built front-end, served as static files at /."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles


def static_dir() -> Path:
    return Path(str(resources.files("llmviz") / "static"))


def page_with(scripts: str) -> str:
    """The served page for another host (a notebook widget, a static export): without its early requests to the
    server, and with `scripts` where it loads app.js."""
    html = (static_dir() / "index.html").read_text(encoding="utf-8")
    html = re.sub(r'<script id="early">.*?</script>', "", html, flags=re.S)
    return html.replace('<script type="module" src="app.js"></script>', scripts)


def mount_page(app: FastAPI) -> None:
    """The front-end at / (after every API route), or a page that says how to build it."""
    static = static_dir()
    if (static / "index.html").is_file():
        app.mount("/", StaticFiles(directory=static, html=True), name="static")
        return

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def not_built():
        return ("<h1>llmviz</h1><p>The front-end is not built. From the repository run "
                "<code>make build</code>, then reload. The API is described at "
                "<a href='/openapi.json'>/openapi.json</a>.</p>")
