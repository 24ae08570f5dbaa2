"""Shared fixtures: the bundled model, a live server, and Debian's Chromium for Playwright (Firefox has its own test)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # no test ever reaches for the network (the hub is unreachable here anyway)

import llmviz

CHROMIUM = os.environ.get("LLMVIZ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--enable-unsafe-swiftshader", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
# window.__llmviz (what is drawn, how fast, the canvas's pixels): a bundle of its own, built beside the app by
# `npm run build` and never shipped; every page of the tests loads it first.
TEST_HOOKS = Path(__file__).resolve().parent.parent / "frontend" / "dist-test" / "testhooks.js"


def local_client(app, **kw):
    """FastAPI's test client, addressed as the browser addresses the local server (the Host is checked)."""
    from fastapi.testclient import TestClient

    return TestClient(app, base_url="http://127.0.0.1:8765", **kw)


def random_model(name="wide", n_layer=2, n_head=4, n_embd=64, vocab_size=5000, n_ctx=512, scale=0.1, seed=0):
    """A random GPT of any shape, no torch needed."""
    import numpy as np

    from llmviz.core.config import ModelConfig
    from llmviz.core.graph import Graph
    from llmviz.core.model import Model

    cfg = ModelConfig(name, n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size, n_ctx=n_ctx,
                      tied_unembed=False)
    graph, rng = Graph(cfg), np.random.default_rng(seed)
    sizes = graph.sizes(0)
    weights = {n: rng.normal(0, scale, graph[n].shape(sizes)).astype(np.float32) for n in graph.names("weight")}
    return Model(cfg, weights, None, source=name)


@pytest.fixture
def context(context):
    """pytest-playwright's browser context, with the test hooks loaded into each of its pages."""
    context.add_init_script(path=TEST_HOOKS)
    return context


@pytest.fixture(scope="session")
def nano():
    return llmviz.load_model("nano-gpt")


@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server():
    """The real app on a free localhost port, for the browser tests. Yields its base URL."""
    from llmviz.serve.routes.page import static_dir
    from llmviz.serve.server import create_app
    from serving import serving

    if not (static_dir() / "index.html").is_file():
        pytest.fail("the front-end is not built: run `make build` (the README's test command does)")
    with serving(create_app()) as port:
        yield f"http://127.0.0.1:{port}"


def pytest_collection_modifyitems(config, items):
    """Tiers: `browser` for the tests that drive a browser (Playwright's page or context, or the notebook's
    JupyterLab); `slow` for the ones that take seconds each (listed in SLOW); `unit` for the rest, which
    `make test-fast` runs."""
    for item in items:
        if item.get_closest_marker("browser") is None and {"page", "context", "browser", "browser_name"} & set(item.fixturenames):
            item.add_marker(pytest.mark.browser)
        if any(part in item.nodeid for part in SLOW):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("browser") is None and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.unit)


# Tests of seconds each (`pytest --durations` on this 2-core machine): the export's hover checked in node, models
# built with torch and transformers, training.
SLOW = ("test_train.py", "test_budgets.py", "test_memory.py", "test_packaging.py", "test_modern.py", "test_huggingface.py",
        "test_interventions_hf.py", "test_gradients_hf.py", "test_numpy_training.py::test_adamw", "test_numpy_training.py::test_nano_gpt_learns_to_sort",
        "test_numpy_training.py::test_the_numpy_trainer_takes", "test_training_live.py",
        "test_nano_gpt.py::test_sorts_every_one_of_the_729_inputs", "test_cli.py::test_ctrl_c",
        "test_cli.py::test_export_into_a_pages", "test_export.py::test_hover_in_the_export", "test_bad_files.py::test_a_zip",
        "test_bad_files.py::test_cli_refuses_at_load_in_one_line[zip", "test_limits.py::test_an_unfinished_body")
