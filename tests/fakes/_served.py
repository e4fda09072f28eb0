"""The lifecycle every fake HTTP server shares: serve on 127.0.0.1 in a daemon thread,
stop without hanging, and say its base URL."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(
    fake: object, handler: type[BaseHTTPRequestHandler]
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start ``handler`` on an ephemeral port; handlers reach ``fake`` as ``server.fake``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.fake = fake  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    return server, thread


def shut(server: ThreadingHTTPServer | None, thread: threading.Thread | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(timeout=5)


def base_url_of(server: ThreadingHTTPServer | None, name: str) -> str:
    if server is None:
        raise RuntimeError(f"{name} is not running (use it as a context manager)")
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"
