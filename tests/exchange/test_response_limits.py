"""A hostile Exchange server cannot exhaust memory (issue 11), and an NTLM attempt never sends the
password as Basic.

The hostile server (tests/hostile.py) answers exchangelib's EWS requests with a 1 MB gzip bomb that
inflates to 1 GiB, or a 300 MB body without a length. Each attempt runs in a fresh interpreter and
reports its peak resident memory: before the caps a bomb took a process from 90 MB to 2.96 GB and
the 300 MB body peaked at 1.58 GB. The bound asserted is memory, not time.
"""

from __future__ import annotations

import base64
import re
import socket
import threading
from collections.abc import Iterator

import pytest

from spokesync.config import Config
from spokesync.connectors import exchange
from spokesync.connectors.exchange.access import ExchangeSettings
from spokesync.sandbox import ews as ews_sandbox
from tests.hostile import HostileServer, run_measured

GROWTH_MB = 200  # the cap is 32 MB of decoded body; a few copies of it, never gigabytes

VALIDATE = """
from spokesync.config import Config
from spokesync.connectors import exchange
from spokesync.connectors.exchange.access import ExchangeSettings
config = Config(exchange_allow_http=True, exchange_allowed_cidrs=("127.0.0.1/32",))
settings = ExchangeSettings.from_dict({{"ews_url": "{url}/EWS/Exchange.asmx", "username": "EXAMPLE\\\\sync", "mailbox": "shared@example.com",
                                        "auth_type": "basic"}})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    exchange.validate(settings, "Secret-1", config)
    error = None
except Exception as exc:
    error = str(exc)
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["bomb", "huge"])
def test_a_hostile_exchange_server_cannot_exhaust_memory(mode: str) -> None:
    server = HostileServer(mode)
    try:
        result = run_measured(VALIDATE.format(url=server.url))
    finally:
        server.close()
    assert result["error"] and "the server 127.0.0.1" in result["error"], result
    assert "larger than the 32 MB spokesync reads" in result["error"]
    assert result["peak"] - result["before"] < GROWTH_MB, result
    assert server.requests <= 2  # refused, not retried over and over


class WireTap:
    """A TCP relay in front of the EWS sandbox that keeps every byte the client sends."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sent = bytearray()
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record:
                    with self._lock:
                        self.sent += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def take(self) -> bytes:
        with self._lock:
            out, self.sent = bytes(self.sent), bytearray()
        return out

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def tapped_ews() -> Iterator[tuple[ews_sandbox.EwsServer, WireTap]]:
    server = ews_sandbox.serve("127.0.0.1", 0, users={"EXAMPLE\\sync": "Secret-1"}, sample=True)
    host, port = server.httpd.server_address[:2]
    tap = WireTap((str(host), int(port)))
    yield server, tap
    tap.close()
    server.stop()


def test_an_ntlm_attempt_never_sends_the_password_as_basic(tapped_ews: tuple[ews_sandbox.EwsServer, WireTap]) -> None:
    _, tap = tapped_ews
    config = Config(exchange_allow_http=True, exchange_allowed_cidrs=("127.0.0.1/32",))
    url = f"http://127.0.0.1:{tap.port}/EWS/Exchange.asmx"
    basic = ExchangeSettings.from_dict({"ews_url": url, "username": "EXAMPLE\\sync", "auth_type": "basic",
                                        "mailbox": "shared@example.com"})
    exchange.validate(basic, "Secret-1", config)
    assert re.search(rb"Authorization: Basic ", tap.take())  # the Basic attempt did send Basic
    ntlm = ExchangeSettings.from_dict({"ews_url": url, "username": "EXAMPLE\\sync", "auth_type": "NTLM",
                                       "mailbox": "shared@example.com"})
    exchange.validate(ntlm, "Secret-1", config)
    wire = tap.take()
    assert re.search(rb"Authorization: NTLM ", wire), wire[:500]
    assert not re.search(rb"Authorization: Basic ", wire)
    assert base64.b64encode(b"EXAMPLE\\sync:Secret-1") not in wire
