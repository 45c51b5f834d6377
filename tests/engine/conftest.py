"""Fixtures for engine tests: a local-backend Context over in-memory spokes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from spokesync.bootstrap import Context, build_context
from spokesync.config import Config
from spokesync.connectors import memory_registry
from spokesync.connectors.memory import MemoryCalendar
from spokesync.engine import rules
from spokesync.model.hub import Hub, Spoke
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore
from tests.engine.hash_check import CheckedHashMemo


class Harness:
    def __init__(self, ctx: Context, clock: FakeClock) -> None:
        self.ctx = ctx
        self.clock = clock
        self.queue: LocalTaskQueue = ctx.queue  # type: ignore[assignment]

    def hub(self, name: str = "Team") -> Hub:
        return hubs.create_hub(self.ctx, name)

    def spoke(self, hub: Hub, name: str, two_way: bool = True, **options: Any) -> tuple[Spoke, MemoryCalendar]:
        if two_way:
            options.setdefault("direction", "two_way")
        spoke = hubs.add_spoke(self.ctx, hub.id, name, "memory", {"calendar": name}, options=options)
        return spoke, memory_registry.calendar(name)

    def sync(self, spoke: Spoke, **kw: Any) -> Any:
        from spokesync.engine.runner import Runner

        return Runner(self.ctx).sync(spoke.id, **kw)

    def settle(self, max_rounds: int = 10) -> int:
        """Sync every spoke, then run queued follow-ups until quiet."""
        ran = 0
        for spoke in self.ctx.store.list_spokes():
            self.sync(spoke)
        ran += self.queue.drain()
        return ran


@pytest.fixture(autouse=True)
def checked_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every engine test's runs check each hash they reuse instead of computing it
    (`tests.engine.hash_check`): a wrong one fails the test where it is made."""
    monkeypatch.setattr(rules, "HashMemo", CheckedHashMemo)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 8, 0, tzinfo=UTC))


@pytest.fixture
def harness(tmp_path: Path, clock: FakeClock) -> Iterator[Harness]:
    memory_registry.CALENDARS.clear()
    config = Config(data_dir=str(tmp_path), run_budget_s=60, lease_ttl_s=120)
    queue = LocalTaskQueue()
    ctx = build_context(config, clock=clock, store=SqliteHubStore(":memory:"), queue=queue)
    queue.handler = ctx.run_task
    yield Harness(ctx, clock)
    memory_registry.CALENDARS.clear()
