"""A hostile HTTP server for the response-size tests: it answers every request with a gzip bomb
(about 1 MB that inflates to 1 GiB), a 300 MB plain body without a length, or a body that
announces 300 MB. Bodies are generated while sending, never held in memory here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_BOMB: list[bytes] = []


def gzip_bomb(inflated: int = 1 << 30) -> bytes:
    """gzip of `inflated` zero bytes (1 GiB -> about 1 MB), built once."""
    if not _BOMB:
        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block = bytes(1 << 20)
        parts = [packer.compress(block) for _ in range(inflated >> 20)]
        parts.append(packer.flush())
        _BOMB.append(b"".join(parts))
    return _BOMB[0]


class HostileServer:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _answer(self) -> None:
                server.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                try:
                    if server.mode == "bomb":
                        body = gzip_bomb()
                        self.send_response(200)
                        self.send_header("Content-Type", "text/xml; charset=utf-8")
                        self.send_header("Content-Encoding", "gzip")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    elif server.mode == "announced":
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(300 << 20))
                        self.end_headers()
                        self.wfile.write(b"{" + b" " * 65536)
                    else:  # "huge": 300 MB, no length: read until the connection closes
                        self.send_response(200)
                        self.send_header("Content-Type", "text/xml; charset=utf-8")
                        self.send_header("Connection", "close")
                        self.end_headers()
                        chunk = b"<x>" + b"a" * 65533
                        for _ in range((300 << 20) // len(chunk)):
                            self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what the test wants
                self.close_connection = True

            do_GET = _answer  # noqa: N815
            do_POST = _answer  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def run_measured(code: str) -> dict[str, Any]:
    """Run `code` (which sets `error`) in a fresh interpreter; its error text and memory (MB):
    `before` after imports, `peak` the whole process's maximum resident set size."""
    script = ("import json, resource, sys\n"
              "sys.path[:0] = ['shared', '.']\n"
              f"{code}\n"
              "print(json.dumps({'error': error, 'before': before, "
              "'peak': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
