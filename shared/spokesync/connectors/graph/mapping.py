"""Graph events ⇄ the canonical `Event` (pure; JSON dicts in and out).

- Time zones: Graph names zones in Windows form ("W. Europe Standard Time") or IANA form
  ("Europe/Berlin"); both are read (Windows through CLDR's windowsZones table, as exchangelib
  ships it). Writes use the Windows name when the IANA zone has one, else the IANA name. Start
  and end are compared as instants, so the zone name need not round-trip (as for EWS).
- All-day events: `isAllDay` with midnight start and end; the hub holds dates, end exclusive.
- Recurrence: Graph's `patternedRecurrence` is Exchange's recurrence blob in JSON, so the RRULE
  conversion is the EWS connector's (`connectors.exchange.recurrence`), with the same limits.
- Attendees are never written as attendees: Graph sends every attendee a meeting request when
  an event with attendees is created or updated, and has no "send to none" (FACTS.md). They
  travel in a second single-value extended property (JSON), see
  docs/decisions/2026-12-01-graph-attendees.md. Attendees a person added in Outlook are read.
- The hub id is a single-value extended property in PS_PUBLIC_STRINGS named
  "spokesync-hub-id": the same named property the EWS connector writes, so one mailbox seen
  through EWS and through Graph agrees.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spokesync.connectors.exchange.mapping import HUB_ID_PROPERTY, RULE_PROPERTY
from spokesync.model.event import ALL_FIELDS, Attendee, Event, Override, When

PS_PUBLIC_STRINGS = "{00020329-0000-0000-C000-000000000046}"
HUB_ID_PROP = f"String {PS_PUBLIC_STRINGS} Name {HUB_ID_PROPERTY}"
ATTENDEES_PROP = f"String {PS_PUBLIC_STRINGS} Name spokesync-attendees"
# The RRULE line written with the series (the EWS connector's property): read back while Graph's
# pattern is still the one it maps to, so re-spellings (UNTIL as a date, ...) are never written back.
RULE_PROP = f"String {PS_PUBLIC_STRINGS} Name {RULE_PROPERTY}"

# Fields Graph holds and returns as written. Left out as for EWS: timezone (Windows zones are
# coarser than IANA), status, organizer (the mailbox), color, url, conference_url.
FIELDS = frozenset({
    "title", "start", "end", "description", "description_html", "location", "recurrence", "overrides",
    "cancelled", "show_as", "privacy", "attendees", "reminders", "categories",
})
assert FIELDS <= ALL_FIELDS

SELECT = ("subject,body,start,end,isAllDay,location,showAs,sensitivity,categories,isReminderOn,"
          "reminderMinutesBeforeStart,attendees,recurrence,type,seriesMasterId,originalStart,"
          "originalStartTimeZone,originalEndTimeZone,lastModifiedDateTime,cancelledOccurrences,transactionId")
EXPAND = (f"singleValueExtendedProperties($filter=id eq '{HUB_ID_PROP}' or id eq '{ATTENDEES_PROP}' "
          f"or id eq '{RULE_PROP}'),"
          "exceptionOccurrences")

_SHOW_AS = {"busy": "busy", "free": "free", "tentative": "tentative", "oof": "oof",
            "working_elsewhere": "workingElsewhere"}
_SHOW_AS_BACK = {v: k for k, v in _SHOW_AS.items()} | {"unknown": "busy"}
# Graph has no "public": it reads back as "default" (normal), as in EWS.
_SENSITIVITY = {"default": "normal", "public": "normal", "private": "private", "confidential": "confidential"}
_SENSITIVITY_BACK = {"normal": "default", "private": "private", "confidential": "confidential", "personal": "private"}
_ROLE = {"required": "required", "optional": "optional", "resource": "resource", "chair": "required"}
_RESPONSE_BACK = {"none": "needs_action", "notResponded": "needs_action", "accepted": "accepted",
                  "declined": "declined", "tentativelyAccepted": "tentative", "organizer": "organizer"}


class UnsupportedEvent(ValueError):
    """An event Graph cannot hold faithfully (the item is reported as not writable)."""


# ------------------------------------------------------------------ time zones


def iana(name: str | None) -> str | None:
    """The IANA zone for a Graph zone name (Windows or IANA); None when unknown."""
    if not name:
        return None
    if name.upper() in ("UTC", "Z", "COORDINATED UNIVERSAL TIME"):
        return "UTC"
    if "/" in name:
        try:
            ZoneInfo(name)
            return name
        except (ZoneInfoNotFoundError, ValueError):
            return None
    from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

    return MS_TIMEZONE_TO_IANA_MAP.get(name)


def windows(name: str) -> str:
    """The name to write for an IANA zone: its Windows id when CLDR has one, else the IANA name."""
    if name == "UTC":
        return "UTC"
    from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP

    entry = IANA_TO_MS_TIMEZONE_MAP.get(name)
    return entry[0] if entry else name


def _zone_of(event: Event) -> str:
    if event.timezone:
        return event.timezone
    key = getattr(getattr(event.start, "tzinfo", None), "key", None)
    return str(key) if key else "UTC"


def parse_time(raw: dict[str, Any] | None, tz: ZoneInfo) -> datetime | None:
    if not raw or not raw.get("dateTime"):
        return None
    text = str(raw["dateTime"])
    naive = datetime.fromisoformat(text[:26] if "." in text else text)
    source = ZoneInfo(iana(raw.get("timeZone")) or "UTC")
    return naive.replace(tzinfo=source).astimezone(tz)


def _write_time(value: When, all_day: bool, zone_name: str) -> dict[str, str]:
    if all_day:
        day = value if not isinstance(value, datetime) else value.date()
        return {"dateTime": f"{day.isoformat()}T00:00:00", "timeZone": "UTC"}
    assert isinstance(value, datetime)
    local = value.astimezone(ZoneInfo(zone_name))
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": windows(zone_name)}


# ------------------------------------------------------------------ writing


def _body(event: Event) -> dict[str, str]:
    if event.description_html:
        return {"contentType": "html", "content": event.description_html}
    return {"contentType": "text", "content": event.description or ""}


def _common(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {
        "subject": event.title,
        "body": _body(event),
        "location": {"displayName": event.location},
        "showAs": _SHOW_AS.get(event.show_as, "busy"),
        "sensitivity": _SENSITIVITY.get(event.privacy, "normal"),
        "categories": list(event.categories),
    }
    if event.reminders:
        out["isReminderOn"] = True
        out["reminderMinutesBeforeStart"] = min(event.reminders)
    else:
        out["isReminderOn"] = False
    return out


def _attendees_json(event: Event) -> str:
    return json.dumps([[a.email, a.name, a.role, a.response] for a in event.attendees], separators=(",", ":"))


def event_to_graph(event: Event, hub_id: str) -> dict[str, Any]:
    """The body of a create or update of a single event or series master (never `attendees`)."""
    if event.start is None or event.end is None:
        raise UnsupportedEvent("an event needs a start and an end")
    zone_name = _zone_of(event)
    body = _common(event)
    body["isAllDay"] = event.all_day
    body["start"] = _write_time(event.start, event.all_day, zone_name)
    body["end"] = _write_time(event.end, event.all_day, zone_name)
    body["recurrence"] = recurrence_to_graph(event, zone_name)
    rules = [line.strip() for line in event.recurrence if line.strip().upper().startswith("RRULE")]
    body["singleValueExtendedProperties"] = [{"id": HUB_ID_PROP, "value": hub_id},
                                             {"id": ATTENDEES_PROP, "value": _attendees_json(event)},
                                             {"id": RULE_PROP, "value": rules[0] if rules else ""}]
    return body


# canonical fields -> the event resource's keys / extended properties that hold them (`without_kept`)
KEPT_KEYS: dict[str, tuple[str, ...]] = {
    "description": ("body",), "description_html": ("body",), "location": ("location",),
    "reminders": ("isReminderOn", "reminderMinutesBeforeStart"),
}
KEPT_PROPS: dict[str, tuple[str, ...]] = {"attendees": (ATTENDEES_PROP,)}


def without_kept(body: dict[str, Any], kept: frozenset[str], keys: dict[str, tuple[str, ...]] = KEPT_KEYS,
                 props: dict[str, tuple[str, ...]] = KEPT_PROPS) -> dict[str, Any]:
    """A PATCH body that leaves the fields in `kept` (switched off for this spoke) as Microsoft 365
    has them: an update PATCH changes only the properties it carries ("Only the properties you
    include in the request body are updated": Update event / Update contact, Microsoft Graph v1.0)."""
    if not kept:
        return body
    for name in kept:
        for key in keys.get(name, ()):
            body.pop(key, None)
    dropped = {prop for name in kept for prop in props.get(name, ())}
    if dropped and "singleValueExtendedProperties" in body:
        body["singleValueExtendedProperties"] = [p for p in body["singleValueExtendedProperties"]
                                                 if p.get("id") not in dropped]
    return body


def occurrence_to_graph(event: Event, series: Event) -> dict[str, Any]:
    """The body of a PATCH that makes an occurrence an exception."""
    assert event.start is not None and event.end is not None
    zone_name = _zone_of(series)
    body = _common(event)
    body["start"] = _write_time(event.start, series.all_day, zone_name)
    body["end"] = _write_time(event.end, series.all_day, zone_name)
    return body


def recurrence_to_graph(event: Event, zone_name: str) -> dict[str, Any] | None:
    from spokesync.connectors.exchange import recurrence as rec

    rules = [line for line in event.recurrence if line.strip().upper().startswith("RRULE")]
    others = [line for line in event.recurrence
              if line.strip() and not line.strip().upper().startswith(("RRULE", "EXDATE"))]
    if others:
        raise UnsupportedEvent("Microsoft 365 cannot hold RDATE lines")
    if len(rules) > 1:
        raise UnsupportedEvent("Microsoft 365 holds one recurrence rule per series")
    if not rules:
        return None
    assert event.start is not None
    try:
        ews = rec.to_ews(rules[0], event.start, ZoneInfo(zone_name))
    except rec.UnsupportedRecurrence as exc:
        raise UnsupportedEvent(str(exc).replace("Exchange", "Microsoft 365")) from exc
    return _ews_to_graph(ews, zone_name if not event.all_day else "UTC")


_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_INDEX = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "last"}
_INDEX_BACK = {v: k for k, v in _INDEX.items()}


def _graph_days(weekday: int) -> list[str]:
    if weekday == 8:
        return list(_DAYS)
    if weekday == 9:
        return _DAYS[:5]
    if weekday == 10:
        return _DAYS[5:]
    return [_DAYS[weekday - 1]]


def _ews_weekday(days: list[str]) -> int:
    names = [d.lower() for d in days]
    for value, group in ((8, _DAYS), (9, _DAYS[:5]), (10, _DAYS[5:])):
        if sorted(names, key=_DAYS.index) == group:
            return value
    if len(names) == 1:
        return _DAYS.index(names[0]) + 1
    raise UnsupportedEvent("a relative pattern on several weekdays")


def _ews_to_graph(ews: Any, zone_name: str) -> dict[str, Any]:
    from exchangelib.recurrence import (
        AbsoluteMonthlyPattern,
        AbsoluteYearlyPattern,
        DailyPattern,
        EndDatePattern,
        NumberedPattern,
        RelativeMonthlyPattern,
        RelativeYearlyPattern,
        WeeklyPattern,
    )

    p, b = ews.pattern, ews.boundary
    pattern: dict[str, Any]
    if isinstance(p, DailyPattern):
        pattern = {"type": "daily", "interval": p.interval}
    elif isinstance(p, WeeklyPattern):
        weekdays = p.weekdays if isinstance(p.weekdays, (list, tuple)) else [p.weekdays]
        pattern = {"type": "weekly", "interval": p.interval,
                   "daysOfWeek": [_DAYS[(d if isinstance(d, int) else d) - 1] for d in weekdays],
                   "firstDayOfWeek": _DAYS[(p.first_day_of_week or 1) - 1]}
    elif isinstance(p, AbsoluteMonthlyPattern):
        pattern = {"type": "absoluteMonthly", "interval": p.interval, "dayOfMonth": p.day_of_month}
    elif isinstance(p, RelativeMonthlyPattern):
        pattern = {"type": "relativeMonthly", "interval": p.interval, "daysOfWeek": _graph_days(p.weekday),
                   "index": _INDEX[p.week_number]}
    elif isinstance(p, AbsoluteYearlyPattern):
        pattern = {"type": "absoluteYearly", "interval": 1, "dayOfMonth": p.day_of_month, "month": p.month}
    elif isinstance(p, RelativeYearlyPattern):
        pattern = {"type": "relativeYearly", "interval": 1, "daysOfWeek": _graph_days(p.weekday),
                   "index": _INDEX[p.week_number], "month": p.month}
    else:  # pragma: no cover - to_ews makes only the patterns above
        raise UnsupportedEvent(f"pattern {type(p).__name__}")
    rng: dict[str, Any] = {"startDate": b.start.isoformat(), "recurrenceTimeZone": windows(zone_name)}
    if isinstance(b, NumberedPattern):
        rng |= {"type": "numbered", "numberOfOccurrences": b.number}
    elif isinstance(b, EndDatePattern):
        rng |= {"type": "endDate", "endDate": b.end.isoformat()}
    else:
        rng |= {"type": "noEnd"}
    return {"pattern": pattern, "range": rng}


def recurrence_from_graph(raw: dict[str, Any], start: When, tz: ZoneInfo) -> str:
    from exchangelib.recurrence import (
        AbsoluteMonthlyPattern,
        AbsoluteYearlyPattern,
        DailyPattern,
        EndDatePattern,
        NoEndPattern,
        NumberedPattern,
        RelativeMonthlyPattern,
        RelativeYearlyPattern,
        WeeklyPattern,
    )
    from exchangelib.recurrence import Recurrence as EwsRecurrence

    from spokesync.connectors.exchange import recurrence as rec

    p, r = raw.get("pattern") or {}, raw.get("range") or {}
    kind = p.get("type")
    interval = int(p.get("interval") or 1)
    days = [d.lower() for d in p.get("daysOfWeek") or []]
    pattern: Any
    if kind == "daily":
        pattern = DailyPattern(interval=interval)
    elif kind == "weekly":
        pattern = WeeklyPattern(interval=interval, weekdays=[_DAYS.index(d) + 1 for d in days],
                                first_day_of_week=_DAYS.index((p.get("firstDayOfWeek") or "sunday").lower()) + 1)
    elif kind == "absoluteMonthly":
        pattern = AbsoluteMonthlyPattern(interval=interval, day_of_month=int(p["dayOfMonth"]))
    elif kind == "relativeMonthly":
        pattern = RelativeMonthlyPattern(interval=interval, weekday=_ews_weekday(days),
                                         week_number=_INDEX_BACK[p.get("index") or "first"])
    elif kind == "absoluteYearly":
        if interval != 1:
            pattern = AbsoluteMonthlyPattern(interval=12 * interval, day_of_month=int(p["dayOfMonth"]))
        else:
            pattern = AbsoluteYearlyPattern(day_of_month=int(p["dayOfMonth"]), month=int(p["month"]))
    elif kind == "relativeYearly":
        if interval != 1:
            pattern = RelativeMonthlyPattern(interval=12 * interval, weekday=_ews_weekday(days),
                                             week_number=_INDEX_BACK[p.get("index") or "first"])
        else:
            pattern = RelativeYearlyPattern(weekday=_ews_weekday(days), week_number=_INDEX_BACK[p.get("index")
                                                                                                 or "first"],
                                            month=int(p["month"]))
    else:
        raise UnsupportedEvent(f"unknown recurrence pattern {kind!r}")
    first = date.fromisoformat(r["startDate"])
    boundary: Any
    if r.get("type") == "numbered":
        boundary = NumberedPattern(start=first, number=int(r["numberOfOccurrences"]))
    elif r.get("type") == "endDate":
        boundary = EndDatePattern(start=first, end=date.fromisoformat(r["endDate"]))
    else:
        boundary = NoEndPattern(start=first)
    return rec.from_ews(EwsRecurrence(pattern=pattern, boundary=boundary), start, tz)


# ------------------------------------------------------------------ reading


def extended(raw: dict[str, Any], prop_id: str) -> str | None:
    for prop in raw.get("singleValueExtendedProperties") or []:
        if str(prop.get("id", "")).lower() == prop_id.lower():
            value = prop.get("value")
            return None if value is None else str(value)
    return None


def hub_id_of(raw: dict[str, Any]) -> str | None:
    return extended(raw, HUB_ID_PROP) or None


def _attendees(raw: dict[str, Any], stored: str | None) -> tuple[Attendee, ...]:
    out: dict[str, Attendee] = {}
    if stored:
        try:
            for email, name, role, response in json.loads(stored):
                out[str(email).lower()] = Attendee(str(email).lower(), str(name), role, response)
        except (ValueError, TypeError):
            pass
    for a in raw.get("attendees") or []:
        address = ((a.get("emailAddress") or {}).get("address") or "").lower()
        if not address:
            continue
        status = (a.get("status") or {}).get("response") or "none"
        out.setdefault(address, Attendee(address, (a.get("emailAddress") or {}).get("name") or "",
                                         a.get("type") or "required",
                                         _RESPONSE_BACK.get(status, "needs_action")))  # type: ignore[arg-type]
    return tuple(out.values())


def _zone_name(raw: dict[str, Any]) -> str:
    return iana(raw.get("originalStartTimeZone")) or "UTC"


def _plain(raw: dict[str, Any], tz: ZoneInfo, all_day: bool) -> Event:
    start: When | None = parse_time(raw.get("start"), tz)
    end: When | None = parse_time(raw.get("end"), tz)
    if all_day:
        start = _date_of(raw.get("start"))
        end = _date_of(raw.get("end"))
    body = raw.get("body") or {}
    html = (body.get("contentType") or "").lower() == "html"
    reminders = (int(raw.get("reminderMinutesBeforeStart") or 0),) if raw.get("isReminderOn") else None
    modified = raw.get("lastModifiedDateTime")
    return Event(
        title=raw.get("subject") or "",
        start=start, end=end,
        description="" if html else (body.get("content") or ""),
        description_html=(body.get("content") or "") if html else "",
        location=((raw.get("location") or {}).get("displayName") or ""),
        show_as=_SHOW_AS_BACK.get(raw.get("showAs") or "busy", "busy"),  # type: ignore[arg-type]
        privacy=_SENSITIVITY_BACK.get(raw.get("sensitivity") or "normal", "default"),  # type: ignore[arg-type]
        reminders=reminders,
        categories=tuple(raw.get("categories") or ()),
        modified=datetime.fromisoformat(modified.replace("Z", "+00:00")) if modified else None,
    )


def _date_of(raw: dict[str, Any] | None) -> date | None:
    if not raw or not raw.get("dateTime"):
        return None
    return date.fromisoformat(str(raw["dateTime"])[:10])


def original_key(value: When) -> str:
    """How an occurrence is named across reads and writes: its original start (UTC) or date."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return value.isoformat()


def original_of(raw: dict[str, Any], tz: ZoneInfo, all_day: bool) -> When:
    text = str(raw.get("originalStart") or "")
    value = datetime.fromisoformat(text.replace("Z", "+00:00")[:32])
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if all_day:
        # all-day occurrences start at midnight of the series' zone (written as UTC here)
        return value.astimezone(UTC).date() if value.astimezone(UTC).time() == time(0) else value.astimezone(tz).date()
    return value.astimezone(tz)


def graph_to_event(raw: dict[str, Any]) -> Event:
    """The canonical event of a single event or series master read with SELECT/EXPAND."""
    zone_name = _zone_name(raw)
    tz = ZoneInfo(zone_name)
    all_day = bool(raw.get("isAllDay"))
    event = replace(_plain(raw, tz, all_day), timezone=None if all_day else zone_name,
                    attendees=_attendees(raw, extended(raw, ATTENDEES_PROP)))
    recurrence = raw.get("recurrence")
    if not recurrence or event.start is None:
        return event
    rule = recurrence_from_graph(recurrence, event.start, tz)
    written = extended(raw, RULE_PROP)
    if written and written != rule:
        try:
            again = recurrence_to_graph(replace(event, recurrence=(written,)), zone_name)
            if again is not None and recurrence_from_graph(again, event.start, tz) == rule:
                rule = written  # the pattern is still the one our line maps to
        except (UnsupportedEvent, ValueError, KeyError):
            pass
    overrides = []
    for exc in raw.get("exceptionOccurrences") or []:
        original = original_of(exc, tz, all_day)
        occurrence = replace(_plain(exc, tz, all_day), timezone=event.timezone, attendees=event.attendees)
        # Graph cannot turn an exception back into a plain occurrence: one that equals its
        # occurrence (a reverted edit) is no exception.
        if not same_occurrence(occurrence, _occurrence_at(event, original)):
            overrides.append(Override(original, occurrence))
    cancelled: list[When] = []
    local_start = event.start
    for oid in raw.get("cancelledOccurrences") or []:
        day = date.fromisoformat(str(oid).rsplit(".", 1)[1])
        if all_day:
            cancelled.append(day)
        else:
            assert isinstance(local_start, datetime)
            cancelled.append(datetime.combine(day, local_start.astimezone(tz).time(), tz))
    return replace(event, recurrence=(rule,), overrides=tuple(overrides), cancelled=tuple(cancelled))


def _occurrence_at(series: Event, original: When) -> Event:
    assert series.start is not None and series.end is not None
    duration = series.end - series.start  # type: ignore[operator]
    return replace(series, start=original, end=original + duration, recurrence=(), overrides=(), cancelled=(),
                   modified=None)


def same_occurrence(a: Event, b: Event) -> bool:
    from spokesync.model.event import content_hash

    names = FIELDS - {"recurrence", "overrides", "cancelled", "attendees"}
    return content_hash(a, names) == content_hash(b, names)


def shift(value: When, days: int) -> When:
    return value + timedelta(days=days)
