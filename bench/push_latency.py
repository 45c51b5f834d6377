"""push_latency: a Google push notification → the item written in the Exchange spoke, on the cloud path.

The deployment of tests/cloud/test_end_to_end.py, on one machine: functions-framework serves
`setup`, `sync_spoke` and `push_webhook` in their own processes with the cloud backends (the
Firestore emulator JAR, the in-repository Secret Manager server, gcloud-tasks-emulator, which
POSTs the tasks to `sync_spoke`); the spokes are the local Calendar API server (it POSTs its push
notifications to the webhook) and the local EWS server (a public folder). A hub is set up through
the setup API, both spokes sync once; then, N times, an event is inserted into the Google
calendar as a person would, and the time until the copy exists in the Exchange folder is taken:
the notification, the webhook's task, the Google spoke's run, the hub-change task and the
Exchange spoke's run.

The coalescing window is the default (`SPOKESYNC_TASKS_COALESCE_S`, 10 s). Each insert waits
for the start of a new window, so that it is the first request of its window — a person's edit,
which the leading edge starts at once; bursts inside one window (a follow-up at the window's
end) are what `echo_storm` measures. Reports min/median/max and the share before the
notification reached the webhook. Loopback only: real Google delivers notifications within
seconds, which this does not model.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench._cloud import PROJECT, Emulator, FunctionServer, TasksEmulator, free_port

DEFAULT_N = 5
ADMIN, TASK = "bench-admin", "bench-task"
EWS_PASSWORD = "Bench-Push-1"
USER = "owner@example.com"
CLIENT_ID, CLIENT_SECRET = "spokesync-bench", "client-secret-bench"
CALENDAR = "team@group.calendar.google.com"
ROOT = Path(__file__).resolve().parent.parent


def _wait(predicate: Any, what: str, timeout: float = 120.0, step: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(step)


def run(n: int) -> dict[str, Any]:
    from spokesync.config import Config
    from spokesync.sandbox.ews import EwsServer
    from spokesync.sandbox.google_calendar import GoogleCalendarSandbox, serve
    from spokesync.sandbox.secret_manager import SecretManagerServer
    from spokesync.stores.firestore import from_config

    window = Config().tasks_coalesce_s
    with Emulator() as firestore, tempfile.TemporaryDirectory() as tmp:
        google = serve(0, GoogleCalendarSandbox(allow_http_webhooks=True))
        google.sandbox.add_client(CLIENT_ID, CLIENT_SECRET)
        google.sandbox.add_user(USER)
        google.sandbox.add_calendar(CALENDAR, USER, "Team", "Europe/Berlin")
        ews = EwsServer(users={"sync": EWS_PASSWORD}).start()
        folder = ews.public_folder("Team calendar")
        secrets = SecretManagerServer().start()
        queue = f"projects/{PROJECT}/locations/us-central1/queues/sync"
        tasks = TasksEmulator(queue).start()
        ports = {name: free_port() for name in ("setup", "sync", "webhook")}
        prefix = f"bench{uuid.uuid4().hex[:6]}_"
        env = {
            "PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT / 'shared'}:{ROOT}",
            "FIRESTORE_EMULATOR_HOST": firestore.host, "SPOKESYNC_BACKEND": "cloud", "SPOKESYNC_AUTH_MODE": "token",
            "SPOKESYNC_ADMIN_TOKEN": ADMIN, "SPOKESYNC_TASK_TOKEN": TASK, "SPOKESYNC_GCP_PROJECT": PROJECT,
            "SPOKESYNC_FIRESTORE_PREFIX": prefix, "SPOKESYNC_SECRET_MANAGER_ENDPOINT": secrets.endpoint,
            "SPOKESYNC_SECRET_PREFIX": prefix.replace("_", "-"), "SPOKESYNC_TASKS_QUEUE": queue,
            "SPOKESYNC_TASKS_ENDPOINT": tasks.endpoint, "SPOKESYNC_SYNC_URL": f"http://127.0.0.1:{ports['sync']}/",
            "SPOKESYNC_WEBHOOK_URL": f"http://127.0.0.1:{ports['webhook']}/",
            "SPOKESYNC_PUBLIC_URL": f"http://127.0.0.1:{ports['setup']}/", "SPOKESYNC_RUN_BUDGET_S": "60",
            "SPOKESYNC_GOOGLE_API_ROOT": google.url, "SPOKESYNC_GOOGLE_OAUTH_AUTH_URI": google.auth_uri,
            "SPOKESYNC_GOOGLE_OAUTH_TOKEN_URI": google.token_uri, "SPOKESYNC_GOOGLE_CLIENT_ID": CLIENT_ID,
            "SPOKESYNC_GOOGLE_CLIENT_SECRET": CLIENT_SECRET, "SPOKESYNC_EXCHANGE_ALLOW_HTTP": "true",
            "SPOKESYNC_EXCHANGE_ALLOWED_CIDRS": "127.0.0.0/8",
        }
        logs = Path(tmp)
        servers = [FunctionServer("setup", "functions/setup/main.py", env, logs / "setup.log", ports["setup"]),
                   FunctionServer("sync_spoke", "functions/sync_spoke/main.py", env, logs / "sync.log", ports["sync"]),
                   FunctionServer("push_webhook", "functions/push_webhook/main.py", env, logs / "webhook.log",
                                  ports["webhook"])]
        try:
            for server in servers:
                server.start()
            setup_url = servers[0].url

            def api(method: str, path: str, body: Any = None) -> requests.Response:
                return requests.request(method, setup_url + "api" + path, json=body, timeout=120,
                                        headers={"Authorization": f"Bearer {ADMIN}", "X-Spokesync-Client": "bench"})

            def ews_titles() -> list[str]:
                return [i.text("Subject") or "" for i in ews.items(folder)]

            start = datetime(2026, 12, 7, 9, tzinfo=UTC)
            ews.user_create(folder, "Planning (Exchange)", start, start + timedelta(hours=1))
            resp = api("POST", "/credentials/exchange", {
                "label": "Public folders", "password": EWS_PASSWORD, "require_public_folders": True,
                "settings": {"ews_url": ews.url, "username": "EXAMPLE\\sync", "version": "2016", "auth_type": "NTLM",
                             "mailbox": "shared@example.com"}})
            resp.raise_for_status()
            exchange_cred = resp.json()
            redirect = setup_url + "oauth/callback"
            begin = api("POST", "/credentials/google/oauth/start", {"redirect_uri": redirect, "login_hint": USER}).json()
            params = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(begin["url"]).query))
            code = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(google.sandbox.authorize(params)).query))["code"]
            resp = api("POST", "/credentials/google/oauth/finish", {"code": code, "redirect_uri": redirect,
                                                                    "label": "Owner", "account": USER})
            resp.raise_for_status()
            google_cred = resp.json()
            folders = api("POST", f"/credentials/{exchange_cred['id']}/folders", {"public": True}).json()["folders"]
            folder_id = next(f["id"] for f in folders if f["name"] == "Team calendar")
            hub_id = api("POST", "/hubs", {"name": "Team"}).json()["id"]
            google_spoke = api("POST", f"/hubs/{hub_id}/spokes", {
                "name": "Team (Google)", "kind": "google", "address": {"calendar_id": CALENDAR},
                "credential_id": google_cred["id"]}).json()
            exchange_spoke = api("POST", f"/hubs/{hub_id}/spokes", {
                "name": "Team (public folder)", "kind": "exchange", "address": {"folder_id": folder_id, "public": True},
                "credential_id": exchange_cred["id"]}).json()
            for spoke in (google_spoke, exchange_spoke):
                api("PATCH", f"/spokes/{spoke['id']}/options", {"direction": "two_way"}).raise_for_status()
            for spoke in (google_spoke, exchange_spoke):
                api("POST", f"/spokes/{spoke['id']}/sync").raise_for_status()
            store = from_config(Config(backend="cloud", gcp_project=PROJECT, firestore_prefix=prefix))
            _wait(lambda: len(google.sandbox.live_events(CALENDAR)) == 1 and len(ews_titles()) == 1,
                  "the initial sync")
            _wait(lambda: all(s.lease_owner is None and not s.dirty for s in store.list_spokes(hub_id)),
                  "the initial runs to settle")

            latencies: list[float] = []
            notified: list[float] = []
            base = datetime(2026, 12, 14, 8, tzinfo=UTC)
            for i in range(n):
                # the first request of a fresh coalescing window (see the module docstring)
                time.sleep(max(0.0, (math.floor(time.time() / window) + 1) * window + 0.05 - time.time()))
                title = f"Pushed {i}"
                delivered = len(google.sandbox.notifications)
                at = base + timedelta(hours=i)
                started = time.perf_counter()
                google.sandbox.user_insert(CALENDAR, {
                    "summary": title, "start": {"dateTime": at.isoformat()},
                    "end": {"dateTime": (at + timedelta(minutes=30)).isoformat()}})
                seen_notify: float | None = None
                deadline = started + 60
                while title not in ews_titles():
                    if seen_notify is None and any(
                            x.get("status") for x in google.sandbox.notifications[delivered:]):
                        seen_notify = time.perf_counter() - started
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"event {i} did not reach Exchange within 60 s")
                    time.sleep(0.005)
                latencies.append(time.perf_counter() - started)
                notified.append(seen_notify if seen_notify is not None else latencies[-1])
                _wait(lambda: all(s.lease_owner is None and not s.dirty for s in store.list_spokes(hub_id)),
                      "the runs to settle")
            copies = ews_titles()
            assert all(copies.count(f"Pushed {i}") == 1 for i in range(n)), copies
        finally:
            for server in servers:
                server.stop()
            tasks.stop()
            secrets.stop()
            ews.stop()
            google.close()
    ms = [round(x * 1000, 1) for x in latencies]
    return {
        "notifications": n,
        "min_ms": min(ms),
        "median_ms": round(statistics.median(ms), 1),
        "max_ms": max(ms),
        "latencies_ms": ms,
        "median_notification_delivered_ms": round(statistics.median(notified) * 1000, 1),
        "coalesce_window_s": window,
        "target_median_ms": 2000,
        "note": "cloud path on the emulators, loopback; each notification the first of its coalescing window",
    }
