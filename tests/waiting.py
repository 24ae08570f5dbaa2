"""Waiting on signals, never for a fixed time. Where there is an event to wait on (a page's selector, a
threading.Event, a line a process prints), the tests wait on it; where the signal is a state to look at (a flag a
thread sets, a server that answers, a count that reaches a value), they poll it here: often, with a deadline, and
failing with what never happened."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(condition: Callable[[], T], timeout: float, interval: float = 0.02) -> T | None:
    """Call `condition` every `interval` seconds until it returns something truthy, and return that; None if
    `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
    return value


def wait_until(condition: Callable[[], T], timeout: float = 20.0, what: str = "the condition",
               interval: float = 0.02) -> T:
    """Poll `condition` until it returns something truthy, and return that; fail the test, naming `what`, if
    `timeout` seconds pass first."""
    value = poll(condition, timeout, interval)
    if not value:
        raise AssertionError(f"waited {timeout:g} s for {what}, in vain")
    return value


def json_when_up(url: str, timeout: float = 30.0):
    """GET `url` as soon as its server answers (a refused or reset connection: it is still starting); its JSON."""

    def answer():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return [json.load(r)]  # in a list: an answer of [] or 0 is an answer too
        except urllib.error.HTTPError:
            raise  # an answer, if not the one hoped for
        except OSError:
            return None

    return wait_until(answer, timeout, f"an answer from {url}", interval=0.05)[0]
