"""A stateful local Google People API v1 server (contacts; tests and the demo mode).

The real google-api-python-client talks to it through the packaged discovery
document (`people.v1.json`) with `rootUrl` pointed here. Every request is
validated against that document (`discovery`), then answered with the
behaviours listed, each with its source, in `server`'s module docstring:
connections.list with paging and sync tokens (7-day expiry,
`EXPIRED_SYNC_TOKEN`), batch create / update / delete with their limits,
etag preconditions, contact groups and memberships, clientData, photos, and
Google's error bodies. OAuth (refresh token, service-account JWT with or
without a delegation subject) is the Calendar sandbox's.

Binds 127.0.0.1 only. Not a security boundary: it is a test double.
"""

from spokesync.sandbox.google_people.server import GooglePeopleSandbox, PeopleError, Running, add_demo_data, main, serve

__all__ = ["GooglePeopleSandbox", "PeopleError", "Running", "add_demo_data", "main", "serve"]
