"""Logging as Cloud Logging reads it: one JSON object per line on stdout.

Each line carries `severity`, `message`, `time`, the hub/spoke/run ids passed
in `extra=` or bound for the request (`bind`), and the request's trace
(`logging.googleapis.com/trace`) taken from `X-Cloud-Trace-Context` /
`traceparent`. Secrets never reach a line: fields whose names look secret
are dropped, and bearer tokens, passwords in URLs, OAuth authorization codes
and states and every token-shaped query parameter (`code=`, `state=`,
`*token*=`, `password=`, `key=`, `sig=`, ...) are masked in every message,
the HTTP access log of the local server included (`mask_access_log`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("spokesync_log_context", default=None)

_SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|authorization|credential_value|api_key|cookie)")
_MASKS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    # key=value pairs (query strings, form bodies, messages): any parameter whose name says it is a
    # secret, a token, an OAuth code or state, a signature or a key
    (re.compile(r"(?i)\b([\w.-]*(?:password|passwd|secret|token|code|state|assertion|signature|sig|key|"
                r"credential|session|csrf|nonce)[\w.-]*)=([^\s&;,\"']+)"),
     r"\1=[redacted]"),
    (re.compile(r"(?i)(\"[\w.-]*(?:password|secret|token|code|state|assertion|key|credential)[\w.-]*\"\s*:\s*)"
                r"\"[^\"]*\""),
     r'\1"[redacted]"'),
    (re.compile(r"(?i)(https?://[^/\s:@]+):[^@\s/]+@"), r"\1:[redacted]@"),
]
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_SEVERITY = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARNING", logging.ERROR: "ERROR",
             logging.CRITICAL: "CRITICAL"}


def redact(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    def __init__(self, project: str = "") -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": redact(record.getMessage()),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        bound = _CONTEXT.get() or {}
        trace = bound.get("trace")
        if trace:
            entry["logging.googleapis.com/trace"] = f"projects/{self.project}/traces/{trace}" if self.project else trace
        if bound.get("span_id"):
            entry["logging.googleapis.com/spanId"] = bound["span_id"]
        labels = {k: v for k, v in bound.items() if k not in ("trace", "span_id")}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                labels[key] = value
        for key, value in _clean(labels).items():
            entry[key] = value
        if record.exc_info:
            entry["stack_trace"] = redact("".join(traceback.format_exception(*record.exc_info)))
        if record.levelno >= logging.ERROR:
            entry["@type"] = "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
        return json.dumps(entry, default=str, ensure_ascii=False)


def trace_from(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(trace id, span id) from X-Cloud-Trace-Context or W3C traceparent."""
    lower = {k.lower(): v for k, v in headers.items()}
    value = lower.get("x-cloud-trace-context")
    if value:
        trace, _, rest = value.partition("/")
        span = rest.split(";", 1)[0] or None
        return (trace or None), span
    parent = lower.get("traceparent", "")
    parts = parent.split("-")
    if len(parts) >= 3:
        return parts[1], parts[2]
    return None, None


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Attach fields (ids, trace) to every line logged inside the block."""
    current = dict(_CONTEXT.get() or {})
    current.update({k: v for k, v in fields.items() if v is not None})
    token = _CONTEXT.set(current)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


_CONFIGURED = False


class PlainFormatter(logging.Formatter):
    """One readable line per record, for a person at a terminal (secrets masked as in JSON)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def wants_json(stream: Any = None) -> bool:
    """JSON lines for Cloud Logging (a Cloud Run / Functions instance, a pipe, or asked for);
    plain lines on a terminal. SPOKESYNC_LOG_FORMAT=json|plain decides when set."""
    import os

    chosen = os.environ.get("SPOKESYNC_LOG_FORMAT", "").strip().lower()
    if chosen in ("json", "plain"):
        return chosen == "json"
    if os.environ.get("K_SERVICE"):
        return True
    out = stream or sys.stdout
    return not (hasattr(out, "isatty") and out.isatty())


def setup(project: str = "", level: int = logging.INFO, stream: Any = None, fmt: str | None = None) -> None:
    """Send every `logging` record to stdout, once per process and once per record: JSON lines
    for Cloud Logging, plain lines on a terminal (`wants_json`). Replaces any handler an
    earlier setup (or a library's default) put on the root logger, so no line is written twice."""
    global _CONFIGURED
    if _CONFIGURED and stream is None and fmt is None:
        return
    handler = logging.StreamHandler(stream or sys.stdout)
    use_json = wants_json(stream) if fmt is None else fmt == "json"
    handler.setFormatter(JsonFormatter(project) if use_json else PlainFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Werkzeug adds a stderr handler of its own when it logs first: the root handler is the only one.
    werkzeug = logging.getLogger("werkzeug")
    for old in list(werkzeug.handlers):
        werkzeug.removeHandler(old)
    mask_access_log()
    _CONFIGURED = True


class RedactingFilter(logging.Filter):
    """Masks a record's message in place (for handlers that are not ours, e.g. Werkzeug's access log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


def mask_access_log() -> None:
    """The HTTP server's access log ("GET /setup/oauth/callback?code=...") masks codes and tokens too, and so
    do the HTTP clients' debug lines (URLs with query strings)."""
    for name in ("werkzeug", "gunicorn.access", "urllib3.connectionpool", "googleapiclient.discovery",
                 "google_auth_httplib2", "exchangelib.util"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


__all__ = ["JsonFormatter", "PlainFormatter", "RedactingFilter", "bind", "mask_access_log", "redact", "setup",
           "trace_from", "wants_json"]


@contextmanager
def request(function: str, headers: Mapping[str, str], project: str = "", **fields: Any) -> Iterator[None]:
    """What an HTTP function does around a request: JSON logging on, trace and ids bound."""
    setup(project)
    trace, span = trace_from(headers)
    with bind(function=function, trace=trace, span_id=span, **fields):
        yield
