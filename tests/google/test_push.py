"""Push channels (open, renew with overlap, stop) against the local server,
and the webhook function's answers to genuine and bad notifications."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from spokesync.bootstrap import Context, build_context, set_context
from spokesync.config import Config
from spokesync.connectors.google.auth import save_oauth_credential
from spokesync.model.hub import Channel
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.google_calendar import Running
from spokesync.secrets.local import LocalSecretStore
from spokesync.service import hubs, push
from spokesync.stores.sqlite import SqliteHubStore
from tests.google.conftest import USER

TOKEN = "s3cret-channel-token"  # noqa: S105 - test value


@pytest.fixture
def ctx(gserver: Running, gconfig: Config, tmp_path) -> Iterator[Context]:
    config = replace(gconfig, webhook_url="https://hooks.example.com/push", google_channel_ttl_s=7 * 86400,
                     google_channel_renew_before_s=86400)
    secrets = LocalSecretStore.open(str(tmp_path / "s.enc"), key_file=str(tmp_path / "s.key"))
    context = build_context(config, clock=FakeClock(datetime.now(UTC)), store=SqliteHubStore(":memory:"),
                            secrets=secrets, queue=LocalTaskQueue())
    save_oauth_credential(context.store, secrets, "cred", "Owner",
                          gserver.sandbox.issue_refresh_token(USER, config.google_client_id))
    gserver.sandbox.add_calendar("team@group.calendar.google.com", USER)
    yield context


@pytest.fixture
def spoke(ctx: Context):
    hub = hubs.create_hub(ctx, "Team")
    return hubs.add_spoke(ctx, hub.id, "Team", "google", {"calendar_id": "team@group.calendar.google.com"},
                          credential_id="cred", options={"direction": "two_way"})


def test_opening_a_channel_stores_its_token_only_as_a_hash(ctx: Context, spoke, gserver: Running) -> None:
    channel = push.on_spoke_added(ctx, spoke)
    assert channel is not None and channel.resource_id
    live = gserver.sandbox.live_channels("team@group.calendar.google.com")
    assert [c.id for c in live] == [channel.id]
    token = live[0].token
    assert token and len(token) <= 256 and live[0].address == "https://hooks.example.com/push"
    stored = ctx.store.get_channel(channel.id)
    assert stored is not None and stored.token_hash == push.token_hash(token)
    assert token not in repr(stored.to_dict())
    # The TTL asked for is the configured one.
    assert abs((stored.expires_at - ctx.clock.now()).total_seconds() - 7 * 86400) < 120


def test_renewal_opens_a_new_channel_before_expiry_and_stops_the_old(ctx: Context, spoke, gserver: Running) -> None:
    old = push.open_channel(ctx, spoke)
    assert push.renew_channels(ctx).opened == 0  # far from expiry: nothing to do
    report = push.renew_channels(ctx, now=old.expires_at - timedelta(hours=2))
    assert report.to_dict() == {"opened": 1, "stopped": 1, "failed": 0}
    live = gserver.sandbox.live_channels()
    assert len(live) == 1 and live[0].id != old.id
    assert [c.id for c in ctx.store.list_channels(spoke.id)] == [live[0].id]


def test_a_spoke_without_a_channel_gets_one_at_renewal(ctx: Context, spoke, gserver: Running) -> None:
    assert push.renew_channels(ctx).opened == 1
    assert len(gserver.sandbox.live_channels()) == 1


def test_removing_a_spoke_stops_its_channels(ctx: Context, spoke, gserver: Running) -> None:
    push.open_channel(ctx, spoke)
    hubs.remove_spoke(ctx, spoke.id)
    assert gserver.sandbox.live_channels() == []
    assert ctx.store.list_channels() == []


def test_a_failed_watch_leaves_no_channel_record(ctx: Context, spoke, gserver: Running) -> None:
    gserver.sandbox.inject(400, "push.webhookUrlNotHttps", path_contains="/watch")
    with pytest.raises(Exception):
        push.open_channel(ctx, spoke)
    assert ctx.store.list_channels() == []


# ------------------------------------------------------------------ webhook


@pytest.fixture
def webhook(ctx: Context, spoke):
    import functions_framework

    app = functions_framework.create_app(target="push_webhook", source="functions/push_webhook/main.py")
    now = ctx.clock.now()
    ctx.store.put_channel(Channel(id="chan-1", spoke_id=spoke.id, resource_id="res-1",
                                  token_hash=push.token_hash(TOKEN), expires_at=now + timedelta(days=1)))
    ctx.store.put_channel(Channel(id="chan-old", spoke_id=spoke.id, resource_id="res-1",
                                  token_hash=push.token_hash(TOKEN), expires_at=now - timedelta(seconds=1)))
    set_context(ctx)
    yield app.test_client()
    set_context(None)


def headers(**changes: str | None) -> dict[str, str]:
    base = {"X-Goog-Channel-ID": "chan-1", "X-Goog-Channel-Token": TOKEN, "X-Goog-Resource-ID": "res-1",
            "X-Goog-Resource-State": "exists", "X-Goog-Message-Number": "2",
            "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/x/events?alt=json",
            "X-Goog-Channel-Expiration": "Tue, 01 Dec 2026 00:00:00 GMT"}
    for key, value in changes.items():
        name = "X-Goog-" + key.replace("_", "-")
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


BAD_REQUESTS = [
    ("no headers at all", {}, 400),
    ("missing channel id", headers(Channel_ID=None), 400),
    ("missing resource state", headers(Resource_State=None), 400),
    ("missing resource id", headers(Resource_ID=None), 400),
    ("unknown resource state", headers(Resource_State="deleted"), 400),
    ("overlong channel id", headers(Channel_ID="x" * 65), 400),
    ("overlong token", headers(Channel_Token="t" * 257), 400),
    ("unknown channel", headers(Channel_ID="chan-forged"), 404),
    ("forged token", headers(Channel_Token="guess"), 403),
    ("token of the right length but wrong", headers(Channel_Token=TOKEN[:-1] + "X"), 403),
    ("missing token", headers(Channel_Token=None), 403),
    ("mismatched resource id", headers(Resource_ID="res-2"), 403),
    ("expired channel", headers(Channel_ID="chan-old"), 404),
]


@pytest.mark.parametrize(("case", "sent", "status"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_notifications_get_a_4xx_and_enqueue_nothing(webhook, ctx: Context, case, sent, status) -> None:
    resp = webhook.post("/", headers=sent)
    assert resp.status_code == status
    assert ctx.queue.pending() == []  # type: ignore[attr-defined]
    assert TOKEN not in resp.get_data(as_text=True)


def test_get_is_refused(webhook, ctx: Context) -> None:
    assert webhook.get("/", headers=headers()).status_code == 405
    assert ctx.queue.pending() == []  # type: ignore[attr-defined]


def test_sync_message_is_acknowledged_without_a_task(webhook, ctx: Context) -> None:
    assert webhook.post("/", headers=headers(Resource_State="sync")).status_code == 200
    assert ctx.queue.pending() == []  # type: ignore[attr-defined]


def test_a_burst_of_notifications_enqueues_one_push_sync(webhook, ctx: Context, spoke) -> None:
    for n in range(5):
        resp = webhook.post("/", headers=headers(Message_Number=str(n + 2),
                                                 Resource_State="not_exists" if n == 3 else "exists"))
        assert resp.status_code == 200
    assert [(t.spoke_id, t.reason) for t in ctx.queue.pending()] == [(spoke.id, "push")]  # type: ignore[attr-defined]


def test_the_sync_message_may_arrive_before_the_watch_call_returns(webhook, ctx: Context, spoke) -> None:
    ctx.store.put_channel(Channel(id="chan-new", spoke_id=spoke.id, resource_id="",
                                  token_hash=push.token_hash(TOKEN), expires_at=ctx.clock.now() + timedelta(days=1)))
    assert webhook.post("/", headers=headers(Channel_ID="chan-new", Resource_State="sync")).status_code == 200
    assert webhook.post("/", headers=headers(Channel_ID="chan-new")).status_code == 409
    assert ctx.queue.pending() == []  # type: ignore[attr-defined]


def test_the_webhook_module_imports_no_heavy_sdk() -> None:
    code = (
        "import sys, importlib.util; sys.path[:0] = ['shared', '.'];"
        "spec = importlib.util.spec_from_file_location('m', 'functions/push_webhook/main.py');"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "heavy = [n for n in sys.modules if n.split('.')[0] in ('googleapiclient', 'grpc', 'exchangelib', 'httplib2')"
        " or n.startswith('google.cloud.') or n.startswith('spokesync')];"
        "print(','.join(sorted(heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
