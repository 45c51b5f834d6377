"""The canonical calendar event as the hub keeps it, and its stable content hash.

Plain data, no I/O. Connectors map their wire formats to and from `Event`;
the engine compares events only through `content_hash` over a chosen set of
fields, so that what servers rewrite (etags, change keys, timestamps, list
order, HTML wrappers, time-zone aliases of the same instant) never looks like
a change.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, fields, replace
from datetime import UTC, date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

ShowAs = Literal["busy", "free", "tentative", "oof", "working_elsewhere"]
Privacy = Literal["default", "public", "private", "confidential"]
Status = Literal["confirmed", "tentative", "cancelled"]
Role = Literal["required", "optional", "resource", "chair"]
Response = Literal["needs_action", "accepted", "declined", "tentative", "organizer"]

When = datetime | date


@dataclass(frozen=True)
class Person:
    email: str
    name: str = ""


@dataclass(frozen=True)
class Attendee:
    email: str
    name: str = ""
    role: Role = "required"
    response: Response = "needs_action"


@dataclass(frozen=True)
class Override:
    """One modified occurrence of a recurring event, keyed by its original start.

    `event` holds the occurrence as it now is (no recurrence of its own).
    """

    original_start: When
    event: Event


@dataclass(frozen=True)
class Event:
    title: str = ""
    start: When | None = None
    end: When | None = None
    # IANA zone the event was created in (timed events); start/end are aware.
    timezone: str | None = None
    description: str = ""
    description_html: str = ""
    location: str = ""
    # RFC 5545 lines: RRULE / RDATE (EXDATEs are normalised into `cancelled`).
    recurrence: tuple[str, ...] = ()
    overrides: tuple[Override, ...] = ()
    cancelled: tuple[When, ...] = ()
    status: Status = "confirmed"
    show_as: ShowAs = "busy"
    privacy: Privacy = "default"
    organizer: Person | None = None
    attendees: tuple[Attendee, ...] = ()
    # None: the spoke's default reminders; () explicitly none; else minutes before start.
    reminders: tuple[int, ...] | None = None
    categories: tuple[str, ...] = ()
    color: str | None = None
    url: str = ""
    conference_url: str = ""
    # The source's modification time: used for "most recent change wins", never hashed.
    modified: datetime | None = None

    @property
    def all_day(self) -> bool:
        return isinstance(self.start, date) and not isinstance(self.start, datetime)

    @property
    def is_recurring(self) -> bool:
        return bool(self.recurrence)


# Fields a connector can round-trip. The engine compares and merges only the
# fields both sides carry, so a spoke that cannot store categories never makes
# the hub forget them, and never looks changed because it lacks them.
TIME_FIELDS = frozenset({"start", "end", "recurrence", "overrides", "cancelled"})
ALL_FIELDS = frozenset(f.name for f in fields(Event)) - {"modified"}
# Fields a sync option can switch off per spoke.
OPTIONAL_FIELDS = {
    "description": frozenset({"description", "description_html"}),
    "location": frozenset({"location"}),
    "attendees": frozenset({"attendees", "organizer"}),
    "reminders": frozenset({"reminders"}),
}


# ---------------------------------------------------------------- normalising

_TAG = re.compile(r"<[^>]+>")
_BLOCK = re.compile(r"(?i)<\s*(br|/p|/div|/li|/tr|/h[1-6])\b[^>]*>")
_HEAD = re.compile(r"(?is)<(head|style|script)\b.*?</\1\s*>")
_WS = re.compile(r"[ \t\r\f\v\u00a0]+")


def html_to_text(markup: str) -> str:
    """The readable text of an HTML body (what survives any server's rewrite)."""
    text = _HEAD.sub("", markup)
    text = _BLOCK.sub("\n", text)
    text = _TAG.sub("", text)
    return html.unescape(text)


def normalise_text(text: str) -> str:
    if text.isprintable() and "  " not in text:
        # no tab, line break, no-break space or run of spaces (the common case): the same result,
        # cheaper (what `strip` removes from printable text is spaces only)
        return text.strip()
    if "\n" not in text and "\r" not in text:  # one line: the same result, cheaper
        return _WS.sub(" ", text).strip()
    lines = [_WS.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def description_text(event: Event) -> str:
    if event.description:
        return normalise_text(event.description)
    return normalise_text(html_to_text(event.description_html))


def _when_key(value: When | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime in event: {value!r}")
        u = value.astimezone(UTC)
        if u.year >= 1000:  # the same text as strftime("%Y%m%dT%H%M%SZ"), without its cost per call
            return "%04d%02d%02dT%02d%02d%02dZ" % (u.year, u.month, u.day, u.hour, u.minute, u.second)  # noqa: UP031 - cheaper
        return u.strftime("%Y%m%dT%H%M%SZ")
    return value.strftime("%Y%m%d")


_EXDATE = re.compile(r"^EXDATE(?P<params>(;[^:]*)?):(?P<values>.*)$", re.IGNORECASE)


def _parse_ical_when(value: str, params: str) -> When:
    tzid = None
    for param in params.split(";"):
        if param.upper().startswith("TZID="):
            tzid = param.split("=", 1)[1]
    if "VALUE=DATE" in params.upper() and "DATE-TIME" not in params.upper():
        return datetime.strptime(value, "%Y%m%d").date()
    if len(value) == 8:
        return datetime.strptime(value, "%Y%m%d").date()
    if value.endswith("Z"):
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    naive = datetime.strptime(value, "%Y%m%dT%H%M%S")
    return naive.replace(tzinfo=ZoneInfo(tzid) if tzid else UTC)


def _canonical_rule(line: str) -> str:
    """RRULE parts in a fixed order, upper case: servers reorder them."""
    name, _, value = line.partition(":")
    if name.upper() != "RRULE":
        return line.strip()
    parts = sorted(p.upper() for p in value.strip().split(";") if p)
    return "RRULE:" + ";".join(parts)


def _ascending(values: tuple[Any, ...]) -> bool:
    """A tuple sorted without repeats: what `tuple(sorted(set(values)))` leaves as it is."""
    return type(values) is tuple and all(a < b for a, b in zip(values, values[1:], strict=False))


def normalise(event: Event) -> Event:
    """Fold equivalent representations into one: EXDATE lines become
    `cancelled` occurrences, overrides that only cancel become cancellations,
    lists are sorted and deduplicated."""
    if (event.recurrence == () and event.overrides == () and event.cancelled == () and event.attendees == ()
            and _ascending(event.categories) and (event.reminders is None or _ascending(event.reminders))):
        return event  # in normal form already, found without building the folded copy (most events)
    rules: list[str] = []
    cancelled: set[When] = set(event.cancelled)
    for line in event.recurrence:
        match = _EXDATE.match(line.strip())
        if match:
            for value in match.group("values").split(","):
                cancelled.add(_parse_ical_when(value.strip(), match.group("params") or ""))
        elif line.strip():
            rules.append(_canonical_rule(line))
    overrides: dict[str | None, Override] = {}
    for override in event.overrides:
        if override.event.status == "cancelled":
            cancelled.add(override.original_start)
            continue
        overrides[_when_key(override.original_start)] = Override(
            override.original_start, normalise(override.event)
        )
    cancelled_keys = {_when_key(c) for c in cancelled}
    folded: dict[str, Any] = {
        "recurrence": tuple(sorted(set(rules))),
        "cancelled": tuple(sorted(cancelled, key=lambda c: _when_key(c) or "")),
        "overrides": tuple(
            o for k, o in sorted(overrides.items(), key=lambda kv: kv[0] or "") if k not in cancelled_keys
        ),
        "attendees": tuple(
            sorted({a.email.lower(): replace(a, email=a.email.lower()) for a in event.attendees}.values(),
                   key=lambda a: a.email)
        ),
        "categories": tuple(sorted(set(event.categories))),
        "reminders": None if event.reminders is None else tuple(sorted(set(event.reminders))),
    }
    if all(getattr(event, name) == value for name, value in folded.items()):
        return event  # already in normal form (most events): no copy
    return replace(event, **folded)


def _overrides_value(event: Event, names: frozenset[str]) -> Any:
    return [
        # an occurrence is compared over the same fields as its series
        [_when_key(o.original_start), _hashable(o.event, names - {"recurrence", "overrides", "cancelled"})]
        for o in event.overrides
    ]


# How a field enters the hash when it is not taken as it is (a dispatch table: the hash runs once
# per item per run, over every compared field, and showed in the engine's profile).
_SPECIAL: dict[str, Callable[[Event], Any]] = {
    "start": lambda e: _when_key(e.start),
    "end": lambda e: _when_key(e.end),
    "description": description_text,
    "description_html": lambda e: None,  # formatting only; its text is compared through "description"
    "title": lambda e: normalise_text(e.title),
    "location": lambda e: normalise_text(e.location),
    "url": lambda e: normalise_text(e.url),
    "conference_url": lambda e: normalise_text(e.conference_url),
    "cancelled": lambda e: [_when_key(c) for c in e.cancelled],
    "organizer": lambda e: e.organizer.email.lower() if e.organizer else None,
    "attendees": lambda e: [[a.email, a.role, a.response] for a in e.attendees],
}


@functools.lru_cache(maxsize=64)
def _getters(names: frozenset[str]) -> Callable[[Event], dict[str, Any]]:
    """The fields in `names` of an event as they are hashed, in a dict: made once per set of names.
    Fields without a rule of their own are read in one call, as they are (a tuple is written as
    the JSON list it would become)."""
    special: list[tuple[str, Callable[[Event], Any]]] = []
    plain: list[str] = []
    for name in sorted(names):
        if name == "overrides":
            special.append((name, functools.partial(_overrides_value, names=names)))
        elif name in _SPECIAL:
            special.append((name, _SPECIAL[name]))
        else:
            plain.append(name)
    taken = tuple(plain)
    if len(taken) > 1:
        many = operator.attrgetter(*taken)

        def plain_values(event: Event) -> dict[str, Any]:
            return dict(zip(taken, many(event), strict=True))
    elif taken:
        one = taken[0]

        def plain_values(event: Event) -> dict[str, Any]:
            return {one: getattr(event, one)}
    else:
        def plain_values(event: Event) -> dict[str, Any]:
            return {}

    def values(event: Event) -> dict[str, Any]:
        out = plain_values(event)
        for name, get in special:
            out[name] = get(event)
        return out

    return values


def _hashable(event: Event, names: Iterable[str]) -> dict[str, Any]:
    return _getters(names if isinstance(names, frozenset) else frozenset(names))(event)


# one encoder for every hash: `json.dumps` with options builds a new one per call (the keys are
# sorted by the encoder: the dict is not built in key order)
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def content_hash(event: Event, names: Iterable[str] = ALL_FIELDS) -> str:
    """A hash of the event's meaning over `names`, stable across round trips.
    (Hub items keep these hashes with the fields they cover: a change of what a hash means for
    the same item must bump `model.hub.HASH_SCHEME`.)"""
    payload = _ENCODE(_hashable(normalise(event), names))
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=1)
def _event_field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Event))


@functools.lru_cache(maxsize=1)
def _all_values() -> Callable[[Event], tuple[Any, ...]]:
    return operator.attrgetter(*_event_field_names())


@functools.lru_cache(maxsize=128)
def _taker(names: frozenset[str]) -> Callable[[Event], dict[str, Any]]:
    """The fields of `names` an event's copy takes from it, as keyword arguments (made once per set)."""
    taken = tuple(name for name in _event_field_names() if name in names)
    if "description" in names and "description_html" not in taken:
        taken += ("description_html",)  # the description's formatting goes with its text
    if len(taken) > 1:
        many = operator.attrgetter(*taken)
        return lambda event: dict(zip(taken, many(event), strict=True))
    return lambda event: {name: getattr(event, name) for name in taken}


@functools.lru_cache(maxsize=1)
def _defaults() -> dict[str, Any]:
    out = {}
    for f in fields(Event):
        if f.default is MISSING:  # (a default_factory or none: `_copy` could not fill it)
            raise TypeError(f"Event.{f.name} has no plain default")
        out[f.name] = f.default
    return out


def _copy(values: dict[str, Any]) -> Event:
    """The Event whose fields are `values` (every field, nothing else): what `Event(**values)`
    makes, without the frozen `__init__`'s setattr per field. The copies of a run (restricting,
    projecting, merging) are most of the events it makes: their construction showed in the
    engine's profile. The values are fields of events made the ordinary way."""
    event = object.__new__(Event)
    object.__setattr__(event, "__dict__", values)
    return event


def restrict(event: Event, base: Event, names: Iterable[str]) -> Event:
    """`base` with the fields in `names` taken from `event`."""
    changes = _taker(names if isinstance(names, frozenset) else frozenset(names))(event)
    if type(base) is not Event:
        return replace(base, **changes)
    values = dict(zip(_event_field_names(), _all_values()(base), strict=True))
    values.update(changes)
    return _copy(values)


def restricted(event: Event, names: Iterable[str]) -> Event:
    """A blank event with the fields in `names` taken from `event`: `restrict(event, Event(), names)`."""
    values = dict(_defaults())
    values.update(_taker(names if isinstance(names, frozenset) else frozenset(names))(event))
    return _copy(values)


# --------------------------------------------------------------- serialising


def _when_to_json(value: When | None) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return {"dateTime": value.isoformat(), "tz": _tz_name(value)}
    return {"date": value.isoformat()}


def _tz_name(value: datetime) -> str | None:
    tz = value.tzinfo
    return getattr(tz, "key", None)


def _when_from_json(raw: Any) -> When | None:
    if raw is None:
        return None
    if "date" in raw:
        return date.fromisoformat(raw["date"])
    value = datetime.fromisoformat(raw["dateTime"])
    if raw.get("tz"):
        value = value.astimezone(ZoneInfo(raw["tz"]))
    return value


def event_to_dict(event: Event) -> dict[str, Any]:
    return {
        "title": event.title,
        "start": _when_to_json(event.start),
        "end": _when_to_json(event.end),
        "timezone": event.timezone,
        "description": event.description,
        "description_html": event.description_html,
        "location": event.location,
        "recurrence": list(event.recurrence),
        "overrides": [
            {"original_start": _when_to_json(o.original_start), "event": event_to_dict(o.event)}
            for o in event.overrides
        ],
        "cancelled": [_when_to_json(c) for c in event.cancelled],
        "status": event.status,
        "show_as": event.show_as,
        "privacy": event.privacy,
        "organizer": None if event.organizer is None else {"email": event.organizer.email, "name": event.organizer.name},
        "attendees": [
            {"email": a.email, "name": a.name, "role": a.role, "response": a.response} for a in event.attendees
        ],
        "reminders": None if event.reminders is None else list(event.reminders),
        "categories": list(event.categories),
        "color": event.color,
        "url": event.url,
        "conference_url": event.conference_url,
        "modified": None if event.modified is None else event.modified.isoformat(),
    }


def event_from_dict(raw: dict[str, Any]) -> Event:
    organizer = raw.get("organizer")
    reminders = raw.get("reminders")
    modified = raw.get("modified")
    return _copy(dict(  # every field (tests/model: the keys are the fields)
        title=raw.get("title", ""),
        start=_when_from_json(raw.get("start")),
        end=_when_from_json(raw.get("end")),
        timezone=raw.get("timezone"),
        description=raw.get("description", ""),
        description_html=raw.get("description_html", ""),
        location=raw.get("location", ""),
        recurrence=tuple(raw.get("recurrence", ())),
        overrides=tuple(
            Override(_when_from_json(o["original_start"]), event_from_dict(o["event"]))  # type: ignore[arg-type]
            for o in raw.get("overrides", ())
        ),
        cancelled=tuple(_when_from_json(c) for c in raw.get("cancelled", ())),  # type: ignore[misc]
        status=raw.get("status", "confirmed"),
        show_as=raw.get("show_as", "busy"),
        privacy=raw.get("privacy", "default"),
        organizer=None if not organizer else Person(organizer["email"], organizer.get("name", "")),
        attendees=tuple(
            Attendee(a["email"], a.get("name", ""), a.get("role", "required"), a.get("response", "needs_action"))
            for a in raw.get("attendees", ())
        ),
        reminders=None if reminders is None else tuple(reminders),
        categories=tuple(raw.get("categories", ())),
        color=raw.get("color"),
        url=raw.get("url", ""),
        conference_url=raw.get("conference_url", ""),
        modified=None if not modified else datetime.fromisoformat(modified),
    ))
