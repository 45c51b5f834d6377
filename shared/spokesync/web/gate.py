"""The front door of the setup function and the one-machine server: what is checked before a
request reaches a handler, and the JSON API's HTTP mapping.

In order, for every request (`refuse`):
1. `Host` / `X-Forwarded-Host` name this deployment (the DNS-rebinding defence, `security.host_problem`).
2. A declared body larger than `security.MAX_BODY_BYTES` is refused (413) from its `Content-Length`,
   before anything reads it.

For `/api/*` (`api`): the browser's `Origin` / `Sec-Fetch-Site` must be this site; the administrator
is authenticated; a write (POST, PATCH, DELETE) must say `Content-Type: application/json` or carry
`X-Spokesync-Client` (neither can come from a cross-site HTML form without a CORS preflight, which
is never answered); the body is read bounded, and must be JSON no deeper than
`security.MAX_JSON_DEPTH` levels.

`finish(request)` runs last: functions-framework reads whatever body is left after the function
returns (`read_request`, to keep connections healthy); a body nobody read is marked read so that
an unauthenticated 400 MB POST is never pulled into memory.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from spokesync.web import security

if TYPE_CHECKING:
    from spokesync.bootstrap import Context
    from spokesync.config import Config

_JSON = {"Content-Type": "application/json", "Cache-Control": "no-store"}
_WRITES = ("POST", "PUT", "PATCH", "DELETE")

Answer = tuple[str, int, dict[str, str]]


_CODES = {400: "bad_request", 401: "sign_in_required", 403: "not_allowed", 413: "body_too_large",
          415: "json_required", 421: "wrong_host"}


def _error(message: str, status: int, **headers: str) -> Answer:
    """The API's error shape (setup_api.error_body): detail, a stable code, error for older clients."""
    code = _CODES.get(status, "refused")
    return json.dumps({"error": message, "detail": message, "code": code}), status, {**_JSON, **headers}


def too_large() -> str:
    return (f"the request body is larger than {security.MAX_BODY_BYTES // 1024} KB, the most spokesync "
            "accepts; send less")


def refuse(config: Config, request: Any) -> Answer | None:
    """Host and declared size, before anything reads the body (None: go on)."""
    problem = security.host_problem(request.headers, config.public_url, config.allowed_hosts)
    if problem:
        return _error(problem, 421 if request.headers.get("Host") else 400)
    if (request.content_length or 0) > security.MAX_BODY_BYTES:
        finish(request)
        return _error(too_large(), 413)
    return None


def read_body(request: Any) -> bytes:
    """The body, read at most MAX_BODY_BYTES + 1 bytes far (security.BadBody 413 beyond)."""
    cached = getattr(request, "_cached_data", None)
    if cached is not None:
        return bytes(cached)
    if (request.content_length or 0) > security.MAX_BODY_BYTES:
        finish(request)
        raise security.BadBody(413, too_large())
    from werkzeug.exceptions import RequestEntityTooLarge

    if request.content_length is None and request.environ.get("wsgi.input_terminated"):
        # chunked: the server's own stream, read one byte past the limit (werkzeug's LimitedStream would stop
        # exactly at a limit and hide that there was more)
        stream = request.environ["wsgi.input"]
    else:
        stream = request.stream
    try:
        data = stream.read(security.MAX_BODY_BYTES + 1)
    except RequestEntityTooLarge:
        finish(request)
        raise security.BadBody(413, too_large()) from None
    if len(data) > security.MAX_BODY_BYTES:
        finish(request)
        raise security.BadBody(413, too_large())
    request._cached_data = data  # werkzeug's get_data() cache: later readers see this copy
    return bytes(data)


def finish(request: Any) -> None:
    """Mark an unread body as read (see the module doc); the server discards the rest unread."""
    if getattr(request, "_cached_data", None) is None:
        request._cached_data = b""


class LazyBody(io.RawIOBase):
    """The outer request's body as a stream the UI app reads only when (and if) it wants the body:
    after its administrator check, bounded by `read_body`."""

    def __init__(self, request: Any) -> None:
        self._request = request
        self._buffer: io.BytesIO | None = None

    def readable(self) -> bool:
        return True

    def _data(self) -> io.BytesIO:
        if self._buffer is None:
            try:
                data = read_body(self._request)
            except security.BadBody:
                from werkzeug.exceptions import RequestEntityTooLarge

                raise RequestEntityTooLarge(too_large()) from None
            self._buffer = io.BytesIO(data)
        return self._buffer

    def readinto(self, buffer: Any) -> int:
        chunk = self._data().read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _json_request(request: Any) -> bool:
    mimetype = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    return mimetype == "application/json"


def api(ctx: Context, request: Any) -> Answer:
    """One `/api/...` request: origin, administrator, write marker, bounded JSON body, then setup_api."""
    from spokesync.service import auth, setup_api

    config = ctx.config
    problem = security.origin_problem(request.headers, config.public_url, config.allowed_hosts)
    if problem:
        return _error(problem, 403)
    try:
        auth.check_admin(config, request.headers)
    except auth.Unauthorized as err:
        return _error(str(err), 401, **{"WWW-Authenticate": "Bearer"})
    except auth.Forbidden as err:
        return _error(str(err), 403)
    method = request.method.upper()
    if method in _WRITES and not (_json_request(request) or request.headers.get(security.API_CLIENT_HEADER)):
        return _error("send API writes as JSON (Content-Type: application/json), even with an empty body, "
                      f"or with the header {security.API_CLIENT_HEADER}", 415)
    try:
        raw = read_body(request)
        body = security.parse_json(raw) if raw.strip() else None
    except security.BadBody as err:
        return _error(str(err), err.status)
    status, payload = setup_api.handle(ctx, method, request.path, body, request.args)
    return json.dumps(payload, default=str), status, _JSON
