"""The web UI's guards: administrator sessions, CSRF tokens, OAuth state.

The guards keep almost no server-side state (only the list of sessions
signed out before they expired), so they work the same on one machine and
across many function instances:

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
- Host: every request's `Host` (and `X-Forwarded-Host`) must name the
  configured public URL (`SPOKESYNC_PUBLIC_URL`, or a name in
  `SPOKESYNC_ALLOWED_HOSTS`): a DNS-rebinding page that points its own name at
  a local proxy is refused. When the public URL is a loopback address, any
  loopback name is accepted (a rebinding page cannot make the browser send
  one).
- Cookies are named `__Host-...` (Secure, Path=/, no Domain) over https; on
  plain http (the one-machine server on 127.0.0.1) browsers refuse that
  prefix, so the plain names are used there (decision record
  2026-12-01-security-hardening).
- Logout revokes the session on the server: its nonce is kept until the
  session would have expired (`Revocations`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SESSION_COOKIE = "spokesync_session"
CSRF_COOKIE = "spokesync_csrf"
OAUTH_COOKIE = "spokesync_oauth"
CSRF_FIELD = "csrf_token"
FLASH_COOKIE = "spokesync_flash"
SESSION_TTL_S = 12 * 3600
OAUTH_TTL_S = 600
HOST_PREFIX = "__Host-"
# Request bodies: the largest form or JSON body accepted (a service-account key is ~2.3 KB).
MAX_BODY_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
# A header a cross-site form cannot send (a custom header needs a CORS preflight nobody answers):
# an /api write carries it or `Content-Type: application/json`.
API_CLIENT_HEADER = "X-Spokesync-Client"


def cookie_name(base: str, secure: bool) -> str:
    """`__Host-<base>` over https; the plain name on http (browsers refuse the prefix there)."""
    return HOST_PREFIX + base if secure else base


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


def session_nonce(cookie: str | None) -> str:
    return cookie.split(".")[1] if cookie and cookie.count(".") == 2 else ""


def session_expiry(cookie: str | None) -> float:
    try:
        return float(cookie.split(".")[0]) if cookie else 0.0
    except ValueError:
        return 0.0


class Revocations:
    """Sessions signed out before they expired: nonce -> expiry, in a 0600 file in the data directory
    (sessions exist in token mode only, the one-machine server)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _load(self) -> dict[str, float]:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): float(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def revoke(self, cookie: str | None, now: float | None = None) -> None:
        nonce = session_nonce(cookie)
        if not nonce:
            return
        now = now or time.time()
        with self._lock:
            data = {k: v for k, v in self._load().items() if v > now}  # forget expired sessions
            data[nonce] = session_expiry(cookie) or now + SESSION_TTL_S
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps(data))
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)

    def revoked(self, cookie: str | None) -> bool:
        nonce = session_nonce(cookie)
        with self._lock:
            return bool(nonce) and nonce in self._load()


# ------------------------------------------------------------------ Host and Origin


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_port(value: str, scheme: str) -> tuple[str, int] | None:
    parts = urlsplit("//" + value.strip())
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path not in ("", "/"):
        return None
    return parts.hostname.lower().rstrip("."), port or _default_port(scheme)


def allowed_host(value: str, public_url: str, extra_hosts: tuple[str, ...] = ()) -> bool:
    """Whether a `Host` header value names this deployment (see the module doc)."""
    mine = urlsplit(public_url)
    scheme = mine.scheme or "http"
    given = _host_port(value, scheme)
    if given is None:
        return False
    host, port = given
    if mine.hostname and host == mine.hostname.lower() and port == (mine.port or _default_port(scheme)):
        return True
    if host in {h.lower().rstrip(".") for h in extra_hosts}:
        return True
    return _loopback(mine.hostname) and _loopback(host)


def host_problem(headers: Mapping[str, str], public_url: str, extra_hosts: tuple[str, ...] = ()) -> str | None:
    """Why the request's Host / X-Forwarded-Host does not name this deployment (None: it does)."""
    host = headers.get("Host", "")
    forwarded = [h for h in (headers.get("X-Forwarded-Host") or "").split(",") if h.strip()]
    for value in [host, *forwarded]:
        if not allowed_host(value, public_url, extra_hosts):
            shown = value.strip()[:80] or "nothing"
            return (f"this request was addressed to {shown!r}, not to this spokesync ({public_url}). Open "
                    "spokesync at its own address; if that is its address, add the name to "
                    "SPOKESYNC_PUBLIC_URL or SPOKESYNC_ALLOWED_HOSTS")
    return None


def origin_problem(headers: Mapping[str, str], public_url: str, extra_hosts: tuple[str, ...] = ()) -> str | None:
    """Why the browser says this request comes from another site (None: same site or not a browser)."""
    refused = ("this request came from another web site, so it was refused. Use spokesync's own pages "
               f"at {public_url}")
    if headers.get("Sec-Fetch-Site", "").lower() in ("cross-site", "same-site"):
        return refused
    origin = headers.get("Origin")
    if origin is None or origin == "":
        return None
    theirs, mine = urlsplit(origin), urlsplit(public_url)
    if origin == "null" or theirs.scheme not in ("http", "https") or not theirs.netloc:
        return refused
    if theirs.scheme != mine.scheme and not (_loopback(mine.hostname) and _loopback(theirs.hostname)):
        return refused
    given = _host_port(theirs.netloc, theirs.scheme)
    if given is None:
        return refused
    if given[0] in {h.lower().rstrip(".") for h in extra_hosts}:
        return None
    # an Origin names its port: another web app on this machine is another origin
    same_port = given[1] == (mine.port or _default_port(mine.scheme or "http"))
    if same_port and (given[0] == (mine.hostname or "").lower() or (_loopback(mine.hostname) and _loopback(given[0]))):
        return None
    return refused


def cross_site(headers: Mapping[str, str], public_url: str, extra_hosts: tuple[str, ...] = ()) -> bool:
    """True when the browser says the request comes from another site."""
    return origin_problem(headers, public_url, extra_hosts) is not None


# ------------------------------------------------------------------ JSON bodies


class BadBody(ValueError):
    """A request body spokesync will not read: `status` and a message for the person who sent it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_JSON_STRING.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON request body, or BadBody (400) in plain words: not JSON, or nested too deeply."""
    if json_depth(raw) > max_depth:
        raise BadBody(400, f"the request body is nested more than {max_depth} levels deep; send a flatter "
                           "JSON object")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise BadBody(400, "the request body is not valid JSON") from None


def safe_next(target: str | None, default: str = "/setup/") -> str:
    """Only a path inside the UI: no open redirect after sign-in."""
    if not target or not target.startswith("/setup/") or target.startswith("//") or "\\" in target:
        return default
    return target
