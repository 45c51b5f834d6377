"""Microsoft Graph over HTTP: app-only tokens from MSAL, JSON requests, `$batch`, throttling.

- Tokens: `msal.ConfidentialClientApplication` with a client secret or a certificate (private
  key + certificate PEM; MSAL signs the client assertion with the certificate's SHA-256
  thumbprint). MSAL keeps the token in memory and renews it before it expires.
- Every request says `Prefer: IdType="ImmutableId"` (ids that survive moves between folders).
- 429 and 503 are retried after `Retry-After` while the run's retry budget lasts
  (`graph_retry_budget_s`); past it, `Throttled` stops the run cleanly ("Microsoft Graph
  throttling guidance"). Inside a `$batch`, only the throttled members are sent again.
- At most 4 requests are in flight per mailbox (Outlook's MailboxConcurrency limit), across
  every connector of this process.
- `$batch` holds at most 20 requests (JSON batching); responses are matched by id, not order.
- Every answer, msal's sign-in included, is bounded by `max_response_bytes` (`http_limits`): a hostile
  server or proxy cannot make a run read an endless or inflating body.

Error texts are for administrators and never include the secret.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spokesync.ports import ConnectorError, CredentialBroken, Throttled

if TYPE_CHECKING:
    import requests

    from spokesync.config import Config

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
MAX_BATCH = 20
MAILBOX_CONCURRENCY = 4
PREFER_IMMUTABLE = 'IdType="ImmutableId"'

_semaphores: dict[str, threading.BoundedSemaphore] = {}
_semaphores_lock = threading.Lock()
_apps: dict[str, Any] = {}  # msal applications by _app_key (never holds a secret as a key: a digest)
_apps_lock = threading.Lock()


def mailbox_semaphore(key: str) -> threading.BoundedSemaphore:
    with _semaphores_lock:
        sem = _semaphores.get(key)
        if sem is None:
            sem = _semaphores[key] = threading.BoundedSemaphore(MAILBOX_CONCURRENCY)
        return sem


@dataclass(frozen=True)
class GraphCredential:
    tenant: str  # tenant id (GUID) or a verified domain
    client_id: str
    secret: str = ""  # client secret, or empty with a certificate
    private_key_pem: str = ""
    certificate_pem: str = ""

    def msal_credential(self) -> Any:
        if self.private_key_pem:
            return {"private_key": self.private_key_pem, "public_certificate": self.certificate_pem}
        return self.secret


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code") or "")
        return ""

    @property
    def message(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("message") or "")
        return ""


class _Session:
    """A requests session whose CA bundle wins over REQUESTS_CA_BUNDLE (per-request `verify`) and whose
    answers are size-capped."""

    def __init__(self, ca_bundle: str, max_response_bytes: int) -> None:
        import requests
        import requests.adapters

        from spokesync.http_limits import CappedAdapterMixin

        class CappedAdapter(CappedAdapterMixin, requests.adapters.HTTPAdapter):
            pass

        CappedAdapter.max_response_bytes = max_response_bytes
        self.session = requests.Session()
        for prefix in ("https://", "http://"):
            self.session.mount(prefix, CappedAdapter())
        self.verify: str | bool = ca_bundle or True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)

    def request(self, method: str, url: str, **kw: Any) -> requests.Response:
        kw.setdefault("verify", self.verify)
        kw.setdefault("timeout", 30)
        return self.session.request(method, url, **kw)

    def get(self, url: str, **kw: Any) -> requests.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> requests.Response:
        return self.request("POST", url, **kw)

    def close(self) -> None:
        self.session.close()


def describe_token_error(result: dict[str, Any], credential: GraphCredential) -> ConnectorError:
    """An administrator's message for a refused token request (AADSTS codes)."""
    codes = set(result.get("error_codes") or [])
    if 7000215 in codes or 7000222 in codes:
        return CredentialBroken("wrong client secret: Microsoft Entra refused it (AADSTS7000215). Copy the secret's "
                                "Value (not its Secret ID) from the app registration's Certificates & secrets page, "
                                "or create a new one.")
    if 700016 in codes:
        return CredentialBroken(f"wrong application or tenant: no app with client id {credential.client_id} in tenant "
                                f"{credential.tenant} (AADSTS700016). Check the Application (client) ID and the "
                                "Directory (tenant) ID on the app registration's Overview page.")
    if 700027 in codes or 700024 in codes:
        return CredentialBroken("the certificate was refused (AADSTS700027): upload this certificate to the app "
                                "registration's Certificates & secrets page, or choose the matching private key.")
    if 90002 in codes:
        return CredentialBroken(f"wrong tenant: Microsoft Entra does not know tenant {credential.tenant} "
                                "(AADSTS90002). Use the Directory (tenant) ID from the app registration's Overview page.")
    return CredentialBroken("Microsoft Entra refused the sign-in of the app "
                            f"({result.get('error') or 'unknown error'}). Check the tenant, client id and secret.")


class GraphClient:
    def __init__(self, credential: GraphCredential, config: Config, mailbox: str,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.credential = credential
        self.config = config
        self.api = config.graph_api_root.rstrip("/")
        self.http = _Session(config.graph_ca_bundle, config.max_response_bytes)
        self.mailbox = mailbox.lower()
        self.semaphore = mailbox_semaphore(f"{self.api}|{self.mailbox}")
        self.clock = clock
        self.sleep = sleep
        self.waited_s = 0.0
        self.calls = 0  # HTTP requests to Graph (a $batch counts once)
        self._app: Any = None

    # ------------------------------------------------------------ tokens
    def _msal(self) -> Any:
        if self._app is None:
            key = self._app_key()
            with _apps_lock:
                self._app = _apps.get(key)
        if self._app is None:
            import msal

            host = self.config.graph_authority_host.rstrip("/")
            authority = f"{host}/{urllib.parse.quote(self.credential.tenant)}"
            try:
                self._app = msal.ConfidentialClientApplication(
                    self.credential.client_id, client_credential=self.credential.msal_credential(),
                    authority=authority, http_client=self.http,
                    # a non-Microsoft authority host (a local server) is known to the administrator
                    instance_discovery=None if host == "https://login.microsoftonline.com" else False)
            except ValueError as exc:
                if "AADSTS90002" in str(exc) or "invalid_tenant" in str(exc) or "OIDC Discovery" in str(exc) \
                        or "authority configuration" in str(exc):
                    raise describe_token_error({"error_codes": [90002]}, self.credential) from None
                raise CredentialBroken("the certificate or private key could not be read: paste the PEM "
                                       "private key and its certificate") from None
            except Exception as exc:  # noqa: BLE001 - network failures reaching login.microsoftonline.com
                raise ConnectorError(f"could not reach Microsoft Entra ({type(exc).__name__}): check the network "
                                     "and try again") from None
        return self._app

    def _app_key(self) -> str:
        """One MSAL application (and its token cache) per authority, app and secret in this process:
        runs reuse a token until MSAL renews it, instead of signing in for every run."""
        import hashlib

        c = self.credential
        raw = "\0".join((self.config.graph_authority_host, self.config.graph_ca_bundle, c.tenant, c.client_id,
                         c.secret, c.private_key_pem, c.certificate_pem))
        return hashlib.sha256(raw.encode()).hexdigest()

    def _remember(self) -> None:
        if self._app is not None:
            with _apps_lock:
                _apps[self._app_key()] = self._app

    def token(self) -> str:
        result = self._msal().acquire_token_for_client(scopes=[GRAPH_SCOPE])
        if "access_token" not in result:
            with _apps_lock:
                _apps.pop(self._app_key(), None)
            raise describe_token_error(result, self.credential)
        self._remember()
        return str(result["access_token"])

    def token_roles(self) -> set[str] | None:
        """The application permissions in the token (its `roles` claim), as granted by an administrator;
        None when the token cannot be read (Microsoft keeps the right to make tokens opaque: Graph's
        own 403 then says what is missing)."""
        import base64
        import json

        token = self.token()
        try:
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return None
        if not isinstance(claims, dict):
            return None
        return set(claims.get("roles") or [])

    # ------------------------------------------------------------ requests
    def _wait(self, retry_after: float) -> None:
        if self.waited_s + retry_after > self.config.graph_retry_budget_s:
            raise Throttled(f"Microsoft 365 is throttling this mailbox (retry after {retry_after:.0f} s): "
                            "the sync continues later", retry_after_s=max(retry_after, 1.0))
        self.waited_s += retry_after
        self.sleep(retry_after)

    def url(self, path: str) -> str:
        return path if path.startswith("https://") or path.startswith("http://") else f"{self.api}/{path.lstrip('/')}"

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Response:
        import requests

        refreshed = False
        while True:
            all_headers = {"Authorization": f"Bearer {self.token()}", "Prefer": PREFER_IMMUTABLE,
                           "Accept": "application/json", **(headers or {})}
            if "Prefer" in (headers or {}):
                all_headers["Prefer"] = f"{PREFER_IMMUTABLE}, {headers['Prefer']}"  # type: ignore[index]
            try:
                with self.semaphore:
                    self.calls += 1
                    resp = self.http.request(method, self.url(path), json=body, headers=all_headers)
            except requests.RequestException as exc:
                raise ConnectorError(f"could not reach Microsoft Graph ({type(exc).__name__})") from None
            except ConnectorError:
                raise  # ResponseTooLarge / UnreadableResponse name the server and say what to do
            try:
                payload = resp.json() if resp.content else None
            except ValueError:
                payload = None
            out = Response(resp.status_code, dict(resp.headers), payload)
            if out.status in (429, 503, 504):
                self._wait(_retry_after(out.headers))
                continue
            if out.status == 401 and not refreshed and out.code == "InvalidAuthenticationToken":
                refreshed = True
                with _apps_lock:
                    _apps.pop(self._app_key(), None)
                self._app = None  # a token revoked early: sign in again once
                continue
            return out

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def batch(self, requests_: Sequence[dict[str, Any]]) -> dict[str, Response]:
        """Run requests ({"id", "method", "url", "body"?, "headers"?}) in `$batch`es of ≤ 20.

        Throttled members are sent again after the largest Retry-After, inside the budget.
        """
        out: dict[str, Response] = {}
        pending = list(requests_)
        while pending:
            chunk, pending = pending[:MAX_BATCH], pending[MAX_BATCH:]
            retry: list[dict[str, Any]] = []
            delay = 0.0
            for req in chunk:
                req.setdefault("headers", {})
                req["headers"].setdefault("Prefer", PREFER_IMMUTABLE)
                if req.get("body") is not None:
                    req["headers"].setdefault("Content-Type", "application/json")
            resp = self.request("POST", "$batch", {"requests": chunk})
            if not resp.ok or not isinstance(resp.body, dict):
                raise ConnectorError(f"Microsoft Graph refused a batch ({resp.status} {resp.code})")
            by_id = {str(r.get("id")): r for r in resp.body.get("responses") or []}
            for req in chunk:
                member = by_id.get(str(req["id"]))
                if member is None:
                    raise ConnectorError("Microsoft Graph left a batch request unanswered")
                result = Response(int(member.get("status") or 0), dict(member.get("headers") or {}),
                                  member.get("body"))
                if result.status in (429, 503, 504):
                    retry.append(req)
                    delay = max(delay, _retry_after(result.headers))
                else:
                    out[str(req["id"])] = result
            if retry:
                self._wait(delay)
                pending = retry + pending
        return out

    def pages(self, path: str, headers: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], Response]:
        """Follow @odata.nextLink to the end; returns (items, last response)."""
        items: list[dict[str, Any]] = []
        url = path
        while True:
            resp = self.get(url, headers=headers)
            if not resp.ok:
                return items, resp
            items.extend(resp.body.get("value") or [])
            url = resp.body.get("@odata.nextLink")
            if not url:
                return items, resp


def _retry_after(headers: dict[str, str]) -> float:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return 5.0
    return 5.0
