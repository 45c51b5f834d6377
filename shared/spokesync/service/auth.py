"""Who may call the private functions.

- `sync_spoke` and the scheduler entry (`check_task_caller`): in `oidc` mode
  only a Google-signed identity token (Cloud Tasks / Cloud Scheduler mint
  it) for `oidc_audience` whose `email` is `tasks_service_account`; in
  `token` mode (one machine, local servers) `Authorization: Bearer
  <task_token>`.
- `setup` (`check_admin`): in `oidc` mode an IAP assertion
  (`X-Goog-IAP-JWT-Assertion`, audience `iap_audience`) or a Google identity
  token for `public_url` (never the sync function's audience, never the
  tasks service account), from an address in `admin_emails`; nobody at all
  when that list is empty (a setup message says what to configure). In
  `token` mode `Authorization: Bearer <admin_token>` or
  `X-Spokesync-Admin-Token`.

Tokens are compared in constant time and never logged. Signing keys are
fetched from the configured certificate URLs and cached for an hour.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spokesync.config import Config

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
IAP_ISSUER = "https://cloud.google.com/iap"
CERTS_TTL_S = 3600.0


class Unauthorized(Exception):
    """No valid credentials (HTTP 401)."""


class Forbidden(Exception):
    """Valid credentials of someone not allowed (HTTP 403)."""


@dataclass(frozen=True)
class Caller:
    kind: str  # "task" | "admin"
    identity: str  # an email, or "token"


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""


def _bearer(headers: Mapping[str, str]) -> str:
    value = _header(headers, "Authorization")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


# ------------------------------------------------------------- certificates

_certs: dict[str, tuple[float, dict[str, Any]]] = {}
_certs_lock = threading.Lock()


def _fetch_certs(url: str) -> dict[str, Any]:
    now = time.monotonic()
    with _certs_lock:
        cached = _certs.get(url)
        if cached is not None and now - cached[0] < CERTS_TTL_S:
            return cached[1]
    import requests

    response = requests.get(url, timeout=10)
    response.raise_for_status()
    certs = json.loads(response.content)
    with _certs_lock:
        _certs[url] = (now, certs)
    return certs


def forget_certs() -> None:
    with _certs_lock:
        _certs.clear()


def verify_google_jwt(token: str, audience: str | list[str], certs_url: str) -> dict[str, Any]:
    """Signature, expiry and audience of a JWT signed by a key at `certs_url`."""
    from google.auth import exceptions, jwt

    if not token:
        raise Unauthorized("missing bearer token")
    try:
        certs = _fetch_certs(certs_url)
    except Exception as err:  # noqa: BLE001 - network trouble is a 401 to the caller, logged by them
        raise Unauthorized(f"could not fetch signing keys: {type(err).__name__}") from None
    try:
        claims = jwt.decode(token, certs=certs, audience=audience, clock_skew_in_seconds=30)
    except (ValueError, exceptions.GoogleAuthError) as err:
        # one refetch: Google rotates keys
        forget_certs()
        try:
            claims = jwt.decode(token, certs=_fetch_certs(certs_url), audience=audience, clock_skew_in_seconds=30)
        except (ValueError, exceptions.GoogleAuthError):
            raise Unauthorized(f"invalid token: {str(err).split(':')[0]}") from None
        except Exception:  # noqa: BLE001
            raise Unauthorized("invalid token") from None
    return dict(claims)


# ----------------------------------------------------------------- checks


def check_task_caller(config: Config, headers: Mapping[str, str]) -> Caller:
    """Cloud Tasks / Cloud Scheduler (or the local shared token). The token's
    audience may be `sync_spoke`'s (tasks) or the scheduler function's URL."""
    token = _bearer(headers)
    if config.effective_auth_mode == "token":
        if not config.task_token:
            raise Unauthorized("no task token is configured (SPOKESYNC_TASK_TOKEN)")
        if not _same(token, config.task_token):
            raise Unauthorized("wrong or missing task token")
        return Caller("task", "token")
    audience = [a for a in (config.oidc_audience or config.sync_url, config.scheduler_audience) if a]
    if not audience or not config.tasks_service_account:
        raise Unauthorized("OIDC is not configured (SPOKESYNC_OIDC_AUDIENCE, SPOKESYNC_TASKS_SERVICE_ACCOUNT)")
    claims = verify_google_jwt(token, audience, config.oidc_certs_url)
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise Unauthorized("token not issued by Google")
    email = str(claims.get("email", "")).lower()
    if not claims.get("email_verified") or email != config.tasks_service_account.lower():
        raise Forbidden("this identity may not run syncs")
    return Caller("task", email)


def check_admin(config: Config, headers: Mapping[str, str]) -> Caller:
    """An administrator of the setup API."""
    if config.effective_auth_mode == "token":
        given = _bearer(headers) or _header(headers, "X-Spokesync-Admin-Token")
        if not config.admin_token:
            raise Unauthorized("no admin token is configured (SPOKESYNC_ADMIN_TOKEN)")
        if not _same(given, config.admin_token):
            raise Unauthorized("wrong or missing admin token")
        return Caller("admin", "token")
    if not config.admin_emails:
        raise Forbidden("no administrator is configured: set SPOKESYNC_ADMIN_EMAILS (terraform variable "
                        "setup_admin_emails) to the Google accounts that may use setup, then deploy again")
    assertion = _header(headers, "X-Goog-IAP-JWT-Assertion")
    if assertion and config.iap_audience:
        claims = verify_google_jwt(assertion, config.iap_audience, config.iap_certs_url)
        if claims.get("iss") != IAP_ISSUER:
            raise Unauthorized("IAP assertion from an unexpected issuer")
    else:
        # setup's own address only: a token minted for sync_spoke (Cloud Tasks) is not an admin's
        if not config.public_url:
            raise Unauthorized("setup's address is not configured (SPOKESYNC_PUBLIC_URL)")
        claims = verify_google_jwt(_bearer(headers), config.public_url, config.oidc_certs_url)
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthorized("token not issued by Google")
        if not claims.get("email_verified"):
            raise Forbidden("unverified email")
    email = str(claims.get("email", "")).lower()
    if not email:
        raise Forbidden("the token names no identity")
    if config.tasks_service_account and email == config.tasks_service_account.lower():
        raise Forbidden("the Cloud Tasks / Cloud Scheduler identity is not an administrator")
    if email not in config.admin_emails:
        raise Forbidden(f"{email} is not a spokesync administrator (SPOKESYNC_ADMIN_EMAILS)")
    return Caller("admin", email)
