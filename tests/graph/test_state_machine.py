"""A Hypothesis state machine over a hub with a Microsoft 365 spoke (the local Graph server, through
msal and the real connector) and an in-memory spoke, both two-way. Between syncs people create,
edit and delete items on either side; Graph throttles and forgets delta tokens. After every quiet
round: both spokes hold the same items as the hub, nothing is duplicated, another round writes
nothing, and nobody was ever invited. Draws are indices into sorted lists (reproducible)."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from spokesync.bootstrap import build_context
from spokesync.connectors import graph as graph_kind
from spokesync.connectors import memory_registry
from spokesync.engine.runner import Runner
from spokesync.model.event import Event
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.graph import GraphServer
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore
from tests.graph.conftest import graph_config

pytestmark = pytest.mark.slow
LOGICAL = re.compile(r"^(item-\d+)")
MAILBOX = "machine@contoso.com"
SECRET = "Machine~Secret.5"

_server: GraphServer | None = None


def server() -> GraphServer:
    global _server
    if _server is None:
        import atexit

        _server = GraphServer().start()
        atexit.register(_server.stop)
    return _server


class GraphMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        memory_registry.CALENDARS.clear()
        self.graph = server()
        self.graph.throttles.clear()
        tenant = self.graph.add_tenant(f"m{len(self.graph.issuer.tenants)}.onmicrosoft.com")
        app = self.graph.add_app(tenant, secret=SECRET)
        mailbox = next((m for m in self.graph.mailboxes.values() if m.address == MAILBOX), None) or \
            self.graph.add_mailbox(MAILBOX)
        self.calendar = self.graph.add_calendar(mailbox, f"machine-{len(mailbox.calendars)}")
        self._tmp = TemporaryDirectory()
        self.clock = FakeClock(datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
        config = replace(graph_config(self.graph), data_dir=str(Path(self._tmp.name)), run_budget_s=60,
                         lease_ttl_s=120)
        self.queue = LocalTaskQueue()
        self.ctx = build_context(config, clock=self.clock, store=SqliteHubStore(":memory:"), queue=self.queue)
        self.queue.handler = lambda task: self._sync(task.spoke_id)
        cred = graph_kind.save_credential(self.ctx, "M", {"tenant": tenant.id, "client_id": app.client_id}, SECRET,
                                          mailbox=MAILBOX)
        self.hub = hubs.create_hub(self.ctx, "Team")
        guard = {"direction": "two_way", "max_delete_count": 10_000}
        self.spokes = {
            "g": hubs.add_spoke(self.ctx, self.hub.id, "g", "graph",
                                {"kind": "user", "mailbox": MAILBOX, "calendar_id": self.calendar.id},
                                credential_id=cred.id, options=guard),
            "m": hubs.add_spoke(self.ctx, self.hub.id, "m", "memory", {"calendar": "m"}, options=guard),
        }
        self.memory = memory_registry.calendar("m")
        self.counter = itertools.count(1)
        self.invitations = self.graph.invitations[MAILBOX]

    def teardown(self) -> None:
        try:
            self.quiet_round_converges()
        finally:
            memory_registry.CALENDARS.clear()
            self._tmp.cleanup()

    def _sync(self, spoke_id: str) -> None:
        self.clock.advance(1)
        Runner(self.ctx).sync(spoke_id)

    def _start(self, n: int) -> datetime:
        return (datetime(2027, 1, 4, 9, 0, tzinfo=UTC) + timedelta(days=n % 20, hours=n % 7))

    def _graph_ids(self) -> list[str]:
        return sorted(e.id for e in self.graph.events_in(self.calendar))

    # -------------------------------------------------------------- people
    @rule(where=st.sampled_from(["g", "m"]))
    def person_creates(self, where: str) -> None:
        n = next(self.counter)
        start = self._start(n)
        if where == "m":
            self.memory.user_create(Event(title=f"item-{n}", start=start, end=start + timedelta(hours=1),
                                          modified=self.clock.now()))
        else:
            self.graph.user_create(self.calendar, {
                "subject": f"item-{n}", "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "end": {"dateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}})

    @rule(where=st.sampled_from(["g", "m"]), index=st.integers(0, 50), location=st.sampled_from(["R1", "R2", "R3"]))
    def person_edits(self, where: str, index: int, location: str) -> None:
        self.clock.advance(5)
        if where == "m":
            ids = sorted(self.memory.items)
            if ids:
                item_id = ids[index % len(ids)]
                event = self.memory.items[item_id].event
                self.memory.user_update(item_id, replace(event, location=location, modified=self.clock.now()))
        else:
            ids = self._graph_ids()
            if ids:
                self.graph.user_edit(ids[index % len(ids)], location={"displayName": location})

    @rule(where=st.sampled_from(["g", "m"]), index=st.integers(0, 50))
    def person_deletes(self, where: str, index: int) -> None:
        ids = sorted(self.memory.items) if where == "m" else self._graph_ids()
        if not ids:
            return
        if where == "m":
            self.memory.user_delete(ids[index % len(ids)])
        else:
            self.graph.user_delete(ids[index % len(ids)])

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
    def _titles(self) -> tuple[list[str], list[str], list[str]]:
        hub = sorted(LOGICAL.match(i.event.title).group(1)  # type: ignore[union-attr]
                     for i in self.ctx.store.list_hub_items(self.hub.id) if i.event is not None)
        graph = sorted(LOGICAL.match(e.props.get("subject", "")).group(1)  # type: ignore[union-attr]
                       for e in self.graph.events_in(self.calendar))
        memory = sorted(LOGICAL.match(i.event.title).group(1) for i in self.memory.items.values())  # type: ignore[union-attr]
        return hub, graph, memory

    def quiet_round_converges(self) -> None:
        self.graph.throttles.clear()
        for _ in range(6):
            before = self.graph.event_writes, self.memory.writes, self._hub_versions()
            for spoke in self.spokes.values():
                self._sync(spoke.id)
            self.queue.drain()
            if (self.graph.event_writes, self.memory.writes, self._hub_versions()) == before:
                break
        else:
            raise AssertionError("no convergence after 6 rounds")
        hub, graph, memory = self._titles()
        assert hub == graph == memory, (hub, graph, memory)
        assert len(set(hub)) == len(hub), "duplicates"
        assert self.graph.invitations[MAILBOX] == self.invitations
        assert self.graph.response_violations == []

    def _hub_versions(self) -> dict[str, int]:
        return {i.id: i.version for i in self.ctx.store.list_hub_items(self.hub.id, include_deleted=True)}


GraphMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=12, deadline=None,
                                          suppress_health_check=list(HealthCheck), derandomize=True)
TestGraphMachine = GraphMachine.TestCase
