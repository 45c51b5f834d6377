"""A stateful local Microsoft Graph v1.0 server (calendars) with its identity platform, over https.

Driven by the real `msal` (token endpoint, tenant discovery) and plain `requests`. What it
models, with the source of each behaviour:

- Tokens (identity.py): client credentials with a secret or a certificate, AADSTS errors.
- Authorization: a token without the needed application permission gets 403
  `ErrorAccessDenied`; a mailbox outside the app's application access policy gets 403
  `ErrorAccessDenied` "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly
  AccessPolicy settings." (Exchange Online "Limiting application permissions to specific
  Exchange Online mailboxes", and "Role Based Access Control for Applications in Exchange Online").
- users/{id}/calendars, users/{id}/calendar, groups/{id}/calendar, events (POST, GET, PATCH,
  DELETE), events/{id}/instances, `calendarView/delta` (event: delta, v1.0: startDateTime and
  endDateTime required; `Prefer: odata.maxpagesize`; `@odata.nextLink` pages then an
  `@odata.deltaLink`; `@removed` entries; a delta token the server no longer has: 410
  `syncStateNotFound`, "Use delta query to track changes", section "Synchronization reset").
- Recurring series as Outlook stores them: a `seriesMaster` with `recurrence`, `occurrence`
  and `exception` instances (`seriesMasterId`, `originalStart`), cancelled occurrences deleted
  from the series and listed in the master's `cancelledOccurrences`
  ("OID.<master id>.<yyyy-mm-dd>"), exceptions through `$expand=exceptionOccurrences` (event
  resource type, v1.0). Changing an occurrence also changes the master's change key (Exchange
  keeps exceptions and deletions in the master item), and changing a series' recurrence or
  times drops its exceptions (Outlook: "all exceptions associated with this recurring
  appointment will be cancelled").
- `@odata.etag` / `changeKey`; `If-Match` with a stale etag: 412 `ErrorIrresolvableConflict`.
- `transactionId` on POST: a second create with the same id in the mailbox returns the first
  event instead of a duplicate (event resource type, "transactionId").
- `singleValueExtendedProperties` written with the event and read with
  `$expand=singleValueExtendedProperties($filter=id eq '...')` ("Get single-value extended property").
- `$batch` (JSON batching): at most 20 requests, answered in an order of the server's choosing.
- Throttling: 429 with `Retry-After` on demand, and always beyond 4 concurrent requests per
  mailbox ("Microsoft Graph throttling guidance", Outlook service limits: MailboxConcurrency).
- Invitations: creating or updating an event that has attendees sends them a meeting request;
  Graph has no way to suppress it. The server counts what it would have sent (`invitations`).
- Subscriptions (change notifications): validation handshake on `notificationUrl` and
  `lifecycleNotificationUrl` (`validationToken`, text/plain echo within 10 s), expiration at
  most 4230 minutes ahead for Outlook resources, notifications POSTed as
  `changeNotificationCollection`, lifecycle notifications `reauthorizationRequired`,
  `subscriptionRemoved`, `missed` ("Reduce missing subscriptions and change notifications").

- Contacts (contacts.py): contact folders, contacts, `contacts/delta`, photos, under the
  `Contacts.ReadWrite` (or, for reading, `Contacts.Read`) application permission.

Bodies are checked against the published API description (schema.py): requests always,
responses and outgoing notifications when `strict` (tests). Errors use Graph's OData error
format `{"error": {"code", "message", "innerError": {...}}}`.

Binds 127.0.0.1 only. It is a test double, not a security boundary.
"""

from __future__ import annotations

import collections
import copy
import json
import queue
import re
import secrets
import ssl
import threading
import time
import urllib.parse
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spokesync.sandbox.ews.tls import Certificates, make_certificates
from spokesync.sandbox.graph import schema
from spokesync.sandbox.graph.contacts import ContactFolder, ContactStore, Ct
from spokesync.sandbox.graph.identity import App, Issuer, Tenant, TokenError
from spokesync.sandbox.graph.recurrence import RecurrenceError, occurrence_dates

MAX_BATCH = 20
MAILBOX_CONCURRENCY = 4
MAX_OUTLOOK_SUBSCRIPTION_MINUTES = 4230
DEFAULT_DELTA_PAGE = 10
MAX_DELTA_PAGE = 1000
PS_PUBLIC_STRINGS = "00020329-0000-0000-c000-000000000046"
# Properties a client may not write (server-computed, per the event resource type).
READ_ONLY = {"id", "changeKey", "createdDateTime", "lastModifiedDateTime", "iCalUId", "type", "seriesMasterId",
             "originalStart", "isOrganizer", "webLink", "bodyPreview", "hasAttachments", "responseStatus",
             "isCancelled", "cancelledOccurrences", "exceptionOccurrences", "instances", "calendar",
             "onlineMeetingUrl", "uid"}
_STAMP = "%Y%m%dT%H%M%SZ"
_OCC = "_OID_"


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message,
                          "innerError": {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                                         "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())}}}


def not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


# ------------------------------------------------------------------ time zones


def zone(name: str | None) -> ZoneInfo:
    """A Graph time zone name: IANA or Windows (CLDR windowsZones, the table exchangelib ships)."""
    if not name or name.upper() in ("UTC", "Z"):
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

    iana = MS_TIMEZONE_TO_IANA_MAP.get(name)
    if iana is None:
        raise GraphError(400, "TimeZoneNotSupportedException",
                         f"A valid TimeZone value must be specified. The following TimeZone value is not supported: "
                         f"'{name}'.")
    return ZoneInfo(iana)


def parse_dtz(raw: dict[str, Any] | None, what: str) -> datetime:
    if not raw or not raw.get("dateTime"):
        raise GraphError(400, "ErrorInvalidRequest", f"Your request can't be completed. The {what} is required.")
    text = str(raw["dateTime"])
    try:
        value = datetime.fromisoformat(text[:26] if "." in text else text)
    except ValueError as exc:
        raise GraphError(400, "RequestBodyRead", f"Cannot convert the literal '{text}' to the expected type "
                                                 "'Edm.DateTimeOffset'.") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone(raw.get("timeZone")))
    return value


def fmt_dtz(value: datetime, tz_name: str) -> dict[str, str]:
    local = value.astimezone(zone(tz_name))
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": tz_name}


def stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime(_STAMP)


def iso_z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------ store


@dataclass
class Calendar:
    id: str
    name: str
    mailbox: Mailbox
    is_default: bool = False
    change_key: str = field(default_factory=lambda: secrets.token_urlsafe(12))


@dataclass
class Mailbox:
    id: str
    address: str
    kind: str  # "user" (a user or a shared mailbox) | "group"
    display_name: str
    calendars: dict[str, Calendar] = field(default_factory=dict)

    @property
    def default_calendar(self) -> Calendar:
        return next(c for c in self.calendars.values() if c.is_default)


@dataclass
class Ev:
    """A single event or a series master, with its series' exceptions and cancellations."""

    id: str
    calendar: Calendar
    props: dict[str, Any]  # writable properties as stored
    start: datetime  # aware, in the zone it was given in
    end: datetime
    start_tz: str
    end_tz: str
    all_day: bool
    created: datetime
    modified: datetime
    change_key: str
    ical_uid: str
    exceptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # stamp -> props incl. start/end
    cancelled: set[str] = field(default_factory=set)  # stamps
    deleted: bool = False

    @property
    def recurrence(self) -> dict[str, Any] | None:
        return self.props.get("recurrence")

    def touch(self, now: datetime) -> None:
        self.modified = now
        self.change_key = secrets.token_urlsafe(12)


@dataclass
class DeltaState:
    calendar: Calendar
    window: tuple[datetime, datetime]
    seq: int
    issued: float
    pending: list[dict[str, Any]] | None = None  # remaining items of a round (skip tokens)
    page_size: int = DEFAULT_DELTA_PAGE


@dataclass
class Subscription:
    id: str
    resource: str
    change_type: str
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires: datetime
    app_id: str
    tenant_id: str
    mailbox: Mailbox
    calendar: Calendar | None  # None: every calendar of the mailbox ("users/{id}/events")


class GraphServer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, tls: Certificates | None = None,
                 strict: bool = True) -> None:
        self.tls = tls or make_certificates((host,))
        self.strict = strict
        self.issuer = Issuer()
        self.mailboxes: dict[str, Mailbox] = {}
        self.events: dict[str, Ev] = {}
        self.log: list[tuple[int, str, str]] = []  # (seq, calendar id, event id)
        self.seq = 0
        self.delta_states: dict[str, DeltaState] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.contacts = ContactStore(self)
        self.invitations: collections.Counter[str] = collections.Counter()  # mailbox address -> meeting requests
        self.requests: collections.Counter[str] = collections.Counter()  # "graph", "batch", "token", "discovery"
        self.api_calls = 0  # Graph requests (a $batch counts once)
        self.event_writes = 0  # creates, updates and deletes of events (user edits included)
        self.without_immutable_ids = 0  # requests that did not say Prefer: IdType="ImmutableId"
        self.sub_requests = 0  # requests executed, batch members included
        self.response_violations: list[str] = []  # tests assert none
        self.delivery_status: list[int] = []  # HTTP status of each notification POST
        self.notifications: list[dict[str, Any]] = []  # every notification POSTed (for tests)
        self.throttles: list[tuple[int, int, float, str | None]] = []  # [remaining, status, retry_after, path part]
        self.drop_notifications = 0
        self.max_concurrency_seen: collections.Counter[str] = collections.Counter()
        self._inflight: collections.Counter[str] = collections.Counter()
        self._lock = threading.RLock()
        self._outbox: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        handler = type("Handler", (_Handler,), {"graph": self})
        self.httpd = _HTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert_path, self.tls.key_path)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"https://{host if isinstance(host, str) else host.decode()}:{port}"

    @property
    def authority_host(self) -> str:
        return self.base_url

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    @property
    def ca_path(self) -> str:
        return self.tls.ca_path

    def start(self) -> GraphServer:
        for target, name in ((self.httpd.serve_forever, "graph-sandbox"), (self._deliver, "graph-notify")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._outbox.put(None)
        self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    # ------------------------------------------------------------ test API
    def add_tenant(self, domain: str = "contoso.onmicrosoft.com", tenant_id: str | None = None) -> Tenant:
        tenant = Tenant(tenant_id or str(uuid.uuid4()), (domain,))
        self.issuer.tenants[tenant.id] = tenant
        return tenant

    def add_app(self, tenant: Tenant, client_id: str | None = None, *, secret: str | None = None,
                certificate_pem: str | None = None, roles: tuple[str, ...] = ("Calendars.ReadWrite",),
                allowed_mailboxes: tuple[str, ...] | None = None) -> App:
        app = App(client_id or str(uuid.uuid4()), roles=set(roles),
                  allowed_mailboxes=None if allowed_mailboxes is None else {m.lower() for m in allowed_mailboxes})
        if secret:
            app.secrets.add(secret)
        if certificate_pem:
            app.certificates.append(certificate_pem)
        tenant.apps[app.client_id] = app
        return app

    def add_mailbox(self, address: str, display_name: str = "", kind: str = "user") -> Mailbox:
        with self._lock:
            mailbox = Mailbox(str(uuid.uuid4()), address.lower(), kind, display_name or address)
            self.mailboxes[mailbox.id] = mailbox
            self._new_calendar(mailbox, "Calendar", default=True)
            return mailbox

    def add_calendar(self, mailbox: Mailbox, name: str) -> Calendar:
        with self._lock:
            return self._new_calendar(mailbox, name)

    def _new_calendar(self, mailbox: Mailbox, name: str, default: bool = False) -> Calendar:
        calendar = Calendar("AAMkAGcal" + secrets.token_urlsafe(18).replace("-", "A").replace("_", "B"), name,
                            mailbox, is_default=default)
        mailbox.calendars[calendar.id] = calendar
        return calendar

    def throttle(self, times: int = 1, status: int = 429, retry_after: float = 1, path_part: str | None = None) -> None:
        with self._lock:
            self.throttles.append((times, status, retry_after, path_part))

    def expire_delta_tokens(self) -> None:
        with self._lock:
            self.delta_states.clear()
            self.contacts.expire_tokens()

    # contacts (contacts.py), as a person would change them in Outlook
    def add_contact_folder(self, mailbox: Mailbox, name: str, parent: ContactFolder | None = None) -> ContactFolder:
        with self._lock:
            return self.contacts.add_folder(mailbox, name, parent)

    def contacts_in(self, folder: ContactFolder) -> list[Ct]:
        with self._lock:
            return self.contacts.live(folder)

    def user_create_contact(self, folder: ContactFolder, body: dict[str, Any]) -> str:
        with self._lock:
            return self.contacts.user_create(folder, body).id

    def user_edit_contact(self, contact_id: str, **props: Any) -> None:
        with self._lock:
            self.contacts.user_edit(contact_id, props)

    def user_delete_contact(self, contact_id: str) -> None:
        with self._lock:
            self.contacts.user_delete(contact_id)

    def user_edit(self, event_id: str, **props: Any) -> None:
        """An edit made in Outlook (bypassing the connector)."""
        with self._lock:
            self._patch(self._top(event_id.split(_OCC)[0]), event_id, props, None, user=True)

    def user_delete(self, event_id: str) -> None:
        with self._lock:
            master_id, _, occ = event_id.partition(_OCC)
            ev = self._top(master_id)
            self._delete(ev, occ or None)

    def user_create(self, calendar: Calendar, body: dict[str, Any]) -> str:
        with self._lock:
            return self._create(calendar, copy.deepcopy(body))[0].id

    def events_in(self, calendar: Calendar) -> list[Ev]:
        with self._lock:
            return [e for e in self.events.values() if e.calendar is calendar and not e.deleted]

    def lifecycle(self, subscription_id: str, event: str) -> None:
        """Send a lifecycle notification (reauthorizationRequired, subscriptionRemoved, missed)."""
        with self._lock:
            sub = self.subscriptions[subscription_id]
            if event == "subscriptionRemoved":
                del self.subscriptions[subscription_id]
            body = {"value": [{"subscriptionId": sub.id, "subscriptionExpirationDateTime": iso_z(sub.expires),
                               "tenantId": sub.tenant_id, "clientState": sub.client_state, "lifecycleEvent": event,
                               "resource": sub.resource, "changeType": "updated"}]}
            if sub.lifecycle_url:
                self._outbox.put((sub.lifecycle_url, body))

    # ------------------------------------------------------------ notifications
    def _deliver(self) -> None:
        while True:
            job = self._outbox.get()
            if job is None:
                self._outbox.task_done()
                return
            try:
                self._post(*job)
            finally:
                self._outbox.task_done()

    def wait_notifications(self) -> None:
        """Block until every notification queued so far has been delivered (or dropped)."""
        self._outbox.join()

    def _post(self, url: str, body: dict[str, Any]) -> None:
        import requests

        if self.strict:
            try:
                schema.validate(body, "microsoft.graph.changeNotificationCollection", request=False)
            except schema.SchemaViolation as exc:
                self.response_violations.append(f"notification: {exc}")
        with self._lock:
            self.notifications.append(body)
            if self.drop_notifications > 0:
                self.drop_notifications -= 1
                return
        with suppress(requests.RequestException):
            resp = requests.post(url, json=body, timeout=10)
            self.delivery_status.append(resp.status_code)

    def _notify(self, ev: Ev, change: str) -> None:
        now = datetime.now(UTC)
        for sub in list(self.subscriptions.values()):
            if sub.expires <= now or sub.mailbox is not ev.calendar.mailbox:
                continue
            if sub.calendar is not None and sub.calendar is not ev.calendar:
                continue
            if change not in sub.change_type.split(","):
                continue
            root = "Users" if sub.mailbox.kind == "user" else "Groups"
            resource = f"{root}/{sub.mailbox.id}/Events/{ev.id}"
            item = {"subscriptionId": sub.id, "subscriptionExpirationDateTime": iso_z(sub.expires),
                    "changeType": change, "resource": resource, "tenantId": sub.tenant_id,
                    "clientState": sub.client_state,
                    "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource,
                                     "@odata.etag": f'W/"{ev.change_key}"', "id": ev.id}}
            self._outbox.put((sub.notification_url, {"value": [item]}))

    # ------------------------------------------------------------ events: core
    def _top(self, event_id: str) -> Ev:
        ev = self.events.get(event_id)
        if ev is None or ev.deleted:
            raise not_found()
        return ev

    def _log(self, ev: Ev, change: str) -> None:
        self.seq += 1
        self.log.append((self.seq, ev.calendar.id, ev.id))
        self._notify(ev, change)

    def _invite(self, ev: Ev, props: dict[str, Any]) -> None:
        attendees = props.get("attendees") or []
        if attendees:
            self.invitations[ev.calendar.mailbox.address] += len(attendees)

    def _apply_times(self, ev: Ev, body: dict[str, Any]) -> None:
        if "start" in body:
            ev.start = parse_dtz(body["start"], "start time")
            ev.start_tz = body["start"].get("timeZone") or "UTC"
        if "end" in body:
            ev.end = parse_dtz(body["end"], "end time")
            ev.end_tz = body["end"].get("timeZone") or "UTC"
        if "isAllDay" in body:
            ev.all_day = bool(body["isAllDay"])
        if ev.end < ev.start:
            raise GraphError(400, "ErrorInvalidRequest", "Your request can't be completed. The end time must be "
                                                         "after the start time.")
        if ev.all_day:
            for value in (ev.start, ev.end):
                if value.timetz().replace(tzinfo=None) != dtime(0):
                    raise GraphError(400, "ErrorInvalidRequest",
                                     "Your request can't be completed. If the event is an all-day event, the start "
                                     "and end time must be set to midnight and be in the same time zone.")

    def _check_recurrence(self, recurrence: dict[str, Any] | None) -> None:
        if recurrence is None:
            return
        try:
            occurrence_dates(recurrence, until=date.fromisoformat(recurrence["range"]["startDate"]))
        except (RecurrenceError, KeyError, TypeError, ValueError) as exc:
            raise GraphError(400, "ErrorPropertyValidationFailure" if isinstance(exc, RecurrenceError)
                             else "ErrorInvalidRequest", f"Your request can't be completed. {exc}") from exc

    def _create(self, calendar: Calendar, body: dict[str, Any]) -> tuple[Ev, bool]:
        transaction = body.get("transactionId")
        if transaction:
            for other in self.events.values():
                if other.calendar.mailbox is calendar.mailbox and other.props.get("transactionId") == transaction \
                        and not other.deleted:
                    return other, False
        for key in READ_ONLY & set(body):
            body.pop(key)
        now = datetime.now(UTC)
        start = parse_dtz(body.get("start"), "start time")
        end = parse_dtz(body.get("end"), "end time")
        ev = Ev(id="AAMkAGev" + secrets.token_urlsafe(24).replace("-", "A").replace("_", "B"), calendar=calendar,
                props={}, start=start, end=end, start_tz=body["start"].get("timeZone") or "UTC",
                end_tz=body["end"].get("timeZone") or "UTC", all_day=bool(body.get("isAllDay")), created=now,
                modified=now, change_key=secrets.token_urlsafe(12), ical_uid="040000008200E00074C5B7101A82E008" +
                secrets.token_hex(28).upper())
        self._apply_times(ev, body)
        self._check_recurrence(body.get("recurrence"))
        self._store_props(ev.props, body)
        self.events[ev.id] = ev
        self.event_writes += 1
        self._invite(ev, ev.props)
        self._log(ev, "created")
        return ev, True

    def _store_props(self, target: dict[str, Any], body: dict[str, Any]) -> None:
        for key, value in body.items():
            if key in ("start", "end", "isAllDay") or key.startswith("@"):
                continue
            if key == "singleValueExtendedProperties":
                current = {p["id"].lower(): p for p in target.get(key, [])}
                for prop in value or []:
                    current[prop["id"].lower()] = {"id": _normal_prop_id(prop["id"]), "value": prop.get("value")}
                target[key] = list(current.values())
            else:
                target[key] = copy.deepcopy(value)

    def _patch(self, ev: Ev, event_id: str, body: dict[str, Any], if_match: str | None, user: bool = False) -> Ev:
        if if_match and if_match != "*" and if_match.strip() != f'W/"{ev.change_key}"':
            raise GraphError(412, "ErrorIrresolvableConflict",
                             "The change key passed in the request does not match the current change key for the item.")
        for key in READ_ONLY & set(body):
            body.pop(key)
        now = datetime.now(UTC)
        _, _, occ = event_id.partition(_OCC)
        if occ:
            if ev.recurrence is None or occ not in self._instance_stamps(ev) or occ in ev.cancelled:
                raise not_found()
            exc = ev.exceptions.setdefault(occ, {})
            original = datetime.strptime(occ, _STAMP).replace(tzinfo=UTC)
            shadow = Ev(ev.id, ev.calendar, {}, parse_dtz(exc["start"], "start") if "start" in exc else original,
                        parse_dtz(exc["end"], "end") if "end" in exc else original + (ev.end - ev.start),
                        ev.start_tz, ev.end_tz, ev.all_day, ev.created, now, "", "")
            self._apply_times(shadow, body)
            self._store_props(exc, body)
            exc["start"] = fmt_dtz(shadow.start, shadow.start_tz)
            exc["end"] = fmt_dtz(shadow.end, shadow.end_tz)
            exc["_modified"] = now.isoformat()
            exc["_change_key"] = secrets.token_urlsafe(12)
        else:
            old_times = (ev.start, ev.end, json.dumps(ev.recurrence, sort_keys=True))
            self._apply_times(ev, body)
            if "recurrence" in body:
                self._check_recurrence(body.get("recurrence"))
            self._store_props(ev.props, body)
            if ev.recurrence is None or old_times != (ev.start, ev.end, json.dumps(ev.recurrence, sort_keys=True)):
                ev.exceptions.clear()
                ev.cancelled.clear()
        ev.touch(now)
        self.event_writes += 1
        self._invite(ev, ev.props if not occ else {**ev.props, **ev.exceptions[occ]})
        self._log(ev, "updated")
        return ev

    def _delete(self, ev: Ev, occ: str | None, if_match: str | None = None) -> None:
        self.event_writes += 1
        if occ:
            if ev.recurrence is None or occ not in self._instance_stamps(ev) or occ in ev.cancelled:
                raise not_found()
            ev.cancelled.add(occ)
            ev.exceptions.pop(occ, None)
            ev.touch(datetime.now(UTC))
            self._log(ev, "updated")
            return
        if if_match and if_match != "*" and if_match.strip() != f'W/"{ev.change_key}"':
            raise GraphError(412, "ErrorIrresolvableConflict",
                             "The change key passed in the request does not match the current change key for the item.")
        ev.deleted = True
        ev.touch(datetime.now(UTC))
        self._log(ev, "deleted")

    # ------------------------------------------------------------ series
    def _pattern_starts(self, ev: Ev, until: datetime | None = None) -> list[datetime]:
        recurrence = ev.recurrence or {}
        tz = zone((recurrence.get("range") or {}).get("recurrenceTimeZone") or ev.start_tz)
        local = ev.start.astimezone(tz)
        limit = (until.astimezone(tz).date() + timedelta(days=1)) if until else None
        days = occurrence_dates(recurrence, until=limit)
        return [datetime.combine(d, local.timetz().replace(tzinfo=None), tz) for d in days]

    def _instance_stamps(self, ev: Ev) -> set[str]:
        return {stamp(s) for s in self._pattern_starts(ev)}

    def _instances(self, ev: Ev, window: tuple[datetime, datetime] | None) -> list[tuple[str, datetime, datetime]]:
        """(stamp, start, end) of each live instance of a series overlapping `window`."""
        out = []
        duration = ev.end - ev.start
        for original in self._pattern_starts(ev, window[1] if window else None):
            key = stamp(original)
            if key in ev.cancelled:
                continue
            exc = ev.exceptions.get(key)
            start = parse_dtz(exc["start"], "start") if exc and "start" in exc else original
            end = parse_dtz(exc["end"], "end") if exc and "end" in exc else original + duration
            if window is None or (start < window[1] and end > window[0]) or (start == end and window[0] <= start
                                                                                < window[1]):
                out.append((key, start, end))
        return out

    def _overlaps(self, ev: Ev, window: tuple[datetime, datetime]) -> bool:
        if ev.all_day:
            start = datetime.combine(ev.start.date(), dtime(0), UTC)
            end = datetime.combine(ev.end.date(), dtime(0), UTC)
            return start < window[1] + timedelta(hours=14) and end > window[0] - timedelta(hours=14)
        return ev.start < window[1] and ev.end > window[0]

    # ------------------------------------------------------------ rendering
    def render(self, ev: Ev, tz_name: str = "UTC", occ: str | None = None, select: set[str] | None = None,
               expand: dict[str, set[str] | None] | None = None) -> dict[str, Any]:
        props = dict(ev.props)
        start, end, start_tz, end_tz = ev.start, ev.end, ev.start_tz, ev.end_tz
        kind = "singleInstance" if ev.recurrence is None else "seriesMaster"
        change_key, modified = ev.change_key, ev.modified
        event_id = ev.id
        extra: dict[str, Any] = {}
        if occ:
            exc = ev.exceptions.get(occ)
            original = datetime.strptime(occ, _STAMP).replace(tzinfo=UTC)
            start, end = original, original + (ev.end - ev.start)
            kind = "occurrence"
            if exc:
                kind = "exception"
                props.update({k: v for k, v in exc.items() if not k.startswith("_") and k not in ("start", "end")})
                start, end = parse_dtz(exc["start"], "start"), parse_dtz(exc["end"], "end")
                change_key, modified = exc["_change_key"], datetime.fromisoformat(exc["_modified"])
            props["recurrence"] = None
            event_id = f"{ev.id}{_OCC}{occ}"
            extra = {"seriesMasterId": ev.id, "originalStart": iso_z(original)}
        body = props.pop("body", None) or {"contentType": "text", "content": ""}
        extended = props.pop("singleValueExtendedProperties", [])
        out: dict[str, Any] = {
            "@odata.etag": f'W/"{change_key}"', "id": event_id,
            "createdDateTime": ev.created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "lastModifiedDateTime": modified.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "changeKey": change_key,
            "categories": props.pop("categories", []), "transactionId": props.pop("transactionId", None),
            "originalStartTimeZone": start_tz, "originalEndTimeZone": end_tz, "iCalUId": ev.ical_uid,
            "reminderMinutesBeforeStart": props.pop("reminderMinutesBeforeStart", 15),
            "isReminderOn": props.pop("isReminderOn", True), "hasAttachments": False,
            "subject": props.pop("subject", ""), "bodyPreview": _preview(body.get("content") or ""),
            "importance": props.pop("importance", "normal"), "sensitivity": props.pop("sensitivity", "normal"),
            "isAllDay": ev.all_day, "isCancelled": False, "isOrganizer": True,
            "responseRequested": props.pop("responseRequested", True), "seriesMasterId": None,
            "showAs": props.pop("showAs", "busy"), "type": kind,
            "webLink": f"https://outlook.office365.com/owa/?itemid={urllib.parse.quote(event_id)}&exvsurl=1",
            "onlineMeetingUrl": None, "isOnlineMeeting": False, "onlineMeetingProvider": "unknown",
            "allowNewTimeProposals": True, "isDraft": False, "hideAttendees": False,
            "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
            "body": body,
            "start": self._render_time(start, ev.all_day, tz_name), "end": self._render_time(end, ev.all_day, tz_name),
            "location": props.pop("location", {"displayName": "", "locationType": "default",
                                               "uniqueIdType": "unknown"}),
            "locations": props.pop("locations", []), "recurrence": props.pop("recurrence", None),
            "attendees": props.pop("attendees", []),
            "organizer": {"emailAddress": {"name": ev.calendar.mailbox.display_name,
                                           "address": ev.calendar.mailbox.address}},
            "onlineMeeting": None,
        }
        out.update(extra)
        for key, value in props.items():
            out.setdefault(key, value)
        if select:
            keep = select | {"id", "@odata.etag"}
            out = {k: v for k, v in out.items() if k in keep}
            if "cancelledOccurrences" in select and kind == "seriesMaster":
                out["cancelledOccurrences"] = sorted(
                    f"OID.{ev.id}.{datetime.strptime(s, _STAMP).replace(tzinfo=UTC).astimezone(zone(ev.start_tz)).date().isoformat()}"
                    for s in ev.cancelled)
        expand = expand or {}
        if "singleValueExtendedProperties" in expand:
            wanted = expand["singleValueExtendedProperties"]
            if not occ or kind == "exception":
                props_out = [p for p in extended if wanted is None or p["id"].lower() in wanted]
                if props_out:
                    out["singleValueExtendedProperties"] = props_out
        if "exceptionOccurrences" in expand and kind == "seriesMaster":
            out["exceptionOccurrences"] = [self.render(ev, tz_name, occ=s) for s in sorted(ev.exceptions)
                                           if s not in ev.cancelled]
        return out

    def _render_time(self, value: datetime, all_day: bool, tz_name: str) -> dict[str, str]:
        if all_day:  # floating midnight: the same date whatever zone the client asks for
            return {"dateTime": value.strftime("%Y-%m-%dT00:00:00.0000000"), "timeZone": tz_name}
        return fmt_dtz(value, tz_name)

    # ------------------------------------------------------------ delta
    def _delta_items(self, state: DeltaState, since: int | None) -> list[dict[str, Any]]:
        calendar, window = state.calendar, state.window
        if since is None:
            touched = [e for e in self.events.values() if e.calendar is calendar and not e.deleted]
        else:
            ids = dict.fromkeys(eid for seq, cid, eid in self.log if seq > since and cid == calendar.id)
            touched = [self.events[i] for i in ids]
        items: list[dict[str, Any]] = []
        for ev in touched:
            if ev.deleted:
                if since is not None:
                    items.append(_removed(ev.id))
                continue
            if ev.recurrence is None:
                if self._overlaps(ev, window):
                    items.append(self.render(ev))
                elif since is not None:
                    items.append(_removed(ev.id))
                continue
            instances = self._instances(ev, window)
            if not instances:
                if since is not None:
                    items.append(_removed(ev.id))
                continue
            items.append(self.render(ev))
            items.extend(self.render(ev, occ=s) for s, _, _ in instances)
            if since is not None:
                items.extend(_removed(f"{ev.id}{_OCC}{s}") for s in sorted(ev.cancelled))
        return items

    def delta(self, calendar: Calendar, query: dict[str, str], prefer: dict[str, str], base: str) -> dict[str, Any]:
        page_size = DEFAULT_DELTA_PAGE
        if "odata.maxpagesize" in prefer:
            with suppress(ValueError):
                page_size = max(1, min(MAX_DELTA_PAGE, int(prefer["odata.maxpagesize"])))
        if "$skiptoken" in query or "$deltatoken" in query:
            token = query.get("$skiptoken") or query.get("$deltatoken") or ""
            state = self.delta_states.get(token)
            if state is None or state.calendar is not calendar:
                raise GraphError(410, "syncStateNotFound", "The sync state generation is not found. The delta token "
                                                           "is expired and data must be synchronized again.")
            if "$deltatoken" in query:
                state = DeltaState(calendar, state.window, self.seq, time.time(), page_size=page_size)
                state.pending = self._delta_items(self.delta_states[token], self.delta_states[token].seq)
        else:
            if not query.get("startDateTime") or not query.get("endDateTime"):
                raise GraphError(400, "ErrorInvalidParameter", "This request requires a time window specified by the "
                                 "query string parameters StartDateTime and EndDateTime.")
            try:
                window = (_parse_query_time(query["startDateTime"]), _parse_query_time(query["endDateTime"]))
            except ValueError as exc:
                raise GraphError(400, "ErrorInvalidParameter", "The value of the parameter StartDateTime or "
                                 "EndDateTime is not valid.") from exc
            state = DeltaState(calendar, window, self.seq, time.time(), page_size=page_size)
            state.pending = self._delta_items(state, None)
        pending = state.pending or []
        page, rest = pending[:state.page_size], pending[state.page_size:]
        out: dict[str, Any] = {"@odata.context": f"{base}/$metadata#Collection(event)", "value": page}
        if rest:
            token = secrets.token_urlsafe(24)
            self.delta_states[token] = DeltaState(calendar, state.window, state.seq, time.time(), rest, state.page_size)
            out["@odata.nextLink"] = f"{base}/{_calendar_path(calendar)}/calendarView/delta?$skiptoken={token}"
        else:
            token = secrets.token_urlsafe(24)
            self.delta_states[token] = DeltaState(calendar, state.window, state.seq, time.time())
            out["@odata.deltaLink"] = f"{base}/{_calendar_path(calendar)}/calendarView/delta?$deltatoken={token}"
        return out

    # ------------------------------------------------------------ request handling
    def authorize(self, headers: dict[str, str]) -> dict[str, Any]:
        auth = headers.get("authorization", "")
        if not auth:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        if not auth.lower().startswith("bearer "):
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
        claims = self.issuer.claims(auth[7:].strip())
        if claims is None:
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Lifetime validation failed, the token is expired." if _expired(auth[7:])
                             else "Access token validation failure. Invalid audience.")
        return claims

    def _mailbox(self, kind: str, ref: str, claims: dict[str, Any], write: bool, area: str = "Calendars") -> Mailbox:
        ref_l = urllib.parse.unquote(ref).lower()
        mailbox = next((m for m in self.mailboxes.values() if m.kind == kind and ref_l in (m.id.lower(), m.address)),
                       None)
        roles = set(claims.get("roles") or [])
        if kind == "group":
            if not roles & {"Group.ReadWrite.All"} and not (not write and "Group.Read.All" in roles):
                raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
            if mailbox is None:
                raise GraphError(404, "Request_ResourceNotFound", f"Resource '{ref}' does not exist or one of its "
                                 "queried reference-property objects are not present.")
        else:
            if f"{area}.ReadWrite" not in roles and not (not write and f"{area}.Read" in roles):
                raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
            if mailbox is None:
                raise GraphError(404, "ErrorInvalidUser", f"The requested user '{urllib.parse.unquote(ref)}' is "
                                                          "invalid.")
        tenant = self.issuer.tenants.get(str(claims.get("tid")))
        app = tenant.apps.get(str(claims.get("appid"))) if tenant else None
        if app is not None and app.allowed_mailboxes is not None and mailbox.address not in app.allowed_mailboxes:
            raise GraphError(403, "ErrorAccessDenied", "Access to OData is disabled: [RAOP] : Blocked by tenant "
                                                       "configured AppOnly AccessPolicy settings.")
        return mailbox

    def _throttled(self, path: str) -> GraphError | None:
        for index, (times, status, retry_after, part) in enumerate(self.throttles):
            if part is None or part in path:
                if times <= 1:
                    self.throttles.pop(index)
                else:
                    self.throttles[index] = (times - 1, status, retry_after, part)
                code, message = ("ApplicationThrottled", "Application is over its IncomingBytes limit.") \
                    if status == 429 else ("ServiceUnavailable", "The service is temporarily unavailable.")
                return GraphError(status, code, message, {"Retry-After": str(int(retry_after) if retry_after >= 1
                                                                                  else retry_after)})
        return None

    def handle(self, method: str, target: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        """One Graph request (top level or inside $batch): (status, headers, JSON body or None)."""
        headers = {k.lower(): v for k, v in headers.items()}
        parsed = urllib.parse.urlsplit(target)
        path = urllib.parse.unquote(parsed.path)
        path = path[len("/v1.0"):] if path.startswith("/v1.0") else path
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        if 'idtype="immutableid"' not in headers.get("prefer", "").lower():
            self.without_immutable_ids += 1  # Outlook ids then change when an item moves (immutable identifiers)
        try:
            with self._lock:
                self.sub_requests += 1
                throttled = self._throttled(path)
                if throttled is not None:
                    raise throttled
                claims = self.authorize(headers)
                status, out_headers, out = self._route(method, path, query, headers, body, claims)
            if self.strict and out is not None and status < 300:
                try:
                    self._check_response(path, method, out)
                except schema.SchemaViolation as exc:  # the sandbox drifted from the published description
                    self.response_violations.append(str(exc))
                    return 500, {"Content-Type": "application/json"}, GraphError(
                        500, "InternalServerError", f"sandbox response violates the Graph schema: {exc}").body()
            return status, out_headers, out
        except GraphError as exc:
            return exc.status, {"Content-Type": "application/json", **exc.headers}, exc.body()
        except schema.SchemaViolation as exc:
            return 400, {"Content-Type": "application/json"}, GraphError(400, "RequestBodyRead", exc.message).body()

    def _check_response(self, path: str, method: str, out: dict[str, Any]) -> None:
        if "/contactFolders" in path:
            ContactStore.check_response(path, method, out)
        elif path.endswith("/calendarView/delta") or path.endswith("/instances") or (
                path.endswith("/events") and method == "GET"):
            for item in out["value"]:
                if "@removed" not in item:
                    schema.validate(item, "microsoft.graph.event", request=False)
        elif "/events" in path and method != "DELETE":
            schema.validate(out, "microsoft.graph.event", request=False)
        elif path.startswith("/subscriptions"):
            schema.validate(out, "microsoft.graph.subscription", request=False)
        elif path.endswith("/calendars"):
            for item in out["value"]:
                schema.validate(item, "microsoft.graph.calendar", request=False)
        elif path.endswith("/calendar"):
            schema.validate(out, "microsoft.graph.calendar", request=False)

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any,
               claims: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        json_h = {"Content-Type": "application/json; odata.metadata=minimal"}
        parts = [p for p in path.split("/") if p]
        prefer = _prefer(headers.get("prefer", ""))
        tz_name = prefer.get("outlook.timezone", "UTC")
        zone(tz_name)
        base = self.graph_url
        if parts[:1] == ["subscriptions"]:
            return self._subscriptions(method, parts, body, claims)
        if len(parts) < 2 or parts[0] not in ("users", "groups"):
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{parts[0] if parts else ''}'.")
        kind = "user" if parts[0] == "users" else "group"
        write = method != "GET"
        contacts = kind == "user" and parts[2:3] == ["contactFolders"]
        mailbox = self._mailbox(kind, parts[1], claims, write, "Contacts" if contacts else "Calendars")
        rest = parts[2:]
        if contacts:
            raw = body if isinstance(body, bytes) else b""
            return self.contacts.route(method, rest, query, headers, None if isinstance(body, bytes) else body, raw,
                                       mailbox, base)
        if not rest and method == "GET":
            if kind == "user":
                return 200, json_h, {"id": mailbox.id, "displayName": mailbox.display_name, "mail": mailbox.address,
                                     "userPrincipalName": mailbox.address}
            return 200, json_h, {"id": mailbox.id, "displayName": mailbox.display_name, "mail": mailbox.address,
                                 "groupTypes": ["Unified"], "mailEnabled": True, "securityEnabled": False}
        calendar: Calendar | None = None
        if rest[:1] == ["calendars"] and kind == "user":
            if len(rest) == 1:
                if method != "GET":
                    raise GraphError(405, "ErrorInvalidRequest", "The OData request is not supported.")
                return 200, json_h, {"value": [self._render_calendar(c) for c in mailbox.calendars.values()]}
            calendar = mailbox.calendars.get(rest[1])
            if calendar is None:
                raise not_found()
            rest = rest[2:]
        elif rest[:1] == ["calendar"]:
            calendar = mailbox.default_calendar
            rest = rest[1:]
        if calendar is not None and not rest:
            return 200, json_h, self._render_calendar(calendar)
        if calendar is not None and rest == ["calendarView", "delta"] and method == "GET":
            applied = {"Preference-Applied": f"odata.maxpagesize={prefer['odata.maxpagesize']}"} \
                if "odata.maxpagesize" in prefer else {}
            return 200, {**json_h, **applied}, self.delta(calendar, query, prefer, base)
        if rest[:1] != ["events"]:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[0] if rest else ''}'.")
        if len(rest) == 1 and method == "GET":
            return 200, json_h, self._list_events(calendar or mailbox.default_calendar, query, prefer, tz_name,
                                                  f"{base}{path}")
        if len(rest) == 1:
            if method != "POST":
                raise GraphError(405, "ErrorInvalidRequest", "The OData request is not supported.")
            if not isinstance(body, dict):
                raise GraphError(400, "RequestBodyRead", "Empty Payload. JSON content expected.")
            schema.validate(body, "microsoft.graph.event")
            ev, _ = self._create(calendar or mailbox.default_calendar, copy.deepcopy(body))
            return 201, json_h, self.render(ev, tz_name, expand={"singleValueExtendedProperties": None}
                                            if body.get("singleValueExtendedProperties") else None)
        event_id = rest[1]
        master_id, _, occ = event_id.partition(_OCC)
        ev = self._top(master_id)
        if ev.calendar.mailbox is not mailbox or (calendar is not None and ev.calendar is not calendar):
            raise not_found()
        if occ and (ev.recurrence is None or occ not in self._instance_stamps(ev) or occ in ev.cancelled):
            raise not_found()
        if len(rest) == 3 and rest[2] == "instances" and method == "GET":
            if not query.get("startDateTime") or not query.get("endDateTime"):
                raise GraphError(400, "ErrorInvalidParameter", "This request requires a time window specified by the "
                                 "query string parameters StartDateTime and EndDateTime.")
            window = (_parse_query_time(query["startDateTime"]), _parse_query_time(query["endDateTime"]))
            if ev.recurrence is None:
                return 200, json_h, {"value": []}
            return 200, json_h, {"value": [self.render(ev, tz_name, occ=s) for s, _, _ in self._instances(ev, window)]}
        if len(rest) != 2:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[2]}'.")
        if method == "GET":
            select = {s.strip() for s in query["$select"].split(",")} if query.get("$select") else None
            return 200, json_h, self.render(ev, tz_name, occ or None, select, _parse_expand(query.get("$expand", "")))
        if method == "PATCH":
            if not isinstance(body, dict):
                raise GraphError(400, "RequestBodyRead", "Empty Payload. JSON content expected.")
            schema.validate(body, "microsoft.graph.event")
            self._patch(ev, event_id, copy.deepcopy(body), headers.get("if-match"))
            expand: dict[str, set[str] | None] | None = {"singleValueExtendedProperties": None} \
                if body.get("singleValueExtendedProperties") else None
            return 200, json_h, self.render(ev, tz_name, occ or None, expand=expand)
        if method == "DELETE":
            self._delete(ev, occ or None, headers.get("if-match"))
            return 204, {}, None
        raise GraphError(405, "ErrorInvalidRequest", "The OData request is not supported.")

    def _list_events(self, calendar: Calendar, query: dict[str, str], prefer: dict[str, str], tz_name: str,
                     url: str) -> dict[str, Any]:
        """GET .../events: single events and series masters (never occurrences), paged with $top/$skip."""
        top = int(query.get("$top") or prefer.get("odata.maxpagesize") or 10)
        if not 1 <= top <= 1000:
            raise GraphError(400, "ErrorInvalidParameter", "The value of $top must be between 1 and 1000.")
        skip = int(query.get("$skip") or 0)
        select = {s.strip() for s in query["$select"].split(",")} if query.get("$select") else None
        expand = _parse_expand(query.get("$expand", ""))
        events = sorted((e for e in self.events.values() if e.calendar is calendar and not e.deleted),
                        key=lambda e: (e.created, e.id))
        page = events[skip:skip + top]
        out: dict[str, Any] = {"value": [self.render(e, tz_name, None, select, expand) for e in page]}
        if skip + top < len(events):
            rest = {k: v for k, v in query.items() if k != "$skip"}
            out["@odata.nextLink"] = f"{url}?{urllib.parse.urlencode({**rest, '$skip': skip + top})}"
        return out

    def _render_calendar(self, calendar: Calendar) -> dict[str, Any]:
        return {"id": calendar.id, "name": calendar.name, "color": "auto", "hexColor": "",
                "isDefaultCalendar": calendar.is_default, "changeKey": calendar.change_key, "canShare": True,
                "canViewPrivateItems": True, "canEdit": True, "allowedOnlineMeetingProviders": ["teamsForBusiness"],
                "defaultOnlineMeetingProvider": "teamsForBusiness", "isTallyingResponses": True,
                "isRemovable": not calendar.is_default,
                "owner": {"name": calendar.mailbox.display_name, "address": calendar.mailbox.address}}

    # ------------------------------------------------------------ subscriptions
    def _subscriptions(self, method: str, parts: list[str], body: Any,
                       claims: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        json_h = {"Content-Type": "application/json"}
        if len(parts) == 1 and method == "POST":
            if not isinstance(body, dict):
                raise GraphError(400, "RequestBodyRead", "Empty Payload. JSON content expected.")
            schema.validate(body, "microsoft.graph.subscription")
            for required in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
                if not body.get(required):
                    raise GraphError(400, "InvalidRequest", f"The '{required}' property is required.")
            resource = str(body["resource"]).strip("/")
            mailbox, calendar = self._subscription_target(resource, claims)
            expires = _parse_query_time(body["expirationDateTime"])
            now = datetime.now(UTC)
            if expires > now + timedelta(minutes=MAX_OUTLOOK_SUBSCRIPTION_MINUTES):
                raise GraphError(400, "ExtensionError", "Subscription expiration can only be "
                                 f"{MAX_OUTLOOK_SUBSCRIPTION_MINUTES} minutes in the future.")
            if expires <= now:
                raise GraphError(400, "ExtensionError", "Subscription expiration must be in the future.")
            if not str(body["notificationUrl"]).startswith("https://") and not _loopback(str(body["notificationUrl"])):
                raise GraphError(400, "ValidationError", "The Notification Url must be an https url.")
            state = body.get("clientState")
            if state is not None and len(state) > 128:
                raise GraphError(400, "ValidationError", "clientState must not be longer than 128 characters.")
            for url in filter(None, (body["notificationUrl"], body.get("lifecycleNotificationUrl"))):
                self._lock.release()
                try:
                    ok = _validate_endpoint(str(url))
                finally:
                    self._lock.acquire()
                if not ok:
                    raise GraphError(400, "ValidationError", "Subscription validation request failed. Notification "
                                     "endpoint must respond with 200 OK to validation request.")
            sub = Subscription(str(uuid.uuid4()), resource, str(body["changeType"]), str(body["notificationUrl"]),
                               body.get("lifecycleNotificationUrl"), state, expires, str(claims.get("appid")),
                               str(claims.get("tid")), mailbox, calendar)
            self.subscriptions[sub.id] = sub
            return 201, json_h, self._render_sub(sub)
        if len(parts) == 2:
            sub_or_none = self.subscriptions.get(parts[1])
            if sub_or_none is None or sub_or_none.app_id != str(claims.get("appid")):
                raise GraphError(404, "ResourceNotFound", f"The object was not found. Subscription '{parts[1]}'.")
            sub = sub_or_none
            if method == "GET":
                return 200, json_h, self._render_sub(sub)
            if method == "DELETE":
                del self.subscriptions[sub.id]
                return 204, {}, None
            if method == "PATCH":
                if not isinstance(body, dict):
                    raise GraphError(400, "RequestBodyRead", "Empty Payload. JSON content expected.")
                schema.validate(body, "microsoft.graph.subscription")
                expires = _parse_query_time(body["expirationDateTime"])
                if expires > datetime.now(UTC) + timedelta(minutes=MAX_OUTLOOK_SUBSCRIPTION_MINUTES):
                    raise GraphError(400, "ExtensionError", "Subscription expiration can only be "
                                     f"{MAX_OUTLOOK_SUBSCRIPTION_MINUTES} minutes in the future.")
                sub.expires = expires
                return 200, json_h, self._render_sub(sub)
        raise GraphError(405, "ErrorInvalidRequest", "The OData request is not supported.")

    def _subscription_target(self, resource: str, claims: dict[str, Any]) -> tuple[Mailbox, Calendar | None]:
        parts = resource.split("/")
        if len(parts) >= 3 and parts[0].lower() in ("users", "groups"):
            mailbox = self._mailbox("user" if parts[0].lower() == "users" else "group", parts[1], claims, False)
            rest = [p.lower() for p in parts[2:]]
            if rest == ["events"]:
                return mailbox, None
            if rest == ["calendar", "events"]:
                return mailbox, mailbox.default_calendar
            if len(parts) == 5 and rest[0] == "calendars" and rest[2] == "events":
                calendar = mailbox.calendars.get(parts[3])
                if calendar is not None:
                    return mailbox, calendar
        raise GraphError(400, "ExtensionError", f"Operation: Create; Exception: [Status Code: BadRequest; Reason: "
                                                f"The resource '{resource}' is not supported.]")

    def _render_sub(self, sub: Subscription) -> dict[str, Any]:
        return {"id": sub.id, "resource": sub.resource, "applicationId": sub.app_id, "changeType": sub.change_type,
                "clientState": sub.client_state, "notificationUrl": sub.notification_url,
                "lifecycleNotificationUrl": sub.lifecycle_url, "expirationDateTime": iso_z(sub.expires),
                "creatorId": sub.app_id, "includeResourceData": False, "latestSupportedTlsVersion": "v1_2",
                "encryptionCertificate": None, "encryptionCertificateId": None, "notificationQueryOptions": None,
                "notificationUrlAppId": None}

    # ------------------------------------------------------------ $batch
    def batch(self, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
            return 400, {}, GraphError(400, "BadRequest", "Invalid batch payload format.").body()
        requests_ = body["requests"]
        if len(requests_) > MAX_BATCH:
            return 400, {}, GraphError(400, "BadRequest", f"Invalid batch payload format. The number of requests "
                                                         f"exceeds the limit of {MAX_BATCH}.").body()
        ids = [str(r.get("id")) for r in requests_]
        if len(set(ids)) != len(ids):
            return 400, {}, GraphError(400, "BadRequest", "Batch request contains duplicate request ids.").body()
        auth = {"authorization": headers.get("authorization", "")}
        responses = []
        for req in requests_:
            url = str(req.get("url", ""))
            if not url.startswith("/"):
                url = "/" + url
            sub_headers = {**auth, **{k.lower(): v for k, v in (req.get("headers") or {}).items()}}
            status, out_headers, out = self.handle(str(req.get("method", "GET")).upper(), url, sub_headers,
                                                   req.get("body"))
            entry: dict[str, Any] = {"id": str(req.get("id")), "status": status, "headers": out_headers}
            if out is not None:
                entry["body"] = out
            responses.append(entry)
        # JSON batching: "the order of responses may not match the order of requests".
        responses.reverse()
        return 200, {}, {"responses": responses}


# ------------------------------------------------------------------ helpers


def _removed(event_id: str) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.event", "id": event_id, "@removed": {"reason": "deleted"}}


def _calendar_path(calendar: Calendar) -> str:
    mailbox = calendar.mailbox
    if mailbox.kind == "group":
        return f"groups/{mailbox.id}/calendar"
    return f"users/{mailbox.id}/calendars/{calendar.id}"


def _normal_prop_id(prop_id: str) -> str:
    match = re.match(r"^\s*(\w+)\s+\{([0-9A-Fa-f-]{36})\}\s+Name\s+(.+?)\s*$", prop_id)
    if match:
        return f"{match.group(1)} {{{match.group(2).lower()}}} Name {match.group(3)}"
    return prop_id


def _preview(content: str) -> str:
    from spokesync.model.event import html_to_text, normalise_text

    return normalise_text(html_to_text(content))[:255]


def _prefer(header: str) -> dict[str, str]:
    out = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key:
            out[key.strip()] = value.strip().strip('"')
    return out


def _parse_expand(text: str) -> dict[str, set[str] | None]:
    """`a($filter=id eq 'x' or id eq 'y'),b` -> {"a": {"x", "y"}, "b": None} (ids normalised, lower case)."""
    out: dict[str, set[str] | None] = {}
    for name, options in re.findall(r"(\w+)(?:\(([^()]*)\))?", text):
        ids = re.findall(r"id eq '([^']*)'", options or "")
        out[name] = {_normal_prop_id(i).lower() for i in ids} if ids else None
    return out


def _parse_query_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _expired(token: str) -> bool:
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return False
    return int(claims.get("exp", 0)) < time.time()


def _loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def _validate_endpoint(url: str) -> bool:
    """Graph's validation handshake: POST ?validationToken=..., expect 200 text/plain echoing it within 10 s."""
    import requests

    token = "Validation: Testing client application reachability for subscription Request-Id: " + str(uuid.uuid4())
    sep = "&" if "?" in url else "?"
    try:
        resp = requests.post(f"{url}{sep}validationToken={urllib.parse.quote(token)}", data=b"",
                             headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=10)
    except requests.RequestException:
        return False
    return resp.status_code == 200 and resp.text == token and resp.headers.get("Content-Type", "").startswith(
        "text/plain")


class _HTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    graph: GraphServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _send(self, status: int, headers: dict[str, str], body: Any, text: bool = False) -> None:
        if isinstance(body, bytes):
            raw = body
        else:
            raw = b"" if body is None else (body.encode() if text else json.dumps(body).encode())
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if body is not None and "Content-Type" not in headers:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> tuple[bytes, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return raw, raw

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_PUT(self) -> None:  # noqa: N802 - binary uploads (a contact's photo/$value)
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        graph = self.graph
        raw, _ = self._body()
        path = urllib.parse.urlsplit(self.path).path
        parts = [p for p in path.split("/") if p]
        # identity platform: /{tenant}/v2.0/.well-known/openid-configuration, /{tenant}/oauth2/v2.0/token
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"] and method == "GET":
            graph.requests["discovery"] += 1
            try:
                self._send(200, {}, graph.issuer.openid_configuration(parts[0], graph.base_url))
            except TokenError as exc:
                self._send(exc.status, {}, exc.body())
            return
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"] and method == "POST":
            graph.requests["token"] += 1
            form = dict(urllib.parse.parse_qsl(raw.decode()))
            try:
                self._send(200, {"Cache-Control": "no-store"},
                           graph.issuer.token(parts[0], form, f"{graph.base_url}{path}"))
            except TokenError as exc:
                self._send(exc.status, {}, exc.body())
            return
        if not path.startswith("/v1.0/"):
            self._send(404, {}, GraphError(404, "BadRequest", "Invalid version.").body())
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        body: Any = None
        if method == "PUT":
            body = raw  # photo bytes, never JSON
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, {}, GraphError(400, "BadRequest", "Unable to read JSON request payload. Please "
                                                                  "ensure Content-Type header is set and payload is "
                                                                  "of valid JSON format.").body())
                return
        with graph._lock:
            graph.api_calls += 1
        is_batch = path == "/v1.0/$batch" and method == "POST"
        if is_batch:
            members = body.get("requests") if isinstance(body, dict) else None
            urls = [str(r.get("url", "")) for r in members or [] if isinstance(r, dict)]
            keys = {"/".join([p for p in urllib.parse.urlsplit(u).path.split("/") if p][:2]).lower() for u in urls}
        else:
            keys = {"/".join(parts[1:3]).lower()}
        # Outlook's MailboxConcurrency: a $batch's members count against their mailbox too.
        with graph._lock:
            for key in keys:
                graph._inflight[key] += 1
                graph.max_concurrency_seen[key] = max(graph.max_concurrency_seen[key], graph._inflight[key])
            over = any(graph._inflight[key] > MAILBOX_CONCURRENCY for key in keys)
        try:
            if over:
                busy = GraphError(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
                                  {"Retry-After": "1"})
                self._send(busy.status, {"Content-Type": "application/json", **busy.headers}, busy.body())
                return
            if is_batch:
                graph.requests["batch"] += 1
                self._send(*graph.batch(headers, body))
            else:
                graph.requests["graph"] += 1
                self._send(*graph.handle(method, self.path, headers, body))
        finally:
            with graph._lock:
                for key in keys:
                    graph._inflight[key] -= 1

