"""The web UI's guards: administrator sessions, CSRF tokens, OAuth state.

Nothing here keeps server-side state, so it works the same on one machine
and across many function instances:

- Administrator: every request first goes through `auth.check_admin` (IAP
  assertion or identity token in the cloud; the admin token as a header
  locally). In token mode a browser signs in once with the admin token and
  gets a session cookie: `<expiry>.<nonce>.<HMAC>` keyed by a hash of the
  admin token, so changing the token signs every browser out.
- CSRF: a double-submit token. A random value lives in an HttpOnly,
  SameSite=Strict cookie and in a hidden field of every form; a POST must
  carry both, equal (constant-time comparison), and must not come from
  another site (`Origin` / `Sec-Fetch-Site`).
- OAuth `state`: random, kept in an HttpOnly cookie for ten minutes and
  compared on the callback; the callback is refused without it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

SESSION_COOKIE = "spokesync_session"
CSRF_COOKIE = "spokesync_csrf"
OAUTH_COOKIE = "spokesync_oauth"
CSRF_FIELD = "csrf_token"
SESSION_TTL_S = 12 * 3600
OAUTH_TTL_S = 600


def _key(admin_token: str) -> bytes:
    return hashlib.sha256(b"spokesync-web-session\0" + admin_token.encode()).digest()


def _sign(key: bytes, payload: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, payload.encode(), hashlib.sha256).digest()).decode().rstrip("=")


def new_session(admin_token: str, now: float | None = None, ttl_s: int = SESSION_TTL_S) -> str:
    payload = f"{int((now or time.time()) + ttl_s)}.{secrets.token_urlsafe(16)}"
    return f"{payload}.{_sign(_key(admin_token), payload)}"


def valid_session(admin_token: str, cookie: str | None, now: float | None = None) -> bool:
    if not admin_token or not cookie or cookie.count(".") != 2:
        return False
    expiry, nonce, signature = cookie.split(".")
    if not hmac.compare_digest(signature, _sign(_key(admin_token), f"{expiry}.{nonce}")):
        return False
    try:
        return int(expiry) > (now or time.time())
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def cross_site(headers: Mapping[str, str], host_url: str) -> bool:
    """True when the browser says the request comes from another site."""
    if headers.get("Sec-Fetch-Site", "") == "cross-site":
        return True
    origin = headers.get("Origin")
    if origin and origin != "null":
        mine, theirs = urlsplit(host_url), urlsplit(origin)
        return (mine.scheme, mine.netloc) != (theirs.scheme, theirs.netloc)
    return origin == "null"


def safe_next(target: str | None, default: str = "/setup/") -> str:
    """Only a path inside the UI: no open redirect after sign-in."""
    if not target or not target.startswith("/setup/") or target.startswith("//") or "\\" in target:
        return default
    return target
