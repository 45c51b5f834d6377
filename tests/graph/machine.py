"""What the Graph state machines share (calendars: test_state_machine.py, contacts:
test_contacts_state_machine.py): one local Graph server for the session, a tenant and app per
example, a hub context on a fake clock with a local task queue, the rules by which Graph misbehaves
(throttling, forgotten delta tokens), a sync rule, and the quiet round that must converge."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from spokesync.bootstrap import build_context
from spokesync.engine.runner import Runner
from spokesync.model.hub import Spoke
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.graph import GraphServer
from spokesync.sandbox.graph.identity import App, Tenant
from spokesync.stores.sqlite import SqliteHubStore
from tests.graph.conftest import graph_config

_server: GraphServer | None = None


def server() -> GraphServer:
    global _server
    if _server is None:
        import atexit

        _server = GraphServer().start()
        atexit.register(_server.stop)
    return _server


class GraphHubMachine(RuleBasedStateMachine):
    """Subclasses set `spokes` ("g": the Graph spoke, "m": an in-memory one), `memory`, `hub`,
    `logical` (the pattern of the names people give items) and say how Graph's items are listed,
    deleted and named."""

    spokes: dict[str, Spoke]
    memory: Any
    hub: Any
    logical: re.Pattern[str]

    def graph_ids(self) -> list[str]:
        raise NotImplementedError

    def graph_delete(self, item_id: str) -> None:
        raise NotImplementedError

    def graph_names(self) -> list[str]:
        raise NotImplementedError

    def name_of(self, item: Any) -> str:
        raise NotImplementedError

    def __init__(self, tenant_prefix: str, secret: str, roles: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.graph = server()
        self.graph.throttles.clear()
        self.tenant: Tenant = self.graph.add_tenant(f"{tenant_prefix}{len(self.graph.issuer.tenants)}.onmicrosoft.com")
        self.app: App = self.graph.add_app(self.tenant, secret=secret, **({"roles": roles} if roles else {}))
        self._tmp = TemporaryDirectory()
        self.clock = FakeClock(datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
        config = replace(graph_config(self.graph), data_dir=str(Path(self._tmp.name)), run_budget_s=60,
                         lease_ttl_s=120)
        self.queue = LocalTaskQueue()
        self.ctx = build_context(config, clock=self.clock, store=SqliteHubStore(":memory:"), queue=self.queue)
        self.queue.handler = lambda task: self._sync(task.spoke_id)

    def mailbox(self, address: str) -> Any:
        return next((m for m in self.graph.mailboxes.values() if m.address == address), None) or \
            self.graph.add_mailbox(address)

    def cleanup(self) -> None:
        self._tmp.cleanup()

    def _sync(self, spoke_id: str) -> None:
        self.clock.advance(1)
        runner = Runner(self.ctx)
        runner.page_size = 3  # the hub's changes in pages of 3: paging runs against Graph too
        runner.sync(spoke_id)

    # -------------------------------------------------------------- people
    @rule(where=st.sampled_from(["g", "m"]), index=st.integers(0, 50))
    def person_deletes(self, where: str, index: int) -> None:
        ids = sorted(self.memory.items) if where == "m" else self.graph_ids()
        if not ids:
            return
        if where == "m":
            self.memory.user_delete(ids[index % len(ids)])
        else:
            self.graph_delete(ids[index % len(ids)])

    # -------------------------------------------------------------- Graph misbehaves
    @rule(status=st.sampled_from([429, 503]))
    def graph_throttles_once(self, status: int) -> None:
        self.graph.throttle(times=1, status=status, retry_after=0.01)

    @rule()
    def graph_forgets_delta_tokens(self) -> None:
        self.graph.expire_delta_tokens()

    @rule(which=st.sampled_from(["g", "m"]))
    def sync(self, which: str) -> None:
        self._sync(self.spokes[which].id)
        self.queue.drain()

    # -------------------------------------------------------------- checks
    def names(self) -> tuple[list[str], list[str], list[str]]:
        """The logical names in the hub, in Graph and in the memory spoke, sorted."""
        def logical(text: str) -> str:
            match = self.logical.match(text)
            assert match is not None, text
            return match.group(1)

        hub = sorted(logical(self.name_of(i.event)) for i in self.ctx.store.list_hub_items(self.hub.id)
                     if i.event is not None)
        graph = sorted(logical(n) for n in self.graph_names())
        memory = sorted(logical(self.name_of(i.event)) for i in self.memory.items.values())
        return hub, graph, memory

    def hub_versions(self, hub_id: str) -> dict[str, int]:
        return {i.id: i.version for i in self.ctx.store.list_hub_items(hub_id, include_deleted=True)}

    def settle(self, writes: Callable[[], Any], rounds: int = 6) -> None:
        """Sync every spoke until a round changes nothing (`writes()` is the same before and after)."""
        self.graph.throttles.clear()
        for _ in range(rounds):
            before = writes()
            for spoke in self.spokes.values():
                self._sync(spoke.id)
            self.queue.drain()
            if writes() == before:
                return
        raise AssertionError(f"no convergence after {rounds} rounds")
