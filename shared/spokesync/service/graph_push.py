"""Microsoft 365 push: change-notification subscriptions per Graph spoke, and the notifications
the webhook receives (its route `/graph`, lifecycle notifications on `/graph/lifecycle`).

- A subscription gets a random `clientState` (the notification's only authentication); the hub
  store keeps its sha256 in a Channel record (id = subscription id, resource id "graph:<resource>"),
  never the secret itself. Every notification's clientState is compared digest against digest
  with `hmac.compare_digest`.
- Validation handshake: a POST with `?validationToken=...` is answered 200 `text/plain` with the
  token, at once (Graph allows 10 s), before anything else is looked at.
- A notification is accepted only when every entry names a live subscription of ours with the
  right clientState and the subscription's current expiration (an old notification replayed after
  a renewal carries the old one), and the same body was not accepted before by this instance.
  Then one sync task per spoke is enqueued (the queue coalesces bursts) and Graph gets 202.
  Anything else: 4xx, nothing enqueued, and the answer never echoes what was sent.
- Lifecycle notifications: `reauthorizationRequired` marks the subscription for renewal,
  `subscriptionRemoved` drops its record (the scheduler opens a new one), `missed` enqueues a
  sync; each also enqueues a sync, since changes may have gone unannounced. The webhook holds no
  Graph secret: renewals happen in the scheduler's job (`renew_subscriptions`).

Sources: "Receive change notifications through webhooks", "Reduce missing subscriptions and
change notifications" (learn.microsoft.com/graph/change-notifications-*).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from spokesync.model.hub import Channel
from spokesync.ports import SyncTask

if TYPE_CHECKING:
    from spokesync.bootstrap import Context
    from spokesync.model.hub import Spoke

log = logging.getLogger("spokesync.graph_push")

PREFIX = "graph:"
MAX_BODY = 256 * 1024
MAX_VALIDATION_TOKEN = 1024
MAX_ENTRIES = 1000
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
REAUTHORIZE = "#reauthorize"  # appended to a channel's address: renew at the next renewal job
_REPLAY_WINDOW_S = 3600.0
_seen: OrderedDict[str, float] = OrderedDict()
_seen_lock = threading.Lock()


def state_hash(client_state: str) -> str:
    return hashlib.sha256(client_state.encode()).hexdigest()


def notification_url(ctx: Context) -> str:
    return ctx.config.webhook_url.rstrip("/") + "/graph"


def lifecycle_url(ctx: Context) -> str:
    return ctx.config.webhook_url.rstrip("/") + "/graph/lifecycle"


# ------------------------------------------------------------------ subscriptions


def _graph(ctx: Context, spoke: Spoke) -> Any:
    return ctx.connector(spoke)


def open_subscription(ctx: Context, spoke: Spoke) -> Channel:
    if not ctx.config.webhook_url:
        raise ValueError("SPOKESYNC_WEBHOOK_URL is not configured: push notifications need a public HTTPS address")
    connector: Any = ctx.connector(spoke)
    client_state = secrets.token_urlsafe(64)[:120]  # Graph allows 128 characters
    expires = ctx.clock.now() + timedelta(seconds=ctx.config.graph_sub_ttl_s)
    sub_id, expires_at = connector.subscribe(notification_url(ctx), lifecycle_url(ctx), client_state, expires)
    channel = Channel(id=sub_id, spoke_id=spoke.id, resource_id=PREFIX + connector.target.calendar_path,
                      token_hash=state_hash(client_state), expires_at=expires_at, address=notification_url(ctx))
    ctx.store.put_channel(channel)
    log.info("graph subscription opened", extra={"spoke_id": spoke.id, "channel_id": sub_id,
                                                 "expires_at": expires_at.isoformat()})
    return channel


def stop_subscriptions(ctx: Context, spoke: Spoke) -> int:
    channels = [c for c in ctx.store.list_channels(spoke.id) if c.resource_id.startswith(PREFIX)]
    for channel in channels:
        try:
            _graph(ctx, spoke).unsubscribe(channel.id)
        except Exception as exc:  # noqa: BLE001 - an unremovable subscription just expires
            log.warning("could not delete a graph subscription", extra={"channel_id": channel.id,
                                                                       "error": type(exc).__name__})
        ctx.store.delete_channel(channel.id)
    return len(channels)


@dataclass
class RenewalReport:
    opened: int = 0
    renewed: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"opened": self.opened, "renewed": self.renewed, "failed": self.failed}


def renew_subscriptions(ctx: Context, now: datetime | None = None) -> RenewalReport:
    """The scheduler's job: every Graph spoke keeps one live subscription, renewed before it expires
    (and at once after a `reauthorizationRequired`, which marks it expiring)."""
    now = now or ctx.clock.now()
    horizon = now + timedelta(seconds=ctx.config.graph_sub_renew_before_s)
    report = RenewalReport()
    if not ctx.config.webhook_url:
        return report
    for spoke in ctx.store.list_spokes():
        if spoke.kind != "graph" or spoke.state == "credential_broken":
            continue
        channels = [c for c in ctx.store.list_channels(spoke.id) if c.resource_id.startswith(PREFIX)]
        try:
            live = [c for c in channels if c.expires_at > now]
            for channel in [c for c in channels if c.expires_at <= now]:
                ctx.store.delete_channel(channel.id)
            if not live:
                open_subscription(ctx, spoke)
                report.opened += 1
                continue
            for channel in live:
                if channel.expires_at > horizon and not channel.address.endswith(REAUTHORIZE):
                    continue
                expires = _graph(ctx, spoke).renew(channel.id, now + timedelta(
                    seconds=ctx.config.graph_sub_ttl_s))
                if expires is None:  # Graph no longer has it
                    ctx.store.delete_channel(channel.id)
                    open_subscription(ctx, spoke)
                    report.opened += 1
                else:
                    ctx.store.put_channel(Channel(channel.id, channel.spoke_id, channel.resource_id,
                                                  channel.token_hash, expires, channel.address.removesuffix(REAUTHORIZE)))
                    report.renewed += 1
        except Exception as exc:  # noqa: BLE001 - one spoke's failure must not stop the others
            report.failed += 1
            log.warning("could not renew a graph subscription", extra={"spoke_id": spoke.id,
                                                                      "error": type(exc).__name__})
    return report


# ------------------------------------------------------------------ notifications


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"
    enqueued: int = 0


def _replayed(digest: str) -> bool:
    now = time.monotonic()
    with _seen_lock:
        while _seen and next(iter(_seen.values())) < now - _REPLAY_WINDOW_S:
            _seen.popitem(last=False)
        if digest in _seen:
            return True
        _seen[digest] = now
        if len(_seen) > 10000:
            _seen.popitem(last=False)
        return False


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _check(ctx: Context, entry: Any) -> tuple[Channel | None, str]:
    """The entry's channel, or None and why it is refused."""
    if not isinstance(entry, dict):
        return None, "malformed notification"
    sub_id, state = entry.get("subscriptionId"), entry.get("clientState")
    if not isinstance(sub_id, str) or not sub_id or len(sub_id) > 64 or (state is not None and
                                                                         (not isinstance(state, str) or len(state) > 256)):
        return None, "malformed notification"
    channel = ctx.store.get_channel(sub_id)
    expected = channel.token_hash if channel is not None and channel.resource_id.startswith(PREFIX) \
        else state_hash(secrets.token_hex(16))  # compare anyway: timing says nothing
    if not hmac.compare_digest(state_hash(state or ""), expected) or state is None or channel is None:
        return None, "unknown subscription"
    if channel.expires_at <= ctx.clock.now():
        return None, "subscription expired"
    sent_expiry = _parse_time(entry.get("subscriptionExpirationDateTime"))
    if sent_expiry is None or abs((sent_expiry - channel.expires_at).total_seconds()) > 1:
        return None, "stale notification"
    return channel, ""


def handle(ctx: Context, query: Mapping[str, str], body: bytes, lifecycle: bool = False) -> Answer:
    """One POST to the webhook's Graph route (`lifecycle`: the lifecycle route)."""
    token = query.get("validationToken")
    if token is not None:
        if not token or len(token) > MAX_VALIDATION_TOKEN:
            return Answer(400, "bad validation request\n")
        return Answer(200, token)  # text/plain: the echo Graph expects, never rendered as HTML
    if len(body) > MAX_BODY:
        return Answer(413, "notification too large\n")
    try:
        payload = json.loads(body)
    except ValueError:
        return Answer(400, "not a Microsoft Graph notification\n")
    entries = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(entries, list) or not entries or len(entries) > MAX_ENTRIES:
        return Answer(400, "not a Microsoft Graph notification\n")
    checked: list[tuple[Channel, dict[str, Any]]] = []
    for entry in entries:
        channel, why = _check(ctx, entry)
        if channel is None:
            return Answer(403 if why in ("unknown subscription", "stale notification") else
                          (404 if why == "subscription expired" else 400), why + "\n")
        if lifecycle and entry.get("lifecycleEvent") not in LIFECYCLE_EVENTS:
            return Answer(400, "unknown lifecycle event\n")
        if not lifecycle and "lifecycleEvent" in entry:
            return Answer(400, "lifecycle notifications go to the lifecycle address\n")
        checked.append((channel, entry))
    if _replayed(hashlib.sha256(b"L" + body if lifecycle else b"N" + body).hexdigest()):
        return Answer(409, "notification already received\n")
    enqueued = 0
    for spoke_id in dict.fromkeys(c.spoke_id for c, _ in checked):
        if ctx.store.get_spoke(spoke_id) is None:
            continue
        enqueued += bool(ctx.queue.enqueue(SyncTask(spoke_id, reason="push")))
    if lifecycle:
        for channel, entry in checked:
            event = entry["lifecycleEvent"]
            if event == "subscriptionRemoved":
                ctx.store.delete_channel(channel.id)
            elif event == "reauthorizationRequired":
                # due for renewal: the scheduler's next renew job reauthorizes it (PATCH)
                ctx.store.put_channel(Channel(channel.id, channel.spoke_id, channel.resource_id, channel.token_hash,
                                              channel.expires_at, channel.address.removesuffix(REAUTHORIZE) + REAUTHORIZE))
            log.info("graph lifecycle notification", extra={"spoke_id": channel.spoke_id, "event": event})
    return Answer(202, "accepted\n", enqueued=enqueued)
