"""Progress of long computations: the server keeps each named request's latest report (GET /api/progress/{task}),
a client that leaves stops its computation and frees the worker, and the command line's bar draws the reports.
A pass is made slow deterministically: it is held at the start of a layer until the test lets it go."""

from __future__ import annotations

import io
import json
import logging
import threading
import urllib.error
import urllib.request

import pytest

import llmviz.core.model as model_module
from conftest import random_model
from llmviz.core.progress import report
from llmviz.serve.progressbar import describe, progress_bar
from llmviz.serve.schemas import TaskProgress
from llmviz.serve.server import create_app
from llmviz.serve.workers import Workers
from serving import serving
from waiting import wait_until


class Hold:
    """While armed, a worker's forward pass stops at the start of layer `at` until released (`held` is set then)."""

    def __init__(self, at: int = 1):
        self.at, self.armed = at, threading.Event()
        self.held, self.release = threading.Event(), threading.Event()

    def __call__(self, done: int, total: int, what: str) -> None:
        report(done, total, what)  # (the watcher hears it first: the server has the report while the pass waits)
        if (what == "layer" and done == self.at and self.armed.is_set()
                and threading.current_thread().name.startswith("llmviz-worker")):
            self.armed.clear()
            self.held.set()
            assert self.release.wait(60), "the test never released the held pass"


@pytest.fixture
def hold(monkeypatch):
    h = Hold()
    monkeypatch.setattr(model_module, "report", h)
    yield h
    h.release.set()


@pytest.fixture
def answers(monkeypatch):
    """Each answer Workers.run gives, as it gives it (a 499 once the server has seen its client go and told the
    computation to stop)."""
    seen: list[int] = []
    done = threading.Condition()
    real = Workers.run

    async def run(self, request, fn):
        response = await real(self, request, fn)
        with done:
            seen.append(getattr(response, "status_code", 200))
            done.notify_all()
        return response

    monkeypatch.setattr(Workers, "run", run)
    return seen


def get(url: str):
    """(status, JSON body) of a GET."""
    try:
        with urllib.request.urlopen(url) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def scene_request(port: int, task: str, tokens: list[int]) -> urllib.request.Request:
    return urllib.request.Request(f"http://127.0.0.1:{port}/api/scene", method="POST",
                                  data=json.dumps({"model": "deep", "tokens": tokens}).encode(),
                                  headers={"content-type": "application/json", "X-Llmviz-Task": task})


@pytest.fixture
def deep():
    return random_model("deep", n_layer=5, n_head=2, n_embd=16, vocab_size=50, n_ctx=16)


def test_the_progress_of_a_named_pass_is_its_latest_layer_and_is_gone_when_it_ends(deep, hold):
    app = create_app([deep])
    with serving(app) as port:
        base = f"http://127.0.0.1:{port}"
        hold.armed.set()
        result: dict = {}
        sender = threading.Thread(target=lambda: result.update(
            status=urllib.request.urlopen(scene_request(port, "task-1", [1, 2, 3])).status))
        sender.start()
        assert hold.held.wait(30)
        status, body = get(f"{base}/api/progress/task-1")
        assert status == 200
        TaskProgress.model_validate(body)
        assert (body["done"], body["total"], body["what"], body["waiting"]) == (1, 5, "layer", False)
        assert body["seconds"] >= 0
        # (what the page polls: several names at once, only the ones computing, never a 404)
        status, many = get(f"{base}/api/progress?task=task-1&task=other")
        assert status == 200 and list(many["tasks"]) == ["task-1"] and many["tasks"]["task-1"]["done"] == 1
        hold.release.set()
        sender.join(30)
        assert result == {"status": 200}
        wait_until(lambda: get(f"{base}/api/progress/task-1")[0] == 404, what="the ended task's record to go")
        status, body = get(f"{base}/api/progress/task-1")
        assert body == {"detail": "no computation named 'task-1' is running: it has ended, or was never asked for"}
        assert app.state.served.workers.tasks.records == {}
        assert get(f"{base}/api/progress?task=task-1") == (200, {"tasks": {}})


def test_an_unknown_task_is_404_and_a_request_without_a_name_keeps_no_record(deep, hold):
    app = create_app([deep])
    with serving(app) as port:
        status, body = get(f"http://127.0.0.1:{port}/api/progress/nothing-here")
        assert status == 404 and "no computation named 'nothing-here'" in body["detail"]
        hold.armed.set()
        plain = urllib.request.Request(f"http://127.0.0.1:{port}/api/scene", method="POST",
                                       data=json.dumps({"model": "deep", "tokens": [4, 5]}).encode(),
                                       headers={"content-type": "application/json", "X-Llmviz-Task": "bad name!"})
        sender = threading.Thread(target=lambda: urllib.request.urlopen(plain).read())
        sender.start()
        assert hold.held.wait(30)
        assert app.state.served.workers.tasks.records == {}  # (a name the page never makes: not kept)
        hold.release.set()
        sender.join(30)


def test_a_cancelled_request_stops_its_pass_frees_the_worker_and_its_record(deep, hold, answers, caplog):
    caplog.set_level(logging.INFO, logger="llmviz")
    app = create_app([deep])
    workers = app.state.served.workers
    with serving(app) as port:
        hold.armed.set()
        import socket

        body = json.dumps({"model": "deep", "tokens": [7, 8, 9]}).encode()
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /api/scene HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"X-Llmviz-Task: leaving\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert hold.held.wait(30)
        assert get(f"http://127.0.0.1:{port}/api/progress/leaving")[1]["done"] == 1
        assert workers.pending == 1
        s.close()  # (what the page's Cancel does: it aborts the fetch)
        wait_until(lambda: 499 in answers, what="the server to see its client go")
        hold.release.set()  # the pass goes on to its next op, and stops there
        wait_until(lambda: workers.pending == 0, what="the worker to be free")
        wait_until(lambda: any("a computation stopped" in r.getMessage() for r in caplog.records),
                   what="the log line of the stopped computation")
        assert workers.tasks.records == {}
        assert get(f"http://127.0.0.1:{port}/api/progress/leaving")[0] == 404


class Clock:
    """A clock the test moves: each reading is `step` seconds after the last."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_the_bar_writes_layer_lines_into_a_file_once_the_work_takes_over_a_second(deep):
    out = io.StringIO()
    with progress_bar(out, clock=Clock(6.0)):  # (every report 6 s after the last: a slow pass)
        deep.run([1, 2, 3])
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("layer 0 of 5 [") and lines[0].endswith(" s")
    assert [line.split(" [")[0] for line in lines] == [f"layer {k} of 5" for k in range(6)]
    assert lines[-1] == describe(5, 5, "layer", float(lines[-1].split("] ")[1][:-2]))
    assert "\r" not in out.getvalue()


def test_quick_work_draws_nothing_and_a_terminal_line_is_redrawn_in_place_then_erased(deep):
    quick = io.StringIO()
    with progress_bar(quick, clock=Clock(0.01)):
        deep.run([1, 2, 3])
    assert quick.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty = Terminal()
    with progress_bar(tty, clock=Clock(3.0)):
        deep.run([1, 2, 3])
    text = tty.getvalue()
    assert "\n" not in text and text.count("\r") >= 6 and "layer 3 of 5 [" in text
    assert text.endswith("\r") and text.rsplit("\r", 2)[-2].strip() == ""  # the line is erased at the end


def test_the_bar_ends_its_line_when_the_work_is_interrupted(deep):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty = Terminal()
    with pytest.raises(KeyboardInterrupt), progress_bar(tty, clock=Clock(3.0)):
        report(2, 5, "layer")
        raise KeyboardInterrupt
    assert "layer 2 of 5" in tty.getvalue() and tty.getvalue().rsplit("\r", 2)[-2].strip() == ""


def test_a_stopped_bar_draws_no_more(deep):
    out = io.StringIO()
    with progress_bar(out, clock=Clock(6.0)) as bar:
        report(1, 5, "layer")
        bar.stop()  # (generate's first token: the command's own output from here)
        deep.run([1, 2, 3])
    assert out.getvalue().splitlines() == [describe(1, 5, "layer", 6.0)]


def test_describe():
    assert describe(3, 12, "layer", 4.25, width=12) == "layer 3 of 12 [###.........] 4.2 s"
    assert describe(5, 290, "weights", 1.0, width=10) == "weights 5 of 290 [..........] 1.0 s"
    assert describe(0, 0, "", 2.0) == "working 2.0 s"
