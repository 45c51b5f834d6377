"""End to end through the engine: a hub with a public-folder spoke and a mailbox spoke,
both two-way, over the local EWS server, the SQLite store and the local queue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spokesync.bootstrap import Context, build_context
from spokesync.connectors import exchange
from spokesync.engine.runner import Runner
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.ews import EwsServer
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore
from tests.exchange.conftest import PASSWORD, local_config

KEY = "a2V5LWZvci10ZXN0cy1vbmx5LTMyLWJ5dGVzLWxvbmc="
WRITES = ("CreateItem", "UpdateItem", "DeleteItem")


@pytest.fixture
def setup(ews: EwsServer, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Context, EwsServer, dict]]:
    ews.clear_faults()
    queue = LocalTaskQueue()
    ctx = build_context(local_config(data_dir=str(tmp_path), secret_key=KEY),
                        clock=FakeClock(datetime(2026, 3, 1, 8, tzinfo=UTC)), store=SqliteHubStore(":memory:"),
                        queue=queue)
    queue.handler = ctx.run_task
    cred = exchange.save_credential(ctx, "Exchange", {"ews_url": ews.url, "username": "EXAMPLE\\sync",
                                                      "version": "2016", "auth_type": "NTLM",
                                                      "mailbox": "shared@example.com"}, PASSWORD)
    pf = ews.public_folder(f"e2e-pf-{request.node.name}")
    mb = ews.mailbox_folder(f"e2e-mb-{request.node.name}")
    hub = hubs.create_hub(ctx, "Company")
    two_way = {"direction": "two_way"}
    public = hubs.add_spoke(ctx, hub.id, "Public", "exchange", {"folder_id": pf.id, "public": True}, cred.id, two_way)
    mailbox = hubs.add_spoke(ctx, hub.id, "Mailbox", "exchange", {"folder_id": mb.id, "public": False}, cred.id, two_way)
    yield ctx, ews, {"pf": pf, "mb": mb, "public": public, "mailbox": mailbox, "queue": queue}


def settle(ctx: Context, queue: LocalTaskQueue) -> None:
    for spoke in ctx.store.list_spokes():
        Runner(ctx).sync(spoke.id)
    queue.drain(max_tasks=50)


def subjects(ews: EwsServer, folder) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(i.text("Subject") or "" for i in ews.items(folder))


def test_public_and_mailbox_spokes_converge_and_stay_quiet(setup) -> None:  # type: ignore[no-untyped-def]
    ctx, ews, s = setup
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    ews.user_create(s["pf"], "From the public folder", start, start + timedelta(hours=1), location="Hall")
    ews.user_create(s["mb"], "From the mailbox", start + timedelta(days=1), start + timedelta(days=1, hours=1))
    settle(ctx, s["queue"])
    assert subjects(ews, s["pf"]) == subjects(ews, s["mb"]) == ["From the mailbox", "From the public folder"]
    ews.reset_counts()
    settle(ctx, s["queue"])
    assert ews.calls(*WRITES) == 0  # echo suppression: a second round writes nothing
    # an edit and a deletion travel too
    mb_item = next(i for i in ews.items(s["mb"]) if i.text("Subject") == "From the public folder")
    ews.user_update(mb_item.id, location="Room 2")
    pf_item = next(i for i in ews.items(s["pf"]) if i.text("Subject") == "From the mailbox")
    ews.user_delete(pf_item.id)
    settle(ctx, s["queue"])
    assert subjects(ews, s["mb"]) == subjects(ews, s["pf"]) == ["From the public folder"]
    assert [i.text("Location") for i in ews.items(s["pf"])] == ["Room 2"]


def test_throttling_in_the_middle_of_a_run_converges_later(setup) -> None:  # type: ignore[no-untyped-def]
    ctx, ews, s = setup
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    for n in range(5):
        ews.user_create(s["pf"], f"Item {n}", start + timedelta(days=n), start + timedelta(days=n, hours=1))
    Runner(ctx).sync(s["public"].id)  # the hub takes the public folder's items
    ews.inject("server_busy", "CreateItem", times=1, back_off_ms=3_600_000)  # past any run budget
    run = Runner(ctx).sync(s["mailbox"].id)
    assert run.status == "continued" and "throttled" in run.reason
    assert ews.items(s["mb"]) == []
    s["queue"].drain(max_tasks=50)  # the continuation runs once the back-off is over
    settle(ctx, s["queue"])
    assert subjects(ews, s["mb"]) == [f"Item {n}" for n in range(5)]
    assert len(ews.items(s["pf"])) == 5  # no duplicates anywhere


@pytest.mark.parametrize("into", ["mb", "pf"], ids=["into a mailbox folder", "into a public folder"])
def test_own_writes_are_recognised_by_changekey_without_fetching_them(setup, into: str) -> None:  # type: ignore[no-untyped-def]
    """After writing into a folder, the run reads its feed as ids and ChangeKeys only (SyncFolderItems
    for a mailbox folder, the FindItem listing for a public folder; `ports.VersionFeed`): no GetItem
    of its own writes, and the next run finds nothing to read (docs/decisions/2026-12-01-own-writes.md)."""
    ctx, ews, s = setup
    source, target = ("pf", "mb") if into == "mb" else ("mb", "pf")
    spoke = {"mb": s["mailbox"], "pf": s["public"]}
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    for n in range(6):
        ews.user_create(s[source], f"Item {n}", start + timedelta(days=n), start + timedelta(days=n, hours=1))
    Runner(ctx).sync(spoke[target].id)  # its first listing (empty), before the hub has anything
    Runner(ctx).sync(spoke[source].id)  # the six items into the hub
    ews.reset_counts()
    assert Runner(ctx).sync(spoke[target].id).status == "ok"  # the six into the target folder
    assert ews.calls("CreateItem") == 1 and ews.calls("GetItem") == 0
    assert subjects(ews, s[target]) == [f"Item {n}" for n in range(6)]
    ews.reset_counts()
    idle = Runner(ctx).sync(spoke[target].id, reason="poll")
    assert idle.reason == "nothing changed" and ews.calls("GetItem") == 0
    # a user's edit of an item the run wrote is the user's: it travels
    written = next(i for i in ews.items(s[target]) if i.text("Subject") == "Item 2")
    ews.user_update(written.id, location="Room 9")
    settle(ctx, s["queue"])
    assert [i.text("Location") for i in ews.items(s[source]) if i.text("Subject") == "Item 2"] == ["Room 9"]
