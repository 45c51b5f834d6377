"""What a spoke's options mean for one event: which fields it exchanges with
the hub, what the hub writes into it, and whether an event belongs to it.

Pure functions of (event, options, capabilities, now).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from spokesync.model.event import ALL_FIELDS, OPTIONAL_FIELDS, Event, Override, content_hash, restrict, restricted
from spokesync.model.hub import SyncOptions

# What survives a busy-only placeholder round trip.
PLACEHOLDER_FIELDS = frozenset({"start", "end", "timezone", "recurrence", "cancelled", "show_as"})


def exchanged_fields(options: SyncOptions, capabilities: frozenset[str]) -> frozenset[str]:
    """Fields that flow between this spoke and the hub: what the spoke can hold,
    minus the optional fields switched off for it."""
    # called per item: one shared frozenset per combination (the run's hash memo keeps a
    # reference to the set it was keyed with, so a fresh set per item cost memory per item)
    caps = capabilities if isinstance(capabilities, frozenset) else frozenset(capabilities)
    return _exchanged(caps, options.sync_description, options.sync_location, options.sync_attendees,
                      options.sync_reminders)


@functools.lru_cache(maxsize=256)
def _exchanged(capabilities: frozenset[str], description: bool, location: bool, attendees: bool,
               reminders: bool) -> frozenset[str]:
    names = set(capabilities & ALL_FIELDS)
    switches = {"description": description, "location": location, "attendees": attendees, "reminders": reminders}
    for switch, enabled in switches.items():
        if not enabled:
            names -= OPTIONAL_FIELDS[switch]
    return frozenset(names)


def compared_fields(options: SyncOptions, capabilities: frozenset[str], created_by_hub: bool) -> frozenset[str]:
    """Fields whose change in the spoke copy counts as an edit there.

    Privacy modes only shape copies the hub creates: an item that originated in
    the spoke is the user's own and is never replaced by a placeholder.
    """
    names = exchanged_fields(options, capabilities)
    if created_by_hub and options.meetings_as_appointments:
        names -= OPTIONAL_FIELDS["attendees"]  # the copy holds none: its (lack of) people is no edit
    if created_by_hub and options.privacy_mode == "busy_only":
        return names & PLACEHOLDER_FIELDS
    if created_by_hub and options.privacy_mode == "private":
        return names - {"privacy"}
    return names


def _blank_optional(event: Event, names: frozenset[str]) -> Event:
    """The event with every field outside `names` at its default."""
    return restricted(event, _with_modified(frozenset(names)))


@functools.lru_cache(maxsize=256)
def _with_modified(names: frozenset[str]) -> frozenset[str]:
    return names | {"modified"}


def project(event: Event, options: SyncOptions, capabilities: frozenset[str], created_by_hub: bool) -> Event:
    """What the hub writes into this spoke for `event`."""
    names = exchanged_fields(options, capabilities)
    if created_by_hub and options.meetings_as_appointments:
        names -= OPTIONAL_FIELDS["attendees"]
    out = _blank_optional(event, names)
    if not created_by_hub:
        return out
    if options.spoke_category and "categories" in names:
        out = replace(out, categories=tuple(sorted({*out.categories, options.spoke_category})))
    if options.privacy_mode == "private":
        return replace(out, privacy="private")
    if options.privacy_mode == "busy_only":
        title = options.placeholder_title or "Busy"
        return Event(
            title=title,
            start=event.start,
            end=event.end,
            timezone=event.timezone,
            recurrence=event.recurrence,
            cancelled=event.cancelled,
            overrides=tuple(
                Override(o.original_start, Event(title=title, start=o.event.start, end=o.event.end,
                                                 timezone=o.event.timezone, show_as=o.event.show_as))
                for o in event.overrides
            ),
            show_as=event.show_as,
            privacy="private",
            reminders=None,
            modified=event.modified,
        )
    return out


def merge_inbound(hub_event: Event | None, spoke_event: Event, names: frozenset[str],
                  options: SyncOptions | None = None) -> Event:
    """The hub's new version: the spoke's values for `names`, the hub's for the rest. The spoke's
    own category stamp (`spoke_category`) stays in the spoke."""
    if options is not None and options.spoke_category and options.spoke_category in spoke_event.categories:
        spoke_event = replace(spoke_event, categories=tuple(c for c in spoke_event.categories
                                                            if c != options.spoke_category))
    # (the spoke's modification time comes along: "most recent change wins" compares it)
    if hub_event is None:
        return restricted(spoke_event, _with_modified(frozenset(names)))
    return restrict(spoke_event, hub_event, _with_modified(frozenset(names)))


def spoke_hash(event: Event, names: frozenset[str]) -> str:
    return content_hash(event, names)


# Fields whose normalised values depend on each other (EXDATE lines and cancelled overrides fold
# into `cancelled`): a copy restricted to a set of names hashes like its source only when the set
# holds all of them or none.
_ENTANGLED = frozenset({"recurrence", "cancelled", "overrides"})


def self_contained(names: frozenset[str]) -> bool:
    """Does `restrict(event, base, names)` hash over `names` exactly like `event`?"""
    common = names & _ENTANGLED
    return not common or common == _ENTANGLED


class HashMemo:
    """Content hashes within one run: each event is hashed once per set of names.

    Keyed by the event object's identity (events are frozen); the memo keeps a
    reference to each event so that an id is never reused while it lives. A
    run's memo lives as long as the run: its inputs are in memory anyway.

    Laid out for a run of many items: one dict per set of names (a handful per run), mapping
    event ids to hashes — ints and strings only, which the cyclic garbage collector does not
    track — and one list that keeps the events alive. (A tuple and a dict per event, as before,
    were two more tracked containers per item: every full collection walked them.)"""

    __slots__ = ("_by_names", "_kept", "calls", "hash_fn")

    def __init__(self, hash_fn: Callable[[Any, frozenset[str]], str] | None = None) -> None:
        self._by_names: dict[frozenset[str], dict[int, str]] = {}
        self._kept: list[Any] = []  # every event hashed or seeded, alive as long as the memo
        self.calls = 0  # content_hash calls made (the benchmark reports them)
        # the item kind's hash (`ItemKind.content_hash`); None: calendar events' `content_hash`
        self.hash_fn = hash_fn

    def __call__(self, event: Any, names: frozenset[str]) -> str:
        memo = self._by_names.get(names)
        if memo is None:
            memo = self._by_names[names] = {}
        value = memo.get(id(event))
        if value is None:
            self.calls += 1
            value = (self.hash_fn or content_hash)(event, names)
            memo[id(event)] = value
            self._kept.append(event)
        return value

    def seed(self, event: Any, names: frozenset[str], value: str) -> None:
        """Record a hash known without computing it (a copy of a hashed event over the same names)."""
        memo = self._by_names.get(names)
        if memo is None:
            memo = self._by_names[names] = {}
        if id(event) not in memo:
            self._kept.append(event)
        memo[id(event)] = value


# ------------------------------------------------------------ membership


def _as_datetime(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time.min, tzinfo=UTC)


def _rule_until(event: Event) -> datetime | None:
    for line in event.recurrence:
        if not line.upper().startswith("RRULE:"):
            continue
        for part in line.split(":", 1)[1].split(";"):
            key, _, value = part.partition("=")
            if key.upper() == "UNTIL" and value:
                value = value.strip().upper()
                try:
                    if len(value) == 8:
                        return datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC) + timedelta(days=1)
                    return datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
                except ValueError:
                    return None
        return None  # recurs without end (COUNT is treated as open-ended: cheap and safe)
    return None


def in_window(event: Event, options: SyncOptions, now: datetime) -> bool:
    if event.start is None:
        return True
    start = _as_datetime(event.start)
    end = _as_datetime(event.end) if event.end is not None else start
    if event.is_recurring:
        until = _rule_until(event)
        end = until if until is not None else datetime.max.replace(tzinfo=UTC)
    if options.days_past is not None and end < now - timedelta(days=options.days_past):
        return False
    return not (options.days_future is not None and start > now + timedelta(days=options.days_future))


def passes_filters(event: Event, options: SyncOptions) -> bool:
    f = options.filters
    if f.categories and not set(f.categories) & set(event.categories):
        return False
    if f.subject_contains and f.subject_contains.casefold() not in event.title.casefold():
        return False
    if f.show_as and event.show_as not in f.show_as:
        return False
    if f.exclude_all_day and event.all_day:
        return False
    return not (f.exclude_private and event.privacy in ("private", "confidential"))


def belongs(event: Event, options: SyncOptions, now: datetime) -> bool:
    """Does the event belong to this spoke's share of the hub?"""
    return passes_filters(event, options) and in_window(event, options, now)
