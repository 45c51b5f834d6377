"""Push channels: events.watch and channels.stop."""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from datetime import timedelta
from typing import Any

from spokesync.sandbox.google_calendar.common import (
    ApiError,
    Calendar,
    Channel,
    _b64,
)
from spokesync.sandbox.google_calendar.state import SandboxState


class ChannelsMixin(SandboxState):
    # ---------------------------------------------------------------- channels

    def _watch(self, cal: Calendar, body: dict[str, Any], user: str) -> dict[str, Any]:
        channel_id = str(body.get("id") or "")
        address = str(body.get("address") or "")
        if not channel_id or len(channel_id) > 64 or not re.match(r"^[A-Za-z0-9\-_+/=]+$", channel_id):
            raise ApiError(400, "invalid", "Invalid channel id.")
        if body.get("type") not in ("web_hook", "webhook"):
            raise ApiError(400, "invalid", "Invalid channel type.")
        scheme = urllib.parse.urlsplit(address).scheme
        # "Webhook: Delivers notifications via HTTPS" (push guide); Google answers
        # push.webhookUrlNotHttps otherwise. Plain http only by the explicit demo/test switch.
        if scheme != "https" and not (self.allow_http_webhooks and scheme == "http"):
            raise ApiError(400, "push.webhookUrlNotHttps", "WebHook callback must be HTTPS: " + address)
        token = body.get("token")
        if token is not None and len(str(token)) > 256:
            raise ApiError(400, "invalid", "Channel token too long.")
        if channel_id in self.channels and not self.channels[channel_id].stopped:
            raise ApiError(400, "channelIdNotUnique", "Channel id not unique.")
        try:
            ttl = int((body.get("params") or {}).get("ttl", self.default_channel_ttl_s))
        except ValueError as exc:
            raise ApiError(400, "invalid", "Invalid value for: params.ttl") from exc
        ttl = max(1, min(ttl, self.max_channel_ttl_s))
        expiration = int((self.clock() + timedelta(seconds=ttl)).timestamp() * 1000)
        resource_id = _b64(hashlib.sha256(f"events:{cal.id}".encode()).digest()[:18])
        channel = Channel(channel_id, cal.id, resource_id, address, token, expiration, user)
        self.channels[channel_id] = channel
        self._send(channel, "sync")
        out = {"kind": "api#channel", "id": channel_id, "resourceId": resource_id,
               "resourceUri": f"{self.base_url}calendar/v3/calendars/{urllib.parse.quote(cal.id, safe='')}/events?alt=json",
               "expiration": str(expiration)}
        if token is not None:
            out["token"] = token
        return out

    def _stop_channel(self, body: dict[str, Any], user: str) -> None:
        channel = self.channels.get(str(body.get("id") or ""))
        if channel is None or channel.stopped or channel.resource_id != body.get("resourceId"):
            raise ApiError(404, "notFound", f"Channel '{body.get('id')}' not found for project")
        channel.stopped = True

    def live_channels(self, calendar_id: str | None = None) -> list[Channel]:
        now_ms = int(self.clock().timestamp() * 1000)
        with self.lock:
            return [c for c in self.channels.values() if not c.stopped and c.expiration_ms > now_ms
                    and (calendar_id is None or c.calendar_id == calendar_id)]

