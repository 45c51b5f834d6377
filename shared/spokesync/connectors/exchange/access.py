"""Connecting to an Exchange server: the SSRF guard on the URL, the exchangelib
Account, a retry policy bounded by the run's budget, and error translation
into messages an administrator understands (never containing the password).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from spokesync.config import Config
from spokesync.connectors.exchange import guard
from spokesync.connectors.exchange.guard import UrlRefused, check_url  # noqa: F401 - re-exported
from spokesync.ports import ConnectorError, CredentialBroken, Throttled

log = logging.getLogger("spokesync.exchange")

VERSIONS = {"2010": (14, 3), "2013": (15, 0), "2016": (15, 1)}
VERSION_LABELS = {"2010": "Exchange 2010", "2013": "Exchange 2013", "2016": "Exchange 2016 or later"}
AUTH_TYPES = ("NTLM", "basic", "OAuth 2.0")


@dataclass(frozen=True)
class ExchangeSettings:
    ews_url: str
    username: str
    version: str = "2016"
    auth_type: str = "NTLM"
    mailbox: str = ""  # primary SMTP address of the mailbox (mailbox folders); defaults to the username
    autodiscover: bool = False
    # OAuth 2 (Exchange Online, client-credentials grant); the client secret is the credential's secret.
    tenant_id: str = ""
    client_id: str = ""
    token_url: str = ""  # empty: Microsoft identity platform's https://login.microsoftonline.com/<tenant>/...
    # several public-folder mailboxes: route requests with X-AnchorMailbox / X-PublicFolderMailbox (routing.py)
    public_folder_mailboxes: bool = False

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExchangeSettings:
        version = str(raw.get("version") or "2016")
        version = {"2019": "2016", "Exchange2016": "2016", "Exchange2013": "2013", "Exchange2010": "2010"}.get(version, version)
        if version not in VERSIONS:
            raise ConnectorError(f"Exchange version must be 2010, 2013 or 2016 (2016 or later), not {version!r}")
        auth = str(raw.get("auth_type") or "NTLM")
        auth = {"ntlm": "NTLM", "basic": "basic", "oauth": "OAuth 2.0", "oauth2": "OAuth 2.0",
                "oauth 2.0": "OAuth 2.0"}.get(auth.lower(), auth)
        if auth not in AUTH_TYPES:
            raise ConnectorError(f"authentication must be NTLM, basic or OAuth 2.0, not {auth!r}")
        autodiscover = bool(raw.get("autodiscover", False))
        if not raw.get("ews_url") and not autodiscover:
            raise ConnectorError("an Exchange credential needs the EWS URL (or autodiscover switched on)")
        if auth == "OAuth 2.0":
            missing = [n for n in ("tenant_id", "client_id") if not raw.get(n)]
            if not (raw.get("mailbox") or "@" in str(raw.get("username") or "")):
                missing.append("mailbox")
            if missing:
                raise ConnectorError("OAuth 2 for Exchange Online needs the directory (tenant) id, the application "
                                     f"(client) id and the mailbox address; missing: {', '.join(missing)}")
        elif not raw.get("username"):
            raise ConnectorError("an Exchange credential needs a user name")
        elif not raw.get("mailbox") and "@" not in str(raw.get("username")):
            # Never guessed from the user name and the EWS host: real servers answer ErrorNonExistentMailbox.
            raise ConnectorError("enter the mailbox's primary SMTP address (for example shared@example.com): "
                                 f"the user name {raw.get('username')!r} is not an e-mail address")
        return cls(ews_url=str(raw.get("ews_url") or ""), username=str(raw.get("username") or ""), version=version,
                   auth_type=auth, mailbox=str(raw.get("mailbox") or ""), autodiscover=autodiscover,
                   tenant_id=str(raw.get("tenant_id") or ""), client_id=str(raw.get("client_id") or ""),
                   token_url=str(raw.get("token_url") or ""),
                   public_folder_mailboxes=bool(raw.get("public_folder_mailboxes", False)))

    def to_dict(self) -> dict[str, Any]:
        """What the hub store keeps (never the password or client secret)."""
        out: dict[str, Any] = {"ews_url": self.ews_url, "username": self.username, "version": self.version,
                               "auth_type": self.auth_type, "mailbox": self.mailbox}
        if self.autodiscover:
            out["autodiscover"] = True
        if self.public_folder_mailboxes:
            out["public_folder_mailboxes"] = True
        if self.auth_type == "OAuth 2.0":
            out.update(tenant_id=self.tenant_id, client_id=self.client_id, token_url=self.token_url)
        return out

    @property
    def oauth_token_url(self) -> str:
        return self.token_url or f"https://login.microsoftonline.com/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def account_name(self) -> str:
        """Who is named in messages: the user, or the application for OAuth."""
        if self.auth_type == "OAuth 2.0":
            return f"application {self.client_id}"
        return self.username

    @property
    def smtp_address(self) -> str:
        """The mailbox's primary SMTP address: as entered, or the user name when it is an address (a UPN)."""
        if self.mailbox:
            return self.mailbox
        user = self.username.split("\\")[-1]
        if "@" not in user:
            raise ConnectorError("enter the mailbox's primary SMTP address (for example shared@example.com)")
        return user


def budget_retry(budget_s: float, oauth: bool = False) -> Any:
    """exchangelib retry policy: honour ErrorServerBusy/BackOffMilliseconds while the run's budget lasts,
    then give up (RateLimitError) so that the run stops cleanly and the task is retried later.

    Exchange sometimes answers 401 to a good credential when it wants a client to slow down (exchangelib's
    FaultTolerance retries every 401 for that reason, for up to an hour). Here the first 401 after a
    success is retried once on a fresh connection (exchangelib retries a TokenExpiredError at once with a
    new session: a new NTLM handshake, or a new OAuth token when the server dropped the old one before
    its expiry); a second 401 in a row is final, and only then is the credential reported broken.
    HTTP 404/405/410 without a SOAP body mean the URL is not an EWS endpoint (exchangelib would report
    an IIS 404 with "Connection: close" as ErrorServerBusy, i.e. throttling)."""
    from exchangelib.errors import RateLimitError, UnauthorizedError
    from exchangelib.protocol import FaultTolerance
    from oauthlib.oauth2 import TokenExpiredError

    class BudgetRetry(FaultTolerance):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(max_wait=budget_s)
            self.deadline = time.monotonic() + budget_s
            self.refused_tokens = 0

        def back_off(self, seconds: float | None) -> None:
            seconds = 5.0 if seconds is None else seconds
            if time.monotonic() + seconds > self.deadline:
                raise RateLimitError("Exchange asked to back off past the run's time budget", wait=seconds)
            super().back_off(seconds)

        def raise_response_errors(self, response: Any) -> None:
            if response.status_code == 401:  # FaultTolerance would retry a 401 for an hour
                if self.refused_tokens == 0:
                    self.refused_tokens += 1
                    raise TokenExpiredError(description="the server refused the credential once; retrying it "
                                            "on a fresh connection")
                raise UnauthorizedError(f"Invalid credentials for {response.url}")
            if response.status_code == 200:
                self.refused_tokens = 0
            if response.status_code in (404, 405, 410) and not (response.content or b"").lstrip().startswith(b"<?xml"):
                raise NotEws(response.status_code)
            super().raise_response_errors(response)

    return BudgetRetry()


class NotEws(Exception):
    """An HTTP answer that no EWS endpoint gives (404 and the like)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def oauth_credentials(settings: ExchangeSettings, client_secret: str) -> Any:
    """exchangelib's client-credentials OAuth2Credentials with the token URL made configurable.

    exchangelib derives the token URL from the tenant (`BaseOAuth2Credentials.token_url`, a property) and
    fetches the token with requests_oauthlib's BackendApplicationClient through a session that mounts the
    same HTTP adapter on that URL: overriding the property is enough to point it at another identity
    provider (the local server in tests). The URL is checked by the SSRF guard like the EWS URL."""
    from exchangelib import OAuth2Credentials

    class ConfiguredOAuth2Credentials(OAuth2Credentials):  # type: ignore[misc]
        def __init__(self, token_endpoint: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            # an instance attribute: part of equality and hash, hence of exchangelib's protocol cache key
            self.token_endpoint = token_endpoint

        @property
        def token_url(self) -> str:
            return self.token_endpoint

        def session_params(self) -> dict[str, Any]:
            # No auto_refresh_url: requests_oauthlib would "refresh" with a refresh_token grant, which the
            # client-credentials flow has no token for. An expired token raises TokenExpiredError instead,
            # and exchangelib opens a new session, which fetches a new token with the client secret.
            return {"token": self.access_token}

    return ConfiguredOAuth2Credentials(settings.oauth_token_url, client_id=settings.client_id,
                                       client_secret=client_secret, tenant_id=settings.tenant_id)


_AUTH_TYPED: list[Any] = []


def auth_typed_credentials(username: str, password: str, auth_type: str) -> Any:
    """exchangelib Credentials that carry the auth type. exchangelib caches one Protocol (its session and
    connection pool) per (EWS URL, credentials) and ignores the auth type, so an NTLM attempt after a Basic
    one with the same user and password reused the Basic session and sent the password in
    `Authorization: Basic`. The auth type is part of these credentials' equality and hash, hence of that
    cache key: one pool per auth type."""
    if not _AUTH_TYPED:
        from exchangelib import Credentials

        class AuthTypedCredentials(Credentials):  # type: ignore[misc]
            def __init__(self, username: str, password: str, auth_type: str) -> None:
                super().__init__(username, password)
                self.spokesync_auth_type = auth_type

            def __eq__(self, other: object) -> bool:
                return (isinstance(other, AuthTypedCredentials) and (self.username, self.password,
                        self.spokesync_auth_type) == (other.username, other.password, other.spokesync_auth_type))

            def __hash__(self) -> int:
                return hash((self.username, self.password, self.spokesync_auth_type))

        _AUTH_TYPED.append(AuthTypedCredentials)
    return _AUTH_TYPED[0](username, password, auth_type)


def make_account(settings: ExchangeSettings, password: str, config: Config, budget_s: float | None = None) -> Any:
    """An exchangelib Account. Nothing is sent until the first operation, unless the credential asks for
    autodiscover (then the autodiscover requests happen here, through the same guarded adapter)."""
    from exchangelib import (
        BASIC,
        DELEGATE,
        IMPERSONATION,
        NTLM,
        OAUTH2,
        Account,
        Build,
        Configuration,
        Version,
    )
    from exchangelib.protocol import BaseProtocol

    if settings.ews_url or not settings.autodiscover:
        check_url(settings.ews_url, config)
    guard.set_default_policy(config)
    guard.install()
    BaseProtocol.USERAGENT = "spokesync"
    major, minor = VERSIONS[settings.version]
    auth = {"NTLM": NTLM, "basic": BASIC, "OAuth 2.0": OAUTH2}[settings.auth_type]
    access_type = DELEGATE
    if settings.auth_type == "OAuth 2.0":
        check_url(settings.oauth_token_url, config, what="OAuth token URL")
        credentials: Any = oauth_credentials(settings, password)
        access_type = IMPERSONATION  # an application token acts on the mailbox by impersonation
    else:
        credentials = auth_typed_credentials(settings.username, password, settings.auth_type)
    policy = budget_retry(budget_s if budget_s is not None else config.run_budget_s * 0.5,
                          oauth=settings.auth_type == "OAuth 2.0")
    ews_config = Configuration(service_endpoint=settings.ews_url or None, credentials=credentials,
                               version=Version(Build(major, minor)), auth_type=auth, retry_policy=policy,
                               max_connections=4)
    if not settings.autodiscover:
        return Account(settings.smtp_address, config=ews_config, autodiscover=False, access_type=access_type,
                       default_timezone=_utc())
    with translated(settings):
        account = Account(settings.smtp_address, config=ews_config, autodiscover=True, access_type=access_type,
                          default_timezone=_utc())
    # The endpoint came from the network: it passes the same guard as a typed-in URL.
    check_url(account.protocol.service_endpoint, config, what="EWS URL found by autodiscover")
    return account


def _utc() -> Any:
    from exchangelib import EWSTimeZone

    return EWSTimeZone("UTC")


def describe(exc: BaseException, settings: ExchangeSettings) -> ConnectorError:
    """Translate an exchangelib/requests failure into a ConnectorError an administrator understands."""
    from exchangelib import errors as e

    host = urlsplit(settings.ews_url).hostname
    if isinstance(exc, ConnectorError):
        return exc
    oauth = _describe_oauth(exc, settings)
    if oauth is not None:
        return oauth
    if isinstance(exc, NotEws):
        return ConnectorError(f"this server answers but is not EWS: {settings.ews_url} gave HTTP {exc.status}; "
                              "the EWS URL usually ends in /EWS/Exchange.asmx", code="not_ews")
    if isinstance(exc, e.UnauthorizedError):
        if settings.auth_type == "OAuth 2.0":
            return CredentialBroken(f"access token refused: {host} did not accept the token of application "
                                    f"{settings.client_id}; grant it the Exchange Web Services application "
                                    "permission (full_access_as_app) with administrator consent")
        return CredentialBroken(f"wrong user or password: {host} refused the credentials of {settings.username}",
                                code="wrong_password")
    if isinstance(exc, e.AutoDiscoverFailed):
        return ConnectorError(f"autodiscover failed for {settings.smtp_address}: no Autodiscover service answered "
                              "for that e-mail domain; enter the EWS URL instead", code="autodiscover_failed")
    if isinstance(exc, e.RateLimitError):
        return Throttled(f"{host} is throttling requests (asked to wait {exc.wait:.0f} s); the sync continues later",
                         retry_after_s=float(exc.wait or 60))
    if isinstance(exc, (e.ErrorServerBusy, e.ErrorInternalServerTransientError)):
        wait = float(getattr(exc, "back_off", None) or 60)
        return Throttled(f"{host} is busy; the sync continues later by itself", retry_after_s=wait)
    if isinstance(exc, (e.ErrorInvalidSchemaVersionForMailboxVersion, e.ErrorInvalidServerVersion,
                        e.ErrorIncorrectSchemaVersion)):
        return ConnectorError(f"wrong version: {host} does not accept {VERSION_LABELS[settings.version]} requests; "
                              "choose the server's Exchange version", code="wrong_version")
    if isinstance(exc, e.ErrorNonExistentMailbox):
        address = settings.mailbox or settings.username
        return ConnectorError(f"no such mailbox: {host} has no mailbox with the address {address}; "
                              "enter the mailbox's primary SMTP address", code="no_such_mailbox")
    if isinstance(exc, e.ErrorSchemaValidation):
        return ConnectorError(f"{host} refused a request spokesync sent as not matching the Exchange schema; "
                              "this is a spokesync bug: report it with the server's Exchange version", code="schema_refused")
    if isinstance(exc, e.ErrorFolderNotFound):
        return ConnectorError("the Exchange folder no longer exists (deleted or moved, or the user lost access to it)",
                              code="folder_not_found")
    if isinstance(exc, e.ErrorAccessDenied):
        return ConnectorError(f"access denied: {settings.account_name} may not open this folder", code="access_denied")
    if isinstance(exc, e.RedirectError):
        return ConnectorError(f"{host} answered with a redirect to {exc.url}; spokesync does not follow redirects: "
                              "enter the final EWS URL")
    if isinstance(exc, e.ErrorTimeoutExpired):
        text = str(exc)
        if any(s in text for s in _DROPPED):
            return ConnectorError(f"connection problem: {host} closed the connection without answering "
                                  "(a proxy, load balancer or the server dropped it); the sync tries again later",
                                  code="connection_dropped")
        if "timed out" in text.lower() or "timeout" in text.lower():
            return ConnectorError(f"host unreachable: {host} did not answer in time (a firewall may drop the "
                                  "connection, or the server is down)", code="host_unreachable")
        return ConnectorError(f"host unreachable: no connection to {host} (the connection was refused or there "
                              "is no route to it: check the host name and port, and that the server is running)",
                              code="host_unreachable")
    if isinstance(exc, e.SOAPError) and "ErrorPublicFolderOperationFailed" in str(exc):
        # (exchangelib has no class for this code)
        return ConnectorError(f"{host} refused a public-folder request that was not routed to its public folder "
                              "mailbox: switch on the several-public-folder-mailboxes setting of the credential",
                              code="public_folder_routing")
    if isinstance(exc, (e.SOAPError, e.MalformedResponseError)):
        return ConnectorError(f"this server answers but is not EWS: {settings.ews_url} did not answer like "
                              "Exchange Web Services; the EWS URL usually ends in /EWS/Exchange.asmx", code="not_ews")
    if isinstance(exc, e.ResponseMessageError):
        return ConnectorError(f"Exchange error: the server refused the request ({type(exc).__name__}); "
                              "check the folder and the account's permissions, then try again", code="exchange_refused")
    if isinstance(exc, e.TransportError):
        text = str(exc)
        if "wrong_version_number" in text.lower() or "wrong version number" in text.lower():
            port = urlsplit(settings.ews_url).port or 443
            return ConnectorError(f"TLS failure talking to {host}: port {port} does not speak https (TLS); the "
                                  "address may need another port, or http:// for a test server", code="tls_failure")
        if "hostname" in text.lower() and "match" in text.lower():
            return ConnectorError(f"TLS failure talking to {host}: its certificate is issued for another name; "
                                  "use the name on the certificate in the EWS URL", code="tls_failure")
        if "SSL" in text or "certificate" in text.lower():
            return ConnectorError(f"TLS failure talking to {host}: its certificate is not trusted (self-signed, "
                                  "expired or from an unknown authority); install the issuing CA or fix the "
                                  "certificate", code="tls_failure")
        return ConnectorError(f"host unreachable: no connection to {host} (check the host name and port)",
                              code="host_unreachable")
    if isinstance(exc, e.EWSError):
        return ConnectorError(f"Exchange error: the server answered with {type(exc).__name__}; try again later, "
                              "and if it keeps happening ask the Exchange administrator", code="exchange_refused")
    log.warning("unexpected Exchange failure", extra={"error": type(exc).__name__})
    return ConnectorError("Exchange request failed unexpectedly; try again, and if it keeps failing run the "
                          "server with -v and look at its log", code="exchange_failed")


_DROPPED = ("RemoteDisconnected", "Connection aborted", "ConnectionResetError", "Connection reset", "BadStatusLine")

# Microsoft identity platform's answers to a client-credentials request, in an administrator's words.
_OAUTH_ERRORS = {
    "invalid_client": "wrong client secret: the identity provider refused the secret of application {client}",
    "unauthorized_client": "unknown application: the identity provider does not know application {client} "
                           "in tenant {tenant}",
    "invalid_scope": "the identity provider refused the Exchange scope for application {client}",
}


def _describe_oauth(exc: BaseException, settings: ExchangeSettings) -> ConnectorError | None:
    """Failures of the token request (OAuth 2 client credentials); None when `exc` is not one."""
    if settings.auth_type != "OAuth 2.0":
        return None
    import requests
    from oauthlib.oauth2.rfc6749 import errors as oe

    token_host = urlsplit(settings.oauth_token_url).hostname
    if isinstance(exc, oe.InsecureTransportError):
        return ConnectorError("OAuth 2 needs https:// for both the EWS URL and the token URL")
    if isinstance(exc, oe.OAuth2Error):
        template = _OAUTH_ERRORS.get(exc.error)
        detail = (exc.description or "")[:200]
        if template is None and "AADSTS90002" in detail:
            template = "unknown tenant: the identity provider does not know directory {tenant}"
        if template is None:
            template = "the identity provider refused the token request ({error})"
        text = template.format(client=settings.client_id, tenant=settings.tenant_id, error=exc.error)
        return CredentialBroken(f"{text}" + (f": {detail}" if detail else ""))
    if isinstance(exc, requests.exceptions.SSLError):
        return ConnectorError(f"TLS failure talking to the OAuth token URL {token_host}: no trusted secure "
                              "connection (check the URL and its certificate)", code="tls_failure")
    if isinstance(exc, requests.exceptions.RequestException) and exc.request is not None \
            and exc.request.url and exc.request.url.startswith(settings.oauth_token_url):
        return ConnectorError(f"host unreachable: no connection to the OAuth token URL {token_host}; check the "
                              "URL and the network", code="host_unreachable")
    return None


@contextmanager
def translated(settings: ExchangeSettings) -> Iterator[None]:
    try:
        yield
    except ConnectorError:
        raise
    except Exception as exc:
        raise describe(exc, settings) from exc
