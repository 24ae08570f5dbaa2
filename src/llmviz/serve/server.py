"""The local web server: the built front-end plus a small typed JSON/binary API. `create_app` assembles it from
the routers in serve/routes/, one per concern:

    models      GET  /api/models               the models this server knows, with config and parameter count
                GET  /api/models/{name}/graph  the model graph (tensors, axes, ops) as JSON
                GET  /api/models/{name}/vocab  every vocabulary entry's token, as the view shows it
                GET  /api/models/{name}/embedding-map  W_E's and W_pos's rows on their first two principal components
                GET  /api/walkthrough          the guided walkthrough, compiled for a model and an input
    passes      POST /api/trace                tensors of one forward pass, as safetensors bytes
                POST /api/scene                what the 3D view draws: the layout and every block's numbers (with
                                               `edits`: the edited pass, and how far each cell moved)
                POST /api/cells                the numbers the page explains a cell with
    layers      POST /api/attention            every head's attention pattern, float16 safetensors
                POST /api/lens                 the logit lens: the top tokens after each layer, at each position
                POST /api/branches             a tree of the most probable continuations
    interventions
                POST /api/intervene            the pass with edits (zero, mean, value, scale, patch) beside the clean one
    analysis    POST /api/attribution          one logit split into each head's, MLP's, embedding's and bias's part
                POST /api/patching             activation patching swept over every layer × position and every head
    generation  POST /api/generate             sample a continuation, with every stage of the sampling chain
                POST /api/sessions             generate step by step on a KV cache: .../step, .../undo, GET, DELETE
    neurons     GET  /api/models/{name}/neurons                    which tensors index the MLPs' neurons
                GET  /api/models/{name}/neurons/{layer}/{index}    a neuron's top contexts and direct effect on logits
    training    POST /api/training             train a bundled model from random weights, in this server (one run)
                GET  /api/training             the run: loss, snapshots, each head's formation (?since=: long poll)
                POST /api/training/control     pause, resume, step, stop, speed
                GET  /api/training/snapshots/{name}   a snapshot (nano-gpt@1200) as a model any route takes
    precision   GET  /api/models/{name}/precision  the model at each format: bytes, the weights' error, the logits' error
                                               on its example input, the time of a pass
    path        GET  /api/learning-path        the learning path's five steps, which models this server has, and
                                               where each one's walkthrough starts
    progress    GET  /api/progress/{task}      how far the computation a request named (X-Llmviz-Task) has got
                GET  /api/progress?task=a&task=b   the same for several at once, those still computing (the page polls it)
    page        /                              the built front-end

Every body is declared in serve/schemas.py; the OpenAPI schema is at /openapi.json, and the front-end's types are
generated from it. Limits (serve/limits.py): a Host header check and no cross-site API requests, request bodies
of at most 64 KiB read within a timeout, a byte-bounded cache, a memory budget per request, a byte budget for
generation sessions and one for answers not yet sent, and a small pool of workers (serve/workers.py), with a
bounded queue, for every request whose work depends on what it asks.
"""

from __future__ import annotations

import contextlib

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from ..core.errors import LlmvizError
from ..core.model import Model, Stopped
from .dependencies import Served
from .limits import BodyLimit, HostCheck, JsonErrors, Limits, NoCrossSite, SendLimit
from .routes import analysis, compare, generation, interventions, layers, neurons, passes, path, precision, training
from .routes import models as model_routes
from .routes import progress as progress_routes
from .routes.page import mount_page
from .schemas import SceneInfo, allowed_range

MAX_BODY_BYTES = 64 * 1024
LOOPBACK = ("localhost", "127.0.0.1", "::1")
TRACE_MEDIA_TYPE = passes.TRACE_MEDIA_TYPE


def create_app(models: list[Model] | None = None, limits: Limits | None = None, hosts=()) -> FastAPI:
    """An app serving these models (default: the bundled ones, nano-gpt and shakespeare-char), plus structure-only GPT-2
    and GPT-3 for scale.
    hosts: names the Host header may give besides the loopback ones ("*": any)."""
    limits = limits or Limits()
    served = Served(models, limits)

    async def lifespan(app):
        served.warm()
        yield
        served.workers.close()  # a server that stops ends the computations still running
        served.training.close()  # and its training run

    app = FastAPI(title="llmviz", version="0.1.0", summary="Every number of a GPT's forward pass.",
                  docs_url=None, redoc_url=None, lifespan=lifespan)  # /docs would load Swagger UI from a CDN
    app.state.served = served

    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5,  # float16 data: level 9 costs 3x for 1%
                       exclude_content_types=(TRACE_MEDIA_TYPE,))  # float32 noise: gzip saves little, copies all
    app.add_middleware(SendLimit, unsent=served.unsent)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES, timeout=limits.body_timeout, stopping=served.stopping)
    app.add_middleware(JsonErrors)
    app.add_middleware(NoCrossSite)
    app.add_middleware(HostCheck, hosts=[*LOOPBACK, *hosts])

    @app.exception_handler(LlmvizError)
    async def user_error(request: Request, exc: LlmvizError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            allowed = allowed_range(where) if e.get("type", "").startswith(("greater", "less")) else ""
            parts.append((f"{where}: {e['msg']}" if where else e["msg"]) + allowed)
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    @app.exception_handler(Stopped)
    async def stopped(request: Request, exc: Stopped):
        return JSONResponse({"detail": "the server is stopping"}, status_code=503)

    for module in (model_routes, passes, layers, generation, interventions, analysis, neurons, training, path,
                   compare, precision, progress_routes):
        app.include_router(module.router)
    app.openapi = lambda: openapi_with_scene(app)  # type: ignore[method-assign]
    mount_page(app)
    return app


def openapi_with_scene(app: FastAPI) -> dict:
    """The app's OpenAPI schema, with the scene's JSON (`SceneInfo`, the metadata of /api/scene's binary answer)
    among its components: what the front-end's generated types read a scene with."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        scene = TypeAdapter(SceneInfo).json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(scene.pop("$defs", {}))
        components["SceneInfo"] = scene
        app.openapi_schema = schema
    return app.openapi_schema


def run(app: FastAPI, sock) -> None:
    """Serve `app` on a listening socket until Ctrl+C. Stopping answers what is in flight at once (a body still
    arriving or a computation running gets 503), so the process exits promptly and quietly."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None):
            app.state.served.stopping.set()
            app.state.served.workers.close()
            await super().shutdown(sockets)

    with contextlib.suppress(KeyboardInterrupt):  # uvicorn has stopped; it raises the signal again for the caller
        Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)).run(sockets=[sock])


def schema() -> dict:
    """The API's OpenAPI schema (what frontend/schema.mjs generates the front-end's types from):
    `python -m llmviz.serve.server` prints it."""
    return create_app().openapi()


if __name__ == "__main__":
    import json

    print(json.dumps(schema(), indent=1))
