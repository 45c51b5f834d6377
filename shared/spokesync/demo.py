"""Demo mode: `spokesync serve --demo` with no accounts anywhere.

Starts the local Google Calendar API server, the local EWS server and the
local Microsoft Graph server (with its identity platform) in background threads, fills them with sample calendars and folders, and returns
the configuration that points spokesync at them: the wizard then connects to
them exactly as it would to Google and to an Exchange server (OAuth consent,
EWS validation, calendar picker, public-folder browser, push notifications to
the local webhook).

The sandboxes keep their data in memory, so every demo start is a fresh
demo: its hubs live in `<data_dir>/demo/` and that directory's hub store and
secrets are cleared at start (a previous demo's spokes would point at
servers that no longer exist). Real hubs in `<data_dir>` are never touched.

The CLI sees the same demo with `spokesync --demo ...`: a running demo writes
`<data_dir>/demo/settings.json` (the sample servers' addresses, the demo store,
the server's process id) and `cli_config` reads it back. Without `--demo` the CLI
opens the real hubs only, so a demo spoke is never synced against Google's real
API, and with `--demo` it refuses to start when no demo server is running.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spokesync.config import Config

if TYPE_CHECKING:
    from spokesync.sandbox.ews import EwsServer
    from spokesync.sandbox.google_calendar import Running
    from spokesync.sandbox.google_people import Running as PeopleRunning
    from spokesync.sandbox.graph import GraphServer

DEMO_CLIENT_ID = "spokesync-demo"
DEMO_CLIENT_SECRET = "demo-secret"
DEMO_GOOGLE_USER = "demo@example.com"
DEMO_EWS_USER = "EXAMPLE\\demo"
DEMO_EWS_PASSWORD = "Demo-Pass-1"
DEMO_EWS_MAILBOX = "shared@example.com"  # the sandbox's mailbox (its primary SMTP address)
DEMO_GRAPH_TENANT = "demo.onmicrosoft.com"
DEMO_GRAPH_CLIENT_ID = "6a1f3c2e-0d4b-4e7a-9c58-2f1e8d7b6a50"
DEMO_GRAPH_SECRET = "Demo~Graph.Secret-1"  # noqa: S105 - the local demo server's app secret
DEMO_GRAPH_MAILBOX = "team@demo.onmicrosoft.com"


@dataclass
class Demo:
    """The running demo servers and the configuration that points at them."""

    config: Config
    google: Running
    ews: EwsServer
    graph: GraphServer | None = None
    people: PeopleRunning | None = None  # Google Contacts (People API); same sign-in as the calendar sandbox

    @property
    def ews_url(self) -> str:
        return self.ews.url

    def close(self) -> None:
        self.google.close()
        if self.people is not None:
            self.people.close()
        self.ews.stop()
        if self.graph is not None:
            self.graph.stop()

    def banner(self) -> str:
        graph = (f"  Microsoft 365: tenant {DEMO_GRAPH_TENANT}   client id {DEMO_GRAPH_CLIENT_ID}\n"
                 f"            client secret {DEMO_GRAPH_SECRET}   mailbox {DEMO_GRAPH_MAILBOX}\n"
                 if self.graph is not None else "")
        return ("demo mode: sample Google calendars and Exchange folders are served locally.\n"
                f"  Google: choose 'Sign in with Google' in the wizard (signs in as {DEMO_GOOGLE_USER})\n"
                f"  Exchange: EWS URL {self.ews.url}\n"
                f"            user {DEMO_EWS_USER}   password {DEMO_EWS_PASSWORD}   mailbox {DEMO_EWS_MAILBOX}"
                "   version 2016 or later\n"
                f"{graph}"
                f"  demo hubs are kept in {Path(self.config.sqlite_file).parent} and start fresh each time")


_RUNNING: list[Demo] = []

SETTINGS_FILE = "settings.json"
# The Config fields a demo changes: what the CLI needs to reach the same sample servers and store.
_SHARED = ("google_api_root", "google_people_api_root", "google_oauth_auth_uri", "google_oauth_token_uri", "google_client_id",
           "google_client_secret", "exchange_allow_http", "exchange_allowed_cidrs", "webhook_url",
           "sqlite_path", "secret_file")


class DemoNotRunning(Exception):
    """`spokesync --demo` without a running demo server."""


def settings_path(config: Config) -> Path:
    return Path(config.data_dir) / "demo" / SETTINGS_FILE


def write_settings(demo: Demo, pid: int | None = None) -> Path:
    """Where the CLI finds this demo (only sample-server values: the demo's client secret is public)."""
    path = settings_path(demo.config)
    data: dict[str, Any] = {name: getattr(demo.config, name) for name in _SHARED}
    data["exchange_allowed_cidrs"] = list(demo.config.exchange_allowed_cidrs)
    data.update(pid=os.getpid() if pid is None else pid, ews_url=demo.ews.url)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def cli_config(config: Config) -> Config:
    """The configuration of the running demo, for `spokesync --demo`."""
    path = settings_path(config)
    start = "Start it with `spokesync serve --demo` (in another terminal), then run this command again."
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise DemoNotRunning(f"no demo is running for {config.data_dir}. {start}") from None
    if not isinstance(data, dict) or not _alive(int(data.get("pid", 0) or 0)):
        raise DemoNotRunning(f"the demo server that used {config.data_dir} has stopped. {start}")
    changes: dict[str, Any] = {name: data[name] for name in _SHARED if name in data}
    changes["exchange_allowed_cidrs"] = tuple(changes.get("exchange_allowed_cidrs", ()))
    return replace(config, **changes)


def _fresh_demo_store(config: Config) -> dict[str, Any]:
    """Hub store and secrets under <data_dir>/demo/, emptied (see the module doc)."""
    demo_dir = Path(config.data_dir) / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    changes: dict[str, Any] = {}
    for field_name, file_name in (("sqlite_path", "hub.sqlite3"), ("secret_file", "secrets.enc")):
        if getattr(config, field_name):
            continue  # explicitly configured: the administrator decides, we do not wipe it
        path = demo_dir / file_name
        for stale in (path, Path(str(path) + "-wal"), Path(str(path) + "-shm")):
            if stale.exists():
                os.unlink(stale)
        changes[field_name] = str(path)
    return changes


def start_demo_servers(config: Config, *, host: str = "127.0.0.1", fresh_store: bool = True) -> Demo:
    """Start both sandboxes with sample data; the returned Demo's config points at them."""
    from spokesync.sandbox import ews as ews_sandbox
    from spokesync.sandbox import google_calendar as gcal
    from spokesync.sandbox import google_people as gpeople

    # The demo's webhook is the local http server: allowed by this explicit switch only.
    google = gcal.serve(0, gcal.GoogleCalendarSandbox(allow_http_webhooks=True), host=host)
    gcal.add_demo_data(google.sandbox, user=DEMO_GOOGLE_USER, client_id=DEMO_CLIENT_ID,
                       client_secret=DEMO_CLIENT_SECRET)
    people = gpeople.serve(0, gpeople.GooglePeopleSandbox(oauth=google.sandbox), host=host)
    gpeople.add_demo_data(people.sandbox, user=DEMO_GOOGLE_USER)  # a "Company contacts" group
    exchange = ews_sandbox.serve(host, 0, users={DEMO_EWS_USER: DEMO_EWS_PASSWORD}, sample=True)
    # A Graph root already configured (tests pointing at their own server) is left alone.
    graph = _start_graph(host) if config.graph_api_root == Config().graph_api_root else None
    changes: dict[str, Any] = {
        "google_api_root": google.url,
        "google_people_api_root": people.url,
        "google_oauth_auth_uri": google.auth_uri,
        "google_oauth_token_uri": google.token_uri,
        "google_client_id": DEMO_CLIENT_ID,
        "google_client_secret": DEMO_CLIENT_SECRET,
        "exchange_allow_http": True,
        "exchange_allowed_cidrs": tuple(sorted({*config.exchange_allowed_cidrs, "127.0.0.1/32"})),
        # Push works locally: the sandbox POSTs notifications to the local webhook.
        "webhook_url": config.webhook_url or config.public_url.rstrip("/") + "/push_webhook",
    }
    if graph is not None:
        changes.update(graph_authority_host=graph.authority_host, graph_api_root=graph.graph_url,
                       graph_ca_bundle=graph.ca_path)
    if fresh_store:
        changes.update(_fresh_demo_store(config))
    demo = Demo(config=replace(config, **changes), google=google, ews=exchange, graph=graph, people=people)
    _RUNNING.append(demo)
    return demo


def _start_graph(host: str) -> GraphServer:
    """The local Microsoft 365: one tenant, one app (secret), a shared mailbox with a sample event."""
    from datetime import UTC, datetime, timedelta

    from spokesync.sandbox.graph import GraphServer

    graph = GraphServer(host=host, strict=False).start()
    tenant = graph.add_tenant(DEMO_GRAPH_TENANT)
    graph.add_app(tenant, DEMO_GRAPH_CLIENT_ID, secret=DEMO_GRAPH_SECRET,
                  roles=("Calendars.ReadWrite", "Group.ReadWrite.All"))
    mailbox = graph.add_mailbox(DEMO_GRAPH_MAILBOX, "Team (shared mailbox)")
    graph.add_mailbox("projects@demo.onmicrosoft.com", "Projects (group)", kind="group")
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=2)
    graph.user_create(mailbox.default_calendar, {
        "subject": "Team lunch", "location": {"displayName": "Canteen"},
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                "timeZone": "W. Europe Standard Time"}})
    return graph


def start_demo(config: Config) -> Config:
    """What `spokesync serve --demo` calls: start the sandboxes, say how to use them."""
    demo = start_demo_servers(config)
    write_settings(demo)
    print(demo.banner(), flush=True)
    print("  the CLI sees this demo with `spokesync --demo ...` (e.g. `spokesync --demo status`)", flush=True)
    return demo.config


def running_for(config: Config) -> Demo | None:
    """The demo this process runs for `config` (the web UI's banner and pre-filled sample values)."""
    return next((d for d in _RUNNING if d.config.google_api_root == config.google_api_root), None)


def stop_all() -> None:
    while _RUNNING:
        _RUNNING.pop().close()
