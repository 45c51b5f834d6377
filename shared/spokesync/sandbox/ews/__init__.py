"""A protocol-faithful local EWS server (stdlib HTTP + lxml) for tests and the demo mode."""

from __future__ import annotations

from spokesync.sandbox.ews.server import EwsServer, serve

__all__ = ["EwsServer", "serve"]
