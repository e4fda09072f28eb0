"""A service's health endpoint whose answer the test controls (status and body)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeHealth:
    def __init__(self) -> None:
        self.status = 200
        self.body = "ok"
        self.hits = 0
        # When set: a request signals ``arrived`` and waits for ``release`` before answering.
        self.hold = False
        self.arrived = threading.Event()
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                fake.hits += 1
                if fake.hold:
                    fake.arrived.set()
                    fake.release.wait(30)
                payload = fake.body.encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> FakeHealth:
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
