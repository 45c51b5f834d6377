"""The server's state and what every resource shares: the lock, the
calendars, change stamping and push-notification delivery."""

from __future__ import annotations

import copy
import itertools
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from spokesync.sandbox.google_calendar.common import (
    ApiError,
    Calendar,
    Channel,
    Fault,
    Stats,
    _now,
    _rfc3339,
)


class SandboxState:
    """State shared by every resource (thread-safe under `lock`)."""

    def __init__(self, *, require_auth: bool = True, max_channel_ttl_s: int = 30 * 86400,
                 default_channel_ttl_s: int = 604800, access_token_ttl_s: int = 3600,
                 allow_http_webhooks: bool = False) -> None:
        self.lock = threading.RLock()
        self.require_auth = require_auth
        self.max_channel_ttl_s = max_channel_ttl_s
        self.default_channel_ttl_s = default_channel_ttl_s
        self.access_token_ttl_s = access_token_ttl_s
        self.allow_http_webhooks = allow_http_webhooks
        self.calendars: dict[str, Calendar] = {}
        self.channels: dict[str, Channel] = {}
        self.clients: dict[str, str] = {}  # client id -> secret
        self.service_accounts: dict[str, tuple[Any, bool]] = {}  # email -> (public key, domain-wide)
        self.users: set[str] = set()
        self._codes: dict[str, dict[str, Any]] = {}
        self._refresh: dict[str, dict[str, Any]] = {}
        self._access: dict[str, tuple[str, float]] = {}
        self.faults: list[Fault] = []
        self.stats = Stats()
        self.notifications: list[dict[str, Any]] = []  # delivery log
        self.drop_notifications = 0  # drop the next N notifications
        self.duplicate_notifications = False  # deliver every notification twice
        self._etags = itertools.count(int(time.time() * 1000) * 1000)
        self._ord = itertools.count(1)
        self._outbox: queue.Queue[tuple[Channel, str, int] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.base_url = "http://127.0.0.1/"
        self.clock: Callable[[], datetime] = _now


    # ---------------------------------------------------------------- events core

    def _touch(self, cal: Calendar, raw: dict[str, Any]) -> None:
        cal.seq += 1
        raw["_seq"] = cal.seq
        raw["etag"] = f'"{next(self._etags)}"'
        raw["updated"] = _rfc3339(self.clock())
        exists = raw.get("status") != "cancelled"
        self._notify(cal, "exists" if exists else "not_exists")

    @staticmethod
    def _public(raw: dict[str, Any]) -> dict[str, Any]:
        if raw.get("status") == "cancelled":
            out: dict[str, Any] = {k: raw[k] for k in ("kind", "etag", "id", "status", "updated",
                                                       "recurringEventId", "originalStartTime") if k in raw}
            return out
        return {k: copy.deepcopy(v) for k, v in raw.items() if not k.startswith("_")}


    # ---------------------------------------------------------------- notifications

    def _notify(self, cal: Calendar, state: str) -> None:
        now_ms = int(self.clock().timestamp() * 1000)
        for channel in list(self.channels.values()):
            if channel.calendar_id != cal.id or channel.stopped:
                continue
            if channel.expiration_ms <= now_ms:
                continue
            self._send(channel, state)

    def _send(self, channel: Channel, state: str) -> None:
        number = next(channel.message_number)
        if self.drop_notifications > 0:
            self.drop_notifications -= 1
            self.notifications.append({"channel_id": channel.id, "state": state, "number": number,
                                       "dropped": True})
            return
        self._ensure_worker()
        self._outbox.put((channel, state, number))
        if self.duplicate_notifications:
            self._outbox.put((channel, state, number))

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._deliver_loop, name="gcal-notify", daemon=True)
            self._worker.start()

    def _deliver_loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            channel, state, number = item
            headers = {
                "X-Goog-Channel-ID": channel.id,
                "X-Goog-Channel-Expiration": datetime.fromtimestamp(channel.expiration_ms / 1000, UTC)
                .strftime("%a, %d %b %Y %H:%M:%S GMT"),
                "X-Goog-Resource-ID": channel.resource_id,
                "X-Goog-Resource-URI": f"{self.base_url}calendar/v3/calendars/"
                                       f"{urllib.parse.quote(channel.calendar_id, safe='')}/events?alt=json",
                "X-Goog-Resource-State": state,
                "X-Goog-Message-Number": str(number),
                "Content-Length": "0",
            }
            if channel.token is not None:
                headers["X-Goog-Channel-Token"] = channel.token
            entry: dict[str, Any] = {"channel_id": channel.id, "state": state, "number": number, "dropped": False}
            try:
                entry["status"] = self._post(channel.address, headers)
            except OSError as exc:
                entry["status"] = None
                entry["error"] = str(exc)
            with self.lock:
                self.notifications.append(entry)

    @staticmethod
    def _post(address: str, headers: dict[str, str]) -> int:
        """POST an empty body with the headers spelled exactly as Google spells them."""
        import http.client

        url = urllib.parse.urlsplit(address)
        conn_type = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = conn_type(url.hostname or "127.0.0.1", url.port, timeout=5)
        try:
            conn.request("POST", (url.path or "/") + (f"?{url.query}" if url.query else ""), body=b"",
                         headers=headers)
            resp = conn.getresponse()
            resp.read()
            return int(resp.status)
        finally:
            conn.close()

    def wait_notifications(self, timeout: float = 5.0) -> None:
        """Block until every queued notification has been delivered (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._outbox.empty():
                time.sleep(0.05)
                if self._outbox.empty():
                    return
            time.sleep(0.01)

    def stop_worker(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            self._outbox.put(None)

    def _fault(self, method: str, path: str, where: str) -> ApiError | None:
        for fault in self.faults:
            if fault.remaining <= 0 or fault.where != where:
                continue
            if fault.method and fault.method != method:
                continue
            if fault.path_contains and fault.path_contains not in path:
                continue
            if fault.skip > 0:
                fault.skip -= 1
                continue
            fault.remaining -= 1
            domain = "usageLimits" if fault.reason in ("rateLimitExceeded", "userRateLimitExceeded",
                                                        "quotaExceeded") else "global"
            return ApiError(fault.status, fault.reason, fault.message, domain)
        return None

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """One API call (defined by the server class; batches call it per part)."""
        raise NotImplementedError

    def is_service_account(self, principal: str) -> bool:
        """The API principal is a service account acting as itself (no delegation)."""
        return principal in self.service_accounts
