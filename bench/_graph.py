"""Shared setup for the Microsoft 365 benchmarks: the local Graph server (https, msal sign-in),
a local-backend Context (SQLite in memory, local secrets, local queue) and one two-way hub with
two Graph spokes (two calendars of a shared mailbox), calendar A filled with N events."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import bench._common  # noqa: F401 - puts shared/ on sys.path
from spokesync.bootstrap import Context, build_context
from spokesync.config import Config
from spokesync.connectors import graph as graph_kind
from spokesync.model.hub import Spoke
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.graph import GraphServer
from spokesync.sandbox.graph.server import Calendar
from spokesync.secrets.local import LocalSecretStore
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore

MAILBOX = "bench@contoso.com"
SECRET = "Bench~Secret.1"  # noqa: S105 - a local test double's secret


@dataclass
class Setup:
    server: GraphServer
    ctx: Context
    store: SqliteHubStore
    a: Spoke
    b: Spoke
    cal_a: Calendar
    cal_b: Calendar
    tmp: tempfile.TemporaryDirectory  # type: ignore[type-arg]

    def close(self) -> None:
        self.server.stop()
        self.tmp.cleanup()

    def counts(self) -> dict[str, Any]:
        s = self.server
        return {"round_trips": s.api_calls, "requests": s.sub_requests, "batches": s.requests["batch"],
                "token_requests": s.requests["token"], "invitations": sum(s.invitations.values())}

    def reset(self) -> None:
        s = self.server
        s.api_calls = s.sub_requests = 0
        s.requests.clear()


def fill(server: GraphServer, calendar: Calendar, n: int) -> None:
    zone = ZoneInfo("Europe/Berlin")
    base = (datetime.now(zone) + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    for i in range(n):
        start = base + timedelta(days=i // 8, hours=i % 8)
        server.user_create(calendar, {
            "subject": f"Event {i}", "body": {"contentType": "text", "content": f"Item number {i}"},
            "location": {"displayName": f"Room {i % 17}"},
            "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": (start + timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%S"),
                    "timeZone": "W. Europe Standard Time"}})


def build(n: int, strict: bool = False, **config_changes: Any) -> Setup:
    server = GraphServer(strict=strict).start()  # the schema checks cost time and are the tests' job
    tenant = server.add_tenant("bench.onmicrosoft.com")
    app = server.add_app(tenant, secret=SECRET)
    mailbox = server.add_mailbox(MAILBOX, "Bench shared mailbox")
    cal_a, cal_b = server.add_calendar(mailbox, "A"), server.add_calendar(mailbox, "B")
    fill(server, cal_a, n)
    tmp = tempfile.TemporaryDirectory()
    config = Config(data_dir=tmp.name, graph_authority_host=server.authority_host, graph_api_root=server.graph_url,
                    graph_ca_bundle=server.ca_path, run_budget_s=3600, lease_ttl_s=7200, **config_changes)
    store = SqliteHubStore(":memory:")
    secrets = LocalSecretStore.open(f"{tmp.name}/s.enc", key_file=f"{tmp.name}/s.key")
    queue = LocalTaskQueue()
    ctx = build_context(config, store=store, secrets=secrets, queue=queue)
    queue.handler = ctx.run_task
    cred = graph_kind.save_credential(ctx, "Bench", {"tenant": tenant.id, "client_id": app.client_id}, SECRET,
                                      mailbox=MAILBOX)
    hub = hubs.create_hub(ctx, "Bench")
    a = hubs.add_spoke(ctx, hub.id, "A", "graph", {"kind": "user", "mailbox": MAILBOX, "calendar_id": cal_a.id},
                       credential_id=cred.id, options={"direction": "two_way"})
    b = hubs.add_spoke(ctx, hub.id, "B", "graph", {"kind": "user", "mailbox": MAILBOX, "calendar_id": cal_b.id},
                       credential_id=cred.id, options={"direction": "two_way"})
    return Setup(server, ctx, store, a, b, cal_a, cal_b, tmp)


def sync_until_done(ctx: Context, spoke: Spoke) -> list[str]:
    from spokesync.engine.runner import Runner

    statuses = []
    while True:
        run = Runner(ctx).sync(spoke.id, reason="bench")
        statuses.append(run.status)
        if run.status != "continued":
            return statuses
