"""Shared setup of the contacts benchmarks: a contacts hub over in-memory contact folders.

Spoke `a` holds the contacts (open lists, 200 per write call like the People API's batch
methods); spoke `b` joins it two-way with Exchange's fixed slots (three e-mail addresses,
three postal addresses; 100 per call) and already holds a tenth of the same people (matched on
joining, not copied). Every tenth contact has four e-mail addresses (one more than `b` holds).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bench._common  # noqa: F401 - puts shared/ on sys.path
from spokesync.bootstrap import Context, build_context
from spokesync.config import Config
from spokesync.connectors import memory_registry
from spokesync.connectors.memory import MemoryCalendar
from spokesync.engine.runner import Runner
from spokesync.model.contact import SLOT_LIMITS_EXCHANGE, Address, Contact, Email, PartialDate, Phone
from spokesync.model.hub import Spoke
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore

BATCH_A, BATCH_B = 200, 100


def contact(i: int, now: datetime) -> Contact:
    emails = tuple(Email(f"person{i}.{k}@example{k}.com", ("work", "home", "other")[k % 3])
                   for k in range(4 if i % 10 == 0 else 1))
    return Contact(
        display_name=f"Person {i}", given_name="Person", family_name=str(i), emails=emails,
        phones=(Phone(f"+1 555 {i:07d}", "work"), Phone(f"+1 666 {i:07d}", "mobile")),
        addresses=(Address("work", f"{i} Main Street", "Springfield", "", f"{10000 + i % 89999}", "USA"),),
        company=f"Company {i % 50}", job_title="Engineer", birthday=PartialDate(1 + i % 12, 1 + i % 28),
        notes=f"Contact number {i}.", categories=("Customers",), modified=now)


@dataclass
class Setup:
    ctx: Context
    store: SqliteHubStore
    clock: FakeClock
    queue: LocalTaskQueue
    a: Spoke
    b: Spoke
    fa: MemoryCalendar
    fb: MemoryCalendar

    def sync_all(self) -> list[str]:
        statuses = [Runner(self.ctx).sync(s.id, reason="poll").status for s in (self.a, self.b)]
        self.queue.drain()
        return statuses

    def phase(self, fn: Callable[[], Any]) -> dict[str, Any]:
        import time

        self.store.stats.clear()
        folders = (self.fa, self.fb)
        calls, writes = sum(f.api_calls for f in folders), sum(f.writes for f in folders)
        started = time.perf_counter()
        runs = fn()
        return {
            "wall_s": round(time.perf_counter() - started, 3),
            "hub_reads": self.store.stats["reads"],
            "hub_writes": self.store.stats["writes"],
            "round_trips": sum(f.api_calls for f in folders) - calls,
            "spoke_writes": sum(f.writes for f in folders) - writes,
            "runs": runs,
        }


def batching_minimum(n: int) -> dict[str, int]:
    """The fewest spoke round trips `b`'s join can make: one listing, the contacts not yet in `b`
    created in calls of its batch size, the matched ones (which lack fields the hub has) updated."""
    matched = len(range(0, n, 10))
    return {"a": 1, "b": 1 + math.ceil((n - matched) / BATCH_B) + math.ceil(matched / BATCH_B)}


@contextmanager
def contacts_hub(n: int, tmp: str) -> Iterator[Setup]:
    memory_registry.FOLDERS.clear()
    clock = FakeClock(datetime(2026, 3, 1, 8, tzinfo=UTC))
    store = SqliteHubStore(f"{tmp}/hub.sqlite3")
    queue = LocalTaskQueue()
    ctx = build_context(Config(data_dir=tmp, run_budget_s=3600, lease_ttl_s=7200), clock=clock, store=store,
                        queue=queue)
    queue.handler = ctx.run_task
    hub = hubs.create_hub(ctx, "Bench contacts", "contacts")
    a = hubs.add_spoke(ctx, hub.id, "a", "memory_contacts", {"folder": "a"}, options={"direction": "two_way"})
    fa = memory_registry.folder("a")
    for i in range(n):
        fa.user_create(contact(i, clock.now()))
    Runner(ctx).sync(a.id, reason="initial")  # the hub holds a's contacts
    b = hubs.add_spoke(ctx, hub.id, "b", "memory_contacts", {"folder": "b", "limits": SLOT_LIMITS_EXCHANGE},
                       options={"direction": "two_way"})
    fb = memory_registry.folder("b")
    for i in range(0, n, 10):  # a tenth of the people are already in b (Exchange's three slots)
        c = contact(i, clock.now())
        fb.user_create(Contact(display_name=c.display_name, emails=c.emails[:3], phones=c.phones[:1]))
    # the connectors are made per run: give them the benchmark's batch sizes
    original = ctx.connector

    def connector(spoke: Spoke) -> Any:
        made = original(spoke)
        from dataclasses import replace as _replace

        made.capabilities = _replace(made.capabilities, batch_size=BATCH_A if spoke.id == a.id else BATCH_B)
        return made

    ctx.connector = connector  # type: ignore[method-assign]
    try:
        yield Setup(ctx, store, clock, queue, a, b, fa, fb)
    finally:
        memory_registry.FOLDERS.clear()
