"""The server: GoogleCalendarSandbox (state plus every resource), its
Python API for tests, API dispatch, and the HTTP front end."""

from __future__ import annotations

import argparse
import copy
import json
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from spokesync.sandbox.google_calendar import http, rules
from spokesync.sandbox.google_calendar.batch import BatchMixin
from spokesync.sandbox.google_calendar.channels import ChannelsMixin
from spokesync.sandbox.google_calendar.common import (
    _ROLES,
    ApiError,
    Calendar,
    Fault,
    _b64,
    _when_json,
    _zone,
)
from spokesync.sandbox.google_calendar.events import EventsMixin
from spokesync.sandbox.google_calendar.http import GoogleHandler, GoogleServer
from spokesync.sandbox.google_calendar.oauth import OAuthMixin


class GoogleCalendarSandbox(EventsMixin, ChannelsMixin, OAuthMixin, BatchMixin):
    """The server's state and its Python API (thread-safe)."""

    # ---------------------------------------------------------------- setup API

    def add_user(self, email_address: str) -> None:
        with self.lock:
            self.users.add(email_address)

    def add_calendar(self, calendar_id: str, owner: str, summary: str = "", time_zone: str = "UTC",
                     acl: dict[str, str] | None = None) -> Calendar:
        with self.lock:
            self.users.add(owner)
            cal = Calendar(calendar_id, summary or calendar_id, owner, time_zone, {owner: "owner", **(acl or {})})
            self.calendars[calendar_id] = cal
            return cal

    def add_client(self, client_id: str, client_secret: str) -> None:
        with self.lock:
            self.clients[client_id] = client_secret

    def add_service_account(self, sa_email: str, public_key_pem: bytes, domain_wide: bool = True) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        with self.lock:
            self.service_accounts[sa_email] = (load_pem_public_key(public_key_pem), domain_wide)

    def new_service_account_key(self, sa_email: str, domain_wide: bool = True) -> dict[str, Any]:
        """Register a service account and return its JSON key (as Google's console would)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        self.add_service_account(sa_email, public, domain_wide)
        return {"type": "service_account", "project_id": "sandbox", "private_key_id": secrets.token_hex(8),
                "private_key": pem, "client_email": sa_email, "client_id": str(secrets.randbelow(10**20)),
                "token_uri": self.base_url + "token"}

    def inject(self, status: int, reason: str, count: int = 1, *, skip: int = 0, message: str = "",
               method: str | None = None, path_contains: str | None = None, where: str = "api") -> Fault:
        fault = Fault(status, reason, message or reason, count, skip, method, path_contains, where)
        with self.lock:
            self.faults.append(fault)
        return fault

    def expire_sync_tokens(self, calendar_id: str) -> None:
        """Every sync token issued so far for the calendar answers 410 from now on."""
        with self.lock:
            self.calendars[calendar_id].epoch += 1

    # ---------------------------------------------------------------- user-side edits

    def user_insert(self, calendar_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            cal = self.calendars[calendar_id]
            return self._public(self._insert(cal, copy.deepcopy(body), cal.owner, trusted=True))

    def user_patch(self, calendar_id: str, event_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            cal = self.calendars[calendar_id]
            return self._public(self._write(cal, event_id, copy.deepcopy(patch), None, replace_all=False))

    def user_delete(self, calendar_id: str, event_id: str) -> None:
        """The user deletes the event in Google Calendar (it cannot be updated back)."""
        with self.lock:
            self._delete(self.calendars[calendar_id], event_id, None, by_user=True)

    def user_invite(self, calendar_id: str, body: dict[str, Any], organizer: str) -> dict[str, Any]:
        """An invitation from `organizer` lands in the calendar (its copy, not its event)."""
        with self.lock:
            cal = self.calendars[calendar_id]
            raw = self._insert(cal, copy.deepcopy(body), organizer, trusted=True)
            raw["organizer"] = {"email": organizer}
            attendees = list(raw.get("attendees") or [])
            if not any(str(a.get("email", "")).lower() == cal.id.lower() for a in attendees):
                attendees.append({"email": cal.id, "responseStatus": "needsAction"})
            if not any(str(a.get("email", "")).lower() == organizer.lower() for a in attendees):
                attendees.append({"email": organizer, "responseStatus": "accepted"})
            raw["attendees"] = attendees
            rules.rewrite(raw, cal.id)
            self._touch(cal, raw)
            return self._public(raw)

    def purge_deleted(self, calendar_id: str) -> list[str]:
        """Google purges tombstones after a while: they leave listings and `get`, the ids stay taken."""
        with self.lock:
            cal = self.calendars[calendar_id]
            gone = [i for i, e in cal.events.items() if e.get("status") == "cancelled"]
            for event_id in gone:
                del cal.events[event_id]
                cal.reserved_ids.add(event_id)
            return gone

    def live_events(self, calendar_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [self._public(e) for e in self.calendars[calendar_id].events.values()
                    if e.get("status") != "cancelled"]

    def event(self, calendar_id: str, event_id: str) -> dict[str, Any] | None:
        with self.lock:
            raw = self.calendars[calendar_id].events.get(event_id)
            return None if raw is None else self._public(raw)


    # ---------------------------------------------------------------- API dispatch

    def _calendar(self, calendar_id: str, user: str, need: str) -> Calendar:
        if calendar_id == "primary":
            calendar_id = next((c.id for c in self.calendars.values() if c.owner == user), calendar_id)
        cal = self.calendars.get(calendar_id)
        if cal is None:
            raise ApiError(404, "notFound", "Not Found")
        role = cal.acl.get(user, "none") if self.require_auth else "owner"
        if _ROLES.index(role) < _ROLES.index("reader"):
            raise ApiError(404, "notFound", "Not Found")
        if _ROLES.index(role) < _ROLES.index(need):
            raise ApiError(403, "requiredAccessLevel", "You need to have writer access to this calendar.")
        return cal

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """One API call (also each part of a batch). Returns status, headers, body."""
        parsed = urllib.parse.urlsplit(target)
        path = parsed.path
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        multi = urllib.parse.parse_qs(parsed.query)
        try:
            with self.lock:
                self.stats.api_calls += 1
                fault = self._fault(method, path, "api")
                if fault is not None:
                    raise fault
                user = self.user_for(headers.get("authorization"))
                self._check_request(method, path, parsed.query, body)
                status, payload, extra = self._route(method, path, params, multi, headers, body, user)
        except ApiError as exc:
            return exc.status, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(exc.body()).encode()
        out_headers = dict(extra)
        if payload is None:
            return status, out_headers, b""
        out_headers["Content-Type"] = "application/json; charset=UTF-8"
        if isinstance(payload, dict) and "etag" in payload:
            out_headers["ETag"] = payload["etag"]
        return status, out_headers, json.dumps(payload).encode()

    @staticmethod
    def _check_request(method: str, path: str, query: str, body: bytes) -> None:
        """Hold the call to the discovery document (parameters and body schema)."""
        from spokesync.sandbox.google_calendar.discovery import validator

        checker = validator()
        found = checker.method_for(method, path)
        if found is None:
            return  # no such method: routing answers 404
        spec, _ = found
        checker.check_parameters(spec, urllib.parse.parse_qs(query, keep_blank_values=True))
        if spec.spec.get("request") is not None:
            try:
                value = json.loads(body or b"{}")
            except ValueError as exc:
                raise ApiError(400, "parseError", "Parse Error") from exc
            checker.check_body(spec, value)

    def _count(self, name: str) -> None:
        self.stats.by_method[name] = self.stats.by_method.get(name, 0) + 1

    def _route(self, method: str, path: str, params: dict[str, str], multi: dict[str, list[str]],
               headers: dict[str, str], body: bytes, user: str) -> tuple[int, Any, dict[str, str]]:
        prefix = "/calendar/v3/"
        if not path.startswith(prefix):
            raise ApiError(404, "notFound", "Not Found")
        parts = [urllib.parse.unquote(p) for p in path[len(prefix):].split("/")]

        def json_body() -> dict[str, Any]:
            try:
                value = json.loads(body or b"{}")
            except ValueError as exc:
                raise ApiError(400, "parseError", "Parse Error") from exc
            if not isinstance(value, dict):
                raise ApiError(400, "parseError", "Parse Error")
            return value

        if parts == ["users", "me", "calendarList"] and method == "GET":
            self._count("calendarList.list")
            return 200, self._calendar_list(user, params), {}
        if parts == ["users", "me", "calendarList"] and method == "POST":
            self._count("calendarList.insert")
            return 200, self._calendar_list_insert(user, json_body()), {}
        if parts == ["channels", "stop"] and method == "POST":
            self._count("channels.stop")
            self._stop_channel(json_body(), user)
            return 204, None, {}
        if parts == ["calendars"] and method == "POST":
            self._count("calendars.insert")
            return 200, self._calendar_insert(user, json_body()), {}
        if len(parts) == 2 and parts[0] == "calendars" and method == "DELETE":
            self._count("calendars.delete")
            self._calendar_delete(user, parts[1])
            return 204, None, {}
        if len(parts) >= 3 and parts[0] == "calendars" and parts[2] == "events":
            if len(parts) == 3 and method == "GET":
                self._count("events.list")
                cal = self._calendar(parts[1], user, "reader")
                return 200, self._list(cal, params, multi), {}
            if len(parts) == 3 and method == "POST":
                self._count("events.insert")
                cal = self._calendar(parts[1], user, "writer")
                return 200, self._public(self._insert(cal, json_body(), user)), {}
            if len(parts) == 4 and parts[3] == "watch" and method == "POST":
                self._count("events.watch")
                cal = self._calendar(parts[1], user, "reader")
                return 200, self._watch(cal, json_body(), user), {}
            if len(parts) == 5 and parts[4] == "instances" and method == "GET":
                self._count("events.instances")
                cal = self._calendar(parts[1], user, "reader")
                return 200, self._instances(cal, parts[3], params), {}
            if len(parts) == 4:
                event_id = parts[3]
                if method == "GET":
                    self._count("events.get")
                    cal = self._calendar(parts[1], user, "reader")
                    raw = self._resolve(cal, event_id, materialize=False)
                    if raw is None:
                        raise ApiError(404, "notFound", "Not Found")
                    return 200, self._public(raw), {}
                if method in ("PATCH", "PUT"):
                    self._count("events.patch" if method == "PATCH" else "events.update")
                    cal = self._calendar(parts[1], user, "writer")
                    raw = self._write(cal, event_id, json_body(), headers.get("if-match"), replace_all=method == "PUT",
                                      user=user)
                    return 200, self._public(raw), {}
                if method == "DELETE":
                    self._count("events.delete")
                    cal = self._calendar(parts[1], user, "writer")
                    self._delete(cal, event_id, headers.get("if-match"))
                    return 204, None, {}
        raise ApiError(404, "notFound", "Not Found")

    def _calendar_insert(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        """calendars.insert: a secondary calendar owned by the principal (`summary` required)."""
        summary = str(body.get("summary") or "")
        if not summary:
            raise ApiError(400, "required", "Missing summary.", location="summary", location_type="other")
        time_zone = str(body.get("timeZone") or "UTC")
        _zone(time_zone)
        calendar_id = f"c_{secrets.token_hex(16)}@group.calendar.google.com"
        cal = self.add_calendar(calendar_id, user, summary, time_zone)
        return {"kind": "calendar#calendar", "etag": f'"{abs(hash(cal.id)) % 10**12}"', "id": cal.id,
                "summary": cal.summary, "timeZone": cal.time_zone}

    def _calendar_delete(self, user: str, calendar_id: str) -> None:
        """calendars.delete: secondary calendars only, by their owner ("Use calendars.clear for
        primary calendars", discovery document)."""
        cal = self._calendar(calendar_id, user, "owner")
        if cal.id == cal.owner:
            raise ApiError(400, "cannotDeletePrimaryCalendar", "Cannot delete primary calendar.", "calendar")
        for channel in self.channels.values():
            if channel.calendar_id == cal.id:
                channel.stopped = True
        del self.calendars[cal.id]

    def _calendar_list_entry(self, cal: Calendar, user: str, role: str) -> dict[str, Any]:
        item = {"kind": "calendar#calendarListEntry", "etag": f'"{abs(hash(cal.id)) % 10**12}"', "id": cal.id,
                "summary": cal.summary, "timeZone": cal.time_zone, "accessRole": role,
                "defaultReminders": cal.default_reminders, "backgroundColor": "#9fc6e7",
                "foregroundColor": "#000000", "selected": True}
        if cal.owner == user and role == "owner":
            item["primary"] = cal.id == user
        return item

    def _calendar_list_insert(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        """calendarList.insert: "Inserts an existing calendar into the user's calendar list"."""
        calendar_id = str(body.get("id") or "")
        if not calendar_id:
            raise ApiError(400, "required", "Missing calendar id.", location="id", location_type="other")
        cal = self.calendars.get(calendar_id)
        role = cal.acl.get(user, "none") if cal is not None else "none"
        if cal is None or role == "none":
            raise ApiError(404, "notFound", "Not Found")
        cal.listed_by.add(user)
        return self._calendar_list_entry(cal, user, role)

    def _calendar_list(self, user: str, params: dict[str, str]) -> dict[str, Any]:
        min_role = params.get("minAccessRole", "freeBusyReader")
        if min_role not in _ROLES:
            raise ApiError(400, "invalid", "Invalid value for: minAccessRole")
        items = []
        for cal in self.calendars.values():
            role = cal.acl.get(user, "none")
            if role == "none" or _ROLES.index(role) < _ROLES.index(min_role):
                continue
            if self.is_service_account(user) and user not in cal.listed_by and cal.owner != user:
                # A calendar shared with a service account is not in its list until
                # calendarList.insert (FACTS.md "Checked in 2026-12"; the sharing e-mail
                # that adds it for a person never reaches a service account).
                continue
            items.append(self._calendar_list_entry(cal, user, role))
        return {"kind": "calendar#calendarList", "etag": '"p1"', "items": items,
                "nextSyncToken": _b64(b"cl")}



# ------------------------------------------------------------------ HTTP


class _Handler(GoogleHandler):
    server: GoogleServer

    def _dispatch(self) -> None:
        sandbox, body, headers, path = self._read()
        if path == "/batch/calendar/v3" and self.command == "POST":
            self._send(*sandbox.batch(headers.get("content-type", ""), body, headers))
        elif path == "/o/oauth2/auth" and self.command == "GET":
            params = {k: v[-1] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).items()}
            try:
                location = sandbox.authorize(params)
            except ApiError as exc:
                self._send(400, {"Content-Type": "text/plain"}, exc.message.encode())
                return
            self._send(302, {"Location": location}, b"")
        elif path == "/token" and self.command == "POST":
            self._token(sandbox, body)
        elif path == "/":
            self._send(200, {"Content-Type": "text/plain"}, b"Google Calendar API sandbox\n")
        else:
            self._send(*sandbox.handle(self.command, self.path, headers, body))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


@dataclass
class Running(http.Running):
    """A started server: its state (`sandbox`), its `url`, and `close()`."""

    sandbox: GoogleCalendarSandbox

    @property
    def auth_uri(self) -> str:
        return self.url + "o/oauth2/auth"

    def close(self) -> None:
        super().close()
        self.sandbox.stop_worker()


def serve(port: int = 0, sandbox: GoogleCalendarSandbox | None = None, host: str = "127.0.0.1") -> Running:
    """Start the server in a background thread (port 0: a free port)."""
    sandbox = sandbox or GoogleCalendarSandbox()
    server = GoogleServer((host, port), _Handler, sandbox)
    return Running(sandbox, server, http.start(server, "gcal-sandbox"))


def add_demo_data(sandbox: GoogleCalendarSandbox, user: str = "demo@example.com",
                  client_id: str = "spokesync-demo", client_secret: str = "demo-secret") -> None:  # noqa: S107
    """Two calendars with a few events and an OAuth client: what the demo mode starts with."""
    sandbox.add_client(client_id, client_secret)
    sandbox.add_calendar(user, user, "Demo", "Europe/Berlin")
    sandbox.add_calendar("team@group.calendar.google.com", user, "Team", "Europe/Berlin")
    sandbox.add_calendar("office@group.calendar.google.com", user, "Office", "Europe/Berlin")
    # Dated relative to today, so that the demo always shows this week's events (and a coming offsite).
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    week_start = today - timedelta(days=today.weekday())
    monday = datetime(week_start.year, week_start.month, week_start.day, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    offsite = today + timedelta(days=8)
    sandbox.user_insert("team@group.calendar.google.com", {
        "summary": "Team standup", "start": _when_json(monday, "Europe/Berlin"),
        "end": _when_json(monday + timedelta(minutes=15), "Europe/Berlin"),
        "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=30"]})
    sandbox.user_insert("team@group.calendar.google.com", {
        "summary": "Offsite", "start": {"date": offsite.isoformat()},
        "end": {"date": (offsite + timedelta(days=2)).isoformat()},
        "transparency": "transparent"})
    sandbox.user_insert("office@group.calendar.google.com", {
        "summary": "Fire drill", "location": "Lobby", "start": _when_json(monday + timedelta(days=3, hours=2),
                                                                           "Europe/Berlin"),
        "end": _when_json(monday + timedelta(days=3, hours=3), "Europe/Berlin")})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local Google Calendar API sandbox")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--demo", action="store_true", help="create sample calendars and an OAuth client")
    parser.add_argument("--no-auth", action="store_true", help="accept requests without a bearer token")
    parser.add_argument("--allow-http-webhooks", action="store_true",
                        help="accept push channels to http:// addresses (Google accepts https only)")
    args = parser.parse_args(argv)
    sandbox = GoogleCalendarSandbox(require_auth=not args.no_auth, allow_http_webhooks=args.allow_http_webhooks)
    running = serve(args.port, sandbox)
    if args.demo:
        add_demo_data(sandbox)
    print(f"Google Calendar API sandbox on {running.url} (token endpoint {running.token_uri})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        running.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
