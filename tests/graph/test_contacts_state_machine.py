"""A Hypothesis state machine over a contacts hub with a Microsoft 365 contacts spoke (the local Graph
server, through msal and the real connector) and an in-memory contacts spoke, both two-way. Between
syncs people create, edit and delete contacts on either side (some with more e-mail addresses than
Graph holds); Graph throttles and forgets delta tokens. After every quiet round: both spokes hold the
same people as the hub, nothing is duplicated, nothing beyond Graph's slots is lost, another round
writes nothing. Draws are indices into sorted lists (reproducible)."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import UTC, datetime
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
from spokesync.model.contact import Contact, Email
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.graph import GraphServer
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore
from tests.graph.conftest import graph_config

pytestmark = pytest.mark.slow
LOGICAL = re.compile(r"^(person-\d+)")
MAILBOX = "people@contoso.com"
SECRET = "People~Secret.3"

_server: GraphServer | None = None


def server() -> GraphServer:
    global _server
    if _server is None:
        import atexit

        _server = GraphServer().start()
        atexit.register(_server.stop)
    return _server


class GraphContactsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        memory_registry.FOLDERS.clear()
        self.graph = server()
        self.graph.throttles.clear()
        tenant = self.graph.add_tenant(f"p{len(self.graph.issuer.tenants)}.onmicrosoft.com")
        app = self.graph.add_app(tenant, secret=SECRET, roles=("Contacts.ReadWrite",))
        mailbox = next((m for m in self.graph.mailboxes.values() if m.address == MAILBOX), None) or \
            self.graph.add_mailbox(MAILBOX)
        self.folder = self.graph.add_contact_folder(mailbox, f"people-{len(self.graph.contacts.folders)}")
        self._tmp = TemporaryDirectory()
        self.clock = FakeClock(datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
        config = replace(graph_config(self.graph), data_dir=str(Path(self._tmp.name)), run_budget_s=60,
                         lease_ttl_s=120)
        self.queue = LocalTaskQueue()
        self.ctx = build_context(config, clock=self.clock, store=SqliteHubStore(":memory:"), queue=self.queue)
        self.queue.handler = lambda task: self._sync(task.spoke_id)
        cred = graph_kind.save_credential(self.ctx, "M", {"tenant": tenant.id, "client_id": app.client_id}, SECRET,
                                          mailbox=MAILBOX, object_type="contacts")
        self.hub = hubs.create_hub(self.ctx, "People", "contacts")
        guard = {"direction": "two_way", "max_delete_count": 10_000}
        self.spokes = {
            "g": hubs.add_spoke(self.ctx, self.hub.id, "g", "graph_contacts",
                                {"mailbox": MAILBOX, "folder_id": self.folder.id}, credential_id=cred.id,
                                options=guard),
            "m": hubs.add_spoke(self.ctx, self.hub.id, "m", "memory_contacts", {"folder": "m"}, options=guard),
        }
        self.memory = memory_registry.folder("m")
        self.counter = itertools.count(1)
        self.wide: set[str] = set()  # people created with four e-mail addresses

    def teardown(self) -> None:
        try:
            self.quiet_round_converges()
        finally:
            memory_registry.FOLDERS.clear()
            self._tmp.cleanup()

    def _sync(self, spoke_id: str) -> None:
        self.clock.advance(1)
        Runner(self.ctx).sync(spoke_id)

    def _graph_ids(self) -> list[str]:
        return sorted(c.id for c in self.graph.contacts_in(self.folder))

    # -------------------------------------------------------------- people
    @rule(where=st.sampled_from(["g", "m"]), wide=st.booleans())
    def person_creates(self, where: str, wide: bool) -> None:
        n = next(self.counter)
        name = f"person-{n}"
        if where == "m":
            emails = tuple(Email(f"{name}.{i}@example.com") for i in range(4 if wide else 1))
            if wide:
                self.wide.add(name)
            self.memory.user_create(Contact(display_name=name, emails=emails, modified=self.clock.now()))
        else:
            self.graph.user_create_contact(self.folder, {
                "displayName": name, "emailAddresses": [{"address": f"{name}@example.com", "name": name}],
                "mobilePhone": f"+1 555 {n:04d}"})

    @rule(where=st.sampled_from(["g", "m"]), index=st.integers(0, 50), title=st.sampled_from(["T1", "T2", "T3"]))
    def person_edits(self, where: str, index: int, title: str) -> None:
        self.clock.advance(5)
        if where == "m":
            ids = sorted(self.memory.items)
            if ids:
                item_id = ids[index % len(ids)]
                contact = self.memory.items[item_id].event
                assert isinstance(contact, Contact)
                self.memory.user_update(item_id, replace(contact, job_title=title, modified=self.clock.now()))
        else:
            ids = self._graph_ids()
            if ids:
                self.graph.user_edit_contact(ids[index % len(ids)], jobTitle=title)

    @rule(where=st.sampled_from(["g", "m"]), index=st.integers(0, 50))
    def person_deletes(self, where: str, index: int) -> None:
        ids = sorted(self.memory.items) if where == "m" else self._graph_ids()
        if not ids:
            return
        if where == "m":
            self.memory.user_delete(ids[index % len(ids)])
        else:
            self.graph.user_delete_contact(ids[index % len(ids)])

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
    def _names(self) -> tuple[list[str], list[str], list[str]]:
        hub = sorted(LOGICAL.match(i.event.display_name).group(1)  # type: ignore[union-attr]
                     for i in self.ctx.store.list_hub_items(self.hub.id) if i.event is not None)
        graph = sorted(LOGICAL.match(c.props.get("displayName", "")).group(1)  # type: ignore[union-attr]
                       for c in self.graph.contacts_in(self.folder))
        memory = sorted(LOGICAL.match(i.event.display_name).group(1)  # type: ignore[union-attr]
                        for i in self.memory.items.values())
        return hub, graph, memory

    def _writes(self) -> tuple[int, int, dict[str, int]]:
        versions = {i.id: i.version for i in self.ctx.store.list_hub_items(self.hub.id, include_deleted=True)}
        return self.graph.contacts.writes, self.memory.writes, versions

    def quiet_round_converges(self) -> None:
        self.graph.throttles.clear()
        for _ in range(6):
            before = self._writes()
            for spoke in self.spokes.values():
                self._sync(spoke.id)
            self.queue.drain()
            if self._writes() == before:
                break
        else:
            raise AssertionError("no convergence after 6 rounds")
        hub, graph, memory = self._names()
        assert hub == graph == memory, (hub, graph, memory)
        assert len(set(hub)) == len(hub), "duplicates"
        for item in self.ctx.store.list_hub_items(self.hub.id):
            contact = item.event
            assert isinstance(contact, Contact)
            if contact.display_name in self.wide:  # Graph holds three; the hub and the memory spoke keep four
                assert len(contact.emails) == 4, contact
        for stored in self.graph.contacts_in(self.folder):
            assert len(stored.props.get("emailAddresses") or []) <= 3
        assert self.graph.response_violations == []


GraphContactsMachine.TestCase.settings = settings(max_examples=20, stateful_step_count=12, deadline=None,
                                                  suppress_health_check=list(HealthCheck), derandomize=True)
TestGraphContactsMachine = GraphContactsMachine.TestCase


def test_an_edit_in_outlook_keeps_the_fourth_address_it_cannot_hold() -> None:
    """The path the machine relies on, step by step: Graph holds three addresses; an edit made in
    Outlook flows to the hub and the memory spoke without erasing the fourth."""
    machine = GraphContactsMachine()
    try:
        machine.person_creates("m", True)
        for which in ("m", "g", "m"):
            machine.sync(which)
        [stored] = machine.graph.contacts_in(machine.folder)
        assert len(stored.props["emailAddresses"]) == 3
        machine.graph.user_edit_contact(stored.id, jobTitle="Edited in Outlook")
        for which in ("g", "m", "g"):
            machine.sync(which)
        [item] = machine.ctx.store.list_hub_items(machine.hub.id)
        assert isinstance(item.event, Contact)
        assert item.event.job_title == "Edited in Outlook" and len(item.event.emails) == 4
        [mem] = machine.memory.items.values()
        assert isinstance(mem.event, Contact)
        assert mem.event.job_title == "Edited in Outlook" and len(mem.event.emails) == 4
    finally:
        machine.teardown()
