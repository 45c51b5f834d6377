"""Shared setup for the Exchange benchmarks: a local EWS server, a local-backend context,
a hub with an Exchange public-folder spoke and (optionally) a mailbox spoke."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bench._common  # noqa: F401 - puts shared/ on sys.path
from spokesync.bootstrap import Context, build_context
from spokesync.config import Config
from spokesync.connectors import exchange
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.ews import EwsServer
from spokesync.sandbox.ews.store import Folder
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore

PASSWORD = "Bench-1"
KEY = "a2V5LWZvci10ZXN0cy1vbmx5LTMyLWJ5dGVzLWxvbmc="


@dataclass
class Setup:
    ews: EwsServer
    ctx: Context
    store: SqliteHubStore
    public_folder: Folder
    mailbox_folder: Folder
    public_spoke: Any
    mailbox_spoke: Any | None
    credential: Any


def fill(ews: EwsServer, folder: Folder, n: int) -> None:
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)
    for i in range(n):
        begin = start + timedelta(hours=i)
        ews.user_create(folder, f"Event {i}", begin, begin + timedelta(minutes=30), location=f"Room {i % 20}",
                        body=f"Agenda for event {i}", tz="W. Europe Standard Time")


def build(n: int, with_mailbox: bool = True) -> Setup:
    ews = EwsServer(users={"sync": PASSWORD}).start()
    data_dir = tempfile.mkdtemp(prefix="bench-exchange-")
    store = SqliteHubStore(":memory:")
    queue = LocalTaskQueue()
    config = Config(data_dir=data_dir, secret_key=KEY, exchange_allow_http=True,
                    exchange_allowed_cidrs=("127.0.0.0/8",), run_budget_s=3600, lease_ttl_s=7200)
    ctx = build_context(config, store=store, queue=queue)
    queue.handler = ctx.run_task
    cred = exchange.save_credential(ctx, "bench", {"ews_url": ews.url, "username": "EXAMPLE\\sync", "version": "2016",
                                                   "auth_type": "NTLM", "mailbox": "shared@example.com"}, PASSWORD)
    pf = ews.public_folder("Bench public")
    mb = ews.mailbox_folder("Bench mailbox")
    fill(ews, pf, n)
    hub = hubs.create_hub(ctx, "Bench")
    public = hubs.add_spoke(ctx, hub.id, "Public", "exchange", {"folder_id": pf.id, "public": True}, cred.id,
                            {"direction": "two_way", "max_delete_count": n + 1})
    mailbox = None
    if with_mailbox:
        mailbox = hubs.add_spoke(ctx, hub.id, "Mailbox", "exchange", {"folder_id": mb.id, "public": False}, cred.id,
                                 {"direction": "two_way", "max_delete_count": n + 1})
    return Setup(ews, ctx, store, pf, mb, public, mailbox, cred)
