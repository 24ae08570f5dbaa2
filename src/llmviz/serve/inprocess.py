"""One request to the server's app inside this process, with no HTTP server and no socket: how the notebook
widget answers its page, and how `llmviz export` records the answers a static folder serves."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit


async def call(app, method: str, url: str, body: str | None) -> tuple[int, str, bytes]:
    """One request to an ASGI app in this process: (status, content type, body)."""
    parts = urlsplit(url)
    data = (body or "").encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method.upper(),
             "scheme": "http", "path": parts.path, "raw_path": parts.path.encode(), "query_string": parts.query.encode(),
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(data)).encode())],
             "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 80), "root_path": ""}
    sent = False
    out: dict = {"status": 500, "headers": [], "body": bytearray()}

    async def receive():
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # the app waits on disconnects only after the body: never, here
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"], out["headers"] = message["status"], message.get("headers", [])
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    kind = next((v.decode() for k, v in out["headers"] if k.lower() == b"content-type"), "application/octet-stream")
    return out["status"], kind, bytes(out["body"])


def run_to_end(work):
    """Run a coroutine to its end and return its result, also from code that already runs an event loop in this
    thread (a notebook's kernel, Playwright's sync API): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()
