"""A spoke's switched-off fields ("Sync descriptions" off, notes off, ...) are the spoke's own: the
hub's updates leave them as the spoke has them, through the registry's connectors
(docs/decisions/2026-12-01-kept-fields.md). The connectors' side is in the conformance suite."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from spokesync.connectors import memory_registry, registry
from spokesync.model.contact import OPTIONAL_FIELDS as CONTACT_OPTIONAL
from spokesync.model.contact import Contact, Email, PartialDate
from spokesync.model.event import OPTIONAL_FIELDS as EVENT_OPTIONAL
from spokesync.model.event import Event
from spokesync.model.hub import Spoke, SyncOptions
from spokesync.service import hubs
from tests.engine.conftest import Harness

START = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _only(cal: memory_registry.MemoryCalendar) -> Event:
    [item] = cal.items.values()
    return item.event  # type: ignore[return-value]


def test_a_hub_update_keeps_the_description_typed_in_a_spoke_that_does_not_sync_descriptions(
        harness: Harness) -> None:
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    b, cal_b = harness.spoke(hub, "b", sync_description=False, sync_location=False)
    origin = cal_a.user_create(Event(title="Review", start=START, end=START + timedelta(hours=1),
                                     description="Agenda from a", location="Room 1"))
    harness.settle()
    copy = _only(cal_b)
    assert (copy.title, copy.description, copy.location) == ("Review", "", "")  # not carried to b
    [b_id] = cal_b.items
    cal_b.user_update(b_id, replace(copy, description="Notes typed in b", location="Room in b"))
    harness.settle()
    cal_a.user_update(origin.id, replace(cal_a.items[origin.id].event, title="Review (moved)"))  # type: ignore[type-var]
    harness.settle()
    now = _only(cal_b)
    assert now.title == "Review (moved)"  # the update reached b
    assert (now.description, now.location) == ("Notes typed in b", "Room in b")  # and kept b's own
    back = cal_a.items[origin.id].event
    assert (back.description, back.location) == ("Agenda from a", "Room 1")  # b's text never travels


def test_a_hub_update_keeps_the_notes_and_birthday_of_a_spoke_that_does_not_sync_them(harness: Harness) -> None:
    hub = hubs.create_hub(harness.ctx, "People", "contacts")

    def spoke(name: str, **options: object) -> tuple[Spoke, memory_registry.MemoryCalendar]:
        made = hubs.add_spoke(harness.ctx, hub.id, name, "memory_contacts", {"folder": name},
                              options={"direction": "two_way", **options})
        return made, memory_registry.folder(name)

    memory_registry.FOLDERS.clear()
    _, crm = spoke("crm")
    _, phone = spoke("phone", sync_notes=False, sync_birthday=False)
    ada = crm.user_create(Contact(display_name="Ada Lovelace", emails=(Email("ada@example.com"),)))
    harness.settle()
    [phone_id] = phone.items
    mine = replace(phone.items[phone_id].event, notes="Met at the conference", birthday=PartialDate(12, 10))  # type: ignore[type-var]
    phone.user_update(phone_id, mine)
    harness.settle()
    crm.user_update(ada.id, replace(crm.items[ada.id].event, display_name="Ada King"))  # type: ignore[type-var]
    harness.settle()
    now = phone.items[phone_id].event
    assert now.display_name == "Ada King"  # type: ignore[union-attr]
    assert (now.notes, now.birthday) == ("Met at the conference", PartialDate(12, 10))  # type: ignore[union-attr]
    assert crm.items[ada.id].event.notes == ""  # type: ignore[union-attr]
    memory_registry.FOLDERS.clear()


def _spoke(kind: str, **options: object) -> Spoke:
    return Spoke(id="s", hub_id="h", name="S", kind=kind, address={}, options=SyncOptions(**options))  # type: ignore[arg-type]


def test_kept_fields_follow_the_options() -> None:
    assert registry.kept_fields(_spoke("google")) == frozenset()
    assert registry.kept_fields(_spoke("google", sync_description=False, sync_reminders=False)) == \
        EVENT_OPTIONAL["description"] | EVENT_OPTIONAL["reminders"]
    # a busy-only spoke's copies are placeholders, written whole: nothing of them is the spoke's own
    assert registry.kept_fields(_spoke("exchange", sync_description=False, privacy_mode="busy_only")) == frozenset()
    assert registry.kept_fields(_spoke("graph_contacts", sync_photo=False)) == CONTACT_OPTIONAL["photo"]
