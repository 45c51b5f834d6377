"""CiraHub's two calendar options, end to end over memory spokes: "categorize data in spoke"
(a category stamped on the copies the hub creates there, never carried back into the hub) and
"sync meetings as appointments" (copies without attendees or organiser; the hub keeps them)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from spokesync.model.event import Attendee, Event, Person
from tests.engine.conftest import Harness


def meeting() -> Event:
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    return Event(title="Board meeting", start=start, end=start + timedelta(hours=1), categories=("team",),
                 organizer=Person("chair@example.com", "Chair"),
                 attendees=(Attendee("a@example.com", "A"), Attendee("b@example.com", "B")))


def test_copies_get_the_spoke_category_and_no_attendees_without_echo(harness: Harness) -> None:
    hub = harness.hub()
    _, source = harness.spoke(hub, "board")
    target, office = harness.spoke(hub, "office", spoke_category="From the hub", meetings_as_appointments=True)
    source.user_create(meeting())
    harness.settle()

    (copy,) = office.items.values()
    assert copy.event.categories == ("From the hub", "team")
    assert copy.event.attendees == () and copy.event.organizer is None
    (item,) = harness.ctx.store.list_hub_items(hub.id)
    assert item.event is not None and item.event.categories == ("team",)  # the stamp stays in the spoke
    assert len(item.event.attendees) == 2 and item.event.organizer == Person("chair@example.com", "Chair")

    writes = office.writes, source.writes
    again = harness.sync(target)
    harness.settle()
    assert again.status == "ok" and not any(again.counts.values())  # the stamp and the missing people are no edit
    assert (office.writes, source.writes) == writes

    # an edit of the copy reaches the hub and the other spoke; the meeting keeps its people there
    office.user_update(copy.id, replace(copy.event, title="Board meeting (moved)"))
    harness.settle()
    (item,) = harness.ctx.store.list_hub_items(hub.id)
    assert item.event is not None and item.event.title == "Board meeting (moved)"
    assert item.event.categories == ("team",) and len(item.event.attendees) == 2
    (original,) = source.items.values()
    assert original.event.title == "Board meeting (moved)" and len(original.event.attendees) == 2


def test_the_options_are_validated(harness: Harness) -> None:
    import pytest

    from spokesync.service import hubs

    hub = harness.hub()
    with pytest.raises(hubs.InvalidRequest, match=r"The category must be text of at most 255 characters \(blank: none\)"):
        harness.spoke(hub, "x", spoke_category=["a"])
    with pytest.raises(hubs.InvalidRequest, match="'Sync meetings as appointments' is on or off"):
        harness.spoke(hub, "y", meetings_as_appointments="yes")
