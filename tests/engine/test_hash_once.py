"""Each item is hashed once: a hub item's hash, when it covers exactly the fields a spoke
compares and the spoke's copy takes them as they are, is reused for that copy
(docs/decisions/2026-12-01-hash-once.md) — and a reused hash is never a wrong one.

- Engine: the initial sync of N items between two spokes makes N content_hash calls, an edit
  of k items in one spoke k more, and the round after writes nothing (no copy looks edited).
- Property: for generated events and contacts, spoke options, capabilities and slot limits,
  through the planner and the hub store's serialised form, every hash the planner seeds equals
  the item's hash computed afresh (`CheckedHashMemo`), and a plain copy is seeded.

Draws are reproducible: indices into fixed lists (`sampled_from`), booleans and small integers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spokesync.connectors import memory_registry
from spokesync.engine import rules
from spokesync.engine.kinds import CALENDAR, CONTACTS, ItemKind
from spokesync.engine.planner import HubUpsert, PlanInput, SpokeCreate, SpokeUpdate, plan_sync
from spokesync.model import contact as contact_model
from spokesync.model import event as event_model
from spokesync.model.contact import Contact, Email, Photo
from spokesync.model.event import Attendee, Event, Override, Person
from spokesync.model.hub import HubItem, Link, SyncOptions, hash_scope
from spokesync.model.item import Item
from spokesync.ports import ChangeSet, SpokeItem
from spokesync.service import hubs
from tests.engine.conftest import Harness
from tests.engine.hash_check import CheckedHashMemo, fresh_hash

NOW = datetime(2026, 3, 1, 8, tzinfo=UTC)
STAMP = "From the hub"


def _counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count content_hash calls of both kinds, where the engine makes them."""
    count = [0]
    event_hash, contact_hash = rules.content_hash, contact_model.content_hash

    def counted_event(item: Any, names: Any = event_model.ALL_FIELDS) -> str:
        count[0] += 1
        return event_hash(item, names)

    def counted_contact(item: Any, names: Any = contact_model.ALL_FIELDS) -> str:
        count[0] += 1
        return contact_hash(item, names)

    monkeypatch.setattr(rules, "content_hash", counted_event)
    monkeypatch.setattr(contact_model, "content_hash", counted_contact)
    return count


def _event(i: int) -> Event:
    start = NOW + timedelta(days=i % 30, hours=i % 9)
    event = Event(title=f"Event {i}", start=start, end=start + timedelta(hours=1), description=f"Item {i}",
                  location=f"Room {i % 4}", categories=("team",), reminders=(10,), modified=NOW)
    if i % 5 == 0:  # a series with an EXDATE and a moved occurrence
        event = replace(event, recurrence=("RRULE:FREQ=WEEKLY", f"EXDATE:{(start + timedelta(days=7)):%Y%m%dT%H%M%SZ}"),
                        overrides=(Override(start + timedelta(days=14), Event(title="Moved", start=start + timedelta(
                            days=14, hours=1), end=start + timedelta(days=14, hours=2))),))
    return event


def _contact(i: int) -> Contact:
    return Contact(display_name=f"Person {i}", given_name="Person", family_name=str(i),
                   emails=(Email(f"p{i}@example.com"),), notes=f"Note {i}", categories=("team",), modified=NOW)


def _sync_both(harness: Harness, a: Any, b: Any) -> None:
    harness.sync(a, reason="poll")
    harness.sync(b, reason="poll")
    harness.queue.drain()


@pytest.mark.parametrize("kind", ["calendar", "contacts"])
def test_an_initial_sync_hashes_each_item_once(harness: Harness, monkeypatch: pytest.MonkeyPatch,
                                               kind: str) -> None:
    n, changed = 40, 4
    memory_registry.FOLDERS.clear()
    hub = hubs.create_hub(harness.ctx, "Team", kind)
    connector = "memory" if kind == "calendar" else "memory_contacts"
    key = "calendar" if kind == "calendar" else "folder"
    a = hubs.add_spoke(harness.ctx, hub.id, "a", connector, {key: "a"}, options={"direction": "two_way"})
    b = hubs.add_spoke(harness.ctx, hub.id, "b", connector, {key: "b"}, options={"direction": "two_way"})
    side = memory_registry.calendar if kind == "calendar" else memory_registry.folder
    cal_a, cal_b = side("a"), side("b")
    make: Callable[[int], Item] = _event if kind == "calendar" else _contact
    for i in range(n):
        cal_a.user_create(make(i))
    count = _counter(monkeypatch)

    _sync_both(harness, a, b)
    assert len(cal_b.items) == n
    assert count[0] == n  # a hashes each item once; b's copies reuse the hub item's hash

    count[0] = 0
    writes = cal_a.writes + cal_b.writes
    _sync_both(harness, a, b)  # each spoke's feed shows its own writes: none is an edit
    assert (count[0], cal_a.writes + cal_b.writes) == (0, writes)

    for item_id in sorted(cal_a.items)[:changed]:
        item = cal_a.items[item_id].event
        if isinstance(item, Event):
            cal_a.user_update(item_id, replace(item, title=item.title + " (moved)"))
        else:
            assert isinstance(item, Contact)
            cal_a.user_update(item_id, replace(item, company="Renamed Ltd"))
    count[0] = 0
    _sync_both(harness, a, b)
    assert count[0] == changed  # once per changed item, for both runs
    assert cal_b.writes - writes == changed

    count[0] = 0
    writes = cal_a.writes + cal_b.writes
    for _ in range(2):
        _sync_both(harness, a, b)
    assert cal_a.writes + cal_b.writes == writes  # b's copies hold what their links say: no phantom edit
    in_hub = [h.event for h in harness.ctx.store.list_hub_items(hub.id)]
    assert sorted(map(_full_hash, in_hub)) == sorted(_full_hash(i.event) for i in cal_b.items.values())


def _full_hash(item: Item | None) -> str:
    assert item is not None
    return fresh_hash(item, contact_model.ALL_FIELDS if isinstance(item, Contact) else event_model.ALL_FIELDS)


# ------------------------------------------------------------------ property: a reused hash is right

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TITLES = ["Team sync", "  Budget\treview ", "Busy", ""]
RECURRENCES: list[tuple[str, ...]] = [
    (), ("RRULE:FREQ=WEEKLY",), ("RRULE:FREQ=WEEKLY", "EXDATE:20260309T093000Z"),
    ("RRULE:FREQ=DAILY;COUNT=5", "EXDATE:20260303T093000Z,20260304T093000Z"),
]
OVERRIDES: list[tuple[Override, ...]] = [
    (), (Override(T0 + timedelta(days=7), Event(title="Moved", start=T0 + timedelta(days=7, hours=1),
                                               end=T0 + timedelta(days=7, hours=2))),),
    (Override(T0 + timedelta(days=14), Event(status="cancelled")),),
]
CANCELLED: list[tuple[Any, ...]] = [(), (T0 + timedelta(days=21),), (T0 + timedelta(days=7),)]
CATEGORIES: list[tuple[str, ...]] = [(), ("team",), ("b", "a", "b"), (STAMP,), ("team", STAMP)]
ATTENDEES: list[tuple[Attendee, ...]] = [
    (), (Attendee("b@example.org", "B", "optional", "accepted"), Attendee("A@Example.org", "A")),
]
DESCRIPTIONS: list[tuple[str, str]] = [("", ""), ("Line 1\r\n\r\nLine  2 ", ""),
                                      ("", "<p>Line&nbsp;one</p><br>two"), ("Text", "<p>Text</p>")]
START_END: list[tuple[Any, Any]] = [
    (T0, T0 + timedelta(hours=1)), (date(2026, 12, 24), date(2026, 12, 27)), (None, None),
    (datetime(2026, 3, 2, 9, 30, tzinfo=ZoneInfo("Europe/Berlin")), T0 + timedelta(hours=2)),
]
EVENT_CAPS: list[frozenset[str]] = [
    event_model.ALL_FIELDS,
    event_model.ALL_FIELDS - {"overrides"},  # entangled fields partly held: never a copy
    event_model.ALL_FIELDS - {"recurrence", "cancelled", "overrides"},
    event_model.ALL_FIELDS - event_model.OPTIONAL_FIELDS["attendees"] - {"color", "conference_url"},
    event_model.TIME_FIELDS,
]
CONTACT_CAPS: list[frozenset[str]] = [
    contact_model.ALL_FIELDS,
    contact_model.ALL_FIELDS - {"photo", "anniversary"},
    contact_model.ALL_FIELDS - {"notes", "notes_html", "websites"},
]
PHOTOS: list[Photo | None] = [None, Photo.of(b"small picture"), Photo(Photo.of(b"too large").hash)]
LIMITS: list[dict[str, int]] = [{}, {"emails": 3}, {"emails": 1, "phones": 1}]


@st.composite
def events(draw: st.DrawFn) -> Event:
    start, end = draw(st.sampled_from(START_END))
    description, html = draw(st.sampled_from(DESCRIPTIONS))
    organizer = draw(st.sampled_from([None, Person("Boss@Example.org", "Boss")]))
    return Event(title=draw(st.sampled_from(TITLES)), start=start, end=end, description=description,
                 description_html=html, location=draw(st.sampled_from(["", "Room\u00a0 4"])),
                 recurrence=draw(st.sampled_from(RECURRENCES)), overrides=draw(st.sampled_from(OVERRIDES)),
                 cancelled=draw(st.sampled_from(CANCELLED)), categories=draw(st.sampled_from(CATEGORIES)),
                 attendees=draw(st.sampled_from(ATTENDEES)), organizer=organizer,
                 reminders=draw(st.sampled_from([None, (), (15, 5, 15)])),
                 privacy=draw(st.sampled_from(["public", "private"])), modified=NOW)


@st.composite
def contacts(draw: st.DrawFn) -> Contact:
    n_emails = draw(st.integers(0, 5))
    description, html = draw(st.sampled_from(DESCRIPTIONS))
    return Contact(display_name=draw(st.sampled_from(TITLES)), given_name="Ada",
                   emails=tuple(Email(f"P{i}@Example.com", "work") for i in range(n_emails)),
                   notes=description, notes_html=html, categories=draw(st.sampled_from(CATEGORIES)),
                   photo=draw(st.sampled_from(PHOTOS)), company=draw(st.sampled_from(["", "ACME"])), modified=NOW)


@st.composite
def spoke_setups(draw: st.DrawFn, kind: ItemKind) -> tuple[SyncOptions, frozenset[str], dict[str, int]]:
    common: dict[str, Any] = {"direction": "two_way", "spoke_category": draw(st.sampled_from(["", STAMP]))}
    if kind is CALENDAR:
        options = SyncOptions(
            **common, privacy_mode=draw(st.sampled_from(["as_is", "private", "busy_only"])),
            placeholder_title=draw(st.sampled_from(["Busy", "Blocked"])),
            meetings_as_appointments=draw(st.booleans()), sync_description=draw(st.booleans()),
            sync_attendees=draw(st.booleans()), sync_reminders=draw(st.booleans()))
        return options, draw(st.sampled_from(EVENT_CAPS)), {}
    options = SyncOptions(**common, sync_notes=draw(st.booleans()), sync_photo=draw(st.booleans()))
    return options, draw(st.sampled_from(CONTACT_CAPS)), draw(st.sampled_from(LIMITS))


def _stored(item: HubItem, seq: int) -> HubItem:
    """The hub item as a store gives it back (its JSON form), with the commit's seq."""
    return HubItem.from_dict(json.loads(json.dumps({**item.to_dict(), "seq": seq})))


class _Spoke:
    def __init__(self, name: str, kind: ItemKind, setup: tuple[SyncOptions, frozenset[str], dict[str, int]]) -> None:
        self.name, self.kind = name, kind
        self.options, self.fields, self.limits = setup
        self.links: dict[str, Link] = {}  # by hub item id

    def plan(self, items: list[SpokeItem], hub_changed: list[HubItem], hub_items: dict[str, HubItem],
             memo: CheckedHashMemo) -> Any:
        ids = itertools.count(1)
        by_spoke = {link.spoke_item_id: link for link in self.links.values()}
        return plan_sync(PlanInput(
            hub_id="h", spoke_id=self.name, options=self.options, fields=self.fields,
            changes=ChangeSet(items, [], None), hub_changed=hub_changed, hub_items=hub_items,
            links_by_spoke={i.id: by_spoke[i.id] for i in items if i.id in by_spoke},
            links_by_hub={h.id: self.links[h.id] for h in hub_changed if h.id in self.links}, now=NOW,
            new_id=lambda: f"hub-{next(ids)}", hashes=memo, kind=self.kind, limits=self.limits))

    def exchanges_like(self, other: _Spoke) -> bool:
        """The same capabilities and field switches as `other`."""
        switches = ("sync_description", "sync_attendees", "sync_reminders", "sync_notes", "sync_photo")
        return self.fields == other.fields and all(getattr(self.options, s) == getattr(other.options, s)
                                                   for s in switches)

    def compared(self, created_by_hub: bool) -> frozenset[str]:
        return self.kind.compared_fields(self.options, self.fields, created_by_hub)

    def written(self, action: SpokeCreate | SpokeUpdate, memo: CheckedHashMemo, version: str) -> SpokeItem:
        """Apply a planned write as the runner does: the link holds the memo's hash of the copy."""
        created = isinstance(action, SpokeCreate)
        by_hub = True if created else action.link.created_by_hub  # type: ignore[union-attr]
        names = self.compared(by_hub)
        value = memo(action.event, names)
        assert value == fresh_hash(action.event, names)
        item_id = f"{self.name}-1" if created else action.link.spoke_item_id  # type: ignore[union-attr]
        self.links[action.hub_item.id] = Link(self.name, action.hub_item.id, item_id, version, value,
                                              action.hub_item.version, created_by_hub=by_hub)
        return SpokeItem(item_id, version, action.event)


EDITS: list[Callable[[Item], Item]] = [
    lambda i: replace(i, title="Edited") if isinstance(i, Event) else replace(i, company="Edited"),  # type: ignore[arg-type]
    lambda i: replace(i, categories=(*i.categories, STAMP)),  # type: ignore[union-attr]
    lambda i: replace(i, categories=()),
    lambda i: replace(i, photo=None) if isinstance(i, Contact) else replace(i, recurrence=()),  # type: ignore[arg-type]
    lambda i: replace(i, emails=i.emails[:1]) if isinstance(i, Contact) else replace(i, cancelled=()),  # type: ignore[arg-type]
    lambda i: replace(i, description="", description_html="<b>new</b>") if isinstance(i, Event)
    else replace(i, notes="", notes_html="<b>new</b>"),  # type: ignore[arg-type]
]


def _check_round_trip(kind: ItemKind, original: Item, setup_a: Any, setup_b: Any, edit: int) -> None:
    """a creates the item; b receives it; b edits it; a receives the edit. Every seed is checked
    by the memo; the hub item's recorded hash is its own; a plain copy is seeded."""
    a, b = _Spoke("a", kind, setup_a), _Spoke("b", kind, setup_b)
    memo = CheckedHashMemo(kind.content_hash)
    plan = a.plan([SpokeItem("a-1", "v1", original)], [], {}, memo)
    if not plan.hub:
        return  # not shared (a filter): nothing to check
    (upsert,) = plan.hub
    assert isinstance(upsert, HubUpsert)
    a.links[upsert.item.id] = upsert.link  # type: ignore[assignment]
    hub = _stored(upsert.item, 1)
    _check_hub_hash(kind, hub, a.compared(False))

    memo = CheckedHashMemo(kind.content_hash)
    plan = b.plan([], [hub], {}, memo)
    (create,) = plan.spoke
    assert isinstance(create, SpokeCreate)
    names_b = b.compared(True)
    if names_b == a.compared(False) and kind.hashes_alike(hub.event, create.event, names_b):  # type: ignore[arg-type]
        assert memo.was_seeded(create.event, names_b)  # a plain copy: its hash is the hub item's
    if (b.options.privacy_mode == "as_is" and not b.options.spoke_category and not b.limits
            and not b.options.meetings_as_appointments and b.exchanges_like(a)
            and rules.self_contained(names_b)):
        assert memo.was_seeded(create.event, names_b)
    copy = b.written(create, memo, "v1")

    # b's user edits its copy; b's run takes it into the hub; a receives it
    edited = SpokeItem(copy.id, "v2", EDITS[edit](copy.event))
    memo = CheckedHashMemo(kind.content_hash)
    plan = b.plan([edited], [], {hub.id: hub}, memo)
    ups = [u for u in plan.hub if u.item.event is not None]
    if not ups:
        return  # no change that b compares, or un-shared
    new_hub = _stored(ups[0].item, 2)
    _check_hub_hash(kind, new_hub, names_b)
    memo = CheckedHashMemo(kind.content_hash)
    plan = a.plan([], [new_hub], {}, memo)
    for action in plan.spoke:
        if isinstance(action, SpokeUpdate):
            a.written(action, memo, "v2")


def _check_hub_hash(kind: ItemKind, hub: HubItem, names: frozenset[str]) -> None:
    """A hub item that says which fields its hash covers holds exactly that hash (read back)."""
    assert hub.event is not None
    assert hub.hash_of, "a hub item written from a spoke's copy records what its hash covers"
    assert hub.hash == fresh_hash(hub.event, names)


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PLAIN_EVENTS = (SyncOptions(direction="two_way"), event_model.ALL_FIELDS, {})
PLAIN_CONTACTS = (SyncOptions(direction="two_way"), contact_model.ALL_FIELDS, {})


@PROPERTY
# a series whose spoke holds its rule but not its moved occurrences (EXDATEs fold into `cancelled`)
@example(Event(title="Weekly", start=T0, end=T0 + timedelta(hours=1), recurrence=RECURRENCES[2],
               overrides=OVERRIDES[2]), PLAIN_EVENTS, (SyncOptions(direction="two_way"), EVENT_CAPS[1], {}), 4)
@given(events(), spoke_setups(CALENDAR), spoke_setups(CALENDAR), st.integers(0, len(EDITS) - 1))
def test_a_reused_event_hash_is_always_the_right_one(event: Event, setup_a: Any, setup_b: Any, edit: int) -> None:
    _check_round_trip(CALENDAR, event, setup_a, setup_b, edit)


@PROPERTY
# the hub keeps a photo it holds the hash of only, when b's copy comes back without it
@example(Contact(display_name="Ada", photo=PHOTOS[2]), PLAIN_CONTACTS, PLAIN_CONTACTS, 3)
# the hub keeps the addresses b cannot hold
@example(Contact(display_name="Ada", emails=tuple(Email(f"p{i}@example.com") for i in range(5))),
         PLAIN_CONTACTS, (SyncOptions(direction="two_way"), contact_model.ALL_FIELDS, {"emails": 3}), 0)
@given(contacts(), spoke_setups(CONTACTS), spoke_setups(CONTACTS), st.integers(0, len(EDITS) - 1))
def test_a_reused_contact_hash_is_always_the_right_one(contact: Contact, setup_a: Any, setup_b: Any,
                                                       edit: int) -> None:
    _check_round_trip(CONTACTS, contact, setup_a, setup_b, edit)


def test_a_kept_photo_is_not_taken_for_the_spokes_copy() -> None:
    """The hub holds a photo's hash only (too large to keep); a spoke's copy without a picture
    keeps it in the hub's version: that version is hashed itself, not given the copy's hash."""
    large = Photo(Photo.of(b"x").hash)
    hub_event = Contact(display_name="Ada", photo=large)
    names = CONTACTS.compared_fields(SyncOptions(direction="two_way"), contact_model.ALL_FIELDS, False)
    spoke = replace(hub_event, photo=None)
    merged = CONTACTS.merge_inbound(hub_event, spoke, names)
    assert merged.photo == large  # type: ignore[union-attr]
    assert not CONTACTS.hashes_alike(spoke, merged, names)
    assert CONTACTS.hashes_alike(spoke, CONTACTS.merge_inbound(None, spoke, names), names)


def test_older_hub_items_are_read_without_a_scope() -> None:
    raw = HubItem("x", "h", 1, 1, Event(title="Old"), hash="abc").to_dict()
    del raw["hash_of"]
    assert HubItem.from_dict(raw).hash_of == ""  # unknown: never reused


def test_the_names_of_a_hash_scope_do_not_change_with_the_code() -> None:
    """Hub items store these names (`HubItem.hash_of`): a different name for the same fields would
    make every stored hash unknown (hashed again), and a scheme change must change them all."""
    assert hash_scope("calendar", frozenset({"title", "start", "end"})) == "734f073a2b965bad"
    assert hash_scope("contacts", frozenset({"display_name"})) == "34d21d0912110d3c"
    assert hash_scope("calendar", frozenset({"title"})) != hash_scope("contacts", frozenset({"title"}))
