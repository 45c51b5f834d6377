"""The cloud deployment end to end, on one machine.

functions-framework serves setup, sync_spoke, scheduler and push_webhook in
their own processes with the cloud backends: the Firestore emulator, the
in-repository Secret Manager server and gcloud-tasks-emulator (which POSTs
tasks to sync_spoke). The spokes are the local Calendar API server and the
local EWS server. The emulator sends no OIDC token, so the functions run in
`token` auth mode here (OIDC is tested in test_auth.py).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from spokesync.config import Config
from spokesync.sandbox.ews import EwsServer
from spokesync.sandbox.google_calendar import GoogleCalendarSandbox, Running, serve
from spokesync.sandbox.secret_manager import SecretManagerServer
from spokesync.stores.firestore import FirestoreHubStore, from_config
from tests.cloud.conftest import PROJECT, FirestoreEmulator, FunctionServer, TasksEmulator, cloud_env
from tests.helpers import free_port, wait_for

ADMIN = "admin-token-e2e"
TASK = "task-token-e2e"
EWS_PASSWORD = "Pf-Secret-42"
USER = "owner@example.com"
CLIENT_ID, CLIENT_SECRET = "spokesync-e2e", "client-secret-e2e"
CALENDAR = "team@group.calendar.google.com"
START = datetime(2026, 12, 7, 9, tzinfo=UTC)


@dataclass
class Deployment:
    setup: FunctionServer
    sync: FunctionServer
    scheduler: FunctionServer
    webhook: FunctionServer
    store: FirestoreHubStore
    google: Running
    ews: EwsServer
    folder: Any
    secrets: SecretManagerServer
    log_dir: Path

    def api(self, method: str, path: str, body: Any = None, token: str | None = ADMIN) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers["X-Spokesync-Client"] = "tests"  # an API client: bodyless writes carry the header
        return requests.request(method, self.setup.url + "api" + path, json=body, headers=headers, timeout=60)

    def google_titles(self) -> list[str]:
        return sorted(e.get("summary", "") for e in self.google.sandbox.live_events(CALENDAR))

    def ews_titles(self) -> list[str]:
        return sorted(i.text("Subject") or "" for i in self.ews.items(self.folder))




@pytest.fixture(scope="module")
def deployment(firestore_emulator: FirestoreEmulator, secret_manager_server: SecretManagerServer,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    log_dir = tmp_path_factory.mktemp("function-logs")
    google = serve(0, GoogleCalendarSandbox(allow_http_webhooks=True))  # local http webhook
    google.sandbox.add_client(CLIENT_ID, CLIENT_SECRET)
    google.sandbox.add_user(USER)
    google.sandbox.add_calendar(CALENDAR, USER, "Team", "Europe/Berlin")
    ews = EwsServer(users={"sync": EWS_PASSWORD}).start()
    folder = ews.public_folder("Team calendar")
    ports = {name: free_port() for name in ("setup", "sync", "scheduler", "webhook")}
    queue = f"projects/{PROJECT}/locations/us-central1/queues/sync"
    tasks = TasksEmulator(queue, max_retries=3).start()
    prefix = f"e2e{uuid.uuid4().hex[:6]}_"
    env = cloud_env(
        firestore_emulator, secret_manager_server.endpoint, tasks.endpoint, queue, prefix, ADMIN, TASK,
        tasks_coalesce_s="0.5",
        sync_url=f"http://127.0.0.1:{ports['sync']}/",
        webhook_url=f"http://127.0.0.1:{ports['webhook']}/",
        public_url=f"http://127.0.0.1:{ports['setup']}/",
        run_budget_s="60",
        google_api_root=google.url,
        google_oauth_auth_uri=google.auth_uri,
        google_oauth_token_uri=google.token_uri,
        google_client_id=CLIENT_ID,
        google_client_secret=CLIENT_SECRET,
        google_backoff_s="0.05",
        exchange_allow_http="true",
        exchange_allowed_cidrs="127.0.0.0/8",
    )
    servers = {
        "setup": FunctionServer("setup", "functions/setup/main.py", env, log_dir / "setup.log", ports["setup"]),
        "sync": FunctionServer("sync_spoke", "functions/sync_spoke/main.py", env, log_dir / "sync.log", ports["sync"]),
        "scheduler": FunctionServer("scheduler", "functions/sync_spoke/main.py", env, log_dir / "scheduler.log",
                                    ports["scheduler"]),
        "webhook": FunctionServer("push_webhook", "functions/push_webhook/main.py", env, log_dir / "webhook.log",
                                  ports["webhook"]),
    }
    try:
        for server in servers.values():
            server.start()
        store = from_config(Config(backend="cloud", gcp_project=PROJECT, firestore_prefix=prefix))
        yield Deployment(servers["setup"], servers["sync"], servers["scheduler"], servers["webhook"], store, google,
                         ews, folder, secret_manager_server, log_dir)
    finally:
        for server in servers.values():
            server.stop()
        tasks.stop()
        ews.stop()
        google.close()


@pytest.fixture(scope="module")
def hub(deployment: Deployment) -> dict[str, Any]:
    """A hub with a Google spoke and an Exchange public-folder spoke, set up through the setup API."""
    d = deployment
    d.ews.user_create(d.folder, "Planning (Exchange)", START, START + timedelta(hours=1), location="Room 1")
    d.google.sandbox.user_insert(CALENDAR, {"summary": "Review (Google)",
                                            "start": {"dateTime": "2026-12-08T10:00:00+01:00"},
                                            "end": {"dateTime": "2026-12-08T11:00:00+01:00"}})
    # Exchange: the password is validated against the server and goes to Secret Manager
    resp = d.api("POST", "/credentials/exchange", {
        "label": "Public folders", "password": EWS_PASSWORD, "require_public_folders": True,
        "settings": {"ews_url": d.ews.url, "username": "EXAMPLE\\sync", "version": "2016", "auth_type": "NTLM",
                     "mailbox": "shared@example.com"}})
    assert resp.status_code == 201, resp.text
    exchange_cred = resp.json()
    # Google: the OAuth consent flow, as the wizard runs it
    redirect = d.setup.url + "oauth/callback"
    start = d.api("POST", "/credentials/google/oauth/start", {"redirect_uri": redirect, "login_hint": USER}).json()
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(start["url"]).query))
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(d.google.sandbox.authorize(params)).query))["code"]
    resp = d.api("POST", "/credentials/google/oauth/finish", {"code": code, "redirect_uri": redirect,
                                                              "label": "Owner", "account": USER})
    assert resp.status_code == 201, resp.text
    google_cred = resp.json()
    # folder picker and calendar picker
    folders = d.api("POST", f"/credentials/{exchange_cred['id']}/folders", {"public": True}).json()["folders"]
    folder_id = next(f["id"] for f in folders if f["name"] == "Team calendar")
    calendars = d.api("GET", f"/credentials/{google_cred['id']}/calendars").json()["calendars"]
    assert CALENDAR in [c["id"] for c in calendars]

    hub_id = d.api("POST", "/hubs", {"name": "Team"}).json()["id"]
    google_spoke = d.api("POST", f"/hubs/{hub_id}/spokes", {
        "name": "Team (Google)", "kind": "google", "address": {"calendar_id": CALENDAR},
        "credential_id": google_cred["id"]}).json()
    exchange_spoke = d.api("POST", f"/hubs/{hub_id}/spokes", {
        "name": "Team (public folder)", "kind": "exchange", "address": {"folder_id": folder_id, "public": True},
        "credential_id": exchange_cred["id"]}).json()
    for spoke in (google_spoke, exchange_spoke):
        resp = d.api("PATCH", f"/spokes/{spoke['id']}/options", {"direction": "two_way"})
        assert resp.status_code == 200 and resp.json()["two_way"], resp.text
    assert d.store.list_channels(spoke_id=google_spoke["id"]), "a push channel was opened for the Google spoke"
    return {"id": hub_id, "google": google_spoke["id"], "exchange": exchange_spoke["id"],
            "credentials": (exchange_cred["id"], google_cred["id"])}


def test_setup_refuses_callers_without_the_admin_token(deployment: Deployment) -> None:
    assert deployment.api("GET", "/status", token=None).status_code == 401
    assert deployment.api("GET", "/status", token="wrong").status_code == 401
    resp = requests.post(deployment.sync.url, json={"spoke_id": "x"}, timeout=10)
    assert resp.status_code == 401
    resp = requests.post(deployment.scheduler.url, json={"job": "poll"}, headers={"Authorization": "Bearer no"},
                         timeout=10)
    assert resp.status_code == 401


def test_sync_now_converges_both_spokes_through_tasks(deployment: Deployment, hub: dict[str, Any]) -> None:
    d = deployment
    for key in ("google", "exchange"):
        assert d.api("POST", f"/spokes/{hub[key]}/sync").status_code == 202
    expected = ["Planning (Exchange)", "Review (Google)"]
    wait_for(lambda: d.google_titles() == expected and d.ews_titles() == expected, what="both spokes to converge")
    wait_for(lambda: all(r["status"] in ("ok",) for r in d.api("GET", f"/hubs/{hub['id']}/runs").json()["runs"])
             and not any(s["running"] for s in d.api("GET", f"/hubs/{hub['id']}").json()["spokes"]),
             what="the runs to settle")
    status = d.api("GET", f"/hubs/{hub['id']}").json()
    assert status["items"] == 2
    assert {s["linked_items"] for s in status["spokes"]} == {2}


def test_a_google_change_announced_by_push_reaches_exchange(deployment: Deployment, hub: dict[str, Any]) -> None:
    d = deployment
    wait_for(lambda: len(d.ews_titles()) == 2, what="the initial sync")
    before = len(d.google.sandbox.notifications)
    d.google.sandbox.user_insert(CALENDAR, {"summary": "Pushed from Google",
                                            "start": {"dateTime": "2026-12-09T14:00:00+01:00"},
                                            "end": {"dateTime": "2026-12-09T15:00:00+01:00"}})
    wait_for(lambda: "Pushed from Google" in d.ews_titles(), what="the pushed change to reach Exchange")
    delivered = d.google.sandbox.notifications[before:]
    assert any(n.get("status") == 200 and n.get("state") == "exists" for n in delivered), delivered


def test_an_exchange_change_reaches_google_through_a_scheduled_poll(
        deployment: Deployment, hub: dict[str, Any]) -> None:
    d = deployment
    wait_for(lambda: "Pushed from Google" in d.ews_titles(), what="the earlier sync")
    d.ews.user_create(d.folder, "Polled from Exchange", START + timedelta(days=3), START + timedelta(days=3, hours=1))
    # time passes: the Exchange spoke's next poll becomes due
    wait_for(lambda: (s := d.store.get_spoke(hub["exchange"])) is not None and s.lease_owner is None, what="idle")
    d.store.update_spoke(hub["exchange"], next_run_at=datetime.now(UTC) - timedelta(seconds=1))
    resp = requests.post(d.scheduler.url, json={"job": "poll"}, headers={"Authorization": f"Bearer {TASK}"},
                         timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["poll"]["enqueued"] >= 1
    wait_for(lambda: "Polled from Exchange" in d.google_titles(), what="the polled change to reach Google")


def test_the_same_task_delivered_twice_at_once_leaves_one_run(deployment: Deployment, hub: dict[str, Any]) -> None:
    d = deployment
    wait_for(lambda: "Polled from Exchange" in d.google_titles(), what="the earlier sync")
    wait_for(lambda: all(s.lease_owner is None for s in d.store.list_spokes(hub["id"])), what="idle spokes")
    d.ews.user_create(d.folder, "Delivered twice", START + timedelta(days=4), START + timedelta(days=4, hours=1))
    runs_before = {r.id for r in d.store.list_runs(spoke_id=hub["exchange"], limit=100)}
    headers = {"Authorization": f"Bearer {TASK}", "X-CloudTasks-TaskName": "dup-1"}
    body = {"spoke_id": hub["exchange"], "reason": "push"}
    answers: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def deliver() -> None:
        barrier.wait()
        answers.append(requests.post(d.sync.url, json=body, headers=headers, timeout=120).json())

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # one delivery runs the sync; the other either finds the lease taken (skipped, and the holder runs again)
    # or, planning without the lease (idle fast path), arrives after the first committed and finds nothing to do
    worked = [a for a in answers if a["status"] == "ok" and a["counts"].get("hub_created")]
    others = [a for a in answers if a not in worked]
    assert len(worked) == 1 and len(others) == 1, answers
    assert others[0]["status"] == "skipped" or (
        others[0]["status"] == "ok" and not any(others[0]["counts"].values())), answers
    new_runs = [r for r in d.store.list_runs(spoke_id=hub["exchange"], limit=100) if r.id not in runs_before]
    assert len([r for r in new_runs if r.reason != "hub_changed" and r.counts.get("hub_created")]) == 1
    # the skipped delivery flagged the spoke dirty: a follow-up run is queued; all settle with no duplicates
    wait_for(lambda: "Delivered twice" in d.google_titles(), what="the change to reach Google")
    wait_for(lambda: all(s.lease_owner is None and not s.dirty for s in d.store.list_spokes(hub["id"])),
             what="the follow-up runs")
    titles = d.google_titles()
    assert titles.count("Delivered twice") == 1 and len(titles) == len(set(titles)) == 5
    assert d.ews_titles() == titles


def test_firestore_and_the_logs_hold_no_secret(deployment: Deployment, hub: dict[str, Any]) -> None:
    d = deployment
    dumped: list[str] = []

    def walk(collection: Any) -> None:
        for snap in collection.stream():
            dumped.append(json.dumps(snap.to_dict(), default=str))
            for sub in snap.reference.collections():
                walk(sub)

    for collection in d.store.client.collections():
        if collection.id.startswith(d.store.prefix):
            walk(collection)
    text = "\n".join(dumped)
    assert len(dumped) > 10 and "Team (public folder)" in text
    refresh_tokens = [t for t in d.google.sandbox._refresh]  # noqa: SLF001 - the sandbox's issued tokens
    for secret in [EWS_PASSWORD, CLIENT_SECRET, *refresh_tokens]:
        assert secret not in text
    # the secrets are in Secret Manager instead
    assert EWS_PASSWORD.encode() in d.secrets.all_payloads()
    # logs: JSON lines for Cloud Logging, no secret anywhere
    lines = [line for f in d.log_dir.glob("*.log") for line in f.read_text().splitlines()]
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert entries and all("severity" in e and "message" in e for e in entries)
    assert any(e.get("spoke_id") and e.get("run_id") for e in entries)
    all_logs = "\n".join(lines)
    for secret in [EWS_PASSWORD, CLIENT_SECRET, ADMIN, TASK, *refresh_tokens]:
        assert secret not in all_logs
