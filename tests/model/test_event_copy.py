"""The run's copies of events (`restrict`, `restricted`, `event_from_dict`) are built without the
frozen dataclass's `__init__` (model/event.py `_copy`): they must be the very events `__init__`
would make - the same fields and values, equal, hashable alike, still frozen."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spokesync.model.event import (
    Attendee,
    Event,
    Override,
    Person,
    event_from_dict,
    event_to_dict,
    restrict,
    restricted,
)

NAMES = sorted(f.name for f in dataclasses.fields(Event))
START = datetime(2026, 3, 2, 9, 30, tzinfo=ZoneInfo("Europe/Berlin"))
FULL = Event(
    title="Board", start=START, end=START.replace(hour=11), timezone="Europe/Berlin", description="Agenda",
    description_html="<p>Agenda</p>", location="Room 4", recurrence=("RRULE:FREQ=WEEKLY;COUNT=5",),
    overrides=(Override(START.replace(day=9), Event(title="Board (moved)", start=START.replace(day=10))),),
    cancelled=(START.replace(day=16),), status="tentative", show_as="free", privacy="private",
    organizer=Person("chair@example.com", "Chair"), attendees=(Attendee("a@example.com", "A", "optional", "accepted"),),
    reminders=(5, 30), categories=("board", "team"), color="7", url="https://example.com/b",
    conference_url="https://meet.example.com/b", modified=datetime(2026, 3, 1, 8, tzinfo=UTC))
OTHER = Event(title="Holiday", start=date(2026, 4, 1), end=date(2026, 4, 2), categories=("off",))


def _same(made: Event, expected: Event) -> None:
    assert type(made) is Event
    assert vars(made) == vars(expected) and list(vars(made)) == list(vars(expected))  # every field, in order
    assert made == expected and hash(made) == hash(expected)
    assert pickle.loads(pickle.dumps(made)) == expected  # noqa: S301 - our own bytes
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.title = "changed"  # type: ignore[misc]


@given(st.lists(st.integers(0, len(NAMES) - 1), unique=True))
def test_restricted_is_the_blank_event_with_those_fields(picks: list[int]) -> None:
    names = frozenset(NAMES[i] for i in picks)
    taken = {n: getattr(FULL, n) for n in names}
    if "description" in names:
        taken["description_html"] = FULL.description_html  # the formatting goes with the text
    _same(restricted(FULL, names), Event(**taken))


@given(st.lists(st.integers(0, len(NAMES) - 1), unique=True))
def test_restrict_is_the_base_with_those_fields_replaced(picks: list[int]) -> None:
    names = frozenset(NAMES[i] for i in picks)
    taken = {n: getattr(FULL, n) for n in names}
    if "description" in names:
        taken["description_html"] = FULL.description_html
    _same(restrict(FULL, OTHER, names), dataclasses.replace(OTHER, **taken))


@pytest.mark.parametrize("event", [FULL, OTHER, Event()], ids=["full", "all-day", "blank"])
def test_an_event_read_back_is_the_event_written(event: Event) -> None:
    _same(event_from_dict(event_to_dict(event)), event)
    # the occurrences inside come back whole too
    for back, original in zip(event_from_dict(event_to_dict(event)).overrides, event.overrides, strict=True):
        _same(back.event, original.event)
