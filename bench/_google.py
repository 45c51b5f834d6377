"""Shared setup for the Google benchmarks: the local Calendar API server, a
local-backend Context (SQLite in memory, local secrets, local queue) and one
two-way hub with two Google spokes, calendar A filled with N events."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import bench._common  # noqa: F401 - puts shared/ on sys.path
from spokesync.bootstrap import Context, build_context
from spokesync.config import Config
from spokesync.connectors.google.auth import save_oauth_credential
from spokesync.model.hub import Spoke
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.google_calendar import GoogleCalendarSandbox, Running, serve
from spokesync.secrets.local import LocalSecretStore
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore

USER = "bench@example.com"
A = "a@group.calendar.google.com"
B = "b@group.calendar.google.com"
WRITES = ("events.insert", "events.patch", "events.update", "events.delete")


@dataclass
class Setup:
    server: Running
    ctx: Context
    store: SqliteHubStore
    a: Spoke
    b: Spoke
    tmp: tempfile.TemporaryDirectory  # type: ignore[type-arg]

    @property
    def sandbox(self) -> GoogleCalendarSandbox:
        return self.server.sandbox

    def close(self) -> None:
        self.server.close()
        self.tmp.cleanup()


def fill(sandbox: GoogleCalendarSandbox, calendar_id: str, n: int) -> None:
    zone = ZoneInfo("Europe/Berlin")
    base = datetime(2026, 1, 5, 8, 0, tzinfo=zone)
    for i in range(n):
        start = base + timedelta(days=i // 8, hours=i % 8)
        sandbox.user_insert(calendar_id, {
            "summary": f"Event {i}", "description": f"Item number {i}", "location": f"Room {i % 17}",
            "start": {"dateTime": start.isoformat(), "timeZone": "Europe/Berlin"},
            "end": {"dateTime": (start + timedelta(minutes=45)).isoformat(), "timeZone": "Europe/Berlin"},
        })


def build(n: int, *, with_hub: bool = True) -> Setup:
    server = serve(0, GoogleCalendarSandbox(allow_http_webhooks=True))
    sandbox = server.sandbox
    sandbox.add_client("bench", "bench-secret")
    sandbox.add_calendar(A, USER, "A", "Europe/Berlin")
    sandbox.add_calendar(B, USER, "B", "Europe/Berlin")
    fill(sandbox, A, n)
    tmp = tempfile.TemporaryDirectory()
    config = Config(data_dir=tmp.name, google_api_root=server.url, google_oauth_token_uri=server.token_uri,
                    google_oauth_auth_uri=server.auth_uri, google_client_id="bench", google_client_secret="bench-secret",  # noqa: S106
                    run_budget_s=3600, lease_ttl_s=7200)
    store = SqliteHubStore(":memory:")
    secrets = LocalSecretStore.open(f"{tmp.name}/s.enc", key_file=f"{tmp.name}/s.key")
    queue = LocalTaskQueue()
    ctx = build_context(config, store=store, secrets=secrets, queue=queue)
    queue.handler = ctx.run_task
    save_oauth_credential(store, secrets, "cred", "Bench", sandbox.issue_refresh_token(USER, "bench"))
    hub = hubs.create_hub(ctx, "Bench")
    a = hubs.add_spoke(ctx, hub.id, "A", "google", {"calendar_id": A}, credential_id="cred",
                       options={"direction": "two_way"})
    b = hubs.add_spoke(ctx, hub.id, "B", "google", {"calendar_id": B}, credential_id="cred",
                       options={"direction": "two_way"})
    return Setup(server, ctx, store, a, b, tmp)


def sync_until_done(ctx: Context, spoke: Spoke) -> list[str]:
    from spokesync.engine.runner import Runner

    statuses = []
    while True:
        run = Runner(ctx).sync(spoke.id, reason="bench")
        statuses.append(run.status)
        if run.status != "continued":
            return statuses


def counts(sandbox: GoogleCalendarSandbox) -> dict[str, Any]:
    stats = sandbox.stats
    return {"http_requests": stats.http_requests, "api_calls": stats.api_calls, "batches": stats.batches,
            "token_requests": stats.token_requests,
            "api_calls_by_method": dict(sorted(stats.by_method.items()))}
