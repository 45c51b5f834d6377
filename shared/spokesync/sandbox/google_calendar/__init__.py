"""A stateful local Google Calendar API v3 server (tests and the demo mode).

The real google-api-python-client talks to it through the packaged discovery
document with `rootUrl` pointed here (see `spokesync.connectors.google.client`).
It answers what spokesync uses, with bodies shaped like the discovery
document's schemas and Google's error format:

- calendarList.list; events list (full and incremental from a per-calendar
  change log, paging, showDeleted, tombstones, iCalUID / privateExtendedProperty
  filters, 400 for parameters not allowed with syncToken, 410 on demand), get,
  insert (409 duplicate), patch / update (new etag, If-Match → 412), delete
  (410 when already deleted), instances (RRULE expansion, virtual instance
  ids `<id>_<YYYYMMDDTHHMMSSZ>` that can be patched and deleted), watch and
  channels.stop with notifications POSTed to the channel address, and the
  multipart batch endpoint;
- minimal OAuth 2.0: an authorization endpoint that redirects back with
  `code` and `state`, a token endpoint for authorization_code, refresh_token
  and the service-account JWT-bearer grant (`invalid_grant` once revoked);
- a Python API for tests: calendars, users, clients, service accounts,
  user-side edits that bypass the connector, fault injection (rate limits,
  5xx, 410, dropped and duplicated notifications), request counters and a
  notification log.

Modules: `common` (errors, time helpers, records), `state` (shared state,
notification delivery), `discovery` (request validation against the
discovery document), `events`, `channels`, `oauth`, `batch`, `server`
(dispatch, HTTP, `serve`).

Binds 127.0.0.1 only. Not a security boundary: it is a test double.
"""

from spokesync.sandbox.google_calendar.common import ApiError, Calendar, Channel, Fault, Stats
from spokesync.sandbox.google_calendar.server import GoogleCalendarSandbox, Running, add_demo_data, main, serve

__all__ = ["ApiError", "Calendar", "Channel", "Fault", "GoogleCalendarSandbox", "Running", "Stats", "add_demo_data",
           "main", "serve"]
