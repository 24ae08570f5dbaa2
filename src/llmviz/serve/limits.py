"""What one server allows, and the ASGI middleware that holds it to that: request bodies of bounded size read
within a timeout, a Host header that names this server, no cross-site API requests, a byte budget for answers
not yet sent, and a JSON 500 that names no internals."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from fastapi.responses import JSONResponse

from ..core.errors import Busy

MB = 2**20
log = logging.getLogger("llmviz")


@dataclass(frozen=True)
class Limits:
    """What one server allows; `llmviz serve` has an option for each."""

    cache_mb: int = 256  # forward passes and scenes kept for the next request, in MiB
    request_mb: int = 1024  # memory one request may use for its answer and its working set, in MiB
    workers: int = 2  # forward passes computed at once
    queue: int = 16  # requests waiting for a worker; past that, 503 with Retry-After
    body_timeout: float = 10.0  # seconds to receive a request body
    sessions: int = 8  # generation sessions kept (least recently used evicted; each expires after 15 min unused)
    sessions_mb: int = 512  # their KV caches together, in MiB
    unsent_mb: int = 512  # answers computed and not yet taken by their clients, together, in MiB


class BodyLimit:
    """Read each request body whole before the app sees it: at most `limit` bytes (413), declared or
    chunked, within `timeout` seconds (408, and the connection is closed)."""

    def __init__(self, app, limit: int, timeout: float, stopping: asyncio.Event):
        self.app, self.limit, self.timeout, self.stopping = app, limit, timeout, stopping

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await refuse(scope, receive, send, 413, f"request body too large: at most {self.limit} bytes")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        chunks, size, more = [], 0, True
        stopping = asyncio.ensure_future(self.stopping.wait())
        while more:
            part = asyncio.ensure_future(receive())
            await asyncio.wait({part, stopping}, timeout=max(0.0, deadline - loop.time()),
                               return_when=asyncio.FIRST_COMPLETED)
            if not part.done():
                part.cancel()
                stopping.cancel()
                if self.stopping.is_set():
                    return await refuse(scope, receive, send, 503, "the server is stopping", close=True)
                return await refuse(scope, receive, send, 408, f"the request body did not arrive within "
                                    f"{self.timeout:g} s", close=True)
            message = part.result()
            if message["type"] != "http.request":
                stopping.cancel()
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                stopping.cancel()
                return await refuse(scope, receive, send, 413, f"request body too large: at most {self.limit} bytes")
        stopping.cancel()
        pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():  # the buffered body once, then the real channel (for http.disconnect)
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)


class HostCheck:
    """Answer only requests whose Host header names this server: loopback names, the address it binds,
    and names allowed explicitly. A web page that rebinds its own name to 127.0.0.1 gets 400."""

    def __init__(self, app, hosts):
        self.app, self.hosts = app, {h.lower().strip("[]") for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and "*" not in self.hosts:
            header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host_name(header) not in self.hosts:
                return await refuse(scope, receive, send, 400, f"unexpected Host header {header[:100] or '(none)'!r}: this "
                                    "server answers only to its own names; start it with --allow-host NAME "
                                    "to allow another", close=True)
        await self.app(scope, receive, send)


HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9._~!$&'()*+,;=%-]*)(:[0-9]*)?")  # RFC 3986: host [":" port]


def host_name(header: str) -> str | None:
    """`[::1]:8765` -> `::1`, `localhost:8765` -> `localhost`; None for anything that is not a host with an
    optional numeric port (`[::1]evil.com`, `[::1]:80@evil.com`, `localhost:abc`)."""
    found = HOST.fullmatch(header.strip().lower())
    return found.group(1).strip("[]") if found else None


class NoCrossSite:
    """Refuse API requests that a browser marks as sent by another site (Sec-Fetch-Site: cross-site), such as an
    <img src=".../api/walkthrough?input=..."> on a web page: they would make this server compute for that page."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/api/") and \
                dict(scope["headers"]).get(b"sec-fetch-site") == b"cross-site":
            return await refuse(scope, receive, send, 403, "this server answers API requests from its own page only, "
                                "not from other web sites")
        await self.app(scope, receive, send)


class Unsent:
    """The bytes of answers computed and not yet taken by their clients, together at most `limit` (one answer
    alone may be larger: the request budget bounds it). A client that reads slowly, or never, holds its answer's
    bytes; past the limit, new answers are refused (503) until those are sent or their clients go away."""

    def __init__(self, limit: int):
        self.limit, self.bytes = limit, 0

    @property
    def full(self) -> bool:
        return self.bytes >= self.limit

    def admit(self, size: int) -> None:
        """Before computing an answer of `size` bytes: refuse it (503) if it could not be sent now."""
        if self.bytes and self.bytes + size > self.limit:
            raise self.refuse()

    def refuse(self) -> Busy:
        return Busy(f"the server holds {self.bytes / MB:,.0f} MiB of answers that their clients have not read yet "
                    f"(at most {self.limit / MB:,.0f} MiB, llmviz serve --unsent-mb): try again shortly")


class SendLimit:
    """Send each answer in pieces, each after the client has taken the one before (the server's flow control),
    counting its bytes in `unsent` from the first piece to the last; an answer that would take `unsent` past its
    limit is replaced by a 503."""

    PIECE = 256 * 1024

    def __init__(self, app, unsent: Unsent):
        self.app, self.unsent = app, unsent

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held, refused = 0, False
        unsent = self.unsent

        async def limited(message):
            nonlocal held, refused
            if message["type"] == "http.response.start":
                size = int(dict(message.get("headers", [])).get(b"content-length", b"0") or 0)
                if message["status"] < 400 and unsent.bytes and unsent.bytes + size > unsent.limit:
                    refused = True
                    busy = unsent.refuse()
                    return await refuse(scope, receive, send, busy.status, str(busy), headers=busy.headers)
                held = size
                unsent.bytes += size
                return await send(message)
            if refused or message["type"] != "http.response.body":
                return None if refused else await send(message)
            body, more = message.get("body", b""), message.get("more_body", False)
            view = memoryview(body)
            for at in range(0, max(len(body), 1), self.PIECE):
                piece = view[at:at + self.PIECE]
                last = at + self.PIECE >= len(body)
                await send({"type": "http.response.body", "body": bytes(piece), "more_body": more or not last})
                done = min(len(piece), held)
                held -= done
                unsent.bytes -= done

        try:
            await self.app(scope, receive, limited)
        finally:
            unsent.bytes -= held  # a client gone, or an answer shorter than it said


class JsonErrors:
    """An unexpected error is a JSON 500 that names no internals; the connection stays usable and the
    server log gets the traceback."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await refuse(scope, receive, send, 500, "internal error: the server log has the details")


async def refuse(scope, receive, send, status: int, detail: str, close: bool = False, headers=None) -> None:
    headers = {**(headers or {}), **({"connection": "close"} if close else {})}
    await JSONResponse({"detail": detail}, status, headers=headers)(scope, receive, send)
