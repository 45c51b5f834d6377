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
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

from spokesync.connectors import graph as graph_kind
from spokesync.connectors import memory_registry
from spokesync.model.event import Event
from spokesync.service import hubs
from tests.graph.machine import GraphHubMachine

pytestmark = pytest.mark.slow
LOGICAL = re.compile(r"^(item-\d+)")
MAILBOX = "machine@contoso.com"
SECRET = "Machine~Secret.5"


class GraphMachine(GraphHubMachine):
    logical = LOGICAL

    def __init__(self) -> None:
        super().__init__("m", SECRET)
        memory_registry.CALENDARS.clear()
        mailbox = self.mailbox(MAILBOX)
        self.calendar = self.graph.add_calendar(mailbox, f"machine-{len(mailbox.calendars)}")
        cred = graph_kind.save_credential(self.ctx, "M", {"tenant": self.tenant.id, "client_id": self.app.client_id},
                                          SECRET, mailbox=MAILBOX)
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
            self.cleanup()

    def _start(self, n: int) -> datetime:
        return (datetime(2027, 1, 4, 9, 0, tzinfo=UTC) + timedelta(days=n % 20, hours=n % 7))

    def graph_ids(self) -> list[str]:
        return sorted(e.id for e in self.graph.events_in(self.calendar))

    def graph_delete(self, item_id: str) -> None:
        self.graph.user_delete(item_id)

    def graph_names(self) -> list[str]:
        return [e.props.get("subject", "") for e in self.graph.events_in(self.calendar)]

    def name_of(self, item: Any) -> str:
        return str(item.title)

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
            ids = self.graph_ids()
            if ids:
                self.graph.user_edit(ids[index % len(ids)], location={"displayName": location})

    # -------------------------------------------------------------- checks
    def quiet_round_converges(self) -> None:
        self.settle(lambda: (self.graph.event_writes, self.memory.writes, self.hub_versions(self.hub.id)))
        hub, graph, memory = self.names()
        assert hub == graph == memory, (hub, graph, memory)
        assert len(set(hub)) == len(hub), "duplicates"
        assert self.graph.invitations[MAILBOX] == self.invitations
        assert self.graph.response_violations == []


GraphMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=12, deadline=None,
                                          suppress_health_check=list(HealthCheck), derandomize=True)
TestGraphMachine = GraphMachine.TestCase
