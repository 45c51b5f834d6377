"""Issue 10's safety rules through the runner, on in-memory spokes: the budget over
time, the hub's own budget, refusals in both directions, exact confirmations,
settled refused writes, folded repeated outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from spokesync.model.event import Event
from spokesync.service import hubs
from tests.engine.conftest import Harness


def ev(title: str, n: int = 0) -> Event:
    start = datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(hours=n)
    return Event(title=title, start=start, end=start + timedelta(hours=1))


def ordered(cal) -> list[str]:  # type: ignore[no-untyped-def]
    """A memory calendar's item ids in creation order."""
    return sorted(cal.items, key=lambda i: (len(i), i))


def fill(harness: Harness, n: int, **options: object):  # type: ignore[no-untyped-def]
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a", **options)
    b, cal_b = harness.spoke(hub, "b", **options)
    for i in range(n):
        cal_a.user_create(ev(f"E{i}", i))
    harness.settle()
    assert len(cal_b.items) == n
    return hub, a, cal_a, b, cal_b


def test_slices_that_each_pass_alone_are_paused_once_the_window_adds_up(harness: Harness) -> None:
    hub, a, cal_a, b, cal_b = fill(harness, 40, max_delete_count=3, max_delete_share=0.25)
    ids = ordered(cal_a)
    runs = []
    for start in range(0, 20, 4):  # 4 at a time: each slice alone is 10 % of the spoke
        for item_id in ids[start:start + 4]:
            cal_a.user_delete(item_id)
        runs.append(harness.sync(a).status)
        harness.queue.drain()
    assert runs[:2] == ["ok", "ok"] and runs[2] == "paused"  # 8 of 40 passed, 12 would be 30 %
    assert harness.ctx.store.count_hub_items(hub.id) == 32 and len(cal_b.items) == 32
    spoke = harness.ctx.store.get_spoke(a.id)
    assert spoke is not None and spoke.state == "needs_confirmation"
    assert "8 already deleted" in spoke.state_reason
    # the window slides: a day later the earlier deletions no longer count
    harness.clock.advance(25 * 3600)
    hubs.cancel_deletions(harness.ctx, a.id)
    harness.sync(a)
    assert len(cal_a.items) == 32  # refused: the spoke got the 12 back (nothing deleted in the hub)


def test_the_hub_budget_counts_every_spokes_deletions(harness: Harness) -> None:
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a", two_way=False, max_delete_count=100, max_delete_share=1.0)
    b, cal_b = harness.spoke(hub, "b", two_way=False, max_delete_count=1, max_delete_share=0.5)
    for i in range(10):
        cal_a.user_create(ev(f"a{i}", i))
    for i in range(4):
        cal_b.user_create(ev(f"b{i}", i))
    harness.settle()
    for item_id in ordered(cal_a)[:8]:  # a's administrator allows a's big deletion
        cal_a.user_delete(item_id)
    assert harness.sync(a).status == "ok"
    cal_b.user_delete(ordered(cal_b)[0])  # one of b's four: fine for b, but the hub has lost 9 of 14
    assert harness.sync(b).status == "paused"
    spoke = harness.ctx.store.get_spoke(b.id)
    assert spoke is not None and "hub's deletions to 9 of its 14" in spoke.state_reason
    assert harness.ctx.store.count_hub_items(hub.id) == 6


def test_confirm_deletes_exactly_what_was_shown_and_the_others_follow_without_asking(harness: Harness) -> None:
    hub, a, cal_a, b, cal_b = fill(harness, 10, max_delete_count=2, max_delete_share=0.2)
    ids = ordered(cal_a)
    for item_id in ids[:5]:
        cal_a.user_delete(item_id)
    assert harness.sync(a).status == "paused"
    spoke = harness.ctx.store.get_spoke(a.id)
    assert spoke is not None and len(spoke.pending_ids) == 5
    assert sorted(p["title"] for p in spoke.pending_items) == sorted(f"E{i}" for i in range(5))
    shown = set(spoke.pending_ids)
    for item_id in ids[5:9]:  # four more arrive before the administrator confirms: past the fresh budget
        cal_a.user_delete(item_id)
    hubs.confirm_deletions(harness.ctx, a.id)
    again = harness.sync(a)
    assert again.status == "paused"  # the unshown four are over the budget: asked again, nothing deleted
    assert harness.ctx.store.count_hub_items(hub.id) == 10
    spoke = harness.ctx.store.get_spoke(a.id)
    assert spoke is not None and set(spoke.pending_ids) - shown and spoke.pending_deletions == 4
    hubs.confirm_deletions(harness.ctx, a.id)
    assert harness.sync(a).status == "ok"
    harness.queue.drain()
    assert harness.ctx.store.count_hub_items(hub.id) == 1 and len(cal_b.items) == 1
    other = harness.ctx.store.get_spoke(b.id)
    assert other is not None and other.state == "ok"  # confirmed tombstones are not counted again in b


def test_a_refused_outbound_deletion_restores_the_hub_from_the_spoke(harness: Harness) -> None:
    hub, a, cal_a, b, cal_b = fill(harness, 10, max_delete_count=2, max_delete_share=0.2)
    hubs.set_options(harness.ctx, a.id, {"max_delete_count": 100, "max_delete_share": 1.0})
    for item_id in ordered(cal_a)[:8]:
        cal_a.user_delete(item_id)
    assert harness.sync(a).status == "ok"  # a's administrator allows it
    assert harness.sync(b).status == "paused"  # b's budget stops the deletions flowing into it
    assert len(cal_b.items) == 10
    spoke = harness.ctx.store.get_spoke(b.id)
    assert spoke is not None and {p["deleted_in"] for p in spoke.pending_items} == {"hub"}
    assert all(p["title"] for p in spoke.pending_items)  # tombstones still name what they were
    hubs.cancel_deletions(harness.ctx, b.id)
    run = harness.sync(b)
    assert run.status == "ok" and run.counts["hub_restored"] == 8
    harness.queue.drain()
    assert harness.ctx.store.count_hub_items(hub.id) == 10 and len(cal_b.items) == 10 and len(cal_a.items) == 10


def test_a_one_way_spokes_refusal_restores_what_another_spokes_confirmed_deletion_took(harness: Harness) -> None:
    """A one-way spoke reads no hub changes; refusing its paused deletion still brings back into
    the hub, from its copies, the listed items the hub lost meanwhile (found by the state machine)."""
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    c, cal_c = harness.spoke(hub, "c", two_way=False)
    cal_c.user_create(ev("Board meeting"))
    harness.settle()
    assert len(cal_a.items) == 1
    cal_c.read_empty = cal_a.read_empty = True
    cal_c.forget_cursor = cal_a.forget_cursor = True
    assert harness.sync(c).status == "paused" and harness.sync(a).status == "paused"
    cal_c.forget_cursor = cal_a.forget_cursor = False
    cal_a.user_delete(next(iter(cal_a.items)))  # a really was emptied
    hubs.confirm_deletions(harness.ctx, a.id)  # a's administrator confirms: the hub deletes the item
    assert harness.sync(a).status == "ok" and harness.ctx.store.count_hub_items(hub.id) == 0
    hubs.cancel_deletions(harness.ctx, c.id)  # c's administrator refuses: c still holds it
    run = harness.sync(c)
    assert run.status == "ok" and run.counts["hub_restored"] == 1
    assert [i.event.title for i in harness.ctx.store.list_hub_items(hub.id)] == ["Board meeting"]  # type: ignore[union-attr]
    harness.queue.drain()
    assert [e.title for e in cal_a.events()] == ["Board meeting"]


def test_a_write_refused_for_good_is_settled_listed_and_tried_again_when_it_changes(harness: Harness) -> None:
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    b, cal_b = harness.spoke(hub, "b")
    item = cal_a.user_create(ev("Cannot hold"))
    cal_a.user_create(ev("Fine", 1))
    harness.sync(a)
    hub_id = next(i.id for i in harness.ctx.store.list_hub_items(hub.id) if i.event and i.event.title == "Cannot hold")
    cal_b.fail_writes.add(hub_id)
    first = harness.sync(b)
    assert first.counts["write_errors"] == 1 and first.counts["spoke_created"] == 1
    spoke = harness.ctx.store.get_spoke(b.id)
    assert spoke is not None and [x["title"] for x in spoke.attention] == ["Cannot hold"]
    calls = cal_b.api_calls
    again = harness.sync(b)  # not retried unchanged, and the hub cursor moved past it
    assert again.idle and cal_b.api_calls == calls + 1  # one read, no write attempt
    cal_b.fail_writes.clear()
    cal_a.user_update(item.id, ev("Cannot hold (edited)"))
    harness.sync(a)
    assert harness.sync(b).counts["spoke_created"] == 1  # the hub item changed: tried again
    spoke = harness.ctx.store.get_spoke(b.id)
    assert spoke is not None and spoke.attention == []


def test_an_administrator_can_retry_refused_writes(harness: Harness) -> None:
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    b, cal_b = harness.spoke(hub, "b")
    cal_a.user_create(ev("Flaky"))
    harness.sync(a)
    [hub_item] = harness.ctx.store.list_hub_items(hub.id)
    cal_b.fail_writes.add(hub_item.id)
    harness.sync(b)
    cal_b.fail_writes.clear()
    hubs.retry_refused_writes(harness.ctx, b.id)
    assert harness.sync(b).counts["spoke_created"] == 1 and len(cal_b.items) == 1
    spoke = harness.ctx.store.get_spoke(b.id)
    assert spoke is not None and spoke.attention == [] and not spoke.retry_attention


def test_repeated_pauses_for_the_same_reason_share_one_record(harness: Harness) -> None:
    hub, a, cal_a, b, cal_b = fill(harness, 10, max_delete_count=2, max_delete_share=0.2)
    for item_id in ordered(cal_a)[:5]:
        cal_a.user_delete(item_id)
    ids = {harness.sync(a).id for _ in range(20)}  # twenty pushes while paused
    paused = [r for r in harness.ctx.store.list_runs(spoke_id=a.id, limit=100) if r.status == "paused"]
    assert len(ids) == 1 and len(paused) == 1 and paused[0].runs == 20
