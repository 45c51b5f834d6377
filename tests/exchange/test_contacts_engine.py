"""Contacts end to end through the engine: a contacts hub with an Exchange public contacts folder, a
mailbox contacts folder and an in-memory contacts folder, over the strict local EWS server, the SQLite
store and the local queue. Fixed slots never lose what does not fit; distribution lists stay alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from spokesync.bootstrap import Context, build_context
from spokesync.connectors import exchange, memory_registry
from spokesync.engine.runner import Runner
from spokesync.model.contact import Address, Contact, Email, PartialDate, Phone, Photo
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.ews import EwsServer
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore
from tests.exchange.conftest import PASSWORD, local_config

KEY = "a2V5LWZvci10ZXN0cy1vbmx5LTMyLWJ5dGVzLWxvbmc="
WRITES = ("CreateItem", "UpdateItem", "DeleteItem", "CreateAttachment", "DeleteAttachment")
MANY = Contact(
    display_name="Ada Lovelace", given_name="Ada", family_name="Lovelace", prefix="Countess",
    emails=tuple(Email(f"ada{i}@example.com", "work") for i in range(4)),
    phones=(Phone("+44 7700 900001", "mobile"), Phone("+44 7700 900002", "mobile"), Phone("+44 20 1", "work")),
    addresses=tuple(Address("home", f"{i} Lane", "London") for i in range(4)),
    birthday=PartialDate(12, 10), photo=Photo.of(b"portrait"), categories=("Research",),
    modified=datetime(2026, 2, 1, tzinfo=UTC))


@pytest.fixture
def setup(ews: EwsServer, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    ews.clear_faults()
    memory_registry.FOLDERS.clear()
    queue = LocalTaskQueue()
    ctx = build_context(local_config(data_dir=str(tmp_path), secret_key=KEY),
                        clock=FakeClock(datetime(2026, 3, 1, 8, tzinfo=UTC)), store=SqliteHubStore(":memory:"),
                        queue=queue)
    queue.handler = ctx.run_task
    cred = exchange.save_credential(ctx, "Exchange", {"ews_url": ews.url, "username": "EXAMPLE\\sync",
                                                      "version": "2016", "auth_type": "NTLM",
                                                      "mailbox": "shared@example.com"}, PASSWORD)
    pf = ews.public_folder(f"c-pf-{request.node.name}", folder_class="IPF.Contact")
    mb = ews.mailbox_folder(f"c-mb-{request.node.name}", folder_class="IPF.Contact")
    hub = hubs.create_hub(ctx, "People", "contacts")
    two_way = {"direction": "two_way"}
    hubs.add_spoke(ctx, hub.id, "Public", "exchange_contacts", {"folder_id": pf.id, "public": True}, cred.id, two_way)
    hubs.add_spoke(ctx, hub.id, "Mailbox", "exchange_contacts", {"folder_id": mb.id, "public": False}, cred.id,
                   two_way)
    hubs.add_spoke(ctx, hub.id, "CRM", "memory_contacts", {"folder": "crm"}, options=two_way)
    yield {"ctx": ctx, "ews": ews, "pf": pf, "mb": mb, "queue": queue, "hub": hub, "crm": memory_registry.folder("crm")}


def settle(ctx: Context, queue: LocalTaskQueue) -> None:
    for _ in range(2):
        for spoke in ctx.store.list_spokes():
            Runner(ctx).sync(spoke.id)
        queue.drain(max_tasks=50)


def test_contacts_converge_without_loss_and_stay_quiet(setup: dict[str, Any]) -> None:
    ctx, ews, queue, crm = setup["ctx"], setup["ews"], setup["queue"], setup["crm"]
    group = ews.user_item(setup["pf"], "<t:DistributionList><t:DisplayName>Team</t:DisplayName></t:DistributionList>")
    ews.user_item(setup["mb"], "<t:Contact><t:DisplayName>Grace Hopper</t:DisplayName><t:EmailAddresses>"
                               '<t:Entry Key="EmailAddress1">grace@example.com</t:Entry></t:EmailAddresses>'
                               "</t:Contact>")
    crm.user_create(MANY)
    settle(ctx, queue)
    for folder in (setup["pf"], setup["mb"]):
        names = sorted(i.text("DisplayName") or "" for i in ews.items(folder) if i.tag == "Contact")
        assert names == ["Ada Lovelace", "Grace Hopper"]
    ada = next(i for i in ews.items(setup["pf"]) if i.text("DisplayName") == "Ada Lovelace")
    assert len(ada.fields["EmailAddresses"]) == 3 and len(ada.fields["PhysicalAddresses"]) == 3
    assert [a.content for a in ada.attachments] == [b"portrait"]
    hub_ada = next(i.event for i in ctx.store.list_hub_items(setup["hub"].id) if i.event.name == "Ada Lovelace")
    assert len(hub_ada.emails) == 4 and len(hub_ada.addresses) == 4  # the hub keeps what Exchange cannot hold
    assert {e.name for e in crm.events()} == {"Ada Lovelace", "Grace Hopper"}
    assert len(ctx.store.list_hub_items(setup["hub"].id)) == 2  # the distribution list is no hub item
    ews.reset_counts()
    settle(ctx, queue)
    assert ews.calls(*WRITES) == 0  # nothing echoes
    # an edit in Outlook travels, and erases nothing that did not fit
    ews.user_edit(ada.id, "<t:JobTitle>Analyst</t:JobTitle>")
    settle(ctx, queue)
    crm_ada = next(e for e in crm.events() if e.name == "Ada Lovelace")
    assert crm_ada.job_title == "Analyst"
    assert [e.address for e in crm_ada.emails] == [e.address for e in MANY.emails]
    assert [a.street for a in crm_ada.addresses] == [a.street for a in MANY.addresses]
    assert [(p.number, p.type) for p in crm_ada.phones] == [(p.number, p.type) for p in MANY.phones]
    assert crm_ada.birthday == PartialDate(12, 10) and crm_ada.prefix == "Countess"
    assert crm_ada.photo is not None and crm_ada.photo.hash == MANY.photo.hash  # type: ignore[union-attr]
    mb_ada = next(i for i in ews.items(setup["mb"]) if i.text("DisplayName") == "Ada Lovelace")
    assert mb_ada.text("JobTitle") == "Analyst"
    assert ews.item(group.id).text("DisplayName") == "Team"  # left alone
