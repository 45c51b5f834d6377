"""Exchange calendar items ⇄ the canonical `Event` (pure, exchangelib value objects only).

Time zones: Windows ids ⇄ IANA through the CLDR windowsZones table exchangelib
ships (`exchangelib.winzone`). Several IANA zones share one Windows zone, so
the zone name does not round-trip: start and end are compared as instants.
All-day items: exchangelib's end date is inclusive, the hub's is exclusive.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from exchangelib import CalendarItem, EWSDate, EWSDateTime, EWSTimeZone, ExtendedProperty
from exchangelib.properties import Attendee as EwsAttendee
from exchangelib.properties import Body, HTMLBody, Mailbox
from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

from spokesync.connectors.exchange import recurrence as rec
from spokesync.model.event import ALL_FIELDS, Attendee, Event, Override, Person, When

HUB_ID_PROPERTY = "spokesync-hub-id"
RULE_PROPERTY = "spokesync-rrule"


class HubIdProperty(ExtendedProperty):
    """The hub item id, in the PublicStrings property set: survives copies and is searchable."""

    distinguished_property_set_id = "PublicStrings"
    property_name = HUB_ID_PROPERTY
    property_type = "String"


class RuleProperty(ExtendedProperty):
    """The RRULE line we wrote with the series. Exchange keeps a pattern, not a line: read back, a rule
    comes out re-spelled (BYDAY order, UNTIL as an end-of-day instant, BYMONTH added), and a re-spelled
    rule would be written back into the user's own calendar as a change. While the pattern is still the
    one this line maps to, the line is what the series says; once someone changes the pattern in
    Outlook, the pattern wins."""

    distinguished_property_set_id = "PublicStrings"
    property_name = RULE_PROPERTY
    property_type = "String"


def register() -> None:
    names = {f.name for f in CalendarItem.FIELDS}
    if "spokesync_hub_id" not in names:
        CalendarItem.register("spokesync_hub_id", HubIdProperty)
    if "spokesync_rrule" not in names:
        CalendarItem.register("spokesync_rrule", RuleProperty)


# Fields Exchange holds and returns as written. Left out: timezone (Windows
# zones are coarser than IANA), status (IsCancelled is read-only), organizer
# (always the mailbox owner), color, url, conference_url (no EWS field).
FIELDS = frozenset({
    "title", "start", "end", "description", "description_html", "location", "recurrence", "overrides",
    "cancelled", "show_as", "privacy", "attendees", "reminders", "categories",
})
assert FIELDS <= ALL_FIELDS

# What we read and write (the `only_fields` of GetItem). Not "changekey": the ItemId carries it, and
# `item:ChangeKey` is not in the schema's UnindexedFieldURIType (real Exchange: ErrorSchemaValidation).
READ_FIELDS = (
    "subject", "body", "location", "start", "end", "is_all_day", "legacy_free_busy_status", "sensitivity",
    "categories", "reminder_is_set", "reminder_minutes_before_start", "required_attendees", "optional_attendees",
    "resources", "organizer", "recurrence", "modified_occurrences", "deleted_occurrences", "type",
    "last_modified_time", "is_cancelled", "_start_timezone", "_end_timezone", "spokesync_hub_id", "reminder_due_by",
    "spokesync_rrule",
)
WRITE_FIELDS = [
    "subject", "body", "location", "start", "end", "is_all_day", "legacy_free_busy_status", "sensitivity",
    "categories", "reminder_is_set", "reminder_minutes_before_start", "required_attendees", "optional_attendees",
    "resources", "recurrence", "_start_timezone", "_end_timezone", "spokesync_rrule",
]
# canonical fields -> the WRITE_FIELDS that hold them (a spoke's switched-off fields are left out of updates)
KEPT_FIELDNAMES: dict[str, tuple[str, ...]] = {
    "description": ("body",), "description_html": ("body",), "location": ("location",),
    "attendees": ("required_attendees", "optional_attendees", "resources"),
    "reminders": ("reminder_is_set", "reminder_minutes_before_start"),
}
OCCURRENCE_WRITE_FIELDS = [f for f in WRITE_FIELDS if f not in ("recurrence", "spokesync_rrule")]

_SHOW_AS = {"busy": "Busy", "free": "Free", "tentative": "Tentative", "oof": "OOF",
            "working_elsewhere": "WorkingElsewhere"}
_SHOW_AS_BACK = {v: k for k, v in _SHOW_AS.items()} | {"NoData": "busy"}
# Exchange has no "public": it reads back as "default" (Normal).
_SENSITIVITY = {"default": "Normal", "public": "Normal", "private": "Private", "confidential": "Confidential"}
_SENSITIVITY_BACK = {"Normal": "default", "Private": "private", "Confidential": "confidential", "Personal": "private"}
_RESPONSE_BACK = {"Unknown": "needs_action", "NoResponseReceived": "needs_action", "Accept": "accepted",
                  "Decline": "declined", "Tentative": "tentative", "Organizer": "organizer"}


def ews_zone(name: str | None, value: When | None = None) -> EWSTimeZone:
    """An EWSTimeZone for an IANA name (or the zone of an aware datetime); UTC when unknown to Windows."""
    key = name
    if key is None and isinstance(value, datetime):
        key = getattr(value.tzinfo, "key", None)
    try:
        return EWSTimeZone(key) if key else EWSTimeZone("UTC")
    except Exception:
        return EWSTimeZone("UTC")


def iana_zone(tz: Any) -> str | None:
    if tz is None:
        return None
    ms_id = getattr(tz, "ms_id", None)
    if ms_id and ms_id in MS_TIMEZONE_TO_IANA_MAP:
        return MS_TIMEZONE_TO_IANA_MAP[ms_id]
    return getattr(tz, "key", None)


def _local(value: When, tz: EWSTimeZone) -> Any:
    if isinstance(value, datetime):
        local = value.astimezone(ZoneInfo(tz.key))
        # fold: the second 02:00 of a fall-back night is another instant than the first
        return EWSDateTime(local.year, local.month, local.day, local.hour, local.minute, local.second, tzinfo=tz,
                           fold=local.fold)
    return EWSDate.from_date(value)


def _attendees(event: Event, role: str) -> list[EwsAttendee] | None:
    picked = [a for a in event.attendees if (a.role == role) or (role == "required" and a.role == "chair")]
    if not picked:
        return None
    return [EwsAttendee(mailbox=Mailbox(email_address=a.email, name=a.name or None), response_type="Unknown")
            for a in picked]


def item_values(event: Event, *, occurrence: bool = False) -> dict[str, Any]:
    """exchangelib field values for an event (a series master unless `occurrence`)."""
    if event.start is None or event.end is None:
        raise ValueError("an Exchange calendar item needs a start and an end")
    tz = ews_zone(event.timezone, event.start)
    values: dict[str, Any] = {
        "subject": event.title,
        "location": event.location or None,
        "legacy_free_busy_status": _SHOW_AS.get(event.show_as, "Busy"),
        "sensitivity": _SENSITIVITY.get(event.privacy, "Normal"),
        "categories": list(event.categories) or None,
        "required_attendees": _attendees(event, "required"),
        "optional_attendees": _attendees(event, "optional"),
        "resources": _attendees(event, "resource"),
        "_start_timezone": tz,
        "_end_timezone": tz,
    }
    if event.description_html:
        values["body"] = HTMLBody(event.description_html)
    else:
        values["body"] = Body(event.description or "")
    if event.reminders is None:
        values["reminder_is_set"] = False
        # 0, not empty: Exchange would store its default of 15, which reads as a dismissed reminder
        values["reminder_minutes_before_start"] = 0
    elif event.reminders:
        values["reminder_is_set"] = True
        values["reminder_minutes_before_start"] = min(event.reminders)
    else:
        values["reminder_is_set"] = False
        values["reminder_minutes_before_start"] = 0
    if event.all_day:
        values["is_all_day"] = True
        values["start"] = EWSDate.from_date(event.start)  # type: ignore[arg-type]
        # exchangelib's all-day end is the last day; the hub's is the day after
        values["end"] = EWSDate.from_date(event.end - timedelta(days=1))  # type: ignore[arg-type,operator]
    else:
        values["is_all_day"] = False
        values["start"] = _local(event.start, tz)
        values["end"] = _local(event.end, tz)
    if not occurrence:
        values["recurrence"] = None
        values["spokesync_rrule"] = None
        rules = [line for line in event.recurrence if line.strip().upper().startswith("RRULE")]
        others = [line for line in event.recurrence if line.strip() and not line.strip().upper().startswith(("RRULE", "EXDATE"))]
        if others:
            raise rec.UnsupportedRecurrence("Exchange cannot hold RDATE lines")
        if len(rules) > 1:
            raise rec.UnsupportedRecurrence("Exchange holds one recurrence rule per series")
        if rules:
            values["recurrence"] = rec.to_ews(rules[0], event.start, ZoneInfo(tz.key))
            values["spokesync_rrule"] = rules[0].strip()
    return values


def _when(value: Any, all_day: bool, tz: Any, end: bool = False) -> When | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # plain datetimes in the model, never EWSDateTime
        value = datetime.fromtimestamp(value.timestamp(), tz)
    if all_day:
        if isinstance(value, datetime):
            value = value.date()
        day = date(value.year, value.month, value.day)
        return day + timedelta(days=1) if end else day
    if isinstance(value, datetime):
        return value.astimezone(tz)
    return datetime(value.year, value.month, value.day, tzinfo=tz)


def _body(item: CalendarItem) -> tuple[str, str]:
    body = item.body
    if body is None:
        return "", ""
    if isinstance(body, HTMLBody):
        return "", str(body)
    return str(body), ""


def _people(item: CalendarItem) -> tuple[Attendee, ...]:
    out = []
    for role, values in (("required", item.required_attendees), ("optional", item.optional_attendees),
                         ("resource", item.resources)):
        for a in values or ():
            if a.mailbox is None or not a.mailbox.email_address:
                continue
            out.append(Attendee(a.mailbox.email_address.lower(), a.mailbox.name or "", role,  # type: ignore[arg-type]
                                _RESPONSE_BACK.get(a.response_type or "Unknown", "needs_action")))  # type: ignore[arg-type]
    return tuple(out)


def _reminders(item: CalendarItem, now: datetime) -> tuple[int, ...] | None:
    """A dismissed reminder is still the event's reminder. Dismissing it (Outlook, or PerformReminderAction)
    clears ReminderIsSet like switching it off does; what tells them apart is that a dismissed reminder
    had fired: ReminderDueBy is past and ReminderMinutesBeforeStart still says when it was. Read as
    "no reminder", every other spoke would lose the reminder because one person dismissed theirs.
    `now` is the app's clock (a connector never reads the system clock)."""
    minutes = int(item.reminder_minutes_before_start or 0)
    if item.reminder_is_set:
        return (minutes,)
    due = item.reminder_due_by
    if minutes > 0 and isinstance(due, datetime) and due.timestamp() <= now.timestamp():
        return (minutes,)
    return None


def item_to_event(item: CalendarItem, exceptions: dict[str, CalendarItem] | None = None, *,
                  now: datetime) -> Event:
    """The canonical event of a single item or a series master (with its exceptions, fetched by id).
    `now`: the app's clock, for telling a dismissed reminder from a removed one."""
    tz_obj = item._start_timezone
    zone_name = iana_zone(tz_obj) or "UTC"
    tz = ZoneInfo(zone_name)
    all_day = bool(item.is_all_day)
    start = _when(item.start, all_day, tz)
    end = _when(item.end, all_day, tz, end=True)
    text, markup = _body(item)
    reminders = _reminders(item, now)
    organizer = None
    if item.organizer is not None and item.organizer.email_address:
        organizer = Person(item.organizer.email_address.lower(), item.organizer.name or "")
    event = Event(
        title=item.subject or "",
        start=start,
        end=end,
        timezone=zone_name if not all_day else None,
        description=text,
        description_html=markup,
        location=item.location or "",
        show_as=_SHOW_AS_BACK.get(item.legacy_free_busy_status or "Busy", "busy"),  # type: ignore[arg-type]
        privacy=_SENSITIVITY_BACK.get(item.sensitivity or "Normal", "default"),  # type: ignore[arg-type]
        status="cancelled" if item.is_cancelled else "confirmed",
        organizer=organizer,
        attendees=_people(item),
        reminders=reminders,
        categories=tuple(item.categories or ()),
        modified=datetime.fromtimestamp(item.last_modified_time.timestamp(), UTC)
        if isinstance(item.last_modified_time, datetime) else None,
    )
    if item.recurrence is not None and start is not None:
        rule = rec.from_ews(item.recurrence, start, tz)
        written = getattr(item, "spokesync_rrule", None)
        if written:
            try:
                if rec.same_series(rec.to_ews(written, start, tz), item.recurrence):
                    rule = written  # the same pattern: keep the spelling the series came with
            except (rec.UnsupportedRecurrence, ValueError):
                pass
        cancelled: list[When] = []
        for deleted in item.deleted_occurrences or ():
            original = _when(deleted.start, all_day, tz)
            if original is not None:
                cancelled.append(original)
        overrides: list[Override] = []
        for occ in item.modified_occurrences or ():
            full = (exceptions or {}).get(occ.id)
            original = _when(occ.original_start, all_day, tz)
            if original is None:
                continue
            if full is not None:
                # the organizer belongs to the series (override hashes compare every field)
                occ_event = replace(item_to_event(full, now=now), recurrence=(), overrides=(), cancelled=(), modified=None,
                                    organizer=None)
            else:
                occ_event = replace(event, start=_when(occ.start, all_day, tz), end=_when(occ.end, all_day, tz, end=True),
                                    modified=None, organizer=None)
            overrides.append(Override(original, occ_event))
        event = replace(event, recurrence=(rule,), cancelled=tuple(cancelled), overrides=tuple(overrides))
    return event


def exdates(event: Event) -> list[When]:
    """The occurrences the series' EXDATE lines remove (Google keeps them in `recurrence`): Exchange
    holds them as deleted occurrences. Values: UTC (`...Z`), local in TZID (or the event's zone), dates."""
    out: list[When] = []
    default_tz = ZoneInfo(ews_zone(event.timezone, event.start).key)
    for line in event.recurrence:
        name, _, values = line.strip().partition(":")
        if not name.upper().startswith("EXDATE"):
            continue
        params = dict(p.partition("=")[::2] for p in name.split(";")[1:])
        tz: Any = default_tz
        if params.get("TZID"):
            try:
                tz = ZoneInfo(params["TZID"])
            except Exception as exc:
                raise rec.UnsupportedRecurrence(f"unknown time zone {params['TZID']!r} in EXDATE") from exc
        for value in values.split(","):
            value = value.strip().upper()
            if not value:
                continue
            if len(value) == 8:
                out.append(datetime.strptime(value, "%Y%m%d").date())
            elif value.endswith("Z"):
                out.append(datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))
            else:
                out.append(datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=tz))
    return out

