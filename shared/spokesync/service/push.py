"""Google Calendar push: open, renew and stop `events.watch` channels, and
accept the notifications the webhook receives.

A channel gets a random id and a random per-channel token. The hub store
keeps only the token's sha256 (the token is the notification's only
authentication); the webhook compares digests with `hmac.compare_digest`.
A notification is accepted only when channel id, token and resource id all
match a live channel: then `sync` is acknowledged and `exists` /
`not_exists` enqueue one sync task for the spoke (the queue coalesces
bursts). Bad input is answered 4xx, never 5xx (Google retries 5xx).

This module imports no Google SDK at load time: the webhook imports it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from spokesync.model.hub import Channel
from spokesync.ports import SyncTask

if TYPE_CHECKING:
    from spokesync.bootstrap import Context
    from spokesync.model.hub import Spoke

log = logging.getLogger("spokesync.push")

MAX_ID = 64
MAX_TOKEN = 256
STATES = ("sync", "exists", "not_exists")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ------------------------------------------------------------------ channels


def _connector(ctx: Context, spoke: Spoke) -> Any:
    connector = ctx.connector(spoke)
    if not hasattr(connector, "watch"):
        raise ValueError(f"spoke {spoke.name!r} cannot push changes")
    return connector


def open_channel(ctx: Context, spoke: Spoke, ttl_s: int | None = None) -> Channel:
    """Open a watch channel on the spoke's calendar and record it.

    The record is written before the watch call (without a resource id),
    because Google's `sync` message may arrive before the call returns.
    """
    address = ctx.config.webhook_url
    if not address:
        raise ValueError("SPOKESYNC_WEBHOOK_URL is not configured: push channels need a public HTTPS address")
    ttl = int(ttl_s if ttl_s is not None else ctx.config.google_channel_ttl_s)
    token = secrets.token_urlsafe(48)
    channel = Channel(id="spokesync-" + uuid.uuid4().hex, spoke_id=spoke.id, resource_id="",
                      token_hash=token_hash(token), expires_at=ctx.clock.now() + timedelta(seconds=ttl),
                      address=address)
    ctx.store.put_channel(channel)
    try:
        resource_id, expiration_ms = _connector(ctx, spoke).watch(channel.id, token, address, ttl)
    except BaseException:
        ctx.store.delete_channel(channel.id)
        raise
    expires = (datetime.fromtimestamp(expiration_ms / 1000, UTC) if expiration_ms
               else channel.expires_at)
    channel = Channel(id=channel.id, spoke_id=spoke.id, resource_id=resource_id, token_hash=channel.token_hash,
                      expires_at=expires, address=address)
    ctx.store.put_channel(channel)
    log.info("push channel opened", extra={"spoke_id": spoke.id, "channel_id": channel.id,
                                           "expires_at": expires.isoformat()})
    return channel


def on_spoke_added(ctx: Context, spoke: Spoke) -> Channel | None:
    """Open the first channel of a new Google spoke when a webhook address is configured."""
    if spoke.kind != "google" or not ctx.config.webhook_url:
        return None
    return open_channel(ctx, spoke)


def _stop(ctx: Context, spoke: Spoke | None, channel: Channel) -> None:
    if spoke is not None and channel.resource_id:
        try:
            _connector(ctx, spoke).stop_channel(channel.id, channel.resource_id)
        except Exception as exc:  # noqa: BLE001 - an unstoppable channel just expires
            log.warning("could not stop push channel", extra={"channel_id": channel.id, "error": type(exc).__name__})
    ctx.store.delete_channel(channel.id)


def stop_channels(ctx: Context, spoke: Spoke) -> int:
    """Stop every channel of a spoke (before it is removed)."""
    channels = ctx.store.list_channels(spoke.id)
    for channel in channels:
        _stop(ctx, spoke, channel)
    return len(channels)


@dataclass
class RenewalReport:
    opened: int = 0
    stopped: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"opened": self.opened, "stopped": self.stopped, "failed": self.failed}


def renew_channels(ctx: Context, now: datetime | None = None) -> RenewalReport:
    """The scheduler's entry point: give every Google spoke a live channel.

    A channel expiring within `google_channel_renew_before_s` is replaced with
    overlap: the new one is opened first, then the old one stopped. Spokes
    without any live channel (a failed opening, an expired one) get one too.
    """
    now = now or ctx.clock.now()
    horizon = now + timedelta(seconds=ctx.config.google_channel_renew_before_s)
    report = RenewalReport()
    if not ctx.config.webhook_url:
        return report
    for spoke in ctx.store.list_spokes():
        if spoke.kind != "google" or spoke.state in ("credential_broken",):
            continue
        channels = ctx.store.list_channels(spoke.id)
        fresh = [c for c in channels if c.expires_at > horizon and c.resource_id]
        if fresh:
            continue
        try:
            open_channel(ctx, spoke)
            report.opened += 1
        except Exception as exc:  # noqa: BLE001 - one spoke's failure must not stop the others
            report.failed += 1
            log.warning("could not open push channel", extra={"spoke_id": spoke.id, "error": type(exc).__name__})
            continue
        for old in channels:
            _stop(ctx, spoke, old)
            report.stopped += 1
    # Channels whose spoke is gone.
    for channel in ctx.store.list_channels(expiring_before=now):
        if ctx.store.get_spoke(channel.spoke_id) is None:
            ctx.store.delete_channel(channel.id)
    return report


# ------------------------------------------------------------------ notifications


@dataclass(frozen=True)
class Answer:
    status: int
    message: str
    enqueued: bool = False


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


def handle_notification(ctx: Context, headers: Mapping[str, str]) -> Answer:
    """Check one push notification and enqueue a sync for its spoke.

    Unknown, forged, mismatched or expired notifications get a 4xx and
    enqueue nothing; the answer never echoes what was sent.
    """
    channel_id = _header(headers, "X-Goog-Channel-ID")
    token = _header(headers, "X-Goog-Channel-Token")
    resource_id = _header(headers, "X-Goog-Resource-ID")
    state = _header(headers, "X-Goog-Resource-State")
    if not channel_id or not state or not resource_id:
        return Answer(400, "not a Google Calendar notification")
    if len(channel_id) > MAX_ID or (token is not None and len(token) > MAX_TOKEN) or len(resource_id) > 256:
        return Answer(400, "malformed notification")
    if state not in STATES:
        return Answer(400, "unknown resource state")
    channel = ctx.store.get_channel(channel_id)
    # Compare a digest even when the channel is unknown, so timing says nothing.
    expected = channel.token_hash if channel is not None else token_hash(secrets.token_hex(16))
    token_ok = hmac.compare_digest(token_hash(token or ""), expected) and token is not None
    if channel is None or not token_ok or channel.resource_id.startswith("graph:"):
        return Answer(403 if channel is not None else 404, "unknown channel")
    if channel.expires_at <= ctx.clock.now():
        return Answer(404, "channel expired")
    if channel.resource_id and not hmac.compare_digest(channel.resource_id.encode(), resource_id.encode()):
        return Answer(403, "resource mismatch")
    if state == "sync":
        return Answer(200, "ok")
    if not channel.resource_id:
        # Only the `sync` message can precede the watch call's answer.
        return Answer(409, "channel not yet open")
    spoke = ctx.store.get_spoke(channel.spoke_id)
    if spoke is None:
        return Answer(404, "unknown channel")
    enqueued = ctx.queue.enqueue(SyncTask(spoke.id, reason="push"))
    return Answer(200, "queued" if enqueued else "already queued", enqueued=enqueued)
