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
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

from spokesync.connectors import graph as graph_kind
from spokesync.connectors import memory_registry
from spokesync.model.contact import Contact, Email
from spokesync.service import hubs
from tests.graph.machine import GraphHubMachine

pytestmark = pytest.mark.slow
LOGICAL = re.compile(r"^(person-\d+)")
MAILBOX = "people@contoso.com"
SECRET = "People~Secret.3"


class GraphContactsMachine(GraphHubMachine):
    logical = LOGICAL

    def __init__(self) -> None:
        super().__init__("p", SECRET, roles=("Contacts.ReadWrite",))
        memory_registry.FOLDERS.clear()
        self.folder = self.graph.add_contact_folder(self.mailbox(MAILBOX), f"people-{len(self.graph.contacts.folders)}")
        cred = graph_kind.save_credential(self.ctx, "M", {"tenant": self.tenant.id, "client_id": self.app.client_id},
                                          SECRET, mailbox=MAILBOX, object_type="contacts")
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
            self.cleanup()

    def graph_ids(self) -> list[str]:
        return sorted(c.id for c in self.graph.contacts_in(self.folder))

    def graph_delete(self, item_id: str) -> None:
        self.graph.user_delete_contact(item_id)

    def graph_names(self) -> list[str]:
        return [c.props.get("displayName", "") for c in self.graph.contacts_in(self.folder)]

    def name_of(self, item: Any) -> str:
        return str(item.display_name)

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
            ids = self.graph_ids()
            if ids:
                self.graph.user_edit_contact(ids[index % len(ids)], jobTitle=title)

    # -------------------------------------------------------------- checks
    def quiet_round_converges(self) -> None:
        self.settle(lambda: (self.graph.contacts.writes, self.memory.writes, self.hub_versions(self.hub.id)))
        hub, graph, memory = self.names()
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
