"""A local Microsoft Graph v1.0 server (calendars, change notifications) and identity platform."""

from spokesync.sandbox.graph.server import GraphError, GraphServer

__all__ = ["GraphError", "GraphServer"]
