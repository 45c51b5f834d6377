"""The engine over contacts: hub items of the contacts kind through the store, the planner and
the runner, fixed slots that never erase what does not fit, contact options and filters, and a hub
that holds one object type."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from spokesync.connectors import memory_registry, registry
from spokesync.connectors.memory import MemoryCalendar
from spokesync.engine.kinds import CALENDAR, CONTACTS, kind_for, kind_of
from spokesync.engine.runner import Runner
from spokesync.model.contact import Contact, Email, PartialDate, Phone, content_hash
from spokesync.model.event import Event
from spokesync.model.hub import Hub, HubItem, Spoke, SyncOptions
from spokesync.ports import CommitBatch, HubWrite
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore
from tests.engine.conftest import Harness

ADA = Contact(display_name="Ada Lovelace", given_name="Ada", family_name="Lovelace",
              emails=(Email("ada@example.com"), Email("ada@home.example", "home")),
              phones=(Phone("+44 20 7946 0018"),), company="Analytical Engines", notes="First programmer.",
              birthday=PartialDate(12, 10), modified=datetime(2026, 2, 1, tzinfo=UTC))
FOUR = tuple(Email(f"p{i}@example.com", "work") for i in range(4))


class Contacts:
    """A contacts hub over in-memory contact folders."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.hub = hubs.create_hub(harness.ctx, "People", "contacts")

    def spoke(self, name: str, limits: dict[str, int] | None = None, two_way: bool = True,
              **options: Any) -> tuple[Spoke, MemoryCalendar]:
        if two_way:
            options.setdefault("direction", "two_way")
        address: dict[str, Any] = {"folder": name}
        if limits:
            address["limits"] = limits
        spoke = hubs.add_spoke(self.h.ctx, self.hub.id, name, "memory_contacts", address, options=options)
        return spoke, memory_registry.folder(name)

    def items(self) -> list[Contact]:
        return [i.event for i in self.h.ctx.store.list_hub_items(self.hub.id)]  # type: ignore[misc]

    def settle(self) -> None:
        for _ in range(3):
            self.h.settle()


@pytest.fixture
def people(harness: Harness) -> Contacts:
    memory_registry.FOLDERS.clear()
    return Contacts(harness)


def test_hub_items_of_either_kind_round_trip_through_the_store() -> None:
    store = SqliteHubStore(":memory:")
    store.put_hub(Hub("h", "People", "contacts"))
    item = HubItem("c1", "h", 1, 0, replace(ADA, photo=None), hash=content_hash(ADA))
    raw = item.to_dict()
    assert raw["event"]["object_type"] == "contacts"
    assert HubItem.from_dict(raw) == item
    event = HubItem("e1", "h", 1, 0, Event(title="Standup"))
    assert "object_type" not in event.to_dict()["event"]  # calendar items are stored as before
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store.put_spoke(Spoke("s", "h", "crm", "memory_contacts"))
    assert store.acquire_lease("s", "run", now, 60) is not None
    store.commit(CommitBatch("h", "s", "run", hub_writes=[HubWrite(item, 0)]), now)
    assert store.get_hub_items("h", ["c1"])["c1"].event == item.event


def test_kinds_are_chosen_by_object_type() -> None:
    assert kind_for("calendar") is CALENDAR and kind_for("contacts") is CONTACTS
    assert kind_of(ADA) is CONTACTS and kind_of(Event()) is CALENDAR
    with pytest.raises(ValueError):
        kind_for("tasks")
    assert registry.object_type_of("memory_contacts") == "contacts"
    assert registry.object_type_of("exchange_contacts") == "contacts"
    assert registry.object_type_of("exchange") == "calendar"
    assert "google_contacts" in registry.kinds_for("contacts") and "google" not in registry.kinds_for("contacts")


def test_a_contact_travels_both_ways_and_echoes_are_quiet(people: Contacts) -> None:
    a, fa = people.spoke("a")
    b, fb = people.spoke("b")
    fa.user_create(ADA)
    people.settle()
    assert [i.event.name for i in fb.items.values()] == ["Ada Lovelace"]
    assert len(people.items()) == 1
    writes = fa.writes + fb.writes
    people.settle()
    assert fa.writes + fb.writes == writes
    # an edit in b comes back to a
    item_id = next(iter(fb.items))
    fb.user_update(item_id, replace(fb.items[item_id].event, job_title="Analyst"))
    people.settle()
    assert [i.event.job_title for i in fa.items.values()] == ["Analyst"]


def test_a_spoke_with_three_email_slots_never_erases_the_fourth(people: Contacts) -> None:
    a, fa = people.spoke("open")
    b, fb = people.spoke("exchange", limits={"emails": 3})
    fa.user_create(Contact(display_name="Four", emails=FOUR))
    people.settle()
    [copy] = fb.items.values()
    assert [e.address for e in copy.event.emails] == [e.address for e in FOUR[:3]]
    # an edit in the fixed-slot spoke: the hub keeps the fourth address, and so does the open spoke
    fb.user_update(copy.id, replace(copy.event, job_title="Boss"))
    people.settle()
    [hub] = people.items()
    assert len(hub.emails) == 4 and hub.job_title == "Boss"
    [open_copy] = fa.items.values()
    assert len(open_copy.event.emails) == 4 and open_copy.event.job_title == "Boss"
    # the spoke removes one of its three: the fourth moves up into the free slot, nothing else is lost
    copy = fb.items[copy.id]
    fb.user_update(copy.id, replace(copy.event, emails=(copy.event.emails[0], copy.event.emails[2])))
    people.settle()
    [hub] = people.items()
    assert [e.address for e in hub.emails] == ["p0@example.com", "p2@example.com", "p3@example.com"]
    assert [e.address for e in fb.items[copy.id].event.emails] == [e.address for e in hub.emails]
    writes = fa.writes + fb.writes
    people.settle()
    assert fa.writes + fb.writes == writes, "no convergence after the slot moved"


def test_which_fields_travel(people: Contacts) -> None:
    a, fa = people.spoke("a")
    b, fb = people.spoke("b", sync_notes=False, sync_birthday=False)
    fa.user_create(ADA)
    people.settle()
    [copy] = fb.items.values()
    assert copy.event.notes == "" and copy.event.birthday is None and copy.event.company == ADA.company
    # an edit in b does not erase the hub's notes
    fb.user_update(copy.id, replace(copy.event, job_title="Countess"))
    people.settle()
    [hub] = people.items()
    assert hub.notes == ADA.notes and hub.birthday == ADA.birthday and hub.job_title == "Countess"


@pytest.mark.parametrize(("filters", "shared"), [
    ({"has_email": True}, ["Ada Lovelace", "Grace Hopper"]),
    ({"companies": ["analytical engines"]}, ["Ada Lovelace"]),
    ({"email_domains": ["navy.example"]}, ["Grace Hopper"]),
    ({"companies": ["Reception desk"], "email_domains": ["navy.example"]}, ["Grace Hopper", "Reception"]),
    ({"categories": ["VIP"]}, ["Reception"]),
])
def test_contact_conditions(people: Contacts, filters: dict[str, Any], shared: list[str]) -> None:
    a, fa = people.spoke("a")
    b, fb = people.spoke("b", filters=filters)
    fa.user_create(ADA)
    fa.user_create(Contact(display_name="Grace Hopper", emails=(Email("grace@Navy.example"),)))
    fa.user_create(Contact(display_name="Reception", company="Reception Desk", categories=("VIP",),
                           phones=(Phone("+1 555 0100", "main"),)))
    people.settle()
    assert sorted(i.event.name for i in fb.items.values()) == shared


def test_deletions_and_the_budget_hold_for_contacts(people: Contacts) -> None:
    a, fa = people.spoke("a", max_delete_count=2, max_delete_share=0.25)
    b, fb = people.spoke("b")
    for i in range(12):
        fa.user_create(Contact(display_name=f"Person {i}", emails=(Email(f"p{i}@example.com"),)))
    people.settle()
    assert len(fb.items) == 12
    for item_id in sorted(fa.items)[:6]:
        fa.user_delete(item_id)
    run = Runner(people.h.ctx).sync(a.id)
    assert run.status == "paused" and len(people.items()) == 12 and len(fb.items) == 12
    paused = people.h.ctx.store.get_spoke(a.id)
    assert paused is not None and paused.pending_items[0]["title"].startswith("Person")
    hubs.confirm_deletions(people.h.ctx, a.id)
    people.settle()
    assert len(people.items()) == 6 and len(fb.items) == 6


def test_a_hub_holds_one_object_type(people: Contacts, harness: Harness) -> None:
    with pytest.raises(hubs.InvalidRequest) as err:
        hubs.add_spoke(harness.ctx, people.hub.id, "cal", "memory", {"calendar": "cal"})
    assert err.value.code == "object_type_mismatch" and "contacts" in str(err.value)
    calendars = hubs.create_hub(harness.ctx, "Team")
    with pytest.raises(hubs.InvalidRequest) as err:
        hubs.add_spoke(harness.ctx, calendars.id, "crm", "memory_contacts", {"folder": "crm"})
    assert err.value.code == "object_type_mismatch"
    with pytest.raises(hubs.InvalidRequest) as err:
        hubs.create_hub(harness.ctx, "Tasks", "tasks")
    assert err.value.code == "invalid_object_type"


def test_options_of_the_other_object_type_are_refused_unless_left_at_their_default(
        people: Contacts, harness: Harness) -> None:
    with pytest.raises(hubs.InvalidRequest) as err:
        people.spoke("a", days_past=30)
    assert err.value.code == "option_not_for_object_type" and "days_past" in str(err.value)
    with pytest.raises(hubs.InvalidRequest) as err:
        people.spoke("a", filters={"exclude_all_day": True})
    assert err.value.code == "option_not_for_object_type"
    spoke, _ = people.spoke("a", days_past=None, privacy_mode="as_is", sync_photo=False)  # a form posting every field
    assert spoke.options.sync_photo is False
    calendars = hubs.create_hub(harness.ctx, "Team")
    with pytest.raises(hubs.InvalidRequest) as err:
        hubs.add_spoke(harness.ctx, calendars.id, "cal", "memory", {"calendar": "cal"}, options={"sync_photo": False})
    assert err.value.code == "option_not_for_object_type"
    with pytest.raises(hubs.InvalidRequest) as err:
        hubs.set_options(harness.ctx, spoke.id, {"filters": {"email_domains": ["not a domain"]}})
    assert err.value.code == "invalid_option"
    assert SyncOptions().match_existing is None
