"""The SSRF guard holds at connect time: a host name that resolves to an acceptable address
when the account is built and to an internal one when the connection opens (DNS rebinding)
is refused before anything is sent, and TLS still verifies the host name while the socket
goes to the checked address."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest

from spokesync.config import Config
from spokesync.connectors import exchange
from spokesync.connectors.exchange import guard
from spokesync.connectors.exchange.access import ExchangeSettings
from spokesync.ports import ConnectorError
from spokesync.sandbox.ews import EwsServer
from spokesync.sandbox.ews.tls import make_certificates
from tests.exchange.conftest import PASSWORD


class ChangingResolver:
    """Answers `answers[0]` to the first lookup of the name, `answers[1]` to every later one."""

    def __init__(self, name: str, answers: tuple[list[str], list[str]]) -> None:
        self.name, self.answers, self.lookups = name, answers, 0
        self.real: Callable[[str, int], list[str]] = guard.resolve

    def __call__(self, host: str, port: int) -> list[str]:
        if host != self.name:
            return self.real(host, port)
        self.lookups += 1
        return self.answers[0] if self.lookups == 1 else self.answers[1]


def _record_connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The addresses sockets are really opened to."""
    connected: list[tuple[str, int]] = []
    real_connect = guard._u3util.create_connection

    def connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        connected.append(address)
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(guard._u3util, "create_connection", connect)
    return connected


def _settings(ews: EwsServer, host: str) -> ExchangeSettings:
    port = urlsplit(ews.url).port
    return ExchangeSettings(ews_url=f"http://{host}:{port}/EWS/Exchange.asmx", username="EXAMPLE\\sync",
                            auth_type="basic", mailbox="shared@example.com")


def test_rebinding_to_loopback_is_refused_at_connect_time(ews: EwsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = ChangingResolver("rebind.example.test", (["93.184.216.34"], ["127.0.0.1"]))
    monkeypatch.setattr(guard, "resolve", resolver)
    # no private range allowed; the sandbox's port is (a public host may use only 443 otherwise)
    config = Config(exchange_allow_http=True, exchange_allowed_ports=(int(urlsplit(ews.url).port or 0),))
    before = ews.http_requests
    with pytest.raises(exchange.UrlRefused, match="resolves to 127.0.0.1, a loopback address"):
        exchange.validate(_settings(ews, "rebind.example.test"), PASSWORD, config)
    assert resolver.lookups == 2  # once when the account was built, once when the connection opened
    assert ews.http_requests == before  # nothing reached the server behind the second answer


def test_rebinding_from_an_allowed_range_to_the_metadata_server_is_refused(
        ews: EwsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = ChangingResolver("onprem.example.test", (["127.0.0.1"], ["169.254.169.254"]))
    monkeypatch.setattr(guard, "resolve", resolver)
    connected = _record_connections(monkeypatch)
    config = Config(exchange_allow_http=True, exchange_allowed_cidrs=("127.0.0.0/8",))
    with pytest.raises(exchange.UrlRefused, match="169.254.169.254, a link-local"):
        exchange.validate(_settings(ews, "onprem.example.test"), PASSWORD, config)
    assert connected == []  # no socket was opened at all


def test_the_socket_goes_to_the_address_that_was_checked(ews: EwsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = ChangingResolver("stable.example.test", (["127.0.0.1"], ["127.0.0.1"]))
    monkeypatch.setattr(guard, "resolve", resolver)
    connected = _record_connections(monkeypatch)
    config = Config(exchange_allow_http=True, exchange_allowed_cidrs=("127.0.0.0/8",))
    assert exchange.validate(_settings(ews, "stable.example.test"), PASSWORD, config).public_folders
    assert connected and {a for a, _ in connected} == {"127.0.0.1"}
    assert resolver.lookups == 1 + len(connected)  # one lookup per new connection, checked, then used
    assert ews.last_headers["Host"].startswith("stable.example.test:")  # the name, not the address, is sent


@pytest.fixture(scope="module")
def tls_ews(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EwsServer, str]]:
    certs = make_certificates(("ews.example.test",), directory=str(tmp_path_factory.mktemp("tls")))
    server = EwsServer(users={"sync": PASSWORD}, tls=certs, hostname="ews.example.test").start()
    yield server, certs.ca_path
    server.stop()


def test_tls_verifies_the_host_name_while_the_address_is_pinned(
        tls_ews: tuple[EwsServer, str], monkeypatch: pytest.MonkeyPatch) -> None:
    server, ca = tls_ews
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)
    real = guard.resolve
    monkeypatch.setattr(guard, "resolve", lambda h, p: ["127.0.0.1"] if h.endswith(".example.test") else real(h, p))
    config = Config(exchange_allowed_cidrs=("127.0.0.0/8",))
    settings = ExchangeSettings(ews_url=server.url, username="sync", auth_type="basic", mailbox="shared@example.com")
    assert exchange.validate(settings, PASSWORD, config).server_version.startswith("15.1")
    # same address, another name: the certificate (issued for ews.example.test) does not match
    wrong_name = replace(settings, ews_url=server.url.replace("ews.example.test", "mail.example.test"))
    with pytest.raises(ConnectorError, match="TLS failure"):
        exchange.validate(wrong_name, PASSWORD, config)


@pytest.mark.parametrize("url", [
    "https://mail.example.com:22/EWS/Exchange.asmx#@169.254.169.254",
    "https://mail.example.com#@169.254.169.254/EWS/Exchange.asmx",
    "https://mail.example.com\\@169.254.169.254/EWS/Exchange.asmx",
    "https://x@169.254.169.254@mail.example.com/EWS/Exchange.asmx",
])
def test_urls_parsers_read_differently_are_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard, "resolve", lambda host, port: ["93.184.216.34"])
    for what in ("EWS URL", "OAuth token URL"):
        with pytest.raises(exchange.UrlRefused, match=f"the {what} must"):
            exchange.check_url(url, Config(), what=what)


def test_ports_other_than_443_need_the_administrator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard, "resolve", lambda host, port: ["93.184.216.34"])
    for what in ("EWS URL", "OAuth token URL"):
        with pytest.raises(exchange.UrlRefused, match=f"the {what} uses port 22: .* port 443 only"):
            exchange.check_url("https://mail.example.com:22/EWS/Exchange.asmx", Config(), what=what)
    assert exchange.check_url("https://mail.example.com/EWS/Exchange.asmx", Config())
    assert exchange.check_url("https://mail.example.com:8443/EWS/Exchange.asmx", Config(exchange_allowed_ports=(8443,)))
    # a host inside a range the administrator allow-listed may use its own port
    monkeypatch.setattr(guard, "resolve", lambda host, port: ["10.1.2.3"])
    assert exchange.check_url("https://exch.corp.example:8443/EWS/Exchange.asmx",
                              Config(exchange_allowed_cidrs=("10.0.0.0/8",)))


def _ntlm_over_tls(server: EwsServer, ca: str, bindings: bytes | None) -> int:
    """A raw NTLM handshake on one kept-alive TLS connection, with the given channel binding (or none)."""
    import base64

    import requests
    import spnego
    from spnego.channel_bindings import GssChannelBindings

    cbt = GssChannelBindings(application_data=b"tls-server-end-point:" + bindings) if bindings is not None else None
    client = spnego.client("sync", PASSWORD, hostname="ews.example.test", protocol="ntlm", channel_bindings=cbt)
    with requests.Session() as session:
        session.verify = ca
        first = session.post(server.url, data=b"", timeout=10, headers={
            "Authorization": "NTLM " + base64.b64encode(client.step() or b"").decode()})
        challenge = base64.b64decode(first.headers["WWW-Authenticate"].split()[1])
        second = session.post(server.url, data=b"", timeout=10, headers={
            "Authorization": "NTLM " + base64.b64encode(client.step(challenge) or b"").decode()})
        return second.status_code


def test_ntlm_over_tls_checks_channel_bindings(tls_ews: tuple[EwsServer, str], monkeypatch: pytest.MonkeyPatch) -> None:
    server, ca = tls_ews
    assert server.extended_protection and server.channel_binding is not None
    monkeypatch.setattr(guard, "resolve", lambda h, p: ["127.0.0.1"])
    monkeypatch.setattr("socket.getaddrinfo", _loopback_getaddrinfo(socket.getaddrinfo))
    # exchangelib (requests_ntlm) sends the binding of the certificate it saw: accepted
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)
    settings = ExchangeSettings(ews_url=server.url, username="sync", auth_type="NTLM", mailbox="shared@example.com")
    assert exchange.validate(settings, PASSWORD, Config(exchange_allowed_cidrs=("127.0.0.0/8",))).server_version
    # a client without the binding, or with another certificate's, is refused (the request is not SOAP:
    # authentication comes first, an accepted handshake gets a SOAP fault with HTTP 500)
    assert _ntlm_over_tls(server, ca, None) == 401
    assert _ntlm_over_tls(server, ca, b"\x01" * 32) == 401
    assert _ntlm_over_tls(server, ca, server.channel_binding) == 500


def _loopback_getaddrinfo(real):  # type: ignore[no-untyped-def]
    def lookup(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        return real("127.0.0.1" if str(host).endswith(".example.test") else host, *args, **kwargs)
    return lookup
