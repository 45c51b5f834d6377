"""Microsoft 365 push: a Graph spoke's subscription is opened through the validation handshake
answered by the served webhook function (its own route), notifications POSTed by the local
Graph server become one coalesced sync task, forged / replayed / stale / unknown ones get a 4xx
and enqueue nothing, lifecycle notifications are handled, and the scheduler renews."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from spokesync.bootstrap import Context, build_context, set_context
from spokesync.connectors import graph as graph_kind
from spokesync.engine.runner import Runner
from spokesync.model.hub import Spoke
from spokesync.queue.local import LocalTaskQueue
from spokesync.secrets.local import LocalSecretStore
from spokesync.service import graph_push, hubs, scheduler
from spokesync.stores.sqlite import SqliteHubStore
from tests.graph.conftest import SECRET, SHARED, graph_config

pytestmark = pytest.mark.slow


class Webhook:
    def __init__(self) -> None:
        import functions_framework
        from werkzeug.serving import make_server

        app = functions_framework.create_app(target="push_webhook", source="functions/push_webhook/main.py")
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.client = app.test_client()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


@pytest.fixture
def ctx(graph, settings, shared_mailbox, webhook: Webhook, tmp_path) -> Iterator[Context]:
    queue = LocalTaskQueue()
    secrets = LocalSecretStore.open(str(tmp_path / "s.enc"), key_file=str(tmp_path / "s.key"))
    config = replace(graph_config(graph), webhook_url=webhook.url + "/", run_budget_s=60, lease_ttl_s=120)
    context = build_context(config, store=SqliteHubStore(":memory:"), secrets=secrets, queue=queue)
    queue.handler = context.run_task
    graph_kind.save_credential(context, "M365", settings.to_dict(), SECRET, mailbox=SHARED)
    set_context(context)
    yield context
    set_context(None)


def add_graph_spoke(ctx: Context, graph, name: str) -> Spoke:
    calendar = graph.add_calendar(graph.mailboxes[next(i for i, m in graph.mailboxes.items()
                                                       if m.address == SHARED)], name)
    hub = hubs.create_hub(ctx, f"hub-{name}")
    credential = ctx.store.list_credentials()[0]
    spoke = hubs.add_spoke(ctx, hub.id, name, "graph", {"kind": "user", "mailbox": SHARED,
                                                        "calendar_id": calendar.id},
                           credential_id=credential.id, options={"direction": "two_way"})
    assert hubs.start_push(ctx, spoke) == ""
    return spoke


def test_subscription_handshake_and_a_coalesced_push_sync(ctx: Context, graph, request) -> None:
    spoke = add_graph_spoke(ctx, graph, f"push-{request.node.name}")
    [channel] = ctx.store.list_channels(spoke.id)
    sub = graph.subscriptions[channel.id]
    assert channel.token_hash == graph_push.state_hash(sub.client_state)  # only the digest is stored
    assert sub.client_state not in json.dumps(channel.to_dict())
    assert sub.notification_url.endswith("/graph") and sub.lifecycle_url.endswith("/graph/lifecycle")
    Runner(ctx).sync(spoke.id)
    ctx.queue.drain()  # type: ignore[attr-defined]
    calendar = sub.calendar
    graph.user_create(calendar, {"subject": "Pushed 1", "start": {"dateTime": "2027-01-05T10:00:00", "timeZone": "UTC"},
                                 "end": {"dateTime": "2027-01-05T11:00:00", "timeZone": "UTC"}})
    graph.user_create(calendar, {"subject": "Pushed 2", "start": {"dateTime": "2027-01-06T10:00:00", "timeZone": "UTC"},
                                 "end": {"dateTime": "2027-01-06T11:00:00", "timeZone": "UTC"}})
    graph.wait_notifications()
    assert graph.delivery_status[-2:] == [202, 202]
    assert [(t.spoke_id, t.reason) for t in ctx.queue.pending()] == [(spoke.id, "push")]  # type: ignore[attr-defined]
    ctx.queue.drain()  # type: ignore[attr-defined]
    titles = {i.event.title for i in ctx.store.list_hub_items(spoke.hub_id) if i.event}
    assert titles == {"Pushed 1", "Pushed 2"}


def _notification(sub, **changes) -> dict:
    entry = {"subscriptionId": sub.id, "clientState": sub.client_state, "changeType": "updated",
             "resource": "Users/x/Events/y", "tenantId": sub.tenant_id,
             "subscriptionExpirationDateTime": sub.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "resourceData": {"id": "y"}}
    entry.update(changes)
    return {"value": [{k: v for k, v in entry.items() if v is not None}]}


def test_forged_replayed_stale_and_unknown_notifications_are_refused(ctx: Context, graph, webhook: Webhook,
                                                                    request) -> None:
    spoke = add_graph_spoke(ctx, graph, f"forged-{request.node.name}")
    [channel] = ctx.store.list_channels(spoke.id)
    sub = graph.subscriptions[channel.id]
    client = webhook.client
    cases = [
        ("unknown subscription", _notification(sub, subscriptionId="7d9c3a52-0000-4000-8000-000000000000"), 403),
        ("forged client state", _notification(sub, clientState="guess"), 403),
        ("missing client state", _notification(sub, clientState=None), 403),
        ("stale expiration", _notification(sub, subscriptionExpirationDateTime="2020-01-01T00:00:00Z"), 403),
        ("lifecycle event on the change route", _notification(sub, lifecycleEvent="missed"), 400),
    ]
    for case, body, status in cases:
        resp = client.post("/graph", data=json.dumps(body), content_type="application/json")
        assert resp.status_code == status, case
        assert sub.client_state not in resp.get_data(as_text=True)
    for raw in (b"not json", b"{}", b'{"value": []}', b'{"value": "x"}'):
        assert client.post("/graph", data=raw, content_type="application/json").status_code == 400
    assert ctx.queue.pending() == []  # type: ignore[attr-defined]
    genuine = json.dumps(_notification(sub, resource=f"Users/x/Events/{request.node.name}"))
    assert client.post("/graph", data=genuine, content_type="application/json").status_code == 202
    ctx.queue.drain()  # type: ignore[attr-defined]
    assert client.post("/graph", data=genuine, content_type="application/json").status_code == 409  # replayed
    assert ctx.queue.pending() == []  # type: ignore[attr-defined]


def test_the_validation_handshake_is_echoed_as_plain_text(webhook: Webhook, ctx: Context) -> None:
    resp = webhook.client.post("/graph?validationToken=Validation%3A%20<b>token</b>", data=b"")
    assert resp.status_code == 200 and resp.get_data(as_text=True) == "Validation: <b>token</b>"
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert webhook.client.post("/graph?validationToken=" + "x" * 2000).status_code == 400
    assert webhook.client.get("/graph").status_code == 405


def test_lifecycle_notifications_and_renewal(ctx: Context, graph, request) -> None:
    spoke = add_graph_spoke(ctx, graph, f"life-{request.node.name}")
    [channel] = ctx.store.list_channels(spoke.id)
    ctx.queue.drain()  # type: ignore[attr-defined]
    graph.lifecycle(channel.id, "missed")
    graph.wait_notifications()
    assert [(t.spoke_id, t.reason) for t in ctx.queue.pending()] == [(spoke.id, "push")]  # type: ignore[attr-defined]
    ctx.queue.drain()  # type: ignore[attr-defined]
    graph.lifecycle(channel.id, "reauthorizationRequired")
    graph.wait_notifications()
    before = graph.subscriptions[channel.id].expires
    report = scheduler.run_job(ctx, "renew_channels")["renew_channels"]
    assert report["graph_renewed"] == 1
    assert graph.subscriptions[channel.id].expires >= before
    graph.lifecycle(channel.id, "subscriptionRemoved")
    graph.wait_notifications()
    assert ctx.store.list_channels(spoke.id) == []
    report = scheduler.run_job(ctx, "renew_channels")["renew_channels"]
    assert report["graph_opened"] == 1
    [fresh] = ctx.store.list_channels(spoke.id)
    assert fresh.id in graph.subscriptions and fresh.id != channel.id


def test_renewal_before_expiry(ctx: Context, graph, request) -> None:
    spoke = add_graph_spoke(ctx, graph, f"renew-{request.node.name}")
    [channel] = ctx.store.list_channels(spoke.id)
    assert graph_push.renew_subscriptions(ctx).renewed == 0  # far from expiry: nothing to do
    ctx.config = replace(ctx.config, graph_sub_renew_before_s=ctx.config.graph_sub_ttl_s + 3600)
    report = graph_push.renew_subscriptions(ctx, ctx.clock.now() + timedelta(minutes=1))
    assert report.renewed == 1 and report.failed == 0


def test_removing_the_spoke_deletes_its_subscription(ctx: Context, graph, request) -> None:
    spoke = add_graph_spoke(ctx, graph, f"rm-{request.node.name}")
    [channel] = ctx.store.list_channels(spoke.id)
    hubs.remove_spoke(ctx, spoke.id)
    assert channel.id not in graph.subscriptions
