"""An app served for real (uvicorn, a thread, a free localhost port), for the tests that need a socket: the browser
tests, and the ones about connections, slow readers and Ctrl+C."""

import threading
from contextlib import contextmanager

from conftest import _free_port
from waiting import wait_until


@contextmanager
def serving(app, what: str = "the test server"):
    """Serve `app` on a free port: yields the port once the server has started, and stops it after."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 20, f"{what} to start")
        yield port
    finally:
        server.should_exit = True
        thread.join(5)
