"""The SSRF guard on user-entered Exchange URLs, checked twice: when an Account is
built (`check_url`: scheme, credentials in the URL, every resolved address) and
again when a connection is opened (`GuardedAdapter`, installed as exchangelib's
`BaseProtocol.HTTP_ADAPTER_CLS`).

The second check closes DNS rebinding: the name is resolved once at connect
time, every address is checked, and the socket is opened to one of exactly
those addresses — never to a second, unchecked lookup. Only the socket is
redirected: the request's Host header, the TLS SNI name and the certificate's
hostname verification all keep using the host name from the URL.

The policy (which private ranges an administrator allowed) is registered per
host name by `check_url`; a host that was never checked (autodiscover visits
hosts derived from the e-mail domain) gets the policy last registered, which in
production is the one process-wide configuration.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

import requests.adapters
from urllib3 import connection as _u3conn
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as _u3util

from spokesync.config import Config
from spokesync.http_limits import CappedAdapterMixin
from spokesync.ports import ConnectorError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class UrlRefused(ConnectorError):
    """The EWS URL points somewhere spokesync must not connect to (SSRF guard)."""

    code = "url_refused"


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in the resolver's order. Tests replace this function
    (a resolver whose answer changes between the two checks shows the rebinding guard)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_LOCK = threading.Lock()
_POLICIES: dict[str, tuple[Network, ...]] = {}
_LAST_POLICY: list[tuple[Network, ...]] = [()]


def _networks(config: Config) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in config.exchange_allowed_cidrs)


def register(host: str, config: Config) -> None:
    nets = _networks(config)
    with _LOCK:
        _POLICIES[host.lower()] = nets
        _LAST_POLICY[0] = nets


def set_default_policy(config: Config) -> None:
    """The policy for hosts nobody checked by name (autodiscover's candidates), and the response cap."""
    with _LOCK:
        _LAST_POLICY[0] = _networks(config)
    GuardedAdapter.max_response_bytes = config.max_response_bytes


def _policy(host: str) -> tuple[Network, ...]:
    with _LOCK:
        return _POLICIES.get(host.lower(), _LAST_POLICY[0])


def refusal(host: str, address: str, allowed: tuple[Network, ...]) -> str | None:
    """Why `address` is refused (None: acceptable)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if any(ip in net for net in allowed):
        return None
    if ip.is_global and not ip.is_multicast:
        return None
    kind = ("a loopback" if ip.is_loopback else "a link-local (cloud metadata)" if ip.is_link_local
            else "a private or reserved")
    return (f"{host} resolves to {ip}, {kind} address: spokesync refuses it unless an administrator "
            "allow-lists that range (SPOKESYNC_EXCHANGE_ALLOWED_CIDRS)")


def checked_addresses(host: str, port: int, allowed: tuple[Network, ...] | None = None) -> list[str]:
    """Resolve once and check every address; the caller connects only to these."""
    allowed = _policy(host) if allowed is None else allowed
    try:
        addresses = resolve(host, port)
    except socket.gaierror as exc:
        raise ConnectorError(f"host unreachable: the name {host!r} does not resolve; check the spelling of the "
                             "address", code="host_unreachable") from exc
    if not addresses:
        raise ConnectorError(f"host unreachable: the name {host!r} does not resolve; check the spelling of the "
                             "address", code="host_unreachable")
    for address in addresses:
        reason = refusal(host, address, allowed)
        if reason:
            raise UrlRefused(reason)
    return addresses


def check_url(url: str, config: Config, what: str = "EWS URL") -> list[str]:
    """Refuse URLs that would let a setup user reach internal services; registers the host's policy
    for the connect-time check. Returns the addresses checked."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise UrlRefused(f"the {what} must start with https:// (got {parts.scheme or 'no scheme'}://)")
    if parts.scheme == "http" and not config.exchange_allow_http:
        raise UrlRefused(f"the {what} must use https:// (plain http is allowed only when the administrator "
                         "sets SPOKESYNC_EXCHANGE_ALLOW_HTTP)")
    if not parts.hostname:
        raise UrlRefused(f"the {what} has no host name")
    if parts.username or parts.password or "@" in parts.netloc:
        raise UrlRefused(f"the {what} must not contain a user name or password")
    if parts.fragment or "#" in url or "\\" in url or any(ord(c) < 33 or ord(c) == 127 for c in url):
        # "https://mail.example.com:22/EWS/Exchange.asmx#@169.254.169.254": parsers disagree on the host
        raise UrlRefused(f"the {what} must be a plain address such as https://mail.example.com/EWS/Exchange.asmx "
                         "(no '#', backslash, spaces or control characters)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UrlRefused(f"the {what} has an invalid port") from exc
    addresses = checked_addresses(parts.hostname, port, _networks(config))
    allowed_ports = {443, *config.exchange_allowed_ports} | ({80} if config.exchange_allow_http else set())
    inside_allowed = all(any(ipaddress.ip_address(a.split("%")[0]) in net for net in _networks(config))
                         for a in addresses)
    if port not in allowed_ports and not inside_allowed:
        raise UrlRefused(f"the {what} uses port {port}: spokesync connects to Exchange on port 443 only, unless "
                         "an administrator allows more ports (SPOKESYNC_EXCHANGE_ALLOWED_PORTS)")
    register(parts.hostname, config)
    return addresses


class _GuardedConnectionMixin:
    """`_new_conn` of urllib3's HTTP(S)Connection, with the address check between lookup and connect."""

    _dns_host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any
    host: str

    def _new_conn(self) -> socket.socket:
        if getattr(self, "_tunnel_host", None):  # through an administrator's proxy: the proxy resolves the name
            return super()._new_conn()  # type: ignore[misc, no-any-return]
        addresses = checked_addresses(self._dns_host, self.port)
        error: OSError | None = None
        for address in addresses:
            try:
                return _u3util.create_connection((address, self.port), self.timeout,
                                                 source_address=self.source_address,
                                                 socket_options=self.socket_options)
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. "
                                                f"(connect timeout={self.timeout})") from exc
            except OSError as exc:
                error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")  # type: ignore[arg-type]


class GuardedHTTPConnection(_GuardedConnectionMixin, _u3conn.HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, _u3conn.HTTPSConnection):
    pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(CappedAdapterMixin, requests.adapters.HTTPAdapter):
    """requests' adapter with the connect-time address check (exchangelib: `BaseProtocol.HTTP_ADAPTER_CLS`)
    and bounded responses, decompression included (`http_limits`: a gzip bomb or a 300 MB answer from a
    hostile server stops at `max_response_bytes` with an error naming the server)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": GuardedHTTPConnectionPool,
                                                   "https": GuardedHTTPSConnectionPool}


def install() -> None:
    """Make every exchangelib session (EWS, OAuth token endpoint, autodiscover) use the guarded adapter."""
    from exchangelib.protocol import BaseProtocol

    BaseProtocol.HTTP_ADAPTER_CLS = GuardedAdapter
