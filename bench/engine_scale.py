"""engine_scale: plan and apply N items between in-memory spokes.

For each size in (1k, 10k, 50k) up to N: an initial sync of N items from a
two-way spoke `a` through the hub into a two-way spoke `b`, then 1 % of the
items edited in `a` and synced again, then an idle round. Reports wall time,
hub store records read/written (the SQLite store counts them like Firestore
bills documents), spoke API calls and item writes, and the cost per item, so
that growth with N and with the number of changes shows. Runs are started as
polls (`reason="poll"`), as the scheduler and push notifications start them:
an idle round then takes the idle path (no lease, no record). `content_hashes`
counts `content_hash` calls (the engine's hashing), per phase.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import bench._common  # noqa: F401 - puts the package on sys.path
from bench._common import peak_rss_mb
from spokesync.bootstrap import build_context
from spokesync.config import Config
from spokesync.connectors import memory_registry
from spokesync.engine import rules
from spokesync.engine.runner import Runner
from spokesync.model.event import Event
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore

DEFAULT_N = 10_000
SIZES = (1_000, 10_000, 50_000)


def _event(i: int, now: datetime) -> Event:
    start = now + timedelta(days=i % 365, hours=i % 9)
    return Event(title=f"Event {i}", start=start, end=start + timedelta(hours=1), description=f"Item {i}",
                 location=f"Room {i % 40}", categories=("team",), reminders=(10,), modified=now)


_HASHES = [0]


def _counting_hash(event: Any, names: Any) -> str:
    _HASHES[0] += 1
    return _content_hash(event, names)


_content_hash = rules.content_hash


def _phase(store: SqliteHubStore, cals: list[Any], fn: Any) -> dict[str, Any]:
    store.stats.clear()
    _HASHES[0] = 0
    calls, writes = sum(c.api_calls for c in cals), sum(c.writes for c in cals)
    started = time.perf_counter()
    runs = fn()
    return {
        "wall_s": round(time.perf_counter() - started, 3),
        "hub_reads": store.stats["reads"],
        "hub_writes": store.stats["writes"],
        "api_calls": sum(c.api_calls for c in cals) - calls,
        "spoke_writes": sum(c.writes for c in cals) - writes,
        "content_hashes": _HASHES[0],
        "runs": runs,
    }


def measure(n: int) -> dict[str, Any]:
    rules.content_hash = _counting_hash  # type: ignore[assignment]
    try:
        return _measure(n)
    finally:
        rules.content_hash = _content_hash  # type: ignore[assignment]


def _measure(n: int) -> dict[str, Any]:
    memory_registry.CALENDARS.clear()
    with tempfile.TemporaryDirectory() as tmp:
        clock = FakeClock(datetime(2026, 3, 1, 8, tzinfo=UTC))
        store = SqliteHubStore(f"{tmp}/hub.sqlite3")
        queue = LocalTaskQueue()
        ctx = build_context(Config(data_dir=tmp, run_budget_s=3600, lease_ttl_s=7200), clock=clock, store=store,
                            queue=queue)
        queue.handler = ctx.run_task
        hub = hubs.create_hub(ctx, "Bench")
        a = hubs.add_spoke(ctx, hub.id, "a", "memory", {"calendar": "a"}, options={"direction": "two_way"})
        b = hubs.add_spoke(ctx, hub.id, "b", "memory", {"calendar": "b"}, options={"direction": "two_way"})
        cal_a, cal_b = memory_registry.calendar("a"), memory_registry.calendar("b")
        for i in range(n):
            cal_a.user_create(_event(i, clock.now()))

        def sync_all() -> list[str]:
            statuses = [Runner(ctx).sync(a.id, reason="poll").status, Runner(ctx).sync(b.id, reason="poll").status]
            queue.drain()
            return statuses

        initial = _phase(store, [cal_a, cal_b], sync_all)
        settle = _phase(store, [cal_a, cal_b], sync_all)  # each spoke reads back its own writes once
        changed = max(1, n // 100)
        clock.advance(60)
        for item_id in list(cal_a.items)[:changed]:
            item = cal_a.items[item_id]
            cal_a.user_update(item_id, replace(item.event, title=item.event.title + " (moved)", modified=clock.now()))
        one_pct = _phase(store, [cal_a, cal_b], sync_all)
        _phase(store, [cal_a, cal_b], sync_all)
        idle = _phase(store, [cal_a, cal_b], sync_all)
        assert len(cal_b.items) == n, "the benchmark's spokes did not converge"
    memory_registry.CALENDARS.clear()
    return {
        "n": n,
        "initial": {**initial, "ms_per_item": round(initial["wall_s"] * 1000 / n, 3),
                    "hub_reads_per_item": round(initial["hub_reads"] / n, 3),
                    "hub_writes_per_item": round(initial["hub_writes"] / n, 3),
                    "content_hashes_per_item": round(initial["content_hashes"] / n, 3)},
        "settle": settle,
        "changed_1pct": {**one_pct, "changed": changed, "ms_per_change": round(one_pct["wall_s"] * 1000 / changed, 3)},
        "idle": idle,
    }


def run(n: int) -> dict[str, Any]:
    sizes = [s for s in SIZES if s < n] + [n]
    series = [measure(s) for s in sizes]
    top = series[-1]
    return {
        "name": "engine_scale",
        "n": n,
        "api_calls": top["initial"]["api_calls"],
        "hub_reads": top["initial"]["hub_reads"],
        "hub_writes": top["initial"]["hub_writes"],
        "series": series,
        "peak_rss_mb": peak_rss_mb(),
    }
