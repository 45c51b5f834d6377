"""Paged runs (docs/decisions/2026-12-01-paged-runs.md): the hub's changes and a paging spoke's
answer are read, planned and written a page at a time, with the cursors committed per page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spokesync.connectors import memory_registry
from spokesync.connectors.memory import MemoryCalendar, MemoryConnector, SimulatedCrash
from spokesync.engine import runner as runner_module
from spokesync.engine.runner import Runner
from spokesync.model.event import Event
from spokesync.service import hubs
from tests.engine.conftest import Harness


def ev(i: int) -> Event:
    start = datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(hours=i)
    return Event(title=f"item {i:02d}", start=start, end=start + timedelta(hours=1))


@pytest.fixture
def pages(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(runner_module, "HUB_PAGE", 3)
    return 3


def paged_spoke(harness: Harness, hub, name: str, page_size: int | None = 3, **options):  # type: ignore[no-untyped-def]
    spoke = hubs.add_spoke(harness.ctx, hub.id, name, "memory", {"calendar": name, "page_size": page_size},
                           options={"direction": "two_way", **options})
    return spoke, memory_registry.calendar(name)


def test_the_memory_calendars_listing_pages_follow_every_change_between_pages() -> None:
    """Its ids are sorted once per state (not once per page): a change between two pages shows."""
    cal = MemoryCalendar("p")
    for i in (5, 1, 3, 7):
        cal.user_create(ev(i), item_id=f"i{i}")
    assert cal.ids_after("", 2) == ["i1", "i3"]
    cal.user_create(ev(4), item_id="i4")
    cal.user_delete("i5")
    assert cal.ids_after("i3", 2) == ["i4", "i7"]
    cal.user_delete("i7")
    cal.user_create(ev(8), item_id="i8")  # as many items as before, other ids
    assert cal.ids_after("i3", 5) == ["i4", "i8"] and cal.ids_after("i8", 5) == []
    assert cal.ids_after("", 10) == sorted(cal.items)


def test_the_memory_connector_pages_its_feed_resumably_and_its_listing_by_id() -> None:
    cal = MemoryCalendar("p")
    for i in range(7):
        cal.user_create(ev(i), item_id=f"i{i}")
    conn = MemoryConnector(cal, page_size=3)
    listing, ids = conn.changes(None), []
    while True:
        assert listing.full
        ids += [i.id for i in listing.items]
        if not listing.more:
            break
        assert not listing.resumable and listing.cursor is not None and listing.cursor.startswith(b"L")
        listing = conn.changes(listing.cursor)
    assert ids == [f"i{i}" for i in range(7)]
    assert listing.cursor == b"7"  # the position the listing started at
    cal.user_update("i1", ev(11))
    cal.user_delete("i2")
    cal.user_update("i1", ev(12))
    for i in range(7, 10):
        cal.user_create(ev(i), item_id=f"i{i}")
    first = conn.changes(b"7")
    assert [i.id for i in first.items] == ["i1", "i7"] and first.deleted == ["i2"]
    assert first.more and first.resumable and first.cursor == b"11"  # a log position: storable
    rest = conn.changes(first.cursor)
    assert [i.id for i in rest.items] == ["i8", "i9"] and not rest.more and rest.cursor == b"13"
    # a connector that does not page answers in one, as before
    whole = MemoryConnector(cal).changes(b"7")
    assert {i.id for i in whole.items} == {"i1", "i7", "i8", "i9"} and not whole.more


def test_an_initial_sync_in_pages_copies_everything_once_and_reads_the_hub_in_pages(
        harness: Harness, pages: int, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = harness.hub()
    a, cal_a = paged_spoke(harness, hub, "a")
    b, cal_b = paged_spoke(harness, hub, "b")
    for i in range(10):
        cal_a.user_create(ev(i))
    store = harness.ctx.store
    limits: list[int | None] = []
    since = store.hub_items_since

    def counting(hub_id, seq, limit=None):  # type: ignore[no-untyped-def]
        limits.append(limit)
        return since(hub_id, seq, limit)

    monkeypatch.setattr(store, "hub_items_since", counting)
    reports: list[tuple[str, int, int]] = []
    harness.ctx.run_progress = lambda p: reports.append((p.phase, p.done, p.total))  # type: ignore[method-assign]
    run_a = harness.sync(a)
    assert run_a.status == "ok" and run_a.counts["hub_created"] == 10
    assert store.get_cursor(a.id) == b"10"  # the listing's end: stored once complete
    run_b = harness.sync(b)
    assert run_b.status == "ok" and run_b.counts["spoke_created"] == 10
    assert limits and set(limits) == {pages}  # every read of the hub was a page
    assert sorted(e.title for e in cal_b.events()) == [f"item {i:02d}" for i in range(10)]
    spoke_b = store.get_spoke(b.id)
    assert spoke_b is not None and spoke_b.hub_cursor == store.get_hub(hub.id).seq  # type: ignore[union-attr]
    # progress is reported page by page, never beyond its total, and ends done
    writing = [r for r in reports if r[0] == "writing"]
    assert len(writing) > 4 and all(done <= total for _, done, total in writing)
    assert reports[-1][0] == "done"
    harness.queue.drain()
    writes = cal_a.writes + cal_b.writes
    harness.settle()
    assert cal_a.writes + cal_b.writes == writes and len(cal_a.items) == len(cal_b.items) == 10


def test_a_crash_between_hub_pages_keeps_the_pages_written_and_the_next_run_finishes(
        harness: Harness, pages: int) -> None:
    hub = harness.hub()
    a, cal_a = paged_spoke(harness, hub, "a", page_size=None)
    b, cal_b = paged_spoke(harness, hub, "b", page_size=None)
    for i in range(9):  # three runs of a: three hub commits (a page ends where a commit's seq ends)
        cal_a.user_create(ev(i))
        if i % 3 == 2:
            harness.sync(a)
    cal_b.crash_after_writes = 4  # the 5th write dies: page 1 (3 creates) and part of page 2 done
    with pytest.raises(SimulatedCrash):
        Runner(harness.ctx).sync(b.id)
    store = harness.ctx.store
    spoke_b = store.get_spoke(b.id)
    assert spoke_b is not None and spoke_b.hub_cursor > 0, "the first page's cursor was not committed"
    assert len(store.list_links(b.id)) >= 3 and len(cal_b.items) == 5
    harness.clock.advance(harness.ctx.config.lease_ttl_s + 1)  # the dead run's lease expires
    again = harness.sync(b)
    assert again.status == "ok"
    # what the first run wrote is not written again: the rest only (the 5th item's link is made from
    # the item it finds there)
    assert again.counts["spoke_created"] == 4
    assert sorted(e.title for e in cal_b.events()) == [f"item {i:02d}" for i in range(9)]


def test_deletions_weighed_across_pages_pause_the_run_within_the_budget(harness: Harness, pages: int) -> None:
    hub = harness.hub()
    a, cal_a = paged_spoke(harness, hub, "a", page_size=None, max_delete_count=100)
    b, cal_b = paged_spoke(harness, hub, "b", page_size=None, max_delete_count=4, max_delete_share=0.25)
    for i in range(12):
        cal_a.user_create(ev(i))
    harness.settle()
    assert len(cal_b.items) == 12
    # 9 items deleted in a, in three runs (three hub commits): b reads the tombstones in pages of 3
    for chunk in range(3):
        for item_id in sorted(cal_a.items)[:3]:
            cal_a.user_delete(item_id)
        assert harness.sync(a).status == "ok"
    run_b = harness.sync(b)
    spoke_b = harness.ctx.store.get_spoke(b.id)
    assert spoke_b is not None
    # the first page's 3 deletions fit b's budget (4); the second page's would pass it: paused there
    assert run_b.status == "paused" and spoke_b.state == "needs_confirmation"
    assert run_b.counts["spoke_deleted"] == 3 and len(cal_b.items) == 9
    assert len(spoke_b.pending_ids) == 3
    assert spoke_b.hub_cursor > 0  # the first page is done and not read again
    hubs.confirm_deletions(harness.ctx, b.id)
    assert harness.sync(b).status == "ok"  # the confirmed page, then the third (within a fresh budget)
    assert len(cal_b.items) == 3
