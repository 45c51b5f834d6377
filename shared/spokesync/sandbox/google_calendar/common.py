"""Shared pieces of the local Calendar API server: Google's error body, time
helpers and the state records (calendars, channels, faults, counters)."""

from __future__ import annotations

import base64
import copy
import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
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


# google.rpc canonical codes Google puts in `error.status` (the HTTP mapping of
# google/rpc/code.proto); 410 and 412 have no canonical code of their own.
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 405: "INVALID_ARGUMENT", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                 503: "UNAVAILABLE"}


class ApiError(Exception):
    """An error answered with Google's body: `error.code`, `message`, `status`
    and `errors[{domain, reason, message, location, locationType}]`
    ("Handle API errors", developers.google.com/calendar/api/guides/errors)."""

    def __init__(self, status: int, reason: str, message: str, domain: str = "global", *,
                 location: str | None = None, location_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain
        self.location = location
        self.location_type = location_type

    def body(self) -> dict[str, Any]:
        item: dict[str, Any] = {"domain": self.domain, "reason": self.reason, "message": self.message}
        if self.location is not None:
            item["location"] = self.location
            item["locationType"] = self.location_type or "parameter"
        error: dict[str, Any] = {"errors": [item], "code": self.status, "message": self.message}
        if self.status in _STATUS_NAMES:
            error["status"] = _STATUS_NAMES[self.status]
        return {"error": error}


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
    reserved_ids: set[str] = field(default_factory=set)  # purged tombstones: the ids stay taken
    listed_by: set[str] = field(default_factory=set)  # service accounts that added it (calendarList.insert)


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


