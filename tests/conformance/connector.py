"""The SpokeConnector conformance suite.

Subclass `ConnectorConformance` and provide a `connector` fixture yielding a
connector on a fresh, empty spoke (calendar or folder). Optionally override
`sample_events` with events the spoke kind supports.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from spokesync.model.event import OPTIONAL_FIELDS, Attendee, Event, content_hash
from spokesync.ports import ItemDelete, ItemUpdate, NewItem, SpokeConnector

BERLIN = ZoneInfo("Europe/Berlin")


def sample_events() -> list[Event]:
    base = datetime(2026, 3, 2, 9, 0, tzinfo=BERLIN)
    return [
        Event(title="Standup", start=base, end=base + timedelta(minutes=15), timezone="Europe/Berlin",
              description="Daily", location="Room 1", reminders=(10,)),
        Event(title="Offsite", start=date(2026, 3, 10), end=date(2026, 3, 12), show_as="free"),
        Event(title="Weekly", start=base + timedelta(days=1), end=base + timedelta(days=1, hours=1),
              timezone="Europe/Berlin", recurrence=("RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=10",),
              attendees=(Attendee("a@example.com", "A", "required", "accepted"),)),
    ]


class ConnectorConformance:
    def sample_events(self) -> list[Any]:
        return sample_events()

    def compared(self, connector: SpokeConnector) -> frozenset[str]:
        return connector.capabilities.fields

    # Hooks over the item kind (the contacts suite overrides them): how an item
    # is hashed, given a new title, or a new second field, and read back.
    def item_hash(self, item: Any, names: frozenset[str]) -> str:
        return content_hash(item, names)

    def renamed(self, item: Any, text: str) -> Any:
        return replace(item, title=text)

    def title_of(self, item: Any) -> str:
        return str(item.title)

    def relocated(self, item: Any, text: str) -> Any:
        return replace(item, location=text)

    def location_of(self, item: Any) -> str:
        return str(item.location)

    def kept_case(self) -> tuple[frozenset[str], Any, Any]:
        """Fields a spoke's options switch off, an item holding values for them, and the same item
        renamed with those fields blank (what the engine hands a connector for such a spoke)."""
        kept = OPTIONAL_FIELDS["description"] | OPTIONAL_FIELDS["location"] | OPTIONAL_FIELDS["reminders"]
        base = datetime(2026, 3, 3, 9, 0, tzinfo=BERLIN)
        item = Event(title="Own fields", start=base, end=base + timedelta(hours=1), timezone="Europe/Berlin",
                     description="Typed in this calendar", location="Room 9", reminders=(15,))
        return kept, item, replace(item, title="Renamed in the hub", description="", location="", reminders=None)

    def _create(self, connector: SpokeConnector, events: list[Any], prefix: str = "hub") -> list[str]:
        results = connector.create([NewItem(f"{prefix}{i:04d}", e) for i, e in enumerate(events)])
        assert [r.status for r in results] == ["ok"] * len(events), results
        return [r.spoke_item_id for r in results]

    def test_an_update_leaves_the_fields_switched_off_for_the_spoke(self, connector: SpokeConnector) -> None:
        """"Sync descriptions" (notes, ...) off: the hub's update of a title must not erase the
        description the spoke holds (docs/decisions/2026-12-01-kept-fields.md)."""
        kept, item, blanked = self.kept_case()
        kept &= connector.capabilities.fields
        assert kept, "the spoke holds none of the fields this check switches off"
        created = connector.create([NewItem("hubkept", item)])[0]
        assert created.status == "ok", created
        connector.kept = kept  # type: ignore[misc]  # what registry.connector_for sets for such a spoke
        updated = connector.update([ItemUpdate(created.spoke_item_id, created.version, blanked, "hubkept")])[0]
        assert updated.status == "ok", updated
        now = connector.read([created.spoke_item_id])[created.spoke_item_id].event
        assert self.title_of(now) == self.title_of(blanked)  # the update was written
        assert self.item_hash(now, kept) == self.item_hash(item, kept)  # and the kept fields are the spoke's own
        assert self.item_hash(now, kept) != self.item_hash(blanked, kept)  # (which differ from the blanks)

    def test_empty_spoke_lists_nothing(self, connector: SpokeConnector) -> None:
        changes = connector.changes(None)
        assert changes.full is True
        assert changes.items == [] and changes.deleted == []

    def test_created_items_round_trip_their_fields_and_hub_ids(self, connector: SpokeConnector) -> None:
        events = self.sample_events()
        ids = self._create(connector, events)
        listing = {item.id: item for item in connector.changes(None).items}
        assert set(listing) == set(ids)
        for i, (spoke_id, event) in enumerate(zip(ids, events, strict=True)):
            item = listing[spoke_id]
            assert item.hub_id == f"hub{i:04d}"
            assert self.item_hash(item.event, self.compared(connector)) == self.item_hash(
                event, self.compared(connector)), (item.event, event)

    def test_versions_from_writes_match_the_feed(self, connector: SpokeConnector) -> None:
        """Echo suppression depends on it: our own write must read back with the version we were given."""
        events = self.sample_events()[:1]
        created = connector.create([NewItem("hubv", events[0])])[0]
        cursor = connector.changes(None).cursor
        updated = connector.update([ItemUpdate(created.spoke_item_id, created.version,
                                               self.renamed(events[0], "Renamed"), "hubv")])[0]
        assert updated.status == "ok" and updated.version != created.version
        feed = connector.changes(cursor)
        assert [(i.id, i.version) for i in feed.items] == [(created.spoke_item_id, updated.version)]

    def test_retried_create_makes_no_duplicate(self, connector: SpokeConnector) -> None:
        event = self.sample_events()[0]
        first = connector.create([NewItem("hubdup", event)])[0]
        again = connector.create([NewItem("hubdup", event)])[0]
        assert first.status == "ok"
        assert again.status in ("exists", "ok")
        assert again.spoke_item_id == first.spoke_item_id
        assert len(connector.changes(None).items) == 1

    def test_incremental_feed_reports_updates_and_deletes(self, connector: SpokeConnector) -> None:
        events = self.sample_events()
        ids = self._create(connector, events)
        listing = connector.changes(None)
        versions = {i.id: i.version for i in listing.items}
        upd = connector.update([ItemUpdate(ids[0], versions[ids[0]], self.relocated(events[0], "Room 2"), "hub0000")])
        rem = connector.delete([ItemDelete(ids[1], versions[ids[1]])])
        assert upd[0].status == "ok" and rem[0].status == "ok"
        feed = connector.changes(listing.cursor)
        changed = {i.id: i for i in feed.items}
        if feed.full:  # a snapshot spoke may list everything; deletions are then implied
            assert ids[1] not in changed
        else:
            assert ids[1] in feed.deleted
        assert self.location_of(changed[ids[0]].event) == "Room 2"

    def test_idle_feed_is_empty(self, connector: SpokeConnector) -> None:
        self._create(connector, self.sample_events())
        cursor = connector.changes(None).cursor
        feed = connector.changes(cursor)
        assert feed.items == [] and feed.deleted == [] and not feed.full

    def test_stale_version_is_a_conflict_and_writes_nothing(self, connector: SpokeConnector) -> None:
        event = self.sample_events()[0]
        created = connector.create([NewItem("hubc", event)])[0]
        fresh = connector.update([ItemUpdate(created.spoke_item_id, created.version, self.renamed(event, "One"), "hubc")])[0]
        stale = connector.update([ItemUpdate(created.spoke_item_id, created.version, self.renamed(event, "Two"), "hubc")])[0]
        assert fresh.status == "ok" and stale.status == "conflict"
        gone = connector.delete([ItemDelete(created.spoke_item_id, created.version)])[0]
        assert gone.status == "conflict"
        current = connector.read([created.spoke_item_id])[created.spoke_item_id]
        assert self.title_of(current.event) == "One"

    def test_missing_items_are_not_found(self, connector: SpokeConnector) -> None:
        event = self.sample_events()[0]
        created = connector.create([NewItem("hubm", event)])[0]
        assert connector.delete([ItemDelete(created.spoke_item_id, created.version)])[0].status == "ok"
        assert connector.read([created.spoke_item_id]) == {}
        upd = connector.update([ItemUpdate(created.spoke_item_id, created.version, event, "hubm")])[0]
        rem = connector.delete([ItemDelete(created.spoke_item_id, created.version)])[0]
        assert upd.status == "not_found" and rem.status == "not_found"

    def test_bulk_writes_return_one_result_per_item_in_order(self, connector: SpokeConnector) -> None:
        n = connector.capabilities.batch_size + 3
        base = self.sample_events()[0]
        events = [self.renamed(base, f"Item {i}") for i in range(n)]
        results = connector.create([NewItem(f"bulk{i:04d}", e) for i, e in enumerate(events)])
        assert len(results) == n and all(r.status == "ok" for r in results)
        read = connector.read([r.spoke_item_id for r in results])
        assert [self.title_of(read[r.spoke_item_id].event) for r in results] == [self.title_of(e) for e in events]
        removed = connector.delete([ItemDelete(r.spoke_item_id, r.version) for r in results])
        assert [r.status for r in removed] == ["ok"] * n
        assert connector.changes(None).items == []
