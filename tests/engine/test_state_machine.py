"""A Hypothesis state machine over one hub and four in-memory spokes.

Spokes: `a` two-way; `b` two-way with a category filter; `c` one-way (read
only for the hub); `d` two-way, listed in full every time (snapshot style).
Between syncs, users create, edit and delete items anywhere; writes fail,
runs crash after the k-th write, run out of time, are delivered twice and
overlap, and a spoke reads as empty. After every quiet round:
each two-way spoke equals the hub's filtered view, another round writes
nothing, nothing is duplicated, the read-only spoke was never written, and
no read-as-empty deleted anything.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from spokesync.bootstrap import build_context
from spokesync.config import Config
from spokesync.connectors import memory_registry
from spokesync.connectors.memory import SimulatedCrash
from spokesync.engine import rules as engine_rules
from spokesync.engine.runner import Runner
from spokesync.model.event import ALL_FIELDS, Event, content_hash
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore

SPOKES = ("a", "b", "c", "d")
TWO_WAY = ("a", "b", "d")
SHARED = "shared"
LOGICAL = re.compile(r"^(item-\d+)")


def logical_id(event: Event) -> str:
    match = LOGICAL.match(event.title)
    assert match, event.title
    return match.group(1)


class SyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        memory_registry.CALENDARS.clear()
        self._tmp = TemporaryDirectory()
        self.clock = FakeClock(datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
        config = Config(data_dir=str(Path(self._tmp.name)), run_budget_s=60, lease_ttl_s=120)
        self.queue = LocalTaskQueue()
        self.ctx = build_context(config, clock=self.clock, store=SqliteHubStore(":memory:"), queue=self.queue)
        self.queue.handler = self._task
        self.hub = hubs.create_hub(self.ctx, "Team")
        # A generous mass-deletion guard: random edits may delete much; the empty-read guard stays on.
        guard = {"max_delete_count": 10_000}
        self.spokes = {
            "a": hubs.add_spoke(self.ctx, self.hub.id, "a", "memory", {"calendar": "a"},
                                options={"direction": "two_way", **guard}),
            "b": hubs.add_spoke(self.ctx, self.hub.id, "b", "memory", {"calendar": "b"},
                                options={"direction": "two_way", "filters": {"categories": [SHARED]}, **guard}),
            "c": hubs.add_spoke(self.ctx, self.hub.id, "c", "memory", {"calendar": "c"}, options=guard),
            "d": hubs.add_spoke(self.ctx, self.hub.id, "d", "memory", {"calendar": "d", "full_listing": True},
                                options={"direction": "two_way", **guard}),
        }
        self.cals = {name: memory_registry.calendar(name) for name in SPOKES}
        self.counter = itertools.count(1)
        self.read_only_items_before_hub: dict[str, Event] = {}

    def teardown(self) -> None:
        try:
            self.quiet_round_converges()  # every example ends with a quiet round and its checks
        finally:
            memory_registry.CALENDARS.clear()
            self._tmp.cleanup()

    # ------------------------------------------------------------ helpers
    def _task(self, task) -> None:  # type: ignore[no-untyped-def]
        self._sync(task.spoke_id)

    def _sync(self, spoke_id: str, budget: float | None = None):  # type: ignore[no-untyped-def]
        self.clock.advance(1)
        try:
            return Runner(self.ctx, budget_s=budget).sync(spoke_id)
        except SimulatedCrash:
            # the process died holding the lease: the next run takes over once it expires
            self.clock.advance(self.ctx.config.lease_ttl_s + 1)
            return None

    def _event(self, name: str, shared: bool) -> Event:
        n = next(self.counter)
        start = self.clock.now() + timedelta(days=n % 20, hours=n % 7)
        return Event(title=f"item-{n}", start=start, end=start + timedelta(hours=1),
                     categories=(SHARED,) if shared else ("own",), modified=self.clock.now())

    def _hub_events(self) -> list[Event]:
        return [i.event for i in self.ctx.store.list_hub_items(self.hub.id) if i.event is not None]

    def _quiet_round(self) -> None:
        for cal in self.cals.values():
            cal.fail_writes.clear()
            cal.crash_after_writes = None
            cal.read_empty = False
        for _ in range(8):
            before = sum(cal.writes for cal in self.cals.values()), self._hub_versions()
            confirmed = False
            for name in SPOKES:
                spoke = self.ctx.store.get_spoke(self.spokes[name].id)
                assert spoke is not None
                if spoke.state == "needs_confirmation" and not self.cals[name].items:
                    hubs.confirm_deletions(self.ctx, spoke.id)  # the admin confirms a real emptying
                    confirmed = True
                self._sync(spoke.id)
            self.queue.drain()
            after = sum(cal.writes for cal in self.cals.values()), self._hub_versions()
            waiting = any(
                (sp := self.ctx.store.get_spoke(self.spokes[n].id)) is not None
                and sp.state == "needs_confirmation" and not self.cals[n].items
                for n in SPOKES
            )
            if before == after and not confirmed and not waiting:
                return
        raise AssertionError("no convergence after 8 rounds")

    def _hub_versions(self) -> dict[str, int]:
        return {i.id: i.version for i in self.ctx.store.list_hub_items(self.hub.id, include_deleted=True)}

    # -------------------------------------------------------------- user edits
    @rule(name=st.sampled_from(SPOKES), shared=st.booleans())
    def user_creates(self, name: str, shared: bool) -> None:
        self.clock.advance(5)
        self.cals[name].user_create(self._event(name, shared or name != "b"))

    @precondition(lambda self: any(cal.items for cal in self.cals.values()))
    @rule(data=st.data(), field=st.sampled_from(["title", "location", "time"]))
    def user_edits(self, data: st.DataObject, field: str) -> None:
        name = data.draw(st.sampled_from([n for n in SPOKES if self.cals[n].items]))
        cal = self.cals[name]
        item_id = data.draw(st.sampled_from(list(cal.items)))
        self.clock.advance(5)
        event = cal.items[item_id].event
        rev = next(self.counter)
        if field == "title":
            event = replace(event, title=f"{logical_id(event)} r{rev}")
        elif field == "location":
            event = replace(event, location=f"room {rev}")
        else:
            assert isinstance(event.start, datetime) and isinstance(event.end, datetime)
            event = replace(event, start=event.start + timedelta(hours=1), end=event.end + timedelta(hours=1))
        cal.user_update(item_id, replace(event, modified=self.clock.now()))

    @precondition(lambda self: any(cal.items for cal in self.cals.values()))
    @rule(data=st.data())
    def user_deletes(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from([n for n in SPOKES if self.cals[n].items]))
        item_id = data.draw(st.sampled_from(list(self.cals[name].items)))
        self.clock.advance(5)
        self.cals[name].user_delete(item_id)

    # ---------------------------------------------------------------- syncs
    @rule(name=st.sampled_from(SPOKES))
    def sync(self, name: str) -> None:
        self._sync(self.spokes[name].id)

    @rule()
    def drain_queue(self) -> None:
        self.queue.drain()

    @rule(name=st.sampled_from(SPOKES))
    def sync_delivered_twice(self, name: str) -> None:
        self._sync(self.spokes[name].id)
        self._sync(self.spokes[name].id)

    @rule(name=st.sampled_from(SPOKES))
    def overlapping_runs(self, name: str) -> None:
        inner: list[object] = []
        spoke_id = self.spokes[name].id
        self.cals[name].on_read = lambda: inner.append(Runner(self.ctx).sync(spoke_id))
        self._sync(spoke_id)
        self.cals[name].on_read = None
        assert inner and inner[0].status == "skipped"  # type: ignore[attr-defined]
        assert any(t.spoke_id == spoke_id for t in self.queue.pending())  # the holder re-runs it

    @rule(name=st.sampled_from(SPOKES))
    def run_out_of_time(self, name: str) -> None:
        run = self._sync(self.spokes[name].id, budget=-1.0)
        assert run is not None and run.status in ("continued", "ok", "paused")

    # --------------------------------------------------------------- faults
    @precondition(lambda self: any(self.cals[n].items for n in TWO_WAY))
    @rule(data=st.data())
    def write_fails(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from([n for n in TWO_WAY if self.cals[n].items]))
        self.cals[name].fail_writes.add(data.draw(st.sampled_from(list(self.cals[name].items))))
        self._sync(self.spokes[name].id)

    @rule(name=st.sampled_from(TWO_WAY), k=st.integers(0, 3))
    def crash_after_kth_write(self, name: str, k: int) -> None:
        self.cals[name].crash_after_writes = k
        self._sync(self.spokes[name].id)
        self.cals[name].crash_after_writes = None

    @rule(name=st.sampled_from(SPOKES))
    def spoke_reads_empty(self, name: str) -> None:
        cal = self.cals[name]
        if cal.items and name != "d":
            # make the next read a full listing, as after a lost sync token
            cal.forget_cursor = True
        live_before = len(self.ctx.store.list_hub_items(self.hub.id))
        cal.read_empty = True
        self.ctx.store.update_spoke(self.spokes[name].id, confirm_deletions=False)
        self._sync(self.spokes[name].id)
        cal.read_empty = False
        cal.forget_cursor = False
        assert len(self.ctx.store.list_hub_items(self.hub.id)) >= live_before, "an empty read deleted hub items"

    # ----------------------------------------------------------- invariants
    @invariant()
    def read_only_spoke_is_never_written(self) -> None:
        assert self.cals["c"].writes == 0

    @rule()
    def quiet_round_converges(self) -> None:
        self._quiet_round()
        hub_events = self._hub_events()
        hub_ids = Counter(logical_id(e) for e in hub_events)
        assert all(n == 1 for n in hub_ids.values()), f"duplicates in the hub: {hub_ids}"
        for name in TWO_WAY:
            spoke = self.ctx.store.get_spoke(self.spokes[name].id)
            assert spoke is not None
            options = spoke.options
            items = list(self.cals[name].items.values())
            ids = Counter(logical_id(i.event) for i in items)
            assert all(n == 1 for n in ids.values()), f"duplicates in spoke {name}: {ids}"
            names = engine_rules.compared_fields(options, ALL_FIELDS, True)
            want = sorted(content_hash(e, names) for e in hub_events if engine_rules.passes_filters(e, options))
            have = sorted(content_hash(i.event, names) for i in items
                          if engine_rules.passes_filters(i.event, options))
            assert have == want, f"spoke {name} differs from the hub's view"
            # what the filter keeps out of b are b's own items only
            assert all(i.hub_id is None for i in items if not engine_rules.passes_filters(i.event, options))
        # a further round writes nothing anywhere
        writes = {n: c.writes for n, c in self.cals.items()}
        versions = self._hub_versions()
        for name in SPOKES:
            self._sync(self.spokes[name].id)
        self.queue.drain()
        assert {n: c.writes for n, c in self.cals.items()} == writes
        assert self._hub_versions() == versions


SyncMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestSyncMachine = SyncMachine.TestCase
