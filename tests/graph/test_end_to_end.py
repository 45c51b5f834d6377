"""One hub with a Google calendar, an Exchange public folder (EWS) and a Microsoft 365 shared
mailbox calendar (Graph), all two-way, through the real engine, the SQLite store, the local queue
and the three local servers; changes announced by push (Google watch channels and Graph change
notifications) over HTTP to the served webhook function reach the other two spokes. Nobody is
invited, and a second round writes nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from spokesync.bootstrap import Context, build_context, set_context
from spokesync.connectors import exchange
from spokesync.connectors import graph as graph_kind
from spokesync.connectors.google.auth import save_oauth_credential
from spokesync.engine.runner import Runner
from spokesync.queue.local import LocalTaskQueue
from spokesync.secrets.local import LocalSecretStore
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore
from tests.exchange.conftest import PASSWORD, ews  # noqa: F401 - the session's EWS server fixture
from tests.google.conftest import CLIENT_ID, CLIENT_SECRET, USER, gserver  # noqa: F401 - fixture
from tests.graph.conftest import SECRET, SHARED, graph_config

pytestmark = pytest.mark.slow
GOOGLE = "team@group.calendar.google.com"


@pytest.fixture
def webhook_url() -> Iterator[str]:
    import functions_framework
    from werkzeug.serving import make_server

    app = functions_framework.create_app(target="push_webhook", source="functions/push_webhook/main.py")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture
def world(graph, settings, shared_mailbox, gserver, ews, webhook_url, tmp_path, request):  # noqa: F811
    calendar = graph.add_calendar(shared_mailbox, f"e2e-{request.node.name}")
    gserver.sandbox.add_calendar(GOOGLE, USER, "Team", "Europe/Berlin")
    folder = ews.public_folder(f"e2e-m365-{request.node.name}")
    config = replace(graph_config(graph), data_dir=str(tmp_path), google_api_root=gserver.url,
                     google_oauth_auth_uri=gserver.auth_uri, google_oauth_token_uri=gserver.token_uri,
                     google_client_id=CLIENT_ID, google_client_secret=CLIENT_SECRET, google_backoff_s=0.01,
                     exchange_allow_http=True, exchange_allowed_cidrs=("127.0.0.0/8",), webhook_url=webhook_url,
                     run_budget_s=60, lease_ttl_s=120)
    queue = LocalTaskQueue()
    secrets = LocalSecretStore.open(str(tmp_path / "s.enc"), key_file=str(tmp_path / "s.key"))
    ctx = build_context(config, store=SqliteHubStore(":memory:"), secrets=secrets, queue=queue)
    queue.handler = ctx.run_task
    set_context(ctx)
    google_cred = save_oauth_credential(ctx.store, secrets, "g", "Owner",
                                        gserver.sandbox.issue_refresh_token(USER, CLIENT_ID), account=USER)
    ews_cred = exchange.save_credential(ctx, "Exchange", {"ews_url": ews.url, "username": "EXAMPLE\\sync",
                                                          "version": "2016", "auth_type": "NTLM",
                                                          "mailbox": "shared@example.com"}, PASSWORD)
    graph_cred = graph_kind.save_credential(ctx, "M365", settings.to_dict(), SECRET, mailbox=SHARED)
    hub = hubs.create_hub(ctx, "Company")
    two_way = {"direction": "two_way"}
    spokes = {
        "google": hubs.add_spoke(ctx, hub.id, "Google", "google", {"calendar_id": GOOGLE}, google_cred.id, two_way),
        "ews": hubs.add_spoke(ctx, hub.id, "Public folder", "exchange", {"folder_id": folder.id, "public": True},
                              ews_cred.id, two_way),
        "graph": hubs.add_spoke(ctx, hub.id, "Shared mailbox", "graph",
                                {"kind": "user", "mailbox": SHARED, "calendar_id": calendar.id}, graph_cred.id,
                                two_way),
    }
    for spoke in spokes.values():
        assert hubs.start_push(ctx, spoke) == ""
    yield ctx, queue, spokes, calendar, folder
    set_context(None)


def settle(ctx: Context, queue: LocalTaskQueue) -> None:
    for spoke in ctx.store.list_spokes():
        Runner(ctx).sync(spoke.id)
    queue.drain(max_tasks=100)


def titles(graph, gserver, ews, calendar, folder) -> tuple[list[str], list[str], list[str]]:  # noqa: F811
    return (sorted(e.props.get("subject", "") for e in graph.events_in(calendar)),
            sorted(e.get("summary", "") for e in gserver.sandbox.live_events(GOOGLE) if "recurringEventId" not in e),
            sorted(i.text("Subject") or "" for i in ews.items(folder)))


def test_google_ews_and_microsoft_365_converge_through_push(world, graph, gserver, ews) -> None:  # noqa: F811
    ctx, queue, spokes, calendar, folder = world
    invitations = graph.invitations[SHARED]
    # whole minutes: Exchange keeps appointment times to the minute
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    series = gserver.sandbox.user_insert(GOOGLE, {
        "summary": "Weekly sync", "start": {"dateTime": start.isoformat(), "timeZone": "Europe/Berlin"},
        "end": {"dateTime": (start + timedelta(hours=1)).isoformat(), "timeZone": "Europe/Berlin"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=6"],
        "attendees": [{"email": "b@example.com", "responseStatus": "accepted"}]})
    second = start + timedelta(weeks=1)
    gserver.sandbox.user_patch(GOOGLE, f"{series['id']}_{second.strftime('%Y%m%dT%H%M%SZ')}",
                               {"summary": "Weekly sync (moved)"})
    gserver.sandbox.user_delete(GOOGLE, f"{series['id']}_{(start + timedelta(weeks=2)).strftime('%Y%m%dT%H%M%SZ')}")
    ews.user_create(folder, "From the public folder", start + timedelta(hours=3), start + timedelta(hours=4))
    graph.user_create(calendar, {"subject": "From the shared mailbox",
                                 "start": {"dateTime": (start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                                           "timeZone": "UTC"},
                                 "end": {"dateTime": (start + timedelta(days=1, hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                                         "timeZone": "UTC"}})
    settle(ctx, queue)
    settle(ctx, queue)
    expected = ["From the public folder", "From the shared mailbox", "Weekly sync"]
    assert titles(graph, gserver, ews, calendar, folder) == (expected, expected, expected)
    [copy] = [e for e in graph.events_in(calendar) if e.props.get("subject") == "Weekly sync"]
    assert len(copy.exceptions) == 1 and len(copy.cancelled) == 1  # rebuilt as Outlook holds a series
    assert graph.invitations[SHARED] == invitations

    graph.wait_notifications()
    gserver.sandbox.wait_notifications()
    queue.drain(max_tasks=100)
    writes = graph.sub_requests
    runs = [Runner(ctx).sync(spoke.id) for spoke in ctx.store.list_spokes()]
    queue.drain(max_tasks=100)
    assert all(r.idle for r in runs), [r.counts for r in runs]
    assert graph.sub_requests - writes == 1  # one delta call for the Graph spoke's run, nothing written

    # Push from Microsoft 365: a change notification, one push task, the other spokes follow.
    graph.user_create(calendar, {"subject": "Pushed from M365",
                                 "start": {"dateTime": (start + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S"),
                                           "timeZone": "UTC"},
                                 "end": {"dateTime": (start + timedelta(days=2, hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                                         "timeZone": "UTC"}})
    graph.wait_notifications()
    assert [(t.spoke_id, t.reason) for t in queue.pending()] == [(spokes["graph"].id, "push")]
    queue.drain(max_tasks=100)
    gserver.sandbox.wait_notifications()
    queue.drain(max_tasks=100)
    _, google_titles, ews_titles = titles(graph, gserver, ews, calendar, folder)
    assert "Pushed from M365" in google_titles and "Pushed from M365" in ews_titles

    # Push from Google: a watch notification, the Graph spoke follows.
    gserver.sandbox.user_insert(GOOGLE, {
        "summary": "Pushed from Google", "start": {"dateTime": (start + timedelta(days=4)).isoformat()},
        "end": {"dateTime": (start + timedelta(days=4, hours=1)).isoformat()}})
    gserver.sandbox.wait_notifications()
    assert spokes["google"].id in [t.spoke_id for t in queue.pending()]
    queue.drain(max_tasks=100)
    graph.wait_notifications()
    queue.drain(max_tasks=100)
    graph_titles, _, ews_titles = titles(graph, gserver, ews, calendar, folder)
    assert "Pushed from Google" in graph_titles and "Pushed from Google" in ews_titles
    assert graph.invitations[SHARED] == invitations
