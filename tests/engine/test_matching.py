"""Matching instead of duplicating (docs/decisions/2026-12-01-matching.md): when a spoke joins a
hub, its items that are already there are linked, not copied; ambiguous matches are shown in the
dry run and left unlinked until an administrator decides."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from spokesync.connectors import memory_registry
from spokesync.engine.runner import Runner
from spokesync.model.contact import Contact, Email, Phone
from spokesync.model.event import Event
from spokesync.service import hubs
from tests.engine.conftest import Harness

ADA = Contact(display_name="Ada Lovelace", emails=(Email("ada@example.com"),), company="Analytical Engines")


@pytest.fixture
def contacts(harness: Harness) -> Any:
    memory_registry.FOLDERS.clear()
    hub = hubs.create_hub(harness.ctx, "People", "contacts")

    def spoke(name: str, **options: Any) -> Any:
        options.setdefault("direction", "two_way")
        made = hubs.add_spoke(harness.ctx, hub.id, name, "memory_contacts", {"folder": name}, options=options)
        return made, memory_registry.folder(name)

    return hub, spoke


def live(harness: Harness, hub_id: str) -> list[Any]:
    return [i.event for i in harness.ctx.store.list_hub_items(hub_id)]


def writes(*folders: Any) -> int:
    return sum(f.writes for f in folders)


def test_the_same_person_on_a_joining_spoke_is_linked_not_copied(harness: Harness, contacts: Any) -> None:
    hub, spoke = contacts
    a, fa = spoke("a")
    fa.user_create(ADA)
    harness.settle()
    b, fb = spoke("b")
    # already in b, with another case in the address and a phone the hub lacks
    fb.user_create(Contact(display_name="Ada L.", emails=(Email("ADA@example.com"),),
                           phones=(Phone("+44 20 7946 0018"),)))
    dry = Runner(harness.ctx).sync(b.id, dry_run=True)
    assert [p["action"] for p in dry.plan if p["action"] == "match"] == ["match"]
    assert not any(p["action"] in ("hub_create", "spoke_create") for p in dry.plan)
    run = Runner(harness.ctx).sync(b.id)
    assert run.counts.get("matched") == 1
    harness.settle()
    [one] = live(harness, hub.id)
    assert one.display_name == "Ada Lovelace" and [p.number for p in one.phones] == ["+44 20 7946 0018"]
    assert len(fa.items) == 1 and len(fb.items) == 1
    [copy] = fb.items.values()
    assert copy.event.display_name == "Ada Lovelace" and copy.event.company == "Analytical Engines"
    [in_a] = fa.items.values()
    assert [p.number for p in in_a.event.phones] == ["+44 20 7946 0018"]  # nothing the copy had is lost
    before = writes(fa, fb)
    harness.settle()
    assert writes(fa, fb) == before


def test_without_an_email_the_same_name_and_phone_match(harness: Harness, contacts: Any) -> None:
    hub, spoke = contacts
    a, fa = spoke("a")
    fa.user_create(Contact(display_name="Reception", phones=(Phone("+1 (555) 0100", "main"),)))
    harness.settle()
    b, fb = spoke("b")
    fb.user_create(Contact(display_name="reception", phones=(Phone("+1 555-0100", "work"),)))
    fb.user_create(Contact(display_name="Reception", phones=(Phone("+1 555 0199"),)))  # another number: new
    harness.settle()
    assert sorted(c.phones[0].number for c in live(harness, hub.id)) == ["+1 (555) 0100", "+1 555 0199"]
    assert len(fa.items) == 2 and len(fb.items) == 2


def test_ambiguous_matches_are_shown_and_left_unlinked_until_decided(harness: Harness, contacts: Any) -> None:
    hub, spoke = contacts
    a, fa = spoke("a")
    fa.user_create(Contact(display_name="Ada (work)", emails=(Email("ada@example.com"),)))
    fa.user_create(Contact(display_name="Ada (home)", emails=(Email("ada@example.com"), Email("a@home.example"))))
    harness.settle()
    b, fb = spoke("b")
    mine = fb.user_create(Contact(display_name="Ada", emails=(Email("ada@example.com"),)))
    dry = Runner(harness.ctx).sync(b.id, dry_run=True)
    [ambiguous] = [p for p in dry.plan if p["action"] == "ambiguous_match"]
    assert ambiguous["spoke_item_id"] == mine.id
    assert sorted(c["title"] for c in ambiguous["candidates"]) == ["Ada (home)", "Ada (work)"]
    harness.settle()
    # nothing copied either way: the hub has its two, b its one, a its two
    assert len(live(harness, hub.id)) == 2 and len(fb.items) == 1 and len(fa.items) == 2
    status = hubs.spoke_status(harness.ctx, hubs.get_spoke(harness.ctx, b.id))
    assert [m["spoke_item_id"] for m in status["ambiguous_matches"]] == [mine.id]
    # an edit of the undecided item does not copy it either
    fb.user_update(mine.id, Contact(display_name="Ada!", emails=(Email("ada@example.com"),)))
    harness.settle()
    assert len(live(harness, hub.id)) == 2
    with pytest.raises(hubs.InvalidRequest):
        hubs.decide_match(harness.ctx, b.id, mine.id, "not-a-candidate")
    work = next(c["hub_item_id"] for c in ambiguous["candidates"] if c["title"] == "Ada (work)")
    hubs.decide_match(harness.ctx, b.id, mine.id, work)
    harness.settle()
    harness.settle()
    titles = sorted(c.display_name for c in live(harness, hub.id))
    assert len(titles) == 2 and "Ada (home)" in titles  # linked to "work", which took b's edit or kept its own
    assert sorted(i.event.display_name for i in fb.items.values()) == titles  # the other one reached b
    assert hubs.get_spoke(harness.ctx, b.id).ambiguous == []


def test_two_spoke_items_matching_one_hub_item_are_both_held_back(harness: Harness, contacts: Any) -> None:
    hub, spoke = contacts
    a, fa = spoke("a")
    fa.user_create(ADA)
    harness.settle()
    b, fb = spoke("b")
    one = fb.user_create(Contact(display_name="Ada", emails=(Email("ada@example.com"),)))
    two = fb.user_create(Contact(display_name="A. Lovelace", emails=(Email("ada@example.com"),)))
    harness.settle()
    pending = hubs.get_spoke(harness.ctx, b.id).ambiguous
    assert sorted(p["spoke_item_id"] for p in pending) == sorted([one.id, two.id])
    assert len(live(harness, hub.id)) == 1 and len(fb.items) == 2
    hubs.decide_match(harness.ctx, b.id, one.id, "")  # "a new item": copied into the hub
    harness.settle()
    assert len(live(harness, hub.id)) == 2


def _meeting(harness: Harness, title: str = "Board meeting") -> Event:
    start = harness.clock.now() + timedelta(days=2)
    return Event(title=title, start=start, end=start + timedelta(hours=1))


def test_calendars_do_not_match_by_default(harness: Harness) -> None:
    hub = harness.hub()
    a, ca = harness.spoke(hub, "a")
    ca.user_create(_meeting(harness))
    harness.settle()
    b, cb = harness.spoke(hub, "b")
    cb.user_create(_meeting(harness))  # the same title and time: two meetings, as before
    harness.settle()
    assert len(harness.ctx.store.list_hub_items(hub.id)) == 2 and len(cb.items) == 2


def test_calendars_match_the_same_meeting_when_asked(harness: Harness) -> None:
    hub = harness.hub()
    a, ca = harness.spoke(hub, "a")
    ca.user_create(_meeting(harness))
    harness.settle()
    b, cb = harness.spoke(hub, "b", match_existing=True)
    cb.user_create(_meeting(harness, "board  MEETING"))
    cb.user_create(_meeting(harness, "Another meeting"))
    harness.settle()
    assert sorted(i.event.title for i in harness.ctx.store.list_hub_items(hub.id)) == [  # type: ignore[union-attr]
        "Another meeting", "Board meeting"]
    assert sorted(i.event.title for i in cb.items.values()) == ["Another meeting", "Board meeting"]
    assert len(ca.items) == 2


def test_matching_ends_when_the_spoke_has_joined(harness: Harness, contacts: Any) -> None:
    """After the first full sync, a new contact with a known address is a new item (a person may
    well create a second card on purpose); duplicates are prevented by the hub id, not by guessing."""
    hub, spoke = contacts
    a, fa = spoke("a")
    b, fb = spoke("b")
    harness.settle()
    assert hubs.get_spoke(harness.ctx, b.id).joined
    fa.user_create(ADA)
    harness.settle()
    fb.user_create(Contact(display_name="Ada again", emails=(Email("ada@example.com"),)))
    harness.settle()
    assert len(live(harness, hub.id)) == 2
