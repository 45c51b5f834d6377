"""A stateful local Google Calendar API v3 server (tests and the demo mode).

The real google-api-python-client talks to it through the packaged discovery
document with `rootUrl` pointed here (see `spokesync.connectors.google.client`).
It answers what spokesync uses, with bodies shaped like the discovery
document's schemas and Google's error format:

- calendarList.list; events list (full and incremental from a per-calendar
  change log, paging, showDeleted, tombstones, iCalUID / privateExtendedProperty
  filters, 400 for parameters not allowed with syncToken, 410 on demand), get,
  insert (409 duplicate), patch / update (new etag, If-Match → 412), delete
  (410 when already deleted), instances (RRULE expansion, virtual instance
  ids `<id>_<YYYYMMDDTHHMMSSZ>` that can be patched and deleted), watch and
  channels.stop with notifications POSTed to the channel address, and the
  multipart batch endpoint;
- minimal OAuth 2.0: an authorization endpoint that redirects back with
  `code` and `state`, a token endpoint for authorization_code, refresh_token
  and the service-account JWT-bearer grant (`invalid_grant` once revoked);
- a Python API for tests: calendars, users, clients, service accounts,
  user-side edits that bypass the connector, fault injection (rate limits,
  5xx, 410, dropped and duplicated notifications), request counters and a
  notification log.

Binds 127.0.0.1 only. Not a security boundary: it is a test double.
"""

from __future__ import annotations

import argparse
import base64
import copy
import email.message
import email.parser
import email.policy
import hashlib
import itertools
import json
import queue
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

_ID_RE = re.compile(r"^[a-v0-9]{5,1024}$")
_INSTANCE_RE = re.compile(r"^(?P<master>[a-v0-9]{5,1024})_(?P<suffix>\d{8}(T\d{6}Z)?)$")
# Parameters Google rejects together with syncToken.
_NOT_WITH_SYNC_TOKEN = ("iCalUID", "orderBy", "privateExtendedProperty", "q", "sharedExtendedProperty",
                        "timeMin", "timeMax", "updatedMin")
_READ_ONLY = ("id", "kind", "etag", "created", "updated", "creator", "organizer", "iCalUID", "htmlLink",
              "recurringEventId", "sequence")
_ROLES = ["none", "freeBusyReader", "reader", "writer", "owner"]
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_INSTANCES = 2500  # occurrences expanded for one series (Google caps too)


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str, domain: str = "global") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain

    def body(self) -> dict[str, Any]:
        return {"error": {"errors": [{"domain": self.domain, "reason": self.reason, "message": self.message}],
                          "code": self.status, "message": self.message}}


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _parse_when(raw: Any) -> tuple[date | datetime, str | None]:
    if not isinstance(raw, dict):
        raise ApiError(400, "required", "Missing time.")
    zone = raw.get("timeZone")
    if raw.get("date"):
        try:
            return date.fromisoformat(raw["date"]), zone
        except ValueError as exc:
            raise ApiError(400, "invalid", "Invalid start time.") from exc
    if raw.get("dateTime"):
        try:
            value = datetime.fromisoformat(str(raw["dateTime"]).replace("Z", "+00:00"))
        except ValueError as exc:
            raise ApiError(400, "invalid", "Invalid start time.") from exc
        if value.tzinfo is None:
            if not zone:
                raise ApiError(400, "invalid", "Missing time zone definition for start time.")
            value = value.replace(tzinfo=_zone(zone))
        return value, zone
    raise ApiError(400, "required", "Missing time.")


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, KeyError) as exc:
        raise ApiError(400, "invalid", f"Invalid time zone definition: {name}") from exc


def _suffix(value: date | datetime) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return value.strftime("%Y%m%d")


def _when_json(value: date | datetime, zone: str | None) -> dict[str, Any]:
    if isinstance(value, datetime):
        out: dict[str, Any] = {"dateTime": value.astimezone(_zone(zone) if zone else value.tzinfo).isoformat()}
        if zone:
            out["timeZone"] = zone
        return out
    return {"date": value.isoformat()}


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Google's patch semantics: objects merge, arrays and times replace, null clears."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict) and key not in (
                "start", "end", "originalStartTime", "reminders", "source"):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


# ------------------------------------------------------------------ state


@dataclass
class Fault:
    """Answer `remaining` matching API calls with an error (after skipping `skip`)."""

    status: int
    reason: str
    message: str = ""
    remaining: int = 1
    skip: int = 0
    method: str | None = None  # HTTP method, e.g. "POST"
    path_contains: str | None = None
    where: str = "api"  # "api": each API call (batch parts too); "batch": the batch request itself


@dataclass
class Channel:
    id: str
    calendar_id: str
    resource_id: str
    address: str
    token: str | None
    expiration_ms: int
    user: str
    message_number: itertools.count = field(default_factory=lambda: itertools.count(1))
    stopped: bool = False


@dataclass
class Calendar:
    id: str
    summary: str
    owner: str
    time_zone: str = "UTC"
    acl: dict[str, str] = field(default_factory=dict)  # user email -> role
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: int = 0
    epoch: int = 0  # bumped to invalidate all sync tokens (410)
    default_reminders: list[dict[str, Any]] = field(default_factory=lambda: [{"method": "popup", "minutes": 10}])


@dataclass
class Stats:
    http_requests: int = 0  # transport round trips (a batch counts once)
    api_calls: int = 0  # API calls (each part of a batch counts, as Google's quota does)
    batches: int = 0
    token_requests: int = 0  # OAuth token endpoint (not API round trips)
    by_method: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        self.http_requests = self.api_calls = self.batches = self.token_requests = 0
        self.by_method.clear()


class GoogleCalendarSandbox:
    """The server's state and its Python API (thread-safe)."""

    def __init__(self, *, require_auth: bool = True, max_channel_ttl_s: int = 30 * 86400,
                 default_channel_ttl_s: int = 604800, access_token_ttl_s: int = 3600,
                 allow_http_webhooks: bool = True) -> None:
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

    # ---------------------------------------------------------------- setup API

    def add_user(self, email_address: str) -> None:
        with self.lock:
            self.users.add(email_address)

    def add_calendar(self, calendar_id: str, owner: str, summary: str = "", time_zone: str = "UTC",
                     acl: dict[str, str] | None = None) -> Calendar:
        with self.lock:
            self.users.add(owner)
            cal = Calendar(calendar_id, summary or calendar_id, owner, time_zone, {owner: "owner", **(acl or {})})
            self.calendars[calendar_id] = cal
            return cal

    def add_client(self, client_id: str, client_secret: str) -> None:
        with self.lock:
            self.clients[client_id] = client_secret

    def add_service_account(self, sa_email: str, public_key_pem: bytes, domain_wide: bool = True) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        with self.lock:
            self.service_accounts[sa_email] = (load_pem_public_key(public_key_pem), domain_wide)

    def new_service_account_key(self, sa_email: str, domain_wide: bool = True) -> dict[str, Any]:
        """Register a service account and return its JSON key (as Google's console would)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        self.add_service_account(sa_email, public, domain_wide)
        return {"type": "service_account", "project_id": "sandbox", "private_key_id": secrets.token_hex(8),
                "private_key": pem, "client_email": sa_email, "client_id": str(secrets.randbelow(10**20)),
                "token_uri": self.base_url + "token"}

    def issue_refresh_token(self, user: str, client_id: str = "") -> str:
        """A refresh token for `user`, as the consent flow would produce."""
        with self.lock:
            self.users.add(user)
            token = "1//" + secrets.token_urlsafe(32)
            self._refresh[token] = {"user": user, "client_id": client_id, "revoked": False}
            return token

    def issue_access_token(self, user: str) -> str:
        with self.lock:
            token = "ya29." + secrets.token_urlsafe(32)
            self._access[token] = (user, time.time() + self.access_token_ttl_s)
            return token

    def revoke_refresh_token(self, token: str) -> None:
        with self.lock:
            if token in self._refresh:
                self._refresh[token]["revoked"] = True
            for access, (user, _) in list(self._access.items()):
                if user == self._refresh.get(token, {}).get("user"):
                    del self._access[access]

    def expire_access_tokens(self) -> None:
        with self.lock:
            self._access.clear()

    def inject(self, status: int, reason: str, count: int = 1, *, skip: int = 0, message: str = "",
               method: str | None = None, path_contains: str | None = None, where: str = "api") -> Fault:
        fault = Fault(status, reason, message or reason, count, skip, method, path_contains, where)
        with self.lock:
            self.faults.append(fault)
        return fault

    def expire_sync_tokens(self, calendar_id: str) -> None:
        """Every sync token issued so far for the calendar answers 410 from now on."""
        with self.lock:
            self.calendars[calendar_id].epoch += 1

    # ---------------------------------------------------------------- user-side edits

    def user_insert(self, calendar_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            cal = self.calendars[calendar_id]
            return self._public(self._insert(cal, copy.deepcopy(body), cal.owner))

    def user_patch(self, calendar_id: str, event_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            cal = self.calendars[calendar_id]
            return self._public(self._write(cal, event_id, copy.deepcopy(patch), None, replace_all=False))

    def user_delete(self, calendar_id: str, event_id: str) -> None:
        with self.lock:
            self._delete(self.calendars[calendar_id], event_id, None)

    def live_events(self, calendar_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [self._public(e) for e in self.calendars[calendar_id].events.values()
                    if e.get("status") != "cancelled"]

    def event(self, calendar_id: str, event_id: str) -> dict[str, Any] | None:
        with self.lock:
            raw = self.calendars[calendar_id].events.get(event_id)
            return None if raw is None else self._public(raw)

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

    def _validate(self, body: dict[str, Any]) -> None:
        if "start" not in body:
            raise ApiError(400, "required", "Missing start time.")
        if "end" not in body:
            raise ApiError(400, "required", "Missing end time.")
        start, start_zone = _parse_when(body["start"])
        end, _ = _parse_when(body["end"])
        if type(start) is not type(end):
            raise ApiError(400, "invalid", "Start and end times must either both be date or both be dateTime.")
        if end < start:  # type: ignore[operator]
            raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.")
        if body.get("recurrence"):
            if isinstance(start, datetime) and not start_zone:
                raise ApiError(400, "invalid", "Missing time zone definition for start time.")
            for line in body["recurrence"]:
                if not re.match(r"^(RRULE|RDATE|EXDATE|EXRULE)[:;]", str(line), re.IGNORECASE):
                    raise ApiError(400, "invalid", "Invalid recurrence rule.")
            self._expand(body, limit=1)  # rejects rules dateutil cannot read
        reminders = body.get("reminders") or {}
        if len(reminders.get("overrides") or ()) > 5:
            raise ApiError(400, "cannotUseMoreThanFiveReminders", "Cannot specify more than 5 override reminders.")
        if body.get("visibility") not in (None, "default", "public", "private", "confidential"):
            raise ApiError(400, "invalid", "Invalid value for: visibility")
        if body.get("transparency") not in (None, "opaque", "transparent"):
            raise ApiError(400, "invalid", "Invalid value for: transparency")
        if body.get("colorId") not in (None, *[str(i) for i in range(1, 12)]):
            raise ApiError(400, "invalid", "Invalid value for: colorId")
        for value in ((body.get("extendedProperties") or {}).get("private") or {}).values():
            if value is not None and len(str(value)) > 1024:
                raise ApiError(400, "invalid", "Extended property value too long.")

    def _insert(self, cal: Calendar, body: dict[str, Any], user: str) -> dict[str, Any]:
        event_id = body.get("id") or base64.b32hexencode(secrets.token_bytes(15)).decode().lower()
        if not _ID_RE.match(event_id):
            raise ApiError(400, "invalid", "Invalid resource id value.")
        if event_id in cal.events:
            raise ApiError(409, "duplicate", "The requested identifier already exists.")
        body = _strip_nulls(body)
        self._validate(body)
        for key in _READ_ONLY:
            body.pop(key, None)
        now = _rfc3339(self.clock())
        raw: dict[str, Any] = {
            "kind": "calendar#event", "id": event_id, "status": "confirmed",
            "htmlLink": f"https://www.google.com/calendar/event?eid={_b64(event_id.encode())}",
            "created": now, "creator": {"email": user}, "organizer": {"email": cal.id, "displayName": cal.summary,
                                                                        "self": True},
            "iCalUID": f"{event_id}@google.com", "sequence": 0, "reminders": {"useDefault": True},
            "eventType": "default", **body, "_ord": next(self._ord),
        }
        raw["id"] = event_id
        cal.events[event_id] = raw
        self._touch(cal, raw)
        return raw

    def _resolve(self, cal: Calendar, event_id: str, materialize: bool) -> dict[str, Any] | None:
        """The stored event, or a generated occurrence (materialised as an exception when asked)."""
        raw = cal.events.get(event_id)
        if raw is not None:
            return raw
        match = _INSTANCE_RE.match(event_id)
        if not match:
            return None
        master = cal.events.get(match.group("master"))
        if master is None or master.get("status") == "cancelled" or not master.get("recurrence"):
            return None
        for occurrence in self._expand(master):
            if occurrence["id"] == event_id:
                if materialize:
                    occurrence["_ord"] = next(self._ord)
                    cal.events[event_id] = occurrence
                return occurrence
        return None

    def _write(self, cal: Calendar, event_id: str, body: dict[str, Any], if_match: str | None,
               replace_all: bool) -> dict[str, Any]:
        raw = self._resolve(cal, event_id, materialize=False)
        if raw is None:
            raise ApiError(404, "notFound", "Not Found")
        if if_match and if_match != "*" and if_match != raw.get("etag"):
            raise ApiError(412, "conditionNotMet", "Precondition Failed")
        candidate = copy.deepcopy(raw)
        if replace_all:
            keep = {k: v for k, v in candidate.items() if k in _READ_ONLY or k.startswith("_")
                    or k in ("originalStartTime",)}
            candidate = {**keep, **_strip_nulls({k: v for k, v in body.items() if k not in _READ_ONLY})}
            candidate.setdefault("status", "confirmed")
            candidate.setdefault("reminders", {"useDefault": True})
        else:
            _merge(candidate, {k: v for k, v in body.items() if k not in _READ_ONLY})
        if "recurringEventId" in candidate:
            candidate.pop("recurrence", None)
        if candidate.get("status") != "cancelled":
            self._validate(candidate)
        if event_id not in cal.events:  # a generated occurrence becomes an exception
            candidate["_ord"] = next(self._ord)
        cal.events[event_id] = candidate
        self._touch(cal, candidate)
        return candidate

    def _delete(self, cal: Calendar, event_id: str, if_match: str | None) -> None:
        raw = self._resolve(cal, event_id, materialize=False)
        if raw is None:
            raise ApiError(404, "notFound", "Not Found")
        if raw.get("status") == "cancelled":
            raise ApiError(410, "deleted", "Resource has been deleted")
        if if_match and if_match != "*" and if_match != raw.get("etag"):
            raise ApiError(412, "conditionNotMet", "Precondition Failed")
        raw = self._resolve(cal, event_id, materialize=True)
        assert raw is not None
        raw["status"] = "cancelled"
        self._touch(cal, raw)
        if raw.get("recurrence"):  # the whole series goes: its exceptions are cancelled too
            for other in cal.events.values():
                if other.get("recurringEventId") == event_id and other.get("status") != "cancelled":
                    other["status"] = "cancelled"
                    self._touch(cal, other)

    def _expand(self, master: dict[str, Any], limit: int = MAX_INSTANCES) -> list[dict[str, Any]]:
        """The series' occurrences as generated instances (exceptions not applied)."""
        from dateutil.rrule import rrulestr

        start, zone = _parse_when(master["start"])
        end, _ = _parse_when(master["end"])
        duration = end - start  # type: ignore[operator]
        lines = "\n".join(str(line) for line in master.get("recurrence") or ())
        all_day = not isinstance(start, datetime)
        if all_day:
            dtstart = datetime.combine(start, dtime())
        else:
            assert isinstance(start, datetime)
            dtstart = start.astimezone(_zone(zone)) if zone else start
        try:
            rule = rrulestr(lines, dtstart=dtstart, forceset=True, unfold=True)
            values = list(itertools.islice(iter(rule), limit))
        except (ValueError, TypeError) as exc:
            raise ApiError(400, "invalid", "Invalid recurrence rule.") from exc
        out = []
        for value in values:
            occ_start: date | datetime = value.date() if all_day else value
            occ = {k: copy.deepcopy(v) for k, v in master.items() if k not in ("recurrence", "_seq", "_ord", "id")}
            occ["id"] = f"{master.get('id', '')}_{_suffix(occ_start)}"
            occ["recurringEventId"] = master.get("id", "")
            occ["originalStartTime"] = _when_json(occ_start, zone)
            occ["start"] = _when_json(occ_start, zone)
            occ["end"] = _when_json(occ_start + duration, zone)  # type: ignore[operator]
            out.append(occ)
        return out

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

    # ---------------------------------------------------------------- OAuth

    def _token_response(self, user: str, refresh: str | None = None, scope: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"access_token": self.issue_access_token(user), "expires_in": self.access_token_ttl_s,
                               "token_type": "Bearer",
                               "scope": scope or "https://www.googleapis.com/auth/calendar"}
        if refresh:
            out["refresh_token"] = refresh
        return out

    def authorize(self, params: dict[str, str]) -> str:
        """The consent page, auto-approved: the redirect URL with `code` and `state`."""
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        if client_id not in self.clients or not redirect_uri:
            raise ApiError(400, "invalid_request", "unknown client or missing redirect_uri")
        user = params.get("login_hint") or next(iter(sorted(self.users)), "user@example.com")
        code = "4/" + secrets.token_urlsafe(24)
        with self.lock:
            self._codes[code] = {"user": user, "client_id": client_id, "redirect_uri": redirect_uri,
                                 "scope": params.get("scope", ""),
                                 "offline": params.get("access_type") == "offline"}
        query = {"code": code, "scope": params.get("scope", "")}
        if "state" in params:
            query["state"] = params["state"]
        sep = "&" if "?" in redirect_uri else "?"
        return redirect_uri + sep + urllib.parse.urlencode(query)

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")

        def bad(error: str, description: str, status: int = 400) -> tuple[int, dict[str, Any]]:
            return status, {"error": error, "error_description": description}

        with self.lock:
            if grant in ("authorization_code", "refresh_token"):
                client_id = form.get("client_id", "")
                if self.clients.get(client_id) is None or not secrets.compare_digest(
                        self.clients[client_id], form.get("client_secret", "")):
                    return bad("invalid_client", "The OAuth client was not found.", 401)
            if grant == "authorization_code":
                code = self._codes.pop(form.get("code", ""), None)
                if code is None or code["client_id"] != form.get("client_id") or \
                        code["redirect_uri"] != form.get("redirect_uri"):
                    return bad("invalid_grant", "Malformed auth code.")
                refresh = self.issue_refresh_token(code["user"], code["client_id"]) if code["offline"] else None
                return 200, self._token_response(code["user"], refresh, code["scope"])
            if grant == "refresh_token":
                entry = self._refresh.get(form.get("refresh_token", ""))
                if entry is None or entry["revoked"]:
                    return bad("invalid_grant", "Token has been expired or revoked.")
                return 200, self._token_response(entry["user"], None, form.get("scope", ""))
            if grant == _JWT_BEARER:
                try:
                    user, scope = self._verify_jwt(form.get("assertion", ""))
                except ValueError as exc:
                    return bad("invalid_grant", str(exc))
                return 200, self._token_response(user, None, scope)
        return bad("unsupported_grant_type", f"Invalid grant_type: {grant}")

    def _verify_jwt(self, assertion: str) -> tuple[str, str]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            header = json.loads(_unb64(head_b64))
            claims = json.loads(_unb64(claims_b64))
            signature = _unb64(sig_b64)
        except ValueError as exc:
            raise ValueError("Invalid JWT: malformed") from exc
        if header.get("alg") != "RS256":
            raise ValueError("Invalid JWT: unsupported algorithm")
        issuer = claims.get("iss", "")
        known = self.service_accounts.get(issuer)
        if known is None:
            raise ValueError("Invalid JWT Signature.")
        public_key, domain_wide = known
        try:
            public_key.verify(signature, f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise ValueError("Invalid JWT Signature.") from exc
        now = time.time()
        if not (claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0) + 300):
            raise ValueError("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.")
        # google-auth always addresses Google's endpoint, whatever token_uri it posts to.
        if claims.get("aud") not in (self.base_url + "token", "https://oauth2.googleapis.com/token"):
            raise ValueError("Invalid JWT: audience does not match the token endpoint")
        subject = claims.get("sub")
        if subject and subject != issuer and not domain_wide:
            raise ValueError("Client is unauthorized to retrieve access tokens using this method.")
        return subject or issuer, claims.get("scope", "")

    def user_for(self, authorization: str | None) -> str:
        if not self.require_auth:
            return next(iter(sorted(self.users)), "user@example.com")
        if not authorization or not authorization.startswith("Bearer "):
            raise ApiError(401, "required", "Login Required.")
        entry = self._access.get(authorization[7:].strip())
        if entry is None or entry[1] < time.time():
            raise ApiError(401, "authError", "Invalid Credentials")
        return entry[0]

    # ---------------------------------------------------------------- API dispatch

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

    def _calendar(self, calendar_id: str, user: str, need: str) -> Calendar:
        if calendar_id == "primary":
            calendar_id = next((c.id for c in self.calendars.values() if c.owner == user), calendar_id)
        cal = self.calendars.get(calendar_id)
        if cal is None:
            raise ApiError(404, "notFound", "Not Found")
        role = cal.acl.get(user, "none") if self.require_auth else "owner"
        if _ROLES.index(role) < _ROLES.index("reader"):
            raise ApiError(404, "notFound", "Not Found")
        if _ROLES.index(role) < _ROLES.index(need):
            raise ApiError(403, "requiredAccessLevel", "You need to have writer access to this calendar.")
        return cal

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """One API call (also each part of a batch). Returns status, headers, body."""
        parsed = urllib.parse.urlsplit(target)
        path = parsed.path
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        multi = urllib.parse.parse_qs(parsed.query)
        try:
            with self.lock:
                self.stats.api_calls += 1
                fault = self._fault(method, path, "api")
                if fault is not None:
                    raise fault
                user = self.user_for(headers.get("authorization"))
                status, payload, extra = self._route(method, path, params, multi, headers, body, user)
        except ApiError as exc:
            return exc.status, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(exc.body()).encode()
        out_headers = dict(extra)
        if payload is None:
            return status, out_headers, b""
        out_headers["Content-Type"] = "application/json; charset=UTF-8"
        if isinstance(payload, dict) and "etag" in payload:
            out_headers["ETag"] = payload["etag"]
        return status, out_headers, json.dumps(payload).encode()

    def _count(self, name: str) -> None:
        self.stats.by_method[name] = self.stats.by_method.get(name, 0) + 1

    def _route(self, method: str, path: str, params: dict[str, str], multi: dict[str, list[str]],
               headers: dict[str, str], body: bytes, user: str) -> tuple[int, Any, dict[str, str]]:
        prefix = "/calendar/v3/"
        if not path.startswith(prefix):
            raise ApiError(404, "notFound", "Not Found")
        parts = [urllib.parse.unquote(p) for p in path[len(prefix):].split("/")]

        def json_body() -> dict[str, Any]:
            try:
                value = json.loads(body or b"{}")
            except ValueError as exc:
                raise ApiError(400, "parseError", "Parse Error") from exc
            if not isinstance(value, dict):
                raise ApiError(400, "parseError", "Parse Error")
            return value

        if parts == ["users", "me", "calendarList"] and method == "GET":
            self._count("calendarList.list")
            return 200, self._calendar_list(user, params), {}
        if parts == ["channels", "stop"] and method == "POST":
            self._count("channels.stop")
            self._stop_channel(json_body(), user)
            return 204, None, {}
        if len(parts) >= 3 and parts[0] == "calendars" and parts[2] == "events":
            if len(parts) == 3 and method == "GET":
                self._count("events.list")
                cal = self._calendar(parts[1], user, "reader")
                return 200, self._list(cal, params, multi), {}
            if len(parts) == 3 and method == "POST":
                self._count("events.insert")
                cal = self._calendar(parts[1], user, "writer")
                return 200, self._public(self._insert(cal, json_body(), user)), {}
            if len(parts) == 4 and parts[3] == "watch" and method == "POST":
                self._count("events.watch")
                cal = self._calendar(parts[1], user, "reader")
                return 200, self._watch(cal, json_body(), user), {}
            if len(parts) == 5 and parts[4] == "instances" and method == "GET":
                self._count("events.instances")
                cal = self._calendar(parts[1], user, "reader")
                return 200, self._instances(cal, parts[3], params), {}
            if len(parts) == 4:
                event_id = parts[3]
                if method == "GET":
                    self._count("events.get")
                    cal = self._calendar(parts[1], user, "reader")
                    raw = self._resolve(cal, event_id, materialize=False)
                    if raw is None:
                        raise ApiError(404, "notFound", "Not Found")
                    return 200, self._public(raw), {}
                if method in ("PATCH", "PUT"):
                    self._count("events.patch" if method == "PATCH" else "events.update")
                    cal = self._calendar(parts[1], user, "writer")
                    raw = self._write(cal, event_id, json_body(), headers.get("if-match"), replace_all=method == "PUT")
                    return 200, self._public(raw), {}
                if method == "DELETE":
                    self._count("events.delete")
                    cal = self._calendar(parts[1], user, "writer")
                    self._delete(cal, event_id, headers.get("if-match"))
                    return 204, None, {}
        raise ApiError(404, "notFound", "Not Found")

    def _calendar_list(self, user: str, params: dict[str, str]) -> dict[str, Any]:
        min_role = params.get("minAccessRole", "freeBusyReader")
        if min_role not in _ROLES:
            raise ApiError(400, "invalid", "Invalid value for: minAccessRole")
        items = []
        for cal in self.calendars.values():
            role = cal.acl.get(user, "none")
            if role == "none" or _ROLES.index(role) < _ROLES.index(min_role):
                continue
            item = {"kind": "calendar#calendarListEntry", "etag": f'"{abs(hash(cal.id)) % 10**12}"', "id": cal.id,
                    "summary": cal.summary, "timeZone": cal.time_zone, "accessRole": role,
                    "defaultReminders": cal.default_reminders, "backgroundColor": "#9fc6e7",
                    "foregroundColor": "#000000", "selected": True}
            if cal.owner == user and role == "owner":
                item["primary"] = cal.id == user
            items.append(item)
        return {"kind": "calendar#calendarList", "etag": '"p1"', "items": items,
                "nextSyncToken": _b64(b"cl")}

    # ---------------------------------------------------------------- list / instances

    def _sync_token(self, cal: Calendar, seq: int) -> str:
        return _b64(json.dumps([cal.id, cal.epoch, seq]).encode())

    def _list(self, cal: Calendar, params: dict[str, str], multi: dict[str, list[str]]) -> dict[str, Any]:
        max_results = int(params.get("maxResults", "250") or 250)
        if not 1 <= max_results <= 2500:
            raise ApiError(400, "invalid", "Invalid value for: maxResults")
        sync_token = params.get("syncToken")
        page_token = params.get("pageToken")
        show_deleted = params.get("showDeleted") == "true"
        single = params.get("singleEvents") == "true"
        if sync_token:
            bad = [p for p in _NOT_WITH_SYNC_TOKEN if p in params]
            if bad:
                raise ApiError(400, "invalid", f"Sync token cannot be used with parameter: {bad[0]}")
        state: dict[str, Any]
        if page_token:
            try:
                state = json.loads(_unb64(page_token))
            except ValueError as exc:
                raise ApiError(400, "invalid", "Invalid page token value.") from exc
            if state.get("epoch") != cal.epoch and state.get("since") is not None:
                raise ApiError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
        else:
            since = None
            if sync_token:
                try:
                    cal_id, epoch, since = json.loads(_unb64(sync_token))
                except ValueError as exc:
                    raise ApiError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.") from exc
                if cal_id != cal.id or epoch != cal.epoch:
                    raise ApiError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
            state = {"since": since, "upto": cal.seq, "after": 0, "epoch": cal.epoch}
        since, upto, after = state["since"], state["upto"], state["after"]
        if since is not None:
            # Incremental: every event changed in (since, upto], tombstones included, in change order.
            candidates = sorted((e for e in cal.events.values() if since < e["_seq"] <= upto), key=lambda e: e["_seq"])
            candidates = [e for e in candidates if e["_seq"] > after]
            key = "_seq"
        else:
            candidates = self._filtered(cal, params, multi, show_deleted, single)
            candidates = [e for e in candidates if e["_ord"] > after]
            key = "_ord"
        page = candidates[:max_results]
        out: dict[str, Any] = {"kind": "calendar#events", "etag": f'"{cal.seq}"', "summary": cal.summary,
                               "updated": _rfc3339(self.clock()), "timeZone": cal.time_zone, "accessRole": "owner",
                               "defaultReminders": cal.default_reminders,
                               "items": [self._public(e) for e in page]}
        if len(candidates) > max_results:
            out["nextPageToken"] = _b64(json.dumps({**state, "after": page[-1][key]}).encode())
        else:
            out["nextSyncToken"] = self._sync_token(cal, upto)
        return out

    def _filtered(self, cal: Calendar, params: dict[str, str], multi: dict[str, list[str]], show_deleted: bool,
                  single: bool) -> list[dict[str, Any]]:
        events = sorted(cal.events.values(), key=lambda e: e["_ord"])
        out = []
        ical = params.get("iCalUID")
        wanted_private = [p.split("=", 1) for p in multi.get("privateExtendedProperty", []) if "=" in p]
        q = params.get("q", "").lower()
        time_min = datetime.fromisoformat(params["timeMin"].replace("Z", "+00:00")) if params.get("timeMin") else None
        time_max = datetime.fromisoformat(params["timeMax"].replace("Z", "+00:00")) if params.get("timeMax") else None
        for raw in events:
            cancelled = raw.get("status") == "cancelled"
            if cancelled and not show_deleted:
                # Google still lists cancelled occurrences of recurring events when
                # showDeleted and singleEvents are both false.
                if single or "recurringEventId" not in raw:
                    continue
                master = cal.events.get(raw["recurringEventId"])
                if master is None or master.get("status") == "cancelled":
                    continue
            if ical and raw.get("iCalUID") != ical:
                continue
            private = (raw.get("extendedProperties") or {}).get("private") or {}
            if any(private.get(k) != v for k, v in wanted_private):
                continue
            if q and not any(q in str(raw.get(f, "")).lower() for f in ("summary", "description", "location")):
                continue
            if (time_min or time_max) and not cancelled and not raw.get("recurrence"):
                start, _ = _parse_when(raw["start"])
                end, _ = _parse_when(raw["end"])
                lo = start if isinstance(start, datetime) else datetime.combine(start, dtime(), UTC)
                hi = end if isinstance(end, datetime) else datetime.combine(end, dtime(), UTC)
                if (time_max and lo >= time_max) or (time_min and hi <= time_min):
                    continue
            out.append(raw)
        if single:
            expanded = []
            for raw in out:
                if raw.get("recurrence") and raw.get("status") != "cancelled":
                    for occ in self._expand(raw):
                        stored = cal.events.get(occ["id"])
                        if stored is None:
                            occ["_ord"] = raw["_ord"]
                            occ["_seq"] = raw["_seq"]
                            expanded.append(occ)
                elif raw.get("recurringEventId") or not raw.get("recurrence"):
                    expanded.append(raw)
            out = expanded
        return out

    def _instances(self, cal: Calendar, event_id: str, params: dict[str, str]) -> dict[str, Any]:
        master = cal.events.get(event_id)
        if master is None or master.get("status") == "cancelled":
            raise ApiError(404 if master is None else 410, "notFound" if master is None else "deleted",
                           "Not Found" if master is None else "Resource has been deleted")
        show_deleted = params.get("showDeleted") == "true"
        max_results = min(int(params.get("maxResults", "250") or 250), 2500)
        offset = int(_unb64(params["pageToken"]).decode()) if params.get("pageToken") else 0
        items = []
        for occ in self._expand(master) if master.get("recurrence") else []:
            stored = cal.events.get(occ["id"])
            if stored is not None:
                if stored.get("status") == "cancelled" and not show_deleted:
                    continue
                items.append(self._public(stored))
            else:
                items.append({k: v for k, v in occ.items() if not k.startswith("_")})
        page = items[offset:offset + max_results]
        out: dict[str, Any] = {"kind": "calendar#events", "summary": cal.summary, "timeZone": cal.time_zone,
                               "items": page, "updated": _rfc3339(self.clock())}
        if offset + max_results < len(items):
            out["nextPageToken"] = _b64(str(offset + max_results).encode())
        return out

    # ---------------------------------------------------------------- channels

    def _watch(self, cal: Calendar, body: dict[str, Any], user: str) -> dict[str, Any]:
        channel_id = str(body.get("id") or "")
        address = str(body.get("address") or "")
        if not channel_id or len(channel_id) > 64 or not re.match(r"^[A-Za-z0-9\-_+/=]+$", channel_id):
            raise ApiError(400, "invalid", "Invalid channel id.")
        if body.get("type") not in ("web_hook", "webhook"):
            raise ApiError(400, "invalid", "Invalid channel type.")
        scheme = urllib.parse.urlsplit(address).scheme
        if scheme != "https" and not (self.allow_http_webhooks and scheme == "http"):
            raise ApiError(400, "push.webhookUrlNotHttps", "WebHook callback must be HTTPS: " + address)
        token = body.get("token")
        if token is not None and len(str(token)) > 256:
            raise ApiError(400, "invalid", "Channel token too long.")
        if channel_id in self.channels and not self.channels[channel_id].stopped:
            raise ApiError(400, "channelIdNotUnique", "Channel id not unique.")
        try:
            ttl = int((body.get("params") or {}).get("ttl", self.default_channel_ttl_s))
        except ValueError as exc:
            raise ApiError(400, "invalid", "Invalid value for: params.ttl") from exc
        ttl = max(1, min(ttl, self.max_channel_ttl_s))
        expiration = int((self.clock() + timedelta(seconds=ttl)).timestamp() * 1000)
        resource_id = _b64(hashlib.sha256(f"events:{cal.id}".encode()).digest()[:18])
        channel = Channel(channel_id, cal.id, resource_id, address, token, expiration, user)
        self.channels[channel_id] = channel
        self._send(channel, "sync")
        out = {"kind": "api#channel", "id": channel_id, "resourceId": resource_id,
               "resourceUri": f"{self.base_url}calendar/v3/calendars/{urllib.parse.quote(cal.id, safe='')}/events?alt=json",
               "expiration": str(expiration)}
        if token is not None:
            out["token"] = token
        return out

    def _stop_channel(self, body: dict[str, Any], user: str) -> None:
        channel = self.channels.get(str(body.get("id") or ""))
        if channel is None or channel.stopped or channel.resource_id != body.get("resourceId"):
            raise ApiError(404, "notFound", f"Channel '{body.get('id')}' not found for project")
        channel.stopped = True

    def live_channels(self, calendar_id: str | None = None) -> list[Channel]:
        now_ms = int(self.clock().timestamp() * 1000)
        with self.lock:
            return [c for c in self.channels.values() if not c.stopped and c.expiration_ms > now_ms
                    and (calendar_id is None or c.calendar_id == calendar_id)]

    # ---------------------------------------------------------------- batch

    def batch(self, content_type: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        match = re.search(r'boundary="?([^";]+)"?', content_type)
        if not content_type.startswith("multipart/mixed") or not match:
            err = ApiError(400, "badContent", "Batch requests must be multipart/mixed with a boundary.")
            return 400, {"Content-Type": "application/json"}, json.dumps(err.body()).encode()
        with self.lock:
            self.stats.batches += 1
            fault = self._fault("POST", "/batch/calendar/v3", "batch")
        if fault is not None:
            return fault.status, {"Content-Type": "application/json"}, json.dumps(fault.body()).encode()
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        parts = message.get_payload() if message.is_multipart() else []
        if not isinstance(parts, list) or len(parts) > 1000:
            err = ApiError(400, "badContent", "Too many requests in one batch.")
            return 400, {"Content-Type": "application/json"}, json.dumps(err.body()).encode()
        boundary = "batch_" + secrets.token_hex(12)
        out = []
        for part in parts:
            if not isinstance(part, email.message.Message):
                continue
            content_id = part.get("Content-ID", "")
            payload = part.get_payload(decode=False)
            if not isinstance(payload, str):
                continue
            raw = payload.replace("\r\n", "\n")
            head, _, sub_body = raw.partition("\n\n")
            lines = head.split("\n")
            request_line = lines[0].split(" ")
            sub_headers = {"authorization": headers.get("authorization", "")}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    sub_headers[name.strip().lower()] = value.strip()
            resp_headers: dict[str, str]
            if len(request_line) < 2:
                status, resp_headers, resp_body = 400, {}, b""
            else:
                status, resp_headers, resp_body = self.handle(request_line[0], request_line[1], sub_headers,
                                                              sub_body.encode())
            reason = _REASONS.get(status, "")
            lines_out = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in resp_headers.items()]
            lines_out.append(f"Content-Length: {len(resp_body)}")
            cid = content_id[1:-1] if content_id.startswith("<") else content_id
            out.append(f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <response-{cid}>\r\n\r\n"
                       + "\r\n".join(lines_out) + "\r\n\r\n" + resp_body.decode() + "\r\n")
        payload = ("".join(out) + f"--{boundary}--\r\n").encode()
        return 200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, payload


_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 409: "Conflict", 410: "Gone", 412: "Precondition Failed", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}


# ------------------------------------------------------------------ HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment: no Nagle / delayed-ACK stall per response.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
        return

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self) -> None:
        sandbox = self.server.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = urllib.parse.urlsplit(self.path).path
        with sandbox.lock:
            sandbox.stats.http_requests += 1
        if path == "/batch/calendar/v3" and self.command == "POST":
            self._send(*sandbox.batch(headers.get("content-type", ""), body, headers))
        elif path == "/o/oauth2/auth" and self.command == "GET":
            params = {k: v[-1] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).items()}
            try:
                location = sandbox.authorize(params)
            except ApiError as exc:
                self._send(400, {"Content-Type": "text/plain"}, exc.message.encode())
                return
            self._send(302, {"Location": location}, b"")
        elif path == "/token" and self.command == "POST":
            with sandbox.lock:
                sandbox.stats.http_requests -= 1
                sandbox.stats.token_requests += 1
            form = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode()).items()}
            status, payload = sandbox.token(form)
            self._send(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())
        elif path == "/":
            self._send(200, {"Content-Type": "text/plain"}, b"Google Calendar API sandbox\n")
        else:
            self._send(*sandbox.handle(self.command, self.path, headers, body))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: GoogleCalendarSandbox) -> None:
        super().__init__(address, _Handler)
        self.sandbox = sandbox


@dataclass
class Running:
    """A started server: its state (`sandbox`), its `url`, and `close()`."""

    sandbox: GoogleCalendarSandbox
    server: _Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    @property
    def token_uri(self) -> str:
        return self.url + "token"

    @property
    def auth_uri(self) -> str:
        return self.url + "o/oauth2/auth"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.sandbox.stop_worker()

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(port: int = 0, sandbox: GoogleCalendarSandbox | None = None, host: str = "127.0.0.1") -> Running:
    """Start the server in a background thread (port 0: a free port)."""
    sandbox = sandbox or GoogleCalendarSandbox()
    server = _Server((host, port), sandbox)
    sandbox.base_url = f"http://{host}:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="gcal-sandbox", daemon=True)
    thread.start()
    return Running(sandbox, server, thread)


def add_demo_data(sandbox: GoogleCalendarSandbox, user: str = "demo@example.com",
                  client_id: str = "spokesync-demo", client_secret: str = "demo-secret") -> None:  # noqa: S107
    """Two calendars with a few events and an OAuth client: what the demo mode starts with."""
    sandbox.add_client(client_id, client_secret)
    sandbox.add_calendar(user, user, "Demo (primary)", "Europe/Berlin")
    sandbox.add_calendar("team@group.calendar.google.com", user, "Team", "Europe/Berlin")
    sandbox.add_calendar("office@group.calendar.google.com", user, "Office", "Europe/Berlin")
    monday = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    sandbox.user_insert("team@group.calendar.google.com", {
        "summary": "Team standup", "start": _when_json(monday, "Europe/Berlin"),
        "end": _when_json(monday + timedelta(minutes=15), "Europe/Berlin"),
        "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=30"]})
    sandbox.user_insert("team@group.calendar.google.com", {
        "summary": "Offsite", "start": {"date": "2026-03-10"}, "end": {"date": "2026-03-12"},
        "transparency": "transparent"})
    sandbox.user_insert("office@group.calendar.google.com", {
        "summary": "Fire drill", "location": "Lobby", "start": _when_json(monday + timedelta(days=3, hours=2),
                                                                           "Europe/Berlin"),
        "end": _when_json(monday + timedelta(days=3, hours=3), "Europe/Berlin")})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local Google Calendar API sandbox")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--demo", action="store_true", help="create sample calendars and an OAuth client")
    parser.add_argument("--no-auth", action="store_true", help="accept requests without a bearer token")
    args = parser.parse_args(argv)
    sandbox = GoogleCalendarSandbox(require_auth=not args.no_auth)
    running = serve(args.port, sandbox)
    if args.demo:
        add_demo_data(sandbox)
    print(f"Google Calendar API sandbox on {running.url} (token endpoint {running.token_uri})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        running.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
