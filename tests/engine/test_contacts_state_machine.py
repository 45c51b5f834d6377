"""The engine's state machine (tests/engine/test_state_machine.py) over contacts.

The same hub, four in-memory spokes and the same faults, rules and checks (no echo, no
duplicates, guards and the deletion budget, conflicts, leases, continuations, interrupted and
crashed runs, reads as empty), with contacts as the items: spoke `d` has fixed slots like an
Exchange contacts folder (three e-mail addresses), and some contacts have four or five. The
quiet-round check compares each spoke with the hub's view as that spoke can hold it, and a rule
checks that a fixed-slot spoke's edits never erase the addresses it cannot hold.

Fewer examples than the calendar machine (the engine code is shared; what differs is the kind).
Reproducible like it: derandomized, draws are indices into sorted lists.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from spokesync.connectors import memory_registry
from spokesync.engine.kinds import CONTACTS, ItemKind
from spokesync.model.contact import Contact, Email, Phone, fit
from spokesync.model.item import Item, as_contact
from tests.engine.test_state_machine import PAGE_SIZE, SHARED, SPOKES, SyncMachine, logical_id

LIMITS = {"emails": 3}  # spoke d: like Exchange's EmailAddress1..3


class ContactsSyncMachine(SyncMachine):
    OBJECT_TYPE = "contacts"
    SPOKE_KIND = "memory_contacts"
    KIND: ItemKind = CONTACTS

    def _address(self, name: str) -> dict[str, object]:
        if name == "d":
            return {"folder": name, "full_listing": True, "limits": LIMITS, "page_size": PAGE_SIZE}
        return {"folder": name, **({"page_size": PAGE_SIZE} if name == "a" else {})}

    def _folder(self, name: str):  # type: ignore[no-untyped-def]
        return memory_registry.folder(name)

    def view(self, name: str, item: Item) -> Item:
        return fit(as_contact(item), LIMITS) if name == "d" else item

    def _event(self, name: str, shared: bool) -> Any:  # a contact, as spoke `name` can hold it
        n = next(self.counter)
        emails = tuple(Email(f"item{n}.{k}@example.com", ("work", "home", "other")[k % 3])
                       for k in range(1 + (n % 3) * 2))  # one, three or five addresses
        contact = Contact(display_name=f"item-{n}", given_name="Item", family_name=str(n), emails=emails,
                          phones=(Phone(f"+1 555 {n:04d}", "work"),),
                          categories=(SHARED,) if shared else ("own",), modified=self.clock.now())
        return self.view(name, contact)

    @precondition(lambda self: any(cal.items for cal in self.cals.values()))
    @rule(data=st.data(), field=st.sampled_from(["title", "location", "time"]))
    def user_edits(self, data: st.DataObject, field: str) -> None:
        name = self._pick_spoke(data, tuple(n for n in SPOKES if self.cals[n].items))
        cal = self.cals[name]
        item_id = self._pick(data, name)
        self.clock.advance(5)
        contact = as_contact(cal.items[item_id].event)
        rev = next(self.counter)
        if field == "title":
            contact = replace(contact, display_name=f"{logical_id(contact)} r{rev}")
        elif field == "location":
            contact = replace(contact, job_title=f"title {rev}")
        elif len(contact.emails) >= 2:  # the user removes the second address
            contact = replace(contact, emails=contact.emails[:1] + contact.emails[2:])
        else:  # ... or adds one
            contact = replace(contact, emails=(*contact.emails, Email(f"added{rev}@example.com")))
        cal.user_update(item_id, self.view(name, replace(contact, modified=self.clock.now())))

    @precondition(lambda self: not self._paused())
    @rule()
    def fixed_slots_never_erase_overflow(self) -> None:
        """A contact with five addresses reaches the three-slot spoke; an edit there keeps all five."""
        self.cals["a"].user_create(self._event("a", True))  # may have 1, 3 or 5 addresses
        made = max(self.cals["a"].items.values(), key=lambda i: int(logical_id(i.event).split("-")[1]))
        self.clock.advance(5)
        self._sync(self.spokes["a"].id)
        self._sync(self.spokes["d"].id)
        hub = {logical_id(e): as_contact(e) for e in self._hub_events()}
        key = logical_id(made.event)
        copies = [i for i in self.cals["d"].items.values() if logical_id(i.event) == key]
        if key not in hub or not copies or self._paused():
            return  # a fault left it for a later run (the quiet round checks convergence)
        before = hub[key].emails
        copy = copies[0]
        self.cals["d"].user_update(copy.id, replace(as_contact(copy.event), job_title="edited in d",
                                                    modified=self.clock.now()))
        self._sync(self.spokes["d"].id)
        after = {logical_id(e): as_contact(e) for e in self._hub_events()}.get(key)
        if after is not None and after.job_title == "edited in d":
            assert [e.address for e in after.emails] == [e.address for e in before], \
                "a fixed-slot spoke's edit erased addresses it cannot hold"


ContactsSyncMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("SPOKESYNC_SM_CONTACTS_EXAMPLES", "40")), stateful_step_count=30,
    deadline=None, derandomize=not (os.environ.get("SPOKESYNC_SM_EXPLORE") or os.environ.get("SPOKESYNC_EXPLORE")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestContactsSyncMachine = ContactsSyncMachine.TestCase
TestContactsSyncMachine.pytestmark = [pytest.mark.timeout(1200)]  # type: ignore[attr-defined]
