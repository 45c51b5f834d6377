"""A whole local deployment for push-driven scenarios: the local web server
(the three functions' handlers, the in-process queue with its workers), the
local Google Calendar API server POSTing push notifications to the webhook
over HTTP, and the local EWS server. One hub: a Google calendar (two-way,
push on) and an Exchange public folder (two-way, polled).

Used by `bench/echo_storm.py` and by the end-to-end safety tests. Everything
counted here is stable (runs, tasks, notifications, API calls, hub writes),
not wall time.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import bench._common  # noqa: F401 - puts shared/ on sys.path
from spokesync.bootstrap import Context, build_context, set_context
from spokesync.config import Config
from spokesync.connectors import exchange
from spokesync.connectors.google.auth import save_oauth_credential
from spokesync.model.hub import RunRecord, Spoke
from spokesync.ports import SyncTask
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.ews import EwsServer
from spokesync.sandbox.ews.store import Folder
from spokesync.sandbox.google_calendar import GoogleCalendarSandbox, Running
from spokesync.sandbox.google_calendar import serve as serve_google
from spokesync.secrets.local import LocalSecretStore
from spokesync.service import hubs, push
from spokesync.stores.sqlite import SqliteHubStore

USER = "storm@example.com"
CALENDAR = "team@group.calendar.google.com"
EWS_USER = "EXAMPLE\\sync"
EWS_PASSWORD = "Storm-Pass-1"
KEY = "a2V5LWZvci10ZXN0cy1vbmx5LTMyLWJ5dGVzLWxvbmc="
BERLIN = ZoneInfo("Europe/Berlin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Counter:
    runs: list[RunRecord] = field(default_factory=list)
    active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Storm:
    def __init__(self, *, options: dict[str, Any] | None = None, workers: int = 2) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="spokesync-storm-")
        # Its webhook is the local http server: the explicit switch (Google itself takes https only).
        self.google: Running = serve_google(0, GoogleCalendarSandbox(allow_http_webhooks=True))
        self.sandbox: GoogleCalendarSandbox = self.google.sandbox
        self.sandbox.add_client("storm", "storm-secret")
        self.sandbox.add_calendar(CALENDAR, USER, "Team", "Europe/Berlin")
        self.ews = EwsServer(users={"sync": EWS_PASSWORD}).start()
        self.folder: Folder = self.ews.public_folder("Team public")
        port = _free_port()
        public_url = f"http://127.0.0.1:{port}"
        config = Config(
            data_dir=self.tmp.name, secret_key=KEY, admin_token="storm-admin", task_token="storm-task",  # noqa: S106
            public_url=public_url, webhook_url=public_url + "/push_webhook",
            google_api_root=self.google.url, google_oauth_token_uri=self.google.token_uri,
            google_oauth_auth_uri=self.google.auth_uri, google_client_id="storm",
            google_client_secret="storm-secret", exchange_allow_http=True,  # noqa: S106
            exchange_allowed_cidrs=("127.0.0.0/8",), run_budget_s=600, lease_ttl_s=900)
        self.store = SqliteHubStore(":memory:")
        self.queue = LocalTaskQueue(window_s=config.tasks_coalesce_s)  # as `spokesync serve` has it
        secrets = LocalSecretStore.open(f"{self.tmp.name}/s.enc", key_file=f"{self.tmp.name}/s.key")
        self.ctx: Context = build_context(config, store=self.store, secrets=secrets, queue=self.queue)
        self.counter = Counter()
        self.queue.handler = self._task
        save_oauth_credential(self.store, secrets, "gcred", "Google", self.sandbox.issue_refresh_token(USER, "storm"))
        cred = exchange.save_credential(self.ctx, "Exchange", {
            "ews_url": self.ews.url, "username": EWS_USER, "version": "2016", "auth_type": "NTLM",
            "mailbox": "shared@example.com"}, EWS_PASSWORD)
        self.hub = hubs.create_hub(self.ctx, "Team")
        opts = {"direction": "two_way", **(options or {})}
        self.google_spoke: Spoke = hubs.add_spoke(self.ctx, self.hub.id, "Google team", "google",
                                                  {"calendar_id": CALENDAR}, "gcred", dict(opts))
        self.exchange_spoke: Spoke = hubs.add_spoke(self.ctx, self.hub.id, "Exchange public", "exchange",
                                                    {"folder_id": self.folder.id, "public": True}, cred.id, dict(opts))
        set_context(self.ctx)
        from werkzeug.serving import make_server

        from spokesync.local_server import create_app

        self.server = make_server("127.0.0.1", port, create_app(self.ctx), threaded=True)
        self._thread = threading.Thread(target=self.server.serve_forever, name="storm-web", daemon=True)
        self._thread.start()
        self.channel = push.open_channel(self.ctx, self.google_spoke)
        self.queue.start(workers=workers)
        self._n = 0

    # ------------------------------------------------------------ plumbing
    def _task(self, task: SyncTask) -> Any:
        with self.counter.lock:
            self.counter.active += 1
        try:
            run = self.ctx.run_task(task)
            with self.counter.lock:
                self.counter.runs.append(run)
            return run
        finally:
            with self.counter.lock:
                self.counter.active -= 1

    def wait_quiet(self, quiet_s: float = 1.5, timeout: float = 300.0) -> None:
        """Until no task waits or runs and no notification is in flight for `quiet_s`."""
        deadline = time.monotonic() + timeout
        calm_since: float | None = None
        while time.monotonic() < deadline:
            busy = bool(self.queue.pending()) or self.counter.active > 0 or not self.sandbox._outbox.empty()
            if busy:
                calm_since = None
            elif calm_since is None:
                calm_since = time.monotonic()
            elif time.monotonic() - calm_since >= quiet_s:
                return
            time.sleep(0.05)
        raise TimeoutError("the deployment did not become quiet")

    def close(self) -> None:
        self.queue.stop()
        self.server.shutdown()
        self.google.close()
        self.ews.stop()
        set_context(None)
        self.tmp.cleanup()

    # ------------------------------------------------------------ user edits
    def create_google(self, n: int) -> list[str]:
        ids = []
        base = datetime(2026, 3, 2, 8, 0, tzinfo=BERLIN)
        for _ in range(n):
            i = self._n
            self._n += 1
            start = base + timedelta(days=i // 8, hours=i % 8)
            event = self.sandbox.user_insert(CALENDAR, {
                "summary": f"Event {i}", "start": {"dateTime": start.isoformat(), "timeZone": "Europe/Berlin"},
                "end": {"dateTime": (start + timedelta(minutes=45)).isoformat(), "timeZone": "Europe/Berlin"}})
            ids.append(event["id"])
        return ids

    def delete_google(self, ids: list[str]) -> None:
        for event_id in ids:
            self.sandbox.user_delete(CALENDAR, event_id)

    def google_ids(self) -> list[str]:
        return sorted(e["id"] for e in self.sandbox.live_events(CALENDAR) if e.get("status") != "cancelled")

    def exchange_count(self) -> int:
        return len(self.ews.items(self.folder))

    # ------------------------------------------------------------ figures
    def figures(self) -> dict[str, Any]:
        runs = list(self.counter.runs)
        by_spoke: dict[str, dict[str, int]] = {}
        names = {self.google_spoke.id: "google", self.exchange_spoke.id: "exchange"}
        for run in runs:
            row = by_spoke.setdefault(names.get(run.spoke_id, run.spoke_id), {"runs": 0, "runs_with_writes": 0})
            row["runs"] += 1
            row["runs_with_writes"] += int(any(run.counts.get(k, 0) for k in (
                "hub_created", "hub_updated", "hub_deleted", "spoke_created", "spoke_updated", "spoke_deleted")))
        notes = [n for n in self.sandbox.notifications if n.get("state") != "sync"]
        return {
            "runs_started": len(runs),
            "runs_by_spoke": by_spoke,
            "webhook_calls": len(notes),
            "tasks_enqueued": len(self.queue.enqueued),
            "run_records": len(self.store.list_runs(limit=100_000)),
            "google_api_calls": self.sandbox.stats.api_calls,
            "ews_operations": self.ews.calls(),
            "hub_store": dict(self.store.stats),
        }
