"""Google Calendar event resources ⇄ the canonical `Event`: pure functions.

Google keeps a recurring series as one master event plus one event per
modified or cancelled occurrence (`recurringEventId` + `originalStartTime`).
The hub keeps one item per series, so `fold_series` turns a master and its
exceptions into one `Event` with `overrides` / `cancelled`, and
`exception_plan` says which instance events to write for a hub series.

What Google cannot hold natively (show-as beyond busy/free, categories,
colours that are not Google colour ids, attendee roles "chair" and responses
"organizer") rides in `extendedProperties.private`, so that every field in
`FIELDS` round-trips exactly: the engine's echo suppression and conflict
detection compare content hashes over those fields.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spokesync.model.event import ALL_FIELDS, Attendee, Event, Override, Person, When, content_hash

HUB_ID_KEY = "spokesyncHubId"
SHOW_AS_KEY = "spokesyncShowAs"
CATEGORIES_KEY = "spokesyncCategories"
COLOR_KEY = "spokesyncColor"
ATTENDEE_EXTRA_KEY = "spokesyncAttendees"
# Attendees a service account without domain-wide delegation may not set (403
# forbiddenForServiceAccounts) are held here instead, so nothing is lost:
# JSON split over numbered keys (an extended property value holds ≤ 1024 chars).
HELD_ATTENDEES_KEY = "spokesyncHeldAttendees"
_HELD_CHUNK = 1000
_HELD_MAX_CHUNKS = 30
REMINDER_MAX_MINUTES = 40320  # EventReminder.minutes: 0 to 40320 (discovery document)

# The Event fields this mapping writes and reads back faithfully.
FIELDS = frozenset({
    "title", "start", "end", "timezone", "description", "description_html", "location",
    "recurrence", "overrides", "cancelled", "status", "show_as", "privacy", "attendees",
    "reminders", "categories", "color", "url",
})
# Fields of an override (one occurrence) that we carry; the rest stay at their
# defaults so an occurrence reads back exactly as it was written.
_OCCURRENCE_FIELDS = FIELDS - {"recurrence", "overrides", "cancelled"}
_GOOGLE_COLOR_IDS = frozenset(str(i) for i in range(1, 12))
_RESPONSES = {"needs_action": "needsAction", "accepted": "accepted", "declined": "declined",
              "tentative": "tentative", "organizer": "accepted"}
_RESPONSES_BACK = {"needsAction": "needs_action", "accepted": "accepted", "declined": "declined",
                   "tentative": "tentative"}
_HTML = re.compile(r"<(/?[a-zA-Z][a-zA-Z0-9]*)(\s[^<>]*)?/?>")
MAX_REMINDERS = 5  # Google rejects more override reminders


# ------------------------------------------------------------------ ids


def event_id_for(hub_id: str) -> str:
    """Deterministic Google event id (base32hex, `a-v0-9`) for a hub item id.

    A 32-char hex hub id is encoded losslessly (26 chars); anything else is
    hashed. A retried create therefore hits 409 duplicate instead of
    creating a second copy.
    """
    if re.fullmatch(r"[0-9a-f]{32}", hub_id):
        raw = bytes.fromhex(hub_id)
    else:
        raw = hashlib.sha256(hub_id.encode()).digest()[:20]
    return base64.b32hexencode(raw).decode().rstrip("=").lower()


def fresh_event_id(hub_id: str, attempt: int) -> str:
    """The id to recreate an item under when Google keeps its first id reserved
    (deleted by the user): still derived from the hub id, so a retry finds it."""
    return event_id_for(hashlib.sha256(f"{hub_id}#{attempt}".encode()).hexdigest()[:32])


def instance_suffix(original_start: When) -> str:
    if isinstance(original_start, datetime):
        return original_start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return original_start.strftime("%Y%m%d")


def instance_id(master_id: str, original_start: When) -> str:
    """Google's id for one occurrence of a recurring event."""
    return f"{master_id}_{instance_suffix(original_start)}"


# ------------------------------------------------------------------ times


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_when(raw: dict[str, Any] | None) -> When | None:
    if not raw:
        return None
    if raw.get("date"):
        return date.fromisoformat(raw["date"])
    value = raw.get("dateTime")
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_zone(raw.get("timeZone")) or UTC)
    zone = _zone(raw.get("timeZone"))
    return parsed.astimezone(zone) if zone else parsed


def when_to_google(value: When, zone_name: str | None) -> dict[str, Any]:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime in event: {value!r}")
        zone = _zone(zone_name)
        local = value.astimezone(zone) if zone else value
        out: dict[str, Any] = {"dateTime": local.isoformat()}
        if zone_name:
            out["timeZone"] = zone_name
        return out
    return {"date": value.isoformat()}


def _zone_for_write(event: Event, recurring: bool) -> str | None:
    if event.timezone:
        return event.timezone
    if isinstance(event.start, datetime) and recurring:
        # Google requires a zone for recurring events.
        return getattr(event.start.tzinfo, "key", None) or "UTC"
    return None


# ------------------------------------------------------------------ to Google


def _attendees_to_google(event: Event) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    out: list[dict[str, Any]] = []
    extra: dict[str, dict[str, str]] = {}
    for a in event.attendees:
        item: dict[str, Any] = {"email": a.email, "responseStatus": _RESPONSES.get(a.response, "needsAction")}
        if a.name:
            item["displayName"] = a.name
        if a.role == "optional":
            item["optional"] = True
        elif a.role == "resource":
            item["resource"] = True
        if a.role == "chair" or a.response == "organizer":
            extra[a.email.lower()] = {"role": a.role, "response": a.response}
        out.append(item)
    return out, extra


def _held_attendees(attendees: list[dict[str, Any]], extra: dict[str, dict[str, str]]) -> dict[str, str | None]:
    text = json.dumps({"attendees": attendees, "extra": extra}, sort_keys=True, separators=(",", ":")) \
        if attendees else ""
    chunks = [text[i:i + _HELD_CHUNK] for i in range(0, len(text), _HELD_CHUNK)]
    if len(chunks) > _HELD_MAX_CHUNKS:
        raise ValueError(f"too many attendees to keep in Google without delegation ({len(attendees)})")
    return {f"{HELD_ATTENDEES_KEY}{n}": (chunks[n] if n < len(chunks) else None) for n in range(_HELD_MAX_CHUNKS)}


# canonical fields -> the event resource's keys that hold them (for `without_kept`)
_KEYS_OF = {"description": ("description",), "description_html": ("description",), "location": ("location",),
            "attendees": ("attendees",), "reminders": ("reminders",)}


def without_kept(body: dict[str, Any], kept: frozenset[str]) -> dict[str, Any]:
    """A patch body that leaves the fields in `kept` (switched off for this spoke) as Google has
    them: events.patch keeps what a body leaves out, and keeps extended properties it does not
    name ("Fields you don't specify in the request body are retained": Events: patch,
    https://developers.google.com/calendar/api/v3/reference/events/patch)."""
    if not kept:
        return body
    for name in kept:
        for key in _KEYS_OF.get(name, ()):
            body.pop(key, None)
    if "attendees" in kept:
        private = (body.get("extendedProperties") or {}).get("private") or {}
        for key in [k for k in private if k == ATTENDEE_EXTRA_KEY or k.startswith(HELD_ATTENDEES_KEY)]:
            del private[key]
    return body


def clamp_reminder(minutes: int) -> int:
    """Google takes 0 to 40320 minutes (4 weeks): a longer reminder becomes 4 weeks, not a refused event."""
    return max(0, min(REMINDER_MAX_MINUTES, int(minutes)))


def event_to_google(event: Event, hub_id: str | None = None, *, occurrence: bool = False,
                    hold_attendees: bool = False) -> dict[str, Any]:
    """The writable part of a Google event resource for `event`.

    Every managed field is present (explicit empty/None values clear it), so
    the body works for insert, update and patch alike. For an occurrence
    (`occurrence=True`) recurrence is left out. `hold_attendees`: the
    credential may not set attendees (a service account without delegation):
    they go to a private extended property instead of `attendees`.
    """
    recurring = bool(event.recurrence) and not occurrence
    zone_name = _zone_for_write(event, recurring)
    if event.start is None or event.end is None:
        raise ValueError("an event needs a start and an end")
    description = event.description or event.description_html
    attendees, attendee_extra = _attendees_to_google(event)
    private: dict[str, str | None] = {
        SHOW_AS_KEY: event.show_as if event.show_as not in ("busy", "free") else None,
        CATEGORIES_KEY: json.dumps(sorted(set(event.categories))) if event.categories else None,
        COLOR_KEY: event.color if event.color and event.color not in _GOOGLE_COLOR_IDS else None,
        ATTENDEE_EXTRA_KEY: json.dumps(attendee_extra, sort_keys=True) if attendee_extra else None,
    }
    if hub_id is not None:
        private[HUB_ID_KEY] = hub_id
    reminders: dict[str, Any]
    if event.reminders is None:
        reminders = {"useDefault": True}
    else:
        minutes = sorted({clamp_reminder(m) for m in event.reminders})[:MAX_REMINDERS]
        reminders = {"useDefault": False, "overrides": [{"method": "popup", "minutes": m} for m in minutes]}
    body: dict[str, Any] = {
        "summary": event.title,
        "description": description,
        "location": event.location,
        "start": when_to_google(event.start, zone_name),
        "end": when_to_google(event.end, zone_name),
        "status": "tentative" if event.status == "tentative" else "confirmed",
        "transparency": "transparent" if event.show_as == "free" else "opaque",
        "visibility": event.privacy,
        "colorId": event.color if event.color in _GOOGLE_COLOR_IDS else None,
        "attendees": attendees,
        "reminders": reminders,
        "source": {"url": event.url, "title": event.title or event.url} if event.url else None,
        "extendedProperties": {"private": private},
    }
    if hold_attendees:
        private.update(_held_attendees(attendees, attendee_extra))
        private[ATTENDEE_EXTRA_KEY] = None
        del body["attendees"]  # leave Google's own list alone: setting it is refused
    if not occurrence:
        body["recurrence"] = [line for line in event.recurrence if line.strip()]
    return body


# ------------------------------------------------------------------ from Google


def _private(raw: dict[str, Any]) -> dict[str, str]:
    props = raw.get("extendedProperties") or {}
    return dict(props.get("private") or {})


def _json_value(value: str | None, default: Any) -> Any:
    if not value:
        return default
    try:
        return json.loads(value)
    except ValueError:
        return default


def _attendees_from_google(raw: dict[str, Any], private: dict[str, str]) -> tuple[Attendee, ...]:
    extra = _json_value(private.get(ATTENDEE_EXTRA_KEY), {})
    attendees = raw.get("attendees") or ()
    held_text = "".join(private.get(f"{HELD_ATTENDEES_KEY}{n}") or "" for n in range(_HELD_MAX_CHUNKS))
    if held_text and not attendees:
        held = _json_value(held_text, {})
        if isinstance(held, dict):
            attendees = held.get("attendees") or ()
            extra = held.get("extra") or {}
    out = []
    for a in attendees:
        email = a.get("email")
        if not email:
            continue
        role = "optional" if a.get("optional") else "resource" if a.get("resource") else "required"
        response = _RESPONSES_BACK.get(a.get("responseStatus", "needsAction"), "needs_action")
        known = extra.get(email.lower()) if isinstance(extra, dict) else None
        if isinstance(known, dict):
            if known.get("role") == "chair" and role == "required":
                role = "chair"
            if known.get("response") == "organizer" and response == "accepted":
                response = "organizer"
        out.append(Attendee(email=email, name=a.get("displayName", ""), role=role, response=response))  # type: ignore[arg-type]
    return tuple(out)


def _conference_url(raw: dict[str, Any]) -> str:
    for entry in (raw.get("conferenceData") or {}).get("entryPoints") or ():
        if entry.get("entryPointType") == "video" and entry.get("uri"):
            return str(entry["uri"])
    return str(raw.get("hangoutLink") or "")


def event_from_google(raw: dict[str, Any], *, occurrence: bool = False) -> Event:
    """The canonical Event for one Google event resource (master or single).

    `occurrence=True` reads only the fields an override carries.
    """
    private = _private(raw)
    start_raw = raw.get("start") or {}
    description = raw.get("description") or ""
    is_html = bool(_HTML.search(description))
    transparency = raw.get("transparency", "opaque")
    stored_show_as = private.get(SHOW_AS_KEY)
    if transparency == "transparent":
        show_as = "free"
    elif stored_show_as in ("tentative", "oof", "working_elsewhere"):
        show_as = stored_show_as
    else:
        show_as = "busy"
    reminders_raw = raw.get("reminders") or {"useDefault": True}
    reminders: tuple[int, ...] | None
    if reminders_raw.get("useDefault", False):
        reminders = None
    else:
        reminders = tuple(sorted({int(r["minutes"]) for r in reminders_raw.get("overrides") or ()}))
    color = raw.get("colorId") or private.get(COLOR_KEY) or None
    status = raw.get("status", "confirmed")
    organizer_raw = raw.get("organizer") or {}
    updated = raw.get("updated")
    event = Event(
        title=raw.get("summary", ""),
        start=parse_when(raw.get("start")),
        end=parse_when(raw.get("end")),
        timezone=start_raw.get("timeZone") if start_raw.get("dateTime") else None,
        description="" if is_html else description,
        description_html=description if is_html else "",
        location=raw.get("location", ""),
        recurrence=() if occurrence else tuple(raw.get("recurrence") or ()),
        status=status if status in ("confirmed", "tentative", "cancelled") else "confirmed",
        show_as=show_as,  # type: ignore[arg-type]
        privacy=raw.get("visibility", "default") if raw.get("visibility") in ("default", "public", "private", "confidential") else "default",
        organizer=None if occurrence or not organizer_raw.get("email") else Person(
            organizer_raw["email"], organizer_raw.get("displayName", "")),
        attendees=_attendees_from_google(raw, private),
        reminders=reminders,
        categories=tuple(_json_value(private.get(CATEGORIES_KEY), [])),
        color=color,
        url=(raw.get("source") or {}).get("url", ""),
        conference_url="" if occurrence else _conference_url(raw),
        modified=None if occurrence or not updated else datetime.fromisoformat(updated.replace("Z", "+00:00")),
    )
    return event


def hub_id_of(raw: dict[str, Any]) -> str | None:
    return _private(raw).get(HUB_ID_KEY) or None


# ------------------------------------------------------------------ series


def occurrence_template(master: Event, original_start: When) -> Event:
    """What an unmodified occurrence of `master` starting at `original_start` looks like."""
    duration = (master.end - master.start) if master.start is not None and master.end is not None else timedelta(0)  # type: ignore[operator]
    start = original_start
    if isinstance(start, datetime) and master.timezone:
        zone = _zone(master.timezone)
        if zone:
            start = start.astimezone(zone)
    return replace(master, start=start, end=start + duration, recurrence=(), overrides=(), cancelled=(),
                   organizer=None, conference_url="", modified=None)


def _occurrence_only(event: Event) -> Event:
    """An override's event with only the fields Google carries for an occurrence."""
    base = Event()
    keep = {name: getattr(event, name) for name in _OCCURRENCE_FIELDS}
    return replace(base, **keep)


def same_occurrence(a: Event, b: Event) -> bool:
    names = ALL_FIELDS - {"recurrence", "overrides", "cancelled"}
    return content_hash(_occurrence_only(a), names) == content_hash(_occurrence_only(b), names)


@dataclass(frozen=True)
class Series:
    """A master event resource and its exception resources as read from Google."""

    master: dict[str, Any]
    exceptions: tuple[dict[str, Any], ...] = ()


def series_version(series: Series) -> str:
    """Changes whenever the master or any exception changes (echo suppression
    compares it with what a write returned)."""
    if not series.exceptions and not series.master.get("recurrence"):
        return str(series.master.get("etag", ""))
    h = hashlib.sha256(str(series.master.get("etag", "")).encode())
    for exc in sorted(series.exceptions, key=lambda e: str(e.get("id"))):
        h.update(b"\0" + str(exc.get("id")).encode() + b"=" + str(exc.get("etag", "")).encode())
    return "s" + h.hexdigest()[:30]


def fold_series(series: Series) -> Event:
    """One Event for a master and its exceptions."""
    master = event_from_google(series.master)
    if not master.recurrence:
        return master
    overrides: list[Override] = []
    cancelled: list[When] = []
    for raw in series.exceptions:
        original = parse_when(raw.get("originalStartTime"))
        if original is None:
            continue
        if raw.get("status") == "cancelled":
            cancelled.append(original)
            continue
        occurrence = _occurrence_only(event_from_google(raw, occurrence=True))
        if same_occurrence(occurrence, occurrence_template(master, original)):
            continue  # an exception reverted to the series' values
        overrides.append(Override(original, occurrence))
    return replace(master, overrides=tuple(overrides), cancelled=tuple(cancelled))


@dataclass(frozen=True)
class ExceptionWrite:
    """One instance event to write for a series: patch it (`body`) or cancel it."""

    instance_id: str
    original_start: When
    body: dict[str, Any] | None  # None: cancel the occurrence
    etag: str | None  # the existing exception's etag (If-Match), None for a generated instance


def exception_plan(master_id: str, event: Event, current: Series | None, *,
                   hold_attendees: bool = False) -> list[ExceptionWrite]:
    """The instance writes that make Google's exceptions match `event`'s
    overrides and cancellations: new or changed overrides are patched,
    cancellations deleted, exceptions the hub no longer has reverted to the
    series' values."""
    if not event.recurrence:
        return []
    existing: dict[str, dict[str, Any]] = {}
    current_event = fold_series(current) if current else None
    current_overrides = {instance_suffix(o.original_start): o for o in (current_event.overrides if current_event else ())}
    current_cancelled = {instance_suffix(c) for c in (current_event.cancelled if current_event else ())}
    for raw in current.exceptions if current else ():
        original = parse_when(raw.get("originalStartTime"))
        if original is not None:
            existing[instance_suffix(original)] = raw
    plan: list[ExceptionWrite] = []
    wanted: set[str] = set()
    for c in event.cancelled:
        key = instance_suffix(c)
        wanted.add(key)
        if key not in current_cancelled:
            plan.append(ExceptionWrite(f"{master_id}_{key}", c, None, existing.get(key, {}).get("etag")))
    for o in event.overrides:
        key = instance_suffix(o.original_start)
        if key in wanted:
            continue
        wanted.add(key)
        have = current_overrides.get(key)
        if have is not None and key not in current_cancelled and same_occurrence(have.event, o.event):
            continue
        body = occurrence_body(o.event, o.original_start, event, hold_attendees=hold_attendees)
        plan.append(ExceptionWrite(f"{master_id}_{key}", o.original_start, body, existing.get(key, {}).get("etag")))
    for key, raw in existing.items():
        if key in wanted:
            continue
        # The hub dropped this exception: revert the occurrence to the series' values.
        if key not in current_overrides and key not in current_cancelled:
            continue  # already equal to the series
        original = parse_when(raw.get("originalStartTime"))
        assert original is not None
        body = occurrence_body(occurrence_template(event, original), original, event,
                               hold_attendees=hold_attendees)
        plan.append(ExceptionWrite(f"{master_id}_{key}", original, body, raw.get("etag")))
    return plan


def occurrence_body(occurrence: Event, original_start: When, master: Event, *,
                    hold_attendees: bool = False) -> dict[str, Any]:
    occ = _occurrence_only(occurrence)
    if occ.start is None or occ.end is None:
        template = occurrence_template(master, original_start)
        occ = replace(occ, start=template.start, end=template.end)
    body = event_to_google(occ, occurrence=True, hold_attendees=hold_attendees)
    zone_name = master.timezone or _zone_for_write(master, True)
    body["originalStartTime"] = when_to_google(original_start, zone_name)
    return body
