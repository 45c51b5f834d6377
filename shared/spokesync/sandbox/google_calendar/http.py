"""The HTTP side the Google sandboxes share (Calendar and People): a handler base that answers in
one segment (no Nagle / delayed-ACK stall per response), counts API and token requests apart, a
threading server that carries the sandbox, and the handle of a started server."""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class GoogleHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment: no Nagle / delayed-ACK stall per response.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16
    server: GoogleServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
        return

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _read(self) -> tuple[Any, bytes, dict[str, str], str]:
        """The sandbox, the request's body, its headers (lower-case names) and path; counted."""
        sandbox = self.server.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        with sandbox.lock:
            sandbox.stats.http_requests += 1
        return sandbox, body, headers, urllib.parse.urlsplit(self.path).path

    def _token(self, sandbox: Any, body: bytes) -> None:
        """POST /token: counted as a token request, not an API request."""
        with sandbox.lock:
            sandbox.stats.http_requests -= 1
            sandbox.stats.token_requests += 1
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        status, payload = sandbox.token(form)
        self._send(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())


class GoogleServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[GoogleHandler], sandbox: Any) -> None:
        super().__init__(address, handler)
        self.sandbox = sandbox


@dataclass
class Running:
    """A started server: its state (`sandbox`), its `url`, and `close()`."""

    sandbox: Any
    server: GoogleServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    @property
    def token_uri(self) -> str:
        return self.url + "token"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start(server: GoogleServer, name: str) -> threading.Thread:
    """Serve in a background thread; the sandbox learns its base URL."""
    host, port = server.server_address[:2]
    server.sandbox.base_url = f"http://{host!s}:{port}/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    thread.start()
    return thread
