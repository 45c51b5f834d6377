"""The Calendar API client: google-api-python-client built from the packaged
discovery document with `rootUrl` taken from configuration, plus retrying
single calls and batches, and Google's errors mapped to the port's.

Retries: 403 rateLimitExceeded / userRateLimitExceeded, 429 and 5xx back off
exponentially while the retry budget lasts; after that a single call raises
`Throttled`, a batch reports the remaining calls as not done (the connector
turns them into "retry" results). 403 quotaExceeded raises `QuotaExceeded`;
401 and a refused refresh token raise `CredentialBroken`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spokesync.ports import ConnectorError, CredentialBroken, QuotaExceeded, Throttled

if TYPE_CHECKING:
    from spokesync.config import Config

BATCH_LIMIT = 50  # Calendar's practical batch size (FACTS.md)
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})

_DOC: dict[str, Any] | None = None
_DOC_LOCK = threading.Lock()


def discovery_document() -> dict[str, Any]:
    """The calendar v3 discovery document shipped with the client (loaded once)."""
    global _DOC
    if _DOC is None:
        with _DOC_LOCK:
            if _DOC is None:
                from pathlib import Path

                import googleapiclient

                path = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "calendar.v3.json"
                _DOC = json.loads(path.read_text())
    return _DOC


def error_reasons(exc: Exception) -> list[str]:
    content = getattr(exc, "content", b"")
    try:
        data = json.loads(content.decode("utf-8") if isinstance(content, bytes) else content)
        return [str(e.get("reason", "")) for e in data["error"].get("errors", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def error_status(exc: Exception) -> int:
    resp = getattr(exc, "resp", None)
    return int(getattr(resp, "status", 0) or 0)


def is_retryable(status: int, reasons: Sequence[str]) -> bool:
    if status == 429 or status >= 500:
        return True
    return status == 403 and bool(RATE_LIMIT_REASONS.intersection(reasons))


def raise_fatal(status: int, reasons: Sequence[str], what: str, product: str = "Google Calendar") -> None:
    """Raise the port's error for failures that stop the whole spoke."""
    if status == 401:
        raise CredentialBroken(f"Google refused the credential ({what}): sign in again")
    if status == 403 and QUOTA_REASONS.intersection(reasons):
        raise QuotaExceeded(f"{product} usage limits exceeded; retrying in a few hours")


@dataclass
class BatchOutcome:
    """One call of a batch: `response` on success, else `status`/`reasons`."""

    response: Any = None
    status: int = 200
    reasons: tuple[str, ...] = ()
    done: bool = True  # False: still rate limited when the retry budget ran out

    @property
    def ok(self) -> bool:
        return self.done and self.status < 300


class GoogleClient:
    def __init__(self, credentials: Any, config: Config, *, retry_budget_s: float | None = None,
                 backoff_s: float | None = None, sleep: Callable[[float], None] = time.sleep,
                 document: dict[str, Any] | None = None, api_root: str | None = None,
                 product: str = "Google Calendar") -> None:
        """`document`/`api_root`: another Google API than Calendar (the People API for
        contacts), with its own discovery document and root URL; `product` names it
        in messages."""
        import google_auth_httplib2
        from googleapiclient.discovery import build_from_document

        from spokesync.http_limits import capped_httplib2

        doc = dict(document if document is not None else discovery_document())
        root = api_root or config.google_api_root
        root = root if root.endswith("/") else root + "/"
        doc["rootUrl"] = root
        doc["baseUrl"] = root + doc.get("servicePath", "calendar/v3/")
        self.product = product
        # bounded answers, decompression included: the API and the token endpoint (http_limits)
        http = capped_httplib2("Google", config.max_response_bytes, timeout=60)
        authed = google_auth_httplib2.AuthorizedHttp(credentials, http=http) if credentials is not None else http
        self.service = build_from_document(doc, http=authed)
        self.retry_budget_s = config.google_retry_budget_s if retry_budget_s is None else retry_budget_s
        self.backoff_s = config.google_backoff_s if backoff_s is None else backoff_s
        self.sleep = sleep
        self.calls = 0  # API calls made (batch parts count one each)
        self.round_trips = 0  # HTTP requests made
        self.throttled = 0  # rate-limited answers seen

    # ---------------------------------------------------------------- one call

    def _translate_transport(self, exc: Exception) -> Exception:
        from google.auth.exceptions import RefreshError, TransportError

        if isinstance(exc, RefreshError):
            text = str(exc)
            if "invalid_grant" in text or "invalid_client" in text or "unauthorized_client" in text:
                return CredentialBroken("Google refused the stored credential (token revoked or expired): "
                                        "sign in again")
            return ConnectorError("could not refresh the Google access token")
        if isinstance(exc, TransportError | OSError):
            return ConnectorError(f"could not reach {self.product}: {type(exc).__name__}")
        return exc

    def _delay(self, attempt: int) -> float:
        return self.backoff_s * (2 ** attempt) * (0.5 + random.random() / 2)

    def execute(self, request: Any, what: str = "request") -> Any:
        """Run one API call, retrying rate limits and 5xx within the budget."""
        from googleapiclient.errors import HttpError

        started = time.monotonic()
        attempt = 0
        while True:
            self.calls += 1
            self.round_trips += 1
            try:
                return request.execute(num_retries=0)
            except HttpError as exc:
                status, reasons = error_status(exc), error_reasons(exc)
                raise_fatal(status, reasons, what, self.product)
                if not is_retryable(status, reasons):
                    raise
                self.throttled += 1
                delay = self._delay(attempt)
                if time.monotonic() - started + delay > self.retry_budget_s:
                    if status >= 500:
                        raise ConnectorError(f"{self.product} keeps failing ({status}) for {what}") from exc
                    raise Throttled(f"{self.product} rate limit on {what}", retry_after_s=60.0) from exc
                self.sleep(delay)
                attempt += 1
            except Exception as exc:
                translated = self._translate_transport(exc)
                if translated is exc:
                    raise
                raise translated from exc

    # ---------------------------------------------------------------- batches

    def batch(self, requests: Sequence[tuple[Hashable, Any]]) -> dict[Hashable, BatchOutcome]:
        """Run calls through the batch endpoint (≤ 50 a batch), one outcome per key.

        Rate-limited and 5xx calls are retried in later batches while the
        budget lasts; the rest come back with `done=False`.
        """
        from googleapiclient.errors import HttpError

        outcomes: dict[Hashable, BatchOutcome] = {}
        pending = list(requests)
        started = time.monotonic()
        attempt = 0
        while pending:
            retry: list[tuple[Hashable, Any]] = []
            for offset in range(0, len(pending), BATCH_LIMIT):
                chunk = pending[offset:offset + BATCH_LIMIT]
                results: dict[str, tuple[Any, Exception | None]] = {}

                def callback(request_id: str, response: Any, exception: Exception | None,
                             _results: dict[str, tuple[Any, Exception | None]] = results) -> None:
                    _results[request_id] = (response, exception)

                if len(chunk) == 1:
                    key, req = chunk[0]
                    self.calls += 1
                    self.round_trips += 1
                    try:
                        results["0"] = (req.execute(num_retries=0), None)
                    except HttpError as exc:
                        results["0"] = (None, exc)
                    except Exception as exc:
                        translated = self._translate_transport(exc)
                        if translated is exc:
                            raise
                        raise translated from exc
                else:
                    batch = self.service.new_batch_http_request(callback=callback)
                    for i, (_, req) in enumerate(chunk):
                        batch.add(req, request_id=str(i))
                    self.calls += len(chunk)
                    self.round_trips += 1
                    try:
                        batch.execute()
                    except HttpError as exc:  # the batch request itself failed
                        status, reasons = error_status(exc), error_reasons(exc)
                        raise_fatal(status, reasons, "batch")
                        if not is_retryable(status, reasons):
                            raise ConnectorError(f"Google Calendar refused a batch ({status})") from exc
                        self.throttled += 1
                        retry.extend(chunk)
                        continue
                    except Exception as exc:
                        translated = self._translate_transport(exc)
                        if translated is exc:
                            raise
                        raise translated from exc
                for i, (key, req) in enumerate(chunk):
                    response, exception = results.get(str(i), (None, None))
                    if exception is None:
                        outcomes[key] = BatchOutcome(response=response)
                        continue
                    status, reasons = error_status(exception), error_reasons(exception)
                    raise_fatal(status, reasons, "batch call")
                    if is_retryable(status, reasons):
                        self.throttled += 1
                        retry.append((key, req))
                        outcomes[key] = BatchOutcome(status=status, reasons=tuple(reasons), done=False)
                    else:
                        outcomes[key] = BatchOutcome(status=status, reasons=tuple(reasons))
            if not retry:
                break
            delay = self._delay(attempt)
            if time.monotonic() - started + delay > self.retry_budget_s:
                for key, _ in retry:
                    previous = outcomes.get(key)
                    outcomes[key] = BatchOutcome(status=previous.status if previous else 429,
                                                 reasons=previous.reasons if previous else (), done=False)
                break
            self.sleep(delay)
            attempt += 1
            pending = retry
        return outcomes
