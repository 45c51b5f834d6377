"""Connecting to an Exchange server: the SSRF guard on the URL, the exchangelib
Account, a retry policy bounded by the run's budget, and error translation
into messages an administrator understands (never containing the password).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from spokesync.config import Config
from spokesync.ports import ConnectorError, CredentialBroken, Throttled

VERSIONS = {"2010": (14, 3), "2013": (15, 0), "2016": (15, 1)}
VERSION_LABELS = {"2010": "Exchange 2010", "2013": "Exchange 2013", "2016": "Exchange 2016 or later"}
AUTH_TYPES = ("NTLM", "basic", "OAuth 2.0")


class UrlRefused(ConnectorError):
    """The EWS URL points somewhere spokesync must not connect to (SSRF guard)."""


@dataclass(frozen=True)
class ExchangeSettings:
    ews_url: str
    username: str
    version: str = "2016"
    auth_type: str = "NTLM"
    mailbox: str = ""  # primary SMTP address of the mailbox (mailbox folders); defaults to the username
    autodiscover: bool = False

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExchangeSettings:
        version = str(raw.get("version") or "2016")
        version = {"2019": "2016", "Exchange2016": "2016", "Exchange2013": "2013", "Exchange2010": "2010"}.get(version, version)
        if version not in VERSIONS:
            raise ConnectorError(f"Exchange version must be 2010, 2013 or 2016 (2016 or later), not {version!r}")
        auth = str(raw.get("auth_type") or "NTLM")
        auth = {"ntlm": "NTLM", "basic": "basic", "oauth": "OAuth 2.0", "oauth2": "OAuth 2.0"}.get(auth.lower(), auth)
        if auth not in AUTH_TYPES:
            raise ConnectorError(f"authentication must be NTLM, basic or OAuth 2.0, not {auth!r}")
        if not raw.get("ews_url") or not raw.get("username"):
            raise ConnectorError("an Exchange credential needs the EWS URL and a user name")
        return cls(ews_url=str(raw["ews_url"]), username=str(raw["username"]), version=version, auth_type=auth,
                   mailbox=str(raw.get("mailbox") or ""), autodiscover=bool(raw.get("autodiscover", False)))

    @property
    def smtp_address(self) -> str:
        if self.mailbox:
            return self.mailbox
        user = self.username.split("\\")[-1]
        return user if "@" in user else f"{user}@{urlsplit(self.ews_url).hostname or 'localhost'}"


def check_url(url: str, config: Config) -> None:
    """Refuse URLs that would let a setup user reach internal services."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise UrlRefused(f"the EWS URL must start with https:// (got {parts.scheme or 'no scheme'}://)")
    if parts.scheme == "http" and not config.exchange_allow_http:
        raise UrlRefused("the EWS URL must use https:// (plain http is allowed only when the administrator "
                         "sets SPOKESYNC_EXCHANGE_ALLOW_HTTP)")
    if not parts.hostname:
        raise UrlRefused("the EWS URL has no host name")
    if parts.username or parts.password:
        raise UrlRefused("the EWS URL must not contain a user name or password")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectorError(f"host unreachable: the name {parts.hostname!r} does not resolve ({exc.strerror})") from exc
    allowed = [ipaddress.ip_network(c, strict=False) for c in config.exchange_allowed_cidrs]
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if any(address in net for net in allowed):
            continue
        if not address.is_global or address.is_multicast:
            kind = ("a loopback" if address.is_loopback else "a link-local (cloud metadata)" if address.is_link_local
                    else "a private or reserved")
            raise UrlRefused(f"{parts.hostname} resolves to {address}, {kind} address: spokesync refuses it unless an "
                             "administrator allow-lists that range (SPOKESYNC_EXCHANGE_ALLOWED_CIDRS)")


def budget_retry(budget_s: float) -> Any:
    """exchangelib retry policy: honour ErrorServerBusy/BackOffMilliseconds while the run's budget lasts,
    then give up (RateLimitError) so that the run stops cleanly and the task is retried later."""
    from exchangelib.errors import RateLimitError, UnauthorizedError
    from exchangelib.protocol import FaultTolerance

    class BudgetRetry(FaultTolerance):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(max_wait=budget_s)
            self.deadline = time.monotonic() + budget_s

        def back_off(self, seconds: float | None) -> None:
            seconds = 5.0 if seconds is None else seconds
            if time.monotonic() + seconds > self.deadline:
                raise RateLimitError("Exchange asked to back off past the run's time budget", wait=seconds)
            super().back_off(seconds)

        def raise_response_errors(self, response: Any) -> None:
            if response.status_code == 401:  # FaultTolerance would retry a 401 for an hour
                raise UnauthorizedError(f"Invalid credentials for {response.url}")
            super().raise_response_errors(response)

    return BudgetRetry()


def make_account(settings: ExchangeSettings, password: str, config: Config, budget_s: float | None = None) -> Any:
    """An exchangelib Account; nothing is sent until the first operation."""
    from exchangelib import BASIC, DELEGATE, NTLM, OAUTH2, Account, Build, Configuration, Credentials, Version
    from exchangelib.protocol import BaseProtocol

    check_url(settings.ews_url, config)
    BaseProtocol.USERAGENT = "spokesync"
    major, minor = VERSIONS[settings.version]
    auth = {"NTLM": NTLM, "basic": BASIC, "OAuth 2.0": OAUTH2}[settings.auth_type]
    if settings.auth_type == "OAuth 2.0":
        from exchangelib import OAuth2Credentials

        client_id, _, secret = password.partition(":")
        credentials: Any = OAuth2Credentials(client_id=client_id, client_secret=secret, tenant_id=settings.username)
    else:
        credentials = Credentials(settings.username, password)
    policy = budget_retry(budget_s if budget_s is not None else config.run_budget_s * 0.5)
    ews_config = Configuration(service_endpoint=settings.ews_url, credentials=credentials,
                               version=Version(Build(major, minor)), auth_type=auth, retry_policy=policy,
                               max_connections=4)
    return Account(settings.smtp_address, config=ews_config, autodiscover=settings.autodiscover,
                   access_type=DELEGATE, default_timezone=_utc())


def _utc() -> Any:
    from exchangelib import EWSTimeZone

    return EWSTimeZone("UTC")


def describe(exc: BaseException, settings: ExchangeSettings) -> ConnectorError:
    """Translate an exchangelib/requests failure into a ConnectorError an administrator understands."""
    from exchangelib import errors as e

    host = urlsplit(settings.ews_url).hostname
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, e.UnauthorizedError):
        return CredentialBroken(f"wrong user or password: {host} refused the credentials of {settings.username}")
    if isinstance(exc, e.RateLimitError):
        return Throttled(f"{host} is throttling requests (asked to wait {exc.wait:.0f} s); the sync continues later",
                         retry_after_s=float(exc.wait or 60))
    if isinstance(exc, (e.ErrorServerBusy, e.ErrorInternalServerTransientError)):
        wait = float(getattr(exc, "back_off", None) or 60)
        return Throttled(f"{host} is busy ({type(exc).__name__}); the sync continues later", retry_after_s=wait)
    if isinstance(exc, (e.ErrorInvalidSchemaVersionForMailboxVersion, e.ErrorInvalidServerVersion,
                        e.ErrorIncorrectSchemaVersion)):
        return ConnectorError(f"wrong version: {host} does not accept {VERSION_LABELS[settings.version]} requests; "
                              "choose the server's Exchange version")
    if isinstance(exc, e.ErrorFolderNotFound):
        return ConnectorError("the Exchange folder no longer exists (deleted or moved, or the user lost access to it)")
    if isinstance(exc, e.ErrorAccessDenied):
        return ConnectorError(f"access denied: {settings.username} may not open this folder")
    if isinstance(exc, e.RedirectError):
        return ConnectorError(f"{host} answered with a redirect to {exc.url}; spokesync does not follow redirects: "
                              "enter the final EWS URL")
    if isinstance(exc, e.ErrorTimeoutExpired):
        return ConnectorError(f"host unreachable: no connection to {host} ({str(exc)[:160]})")
    if isinstance(exc, (e.SOAPError, e.MalformedResponseError)):
        return ConnectorError(f"not an EWS endpoint: {settings.ews_url} did not answer like Exchange Web Services")
    if isinstance(exc, e.ResponseMessageError):
        return ConnectorError(f"Exchange error: {type(exc).__name__}: {str(exc)[:200]}")
    if isinstance(exc, e.TransportError):
        text = str(exc)
        if "SSL" in text or "certificate" in text.lower():
            return ConnectorError(f"TLS failure talking to {host}: {text[:200]}")
        return ConnectorError(f"host unreachable: {host} ({text[:200]})")
    if isinstance(exc, e.EWSError):
        return ConnectorError(f"Exchange error: {type(exc).__name__}: {str(exc)[:200]}")
    return ConnectorError(f"Exchange request failed: {type(exc).__name__}: {str(exc)[:200]}")


@contextmanager
def translated(settings: ExchangeSettings) -> Iterator[None]:
    try:
        yield
    except ConnectorError:
        raise
    except Exception as exc:
        raise describe(exc, settings) from exc
