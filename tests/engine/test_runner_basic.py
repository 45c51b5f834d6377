"""The runner end to end over in-memory spokes and the SQLite store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from spokesync.model.event import Event, content_hash
from tests.engine.conftest import Harness


def ev(title: str, day: int = 2, **kw: object) -> Event:
    start = datetime(2026, 3, day, 9, tzinfo=UTC)
    return Event(title=title, start=start, end=start + timedelta(hours=1), **kw)  # type: ignore[arg-type]


def titles(cal) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(e.title for e in cal.events())


def test_two_way_spokes_converge_and_then_stay_quiet(harness: Harness) -> None:
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    b, cal_b = harness.spoke(hub, "b")
    cal_a.user_create(ev("from a"))
    cal_b.user_create(ev("from b"))
    harness.settle()
    assert titles(cal_a) == titles(cal_b) == ["from a", "from b"]
    writes = cal_a.writes + cal_b.writes
    harness.settle()
    assert cal_a.writes + cal_b.writes == writes
    run = harness.sync(a)
    assert run.status == "ok" and sum(run.counts.values()) == 0


def test_update_and_delete_propagate(harness: Harness) -> None:
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    b, cal_b = harness.spoke(hub, "b")
    item = cal_a.user_create(ev("meeting"))
    harness.settle()
    cal_a.user_update(item.id, replace(item.event, title="moved meeting", location="Room 9"))
    harness.settle()
    assert [e.location for e in cal_b.events()] == ["Room 9"]
    cal_b.user_delete(next(iter(cal_b.items)))
    harness.settle()
    assert cal_a.items == {} and cal_b.items == {}
    assert harness.ctx.store.list_hub_items(hub.id) == []


def test_one_way_spoke_feeds_the_hub_but_is_never_written(harness: Harness) -> None:
    hub = harness.hub()
    src, cal_src = harness.spoke(hub, "src", two_way=False)
    dst, cal_dst = harness.spoke(hub, "dst")
    cal_src.user_create(ev("source"))
    cal_dst.user_create(ev("dest only"))
    harness.settle()
    assert titles(cal_dst) == ["dest only", "source"]
    assert titles(cal_src) == ["source"] and cal_src.writes == 0


def test_empty_read_deletes_nothing_and_asks_for_confirmation(harness: Harness) -> None:
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    b, cal_b = harness.spoke(hub, "b")
    for n in range(3):
        cal_a.user_create(ev(f"e{n}"))
    harness.settle()
    cal_a.read_empty = True  # the server answers with an empty listing
    run = harness.sync(a)
    assert run.status == "paused" and "read as empty" in run.reason
    assert len(harness.ctx.store.list_hub_items(hub.id)) == 3
    assert len(cal_b.items) == 3
    state = harness.ctx.store.get_spoke(a.id)
    assert state is not None and state.state == "needs_confirmation"


def test_dry_run_plans_without_writing(harness: Harness) -> None:
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    cal_a.user_create(ev("x"))
    run = harness.sync(a, dry_run=True)
    assert run.status == "dry_run" and run.counts["hub_created"] == 1
    assert run.plan and run.plan[0]["action"] == "hub_create"
    assert harness.ctx.store.list_hub_items(hub.id) == []
    assert harness.ctx.store.list_runs(spoke_id=a.id) == []


def test_round_trip_hash_is_stable(harness: Harness) -> None:
    e = ev("x", description="<p>Hi</p>")
    assert content_hash(e) == content_hash(replace(e, modified=datetime.now(UTC)))


def test_a_hub_change_enqueues_the_other_two_way_spokes_only(harness: Harness) -> None:
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    b, _ = harness.spoke(hub, "b")
    c, _ = harness.spoke(hub, "c", two_way=False)
    cal_a.user_create(ev("new"))
    harness.sync(a)
    assert [(t.spoke_id, t.reason) for t in harness.queue.pending()] == [(b.id, "hub_changed")]
    harness.queue.drain()
    harness.sync(a)
    assert harness.queue.pending() == []  # nothing changed: nothing enqueued


def test_a_run_past_its_budget_continues_and_finishes_later(harness: Harness) -> None:
    from spokesync.engine.runner import Runner

    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    for n in range(5):
        cal_a.user_create(ev(f"e{n}"))
    run = Runner(harness.ctx, budget_s=-1).sync(a.id)
    assert run.status == "continued" and "time budget" in run.reason
    assert harness.ctx.store.list_hub_items(hub.id) == []
    assert [t.reason for t in harness.queue.pending()] == ["continuation"]
    harness.queue.drain()
    assert len(harness.ctx.store.list_hub_items(hub.id)) == 5


def test_a_conflict_is_recorded_with_both_versions_in_the_run_history(harness: Harness) -> None:
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a", conflict_policy="hub")
    b, cal_b = harness.spoke(hub, "b")
    item = cal_a.user_create(ev("plan", modified=harness.clock.now()))
    harness.settle()
    harness.clock.advance(60)
    cal_b.user_update(next(iter(cal_b.items)), replace(item.event, title="plan (b)", modified=harness.clock.now()))
    harness.sync(b)
    harness.clock.advance(60)
    cal_a.user_update(item.id, replace(item.event, title="plan (a)", modified=harness.clock.now()))
    run = harness.sync(a)
    [conflict] = run.conflicts
    assert conflict["winner"] == "hub" and conflict["kind"] == "edit_edit"
    assert conflict["hub_version"]["title"] == "plan (b)" and conflict["spoke_version"]["title"] == "plan (a)"
    stored = harness.ctx.store.list_runs(spoke_id=a.id, limit=1)[0]
    assert stored.conflicts == run.conflicts and stored.counts["conflicts"] == 1
    assert [e.title for e in cal_a.events()] == ["plan (b)"]


def test_a_broken_credential_is_shown_in_the_spoke_state(harness: Harness, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from spokesync.connectors.memory import MemoryConnector
    from spokesync.ports import CredentialBroken

    hub = harness.hub()
    a, _ = harness.spoke(hub, "a")

    def refuse(self, cursor):  # type: ignore[no-untyped-def]
        raise CredentialBroken("Google refused the saved sign-in (invalid_grant): sign in again")

    monkeypatch.setattr(MemoryConnector, "changes", refuse)
    run = harness.sync(a)
    spoke = harness.ctx.store.get_spoke(a.id)
    assert run.status == "failed" and spoke is not None and spoke.state == "credential_broken"
    assert "sign in again" in spoke.state_reason and spoke.lease_owner is None


def test_a_quota_pause_is_shown_and_polled_again_hours_later(harness: Harness, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from spokesync.connectors.memory import MemoryConnector
    from spokesync.ports import QuotaExceeded
    from spokesync.service import scheduler

    hub = harness.hub()
    a, _ = harness.spoke(hub, "a")
    monkeypatch.setattr(MemoryConnector, "changes",
                        lambda self, cursor: (_ for _ in ()).throw(QuotaExceeded("Calendar usage limits exceeded.")))
    run = harness.sync(a)
    spoke = harness.ctx.store.get_spoke(a.id)
    assert run.status == "paused" and spoke is not None and spoke.state == "paused"
    assert "usage limits exceeded" in spoke.state_reason and "retrying after" in spoke.state_reason
    assert spoke.next_run_at == harness.clock.now() + timedelta(seconds=harness.ctx.config.quota_retry_s)
    assert scheduler.due_spokes(harness.ctx, harness.clock.now() + timedelta(minutes=10)) == []
    later = harness.clock.now() + timedelta(seconds=harness.ctx.config.quota_retry_s + 1)
    assert [s.id for s in scheduler.due_spokes(harness.ctx, later)] == [a.id]


def test_runs_that_change_nothing_share_one_record_and_the_history_keeps_the_rest(harness: Harness) -> None:
    store = harness.ctx.store
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    cal_a.user_create(ev("first"))
    moved = harness.sync(a)
    assert moved.counts["hub_created"] == 1 and moved.runs == 1
    idle = []
    for _ in range(3):
        harness.clock.advance(300)
        idle.append(harness.sync(a))
    assert all(r.idle for r in idle) and len({r.id for r in idle}) == 1
    assert [r.runs for r in idle] == [1, 2, 3]
    [folded, first] = store.list_runs(spoke_id=a.id)
    assert first.id == moved.id and folded.id == idle[0].id
    assert folded.runs == 3 and folded.started_at == idle[0].started_at and folded.finished_at == idle[-1].finished_at
    spoke = store.get_spoke(a.id)
    assert spoke is not None and spoke.last_run_id == folded.id and spoke.idle_runs == 3
    assert spoke.lease_owner is None  # the lease is the run's own, whatever record it wrote

    # a run that changes something ends the streak; the next idle run starts a new record
    harness.clock.advance(300)
    cal_a.user_create(ev("second", day=3))
    second = harness.sync(a)
    assert second.counts["hub_created"] == 1 and second.id != folded.id
    harness.clock.advance(300)
    again = harness.sync(a)
    assert again.idle and again.runs == 1 and again.id not in (folded.id, second.id)
    assert [r.id for r in store.list_runs(spoke_id=a.id)] == [again.id, second.id, folded.id, moved.id]
    spoke = store.get_spoke(a.id)
    assert spoke is not None and spoke.idle_runs == 1 and spoke.idle_since == again.started_at

    # a failed run is never folded, nor folded into
    from spokesync.ports import ConnectorError

    def down() -> None:
        raise ConnectorError("the server is down")

    cal_a.on_read = down
    failed = harness.sync(a)
    assert failed.status == "failed" and not failed.idle and failed.id != again.id
    cal_a.on_read = None
    after = harness.sync(a)
    assert after.idle and after.runs == 1 and after.id not in (again.id, failed.id)


def test_an_idle_poll_takes_no_lease_and_writes_nothing(harness: Harness) -> None:
    store = harness.ctx.store
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    b, cal_b = harness.spoke(hub, "b")
    cal_a.user_create(ev("first"))
    harness.settle()
    harness.settle()  # each spoke has read back its own writes
    records = len(store.list_runs(spoke_id=a.id, limit=100))
    before = store.get_spoke(a.id)
    writes = store.stats["writes"]
    for reason in ("poll", "push", "hub_changed"):
        run = harness.sync(a, reason=reason)
        assert run.idle and run.reason == "nothing changed"
    assert store.stats["writes"] == writes, "an idle poll wrote to the hub store"
    assert store.get_spoke(a.id) == before and len(store.list_runs(spoke_id=a.id, limit=100)) == records
    # a person's "sync now" still leaves a record (folded with the idle runs before it)
    manual = harness.sync(a)
    assert manual.idle and store.get_run(manual.id) is not None

    # a change on either side is not idle: the poll takes the lease and does the work
    cal_b.user_create(ev("second", day=3))
    moved = harness.sync(b, reason="poll")
    assert moved.counts["hub_created"] == 1 and store.get_run(moved.id) is not None
    pulled = harness.sync(a, reason="poll")
    assert pulled.counts["spoke_created"] == 1 and titles(cal_a) == ["first", "second"]
    assert store.get_spoke(a.id).lease_owner is None  # type: ignore[union-attr]


def test_a_poll_that_finds_a_change_uses_the_plan_it_made_and_reads_the_spoke_once(harness: Harness) -> None:
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    cal_a.user_create(ev("first"))
    calls = cal_a.api_calls
    run = harness.sync(a, reason="poll")
    assert run.counts["hub_created"] == 1
    assert cal_a.api_calls - calls == 1  # one read: the plan made before the lease was still valid


def test_idle_polls_come_once_per_interval_from_the_last_run_that_wrote(harness: Harness) -> None:
    from spokesync.service import scheduler

    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a", poll_interval_s=300)
    cal_a.user_create(ev("first"))
    harness.sync(a)
    spoke = harness.ctx.store.get_spoke(a.id)
    assert spoke is not None and spoke.next_run_at is not None
    due_at = spoke.next_run_at

    def due(seconds: float) -> bool:
        return [s.id for s in scheduler.due_spokes(harness.ctx, due_at + timedelta(seconds=seconds), tick_s=30)] == [a.id]

    # ticks every 30 s; idle polls write no next_run_at, yet the spoke is due once per 300 s
    assert not due(-10) and due(0) and due(29)
    assert not any(due(t) for t in range(30, 300, 30))
    assert due(300) and not due(330) and due(610)
    # without a known tick period (the Cloud Scheduler job comes once per interval): every tick
    assert [s.id for s in scheduler.due_spokes(harness.ctx, due_at + timedelta(seconds=60))] == [a.id]


def test_an_edit_written_back_to_the_origin_spoke_updates_its_link_in_place(harness: Harness) -> None:
    """The origin link lives in the hub item: when the hub writes another spoke's edit into the
    item's origin spoke, that link changes in place - without a hub change for anyone - and
    the origin spoke's next runs read nothing back."""
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    b, cal_b = harness.spoke(hub, "b")
    cal_a.user_create(ev("meeting"))
    harness.settle()
    store = harness.ctx.store
    [link_a] = store.list_links(a.id)
    [in_b] = list(cal_b.items)
    cal_b.user_update(in_b, replace(cal_b.items[in_b].event, title="moved by b"))
    harness.sync(b)
    seq = store.get_hub(hub.id).seq  # type: ignore[union-attr]
    version = store.get_hub_items(hub.id, [link_a.hub_item_id])[link_a.hub_item_id].version
    run = harness.sync(a)
    assert run.counts["spoke_updated"] == 1 and titles(cal_a) == ["moved by b"]
    [moved] = store.list_links(a.id)
    assert moved.hub_version == version and moved.spoke_version != link_a.spoke_version
    assert store.links_by_spoke_items(a.id, [moved.spoke_item_id]) == {moved.spoke_item_id: moved}
    # (it is the item's row that holds it: a's link is in no separate record)
    assert store._conn().execute("SELECT COUNT(*) FROM links WHERE spoke_id = ?", (a.id,)).fetchone() == (0,)
    assert store.get_hub(hub.id).seq == seq  # type: ignore[union-attr]  # a link-only change
    assert store.hub_items_since(hub.id, seq) == []
    # the write's echo, and a poll of b, find nothing to do
    writes = cal_a.writes + cal_b.writes
    harness.settle()
    assert cal_a.writes + cal_b.writes == writes
    assert harness.sync(a).counts.get("spoke_updated", 0) == 0 and titles(cal_b) == ["moved by b"]
