"""The events resource: validation of event bodies, insert / patch / update /
delete with etags, recurrence expansion, list (full and incremental) and
instances."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import secrets
import urllib.parse
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any

from spokesync.sandbox.google_calendar import rules
from spokesync.sandbox.google_calendar.common import (
    _ID_RE,
    _INSTANCE_RE,
    _NOT_WITH_SYNC_TOKEN,
    _READ_ONLY,
    MAX_INSTANCES,
    ApiError,
    Calendar,
    _b64,
    _merge,
    _parse_when,
    _rfc3339,
    _strip_nulls,
    _suffix,
    _unb64,
    _when_json,
    _zone,
)
from spokesync.sandbox.google_calendar.state import SandboxState


class EventsMixin(SandboxState):
    def _validate(self, body: dict[str, Any]) -> None:
        if "start" not in body:
            raise ApiError(400, "required", "Missing start time.")
        if "end" not in body:
            raise ApiError(400, "required", "Missing end time.")
        start, start_zone = _parse_when(body["start"])
        end, _ = _parse_when(body["end"])
        if type(start) is not type(end):
            raise ApiError(400, "invalid", "Start and end times must either both be date or both be dateTime.")
        if end < start:  # type: ignore[operator]
            raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.")
        if body.get("recurrence"):
            if isinstance(start, datetime) and not start_zone:
                raise ApiError(400, "invalid", "Missing time zone definition for start time.")
            for line in body["recurrence"]:
                if not re.match(r"^(RRULE|RDATE|EXDATE|EXRULE)[:;]", str(line), re.IGNORECASE):
                    raise ApiError(400, "invalid", "Invalid recurrence rule.")
            self._expand(body, limit=1)  # rejects rules dateutil cannot read
        self._validate_reminders(body.get("reminders") or {})
        source_url = (body.get("source") or {}).get("url")
        if source_url is not None and urllib.parse.urlsplit(str(source_url)).scheme.lower() not in ("http", "https"):
            # Event.source: "The URL scheme must be HTTP or HTTPS." (discovery document)
            raise ApiError(400, "invalid", "Invalid value for: source.url", location="source.url",
                           location_type="other")
        if body.get("visibility") not in (None, "default", "public", "private", "confidential"):
            raise ApiError(400, "invalid", "Invalid value for: visibility")
        if body.get("transparency") not in (None, "opaque", "transparent"):
            raise ApiError(400, "invalid", "Invalid value for: transparency")
        if body.get("colorId") not in (None, *[str(i) for i in range(1, 12)]):
            raise ApiError(400, "invalid", "Invalid value for: colorId")
        for value in ((body.get("extendedProperties") or {}).get("private") or {}).values():
            if value is not None and len(str(value)) > 1024:
                raise ApiError(400, "invalid", "Extended property value too long.")

    @staticmethod
    def _validate_reminders(reminders: dict[str, Any]) -> None:
        overrides = reminders.get("overrides") or []
        if reminders.get("useDefault") and overrides:
            # Reported verbatim by Google (e.g. phw198/OutlookGoogleCalendarSync#666, openclaw/gogcli#97).
            raise ApiError(400, "cannotUseDefaultRemindersAndSpecifyOverride",
                           "Cannot specify both default reminders and overrides at the same time.", "calendar")
        if len(overrides) > 5:
            # Event.reminders.overrides: "The maximum number of override reminders is 5."
            raise ApiError(400, "cannotUseMoreThanFiveReminders", "Cannot specify more than 5 override reminders.")
        for n, reminder in enumerate(overrides):
            where = f"reminders.overrides[{n}]"
            if not isinstance(reminder, dict) or reminder.get("method") is None:
                raise ApiError(400, "required", "Missing reminder method.", location=where + ".method",
                               location_type="other")
            if reminder.get("minutes") is None:
                raise ApiError(400, "required", "Missing reminder minutes.", location=where + ".minutes",
                               location_type="other")
            if reminder["method"] not in ("email", "popup"):
                # EventReminder.method: "email" or "popup" (discovery document).
                raise ApiError(400, "invalid", "Invalid reminder method.", location=where + ".method",
                               location_type="other")
            if not 0 <= int(reminder["minutes"]) <= 40320:
                # EventReminder.minutes: "Valid values are between 0 and 40320 (4 weeks in minutes)."
                raise ApiError(400, "invalid", "Invalid value for: reminder minutes (0 to 40320).",
                               location=where + ".minutes", location_type="other")

    def _insert(self, cal: Calendar, body: dict[str, Any], user: str, *, trusted: bool = False) -> dict[str, Any]:
        """Insert through the API (`trusted`: Google's own or the user's UI, not held to API rules)."""
        event_id = body.get("id") or base64.b32hexencode(secrets.token_bytes(15)).decode().lower()
        if not _ID_RE.match(event_id):
            raise ApiError(400, "invalid", "Invalid resource id value.")
        # Ids stay taken after a delete, even once the tombstone is purged (FACTS.md,
        # "Checked in 2026-12"; stackoverflow.com/questions/27542721).
        if event_id in cal.events or event_id in cal.reserved_ids:
            raise ApiError(409, "duplicate", "The requested identifier already exists.")
        body = _strip_nulls(body)
        self._validate(body)
        if not trusted:
            rules.check_new_event_type(body, primary=cal.id == cal.owner)
            rules.check_attendees(body, self.is_service_account(user))
        for key in _READ_ONLY:
            body.pop(key, None)
        now = _rfc3339(self.clock())
        raw: dict[str, Any] = {
            "kind": "calendar#event", "id": event_id, "status": "confirmed",
            "htmlLink": f"https://www.google.com/calendar/event?eid={_b64(event_id.encode())}",
            "created": now, "creator": {"email": user}, "organizer": {"email": cal.id, "displayName": cal.summary,
                                                                        "self": True},
            "iCalUID": f"{event_id}@google.com", "sequence": 0, "reminders": {"useDefault": True},
            "eventType": "default", **body, "_ord": next(self._ord),
        }
        raw["id"] = event_id
        rules.rewrite(raw, cal.id)
        cal.events[event_id] = raw
        self._touch(cal, raw)
        return raw

    def _resolve(self, cal: Calendar, event_id: str, materialize: bool) -> dict[str, Any] | None:
        """The stored event, or a generated occurrence (materialised as an exception when asked)."""
        raw = cal.events.get(event_id)
        if raw is not None:
            return raw
        match = _INSTANCE_RE.match(event_id)
        if not match:
            return None
        master = cal.events.get(match.group("master"))
        if master is None or master.get("status") == "cancelled" or not master.get("recurrence"):
            return None
        for occurrence in self._expand(master):
            if occurrence["id"] == event_id:
                if materialize:
                    occurrence["_ord"] = next(self._ord)
                    cal.events[event_id] = occurrence
                return occurrence
        return None

    def _write(self, cal: Calendar, event_id: str, body: dict[str, Any], if_match: str | None,
               replace_all: bool, user: str | None = None) -> dict[str, Any]:
        """patch / update; `user` is the API principal (None: an edit in Google's own UI)."""
        raw = self._resolve(cal, event_id, materialize=False)
        if raw is None:
            raise ApiError(404, "notFound", "Not Found")
        if if_match and if_match != "*" and if_match != raw.get("etag"):
            raise ApiError(412, "conditionNotMet", "Precondition Failed")
        if user is not None and raw.get("status") == "cancelled" and raw.get("_deleted_by_user"):
            # An event the user deleted in Calendar cannot be updated back: 403
            # (FACTS.md "Checked in 2026-12"; reported by sync tools, e.g. OGCS).
            raise ApiError(403, "forbidden", "Forbidden")
        candidate = copy.deepcopy(raw)
        if replace_all:
            keep = {k: v for k, v in candidate.items() if k in _READ_ONLY or k.startswith("_")
                    or k in ("originalStartTime",)}
            candidate = {**keep, **_strip_nulls({k: v for k, v in body.items() if k not in _READ_ONLY})}
            candidate.setdefault("status", "confirmed")
            candidate.setdefault("reminders", {"useDefault": True})
        else:
            _merge(candidate, {k: v for k, v in body.items() if k not in _READ_ONLY})
        if "recurringEventId" in candidate:
            candidate.pop("recurrence", None)
        if candidate.get("status") != "cancelled":
            self._validate(candidate)
        if user is not None:
            if "attendees" in body:
                rules.check_attendees(body, self.is_service_account(user))
            rules.check_update(raw, candidate, cal.id)
        rules.rewrite(candidate, cal.id)
        if event_id not in cal.events:  # a generated occurrence becomes an exception
            candidate["_ord"] = next(self._ord)
        cal.events[event_id] = candidate
        self._touch(cal, candidate)
        return candidate

    def _delete(self, cal: Calendar, event_id: str, if_match: str | None, *, by_user: bool = False) -> None:
        raw = self._resolve(cal, event_id, materialize=False)
        if raw is None:
            raise ApiError(404, "notFound", "Not Found")
        if raw.get("status") == "cancelled":
            raise ApiError(410, "deleted", "Resource has been deleted")
        if if_match and if_match != "*" and if_match != raw.get("etag"):
            raise ApiError(412, "conditionNotMet", "Precondition Failed")
        raw = self._resolve(cal, event_id, materialize=True)
        assert raw is not None
        raw["status"] = "cancelled"
        if by_user:
            raw["_deleted_by_user"] = True
        self._touch(cal, raw)
        if raw.get("recurrence"):  # the whole series goes: its exceptions are cancelled too
            for other in cal.events.values():
                if other.get("recurringEventId") == event_id and other.get("status") != "cancelled":
                    other["status"] = "cancelled"
                    self._touch(cal, other)

    def _expand(self, master: dict[str, Any], limit: int = MAX_INSTANCES) -> list[dict[str, Any]]:
        """The series' occurrences as generated instances (exceptions not applied)."""
        from dateutil.rrule import rrulestr

        start, zone = _parse_when(master["start"])
        end, _ = _parse_when(master["end"])
        duration = end - start  # type: ignore[operator]
        lines = "\n".join(str(line) for line in master.get("recurrence") or ())
        all_day = not isinstance(start, datetime)
        if all_day:
            dtstart = datetime.combine(start, dtime())
        else:
            assert isinstance(start, datetime)
            dtstart = start.astimezone(_zone(zone)) if zone else start
        try:
            rule = rrulestr(lines, dtstart=dtstart, forceset=True, unfold=True)
            values = list(itertools.islice(iter(rule), limit))
        except (ValueError, TypeError) as exc:
            raise ApiError(400, "invalid", "Invalid recurrence rule.") from exc
        out = []
        for value in values:
            occ_start: date | datetime = value.date() if all_day else value
            occ = {k: copy.deepcopy(v) for k, v in master.items() if k not in ("recurrence", "_seq", "_ord", "id")}
            occ["id"] = f"{master.get('id', '')}_{_suffix(occ_start)}"
            occ["recurringEventId"] = master.get("id", "")
            occ["originalStartTime"] = _when_json(occ_start, zone)
            occ["start"] = _when_json(occ_start, zone)
            occ["end"] = _when_json(occ_start + duration, zone)  # type: ignore[operator]
            out.append(occ)
        return out


    # ---------------------------------------------------------------- list / instances

    def _sync_token(self, cal: Calendar, seq: int) -> str:
        return _b64(json.dumps([cal.id, cal.epoch, seq]).encode())

    def _list(self, cal: Calendar, params: dict[str, str], multi: dict[str, list[str]]) -> dict[str, Any]:
        max_results = int(params.get("maxResults", "250") or 250)
        if not 1 <= max_results <= 2500:
            raise ApiError(400, "invalid", "Invalid value for: maxResults")
        sync_token = params.get("syncToken")
        page_token = params.get("pageToken")
        show_deleted = params.get("showDeleted") == "true"
        single = params.get("singleEvents") == "true"
        if sync_token:
            # events.list `syncToken`: these parameters cannot be given with it, and
            # "it is not allowed to set showDeleted to False" (discovery document).
            bad = [p for p in _NOT_WITH_SYNC_TOKEN if p in params]
            if bad:
                raise ApiError(400, "invalid", f"Sync token cannot be used with parameter: {bad[0]}",
                               location=bad[0], location_type="parameter")
            if params.get("showDeleted") == "false":
                raise ApiError(400, "invalid", "Sync token cannot be used with showDeleted=false.",
                               location="showDeleted", location_type="parameter")
        if params.get("orderBy") == "startTime" and not single:
            # orderBy "startTime": "only available when querying single events (i.e. the
            # parameter singleEvents is True)" (discovery document); Google's answer:
            raise ApiError(400, "badRequest", "The requested ordering is not available for the particular query.",
                           location="orderBy", location_type="parameter")
        state: dict[str, Any]
        if page_token:
            try:
                state = json.loads(_unb64(page_token))
            except ValueError as exc:
                raise ApiError(400, "invalid", "Invalid page token value.") from exc
            if state.get("epoch") != cal.epoch and state.get("since") is not None:
                raise ApiError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
        else:
            since = None
            if sync_token:
                try:
                    cal_id, epoch, since = json.loads(_unb64(sync_token))
                except ValueError as exc:
                    raise ApiError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.") from exc
                if cal_id != cal.id or epoch != cal.epoch:
                    raise ApiError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
            state = {"since": since, "upto": cal.seq, "after": 0, "epoch": cal.epoch}
        since, upto, after = state["since"], state["upto"], state["after"]
        if since is not None:
            # Incremental: every event changed in (since, upto], tombstones included, in change order.
            candidates = sorted((e for e in cal.events.values() if since < e["_seq"] <= upto), key=lambda e: e["_seq"])
            candidates = [e for e in candidates if e["_seq"] > after]
            key = "_seq"
        else:
            candidates = self._filtered(cal, params, multi, show_deleted, single)
            candidates = [e for e in candidates if e["_ord"] > after]
            key = "_ord"
        page = candidates[:max_results]
        out: dict[str, Any] = {"kind": "calendar#events", "etag": f'"{cal.seq}"', "summary": cal.summary,
                               "updated": _rfc3339(self.clock()), "timeZone": cal.time_zone, "accessRole": "owner",
                               "defaultReminders": cal.default_reminders,
                               "items": [self._public(e) for e in page]}
        if len(candidates) > max_results:
            out["nextPageToken"] = _b64(json.dumps({**state, "after": page[-1][key]}).encode())
        else:
            out["nextSyncToken"] = self._sync_token(cal, upto)
        return out

    def _filtered(self, cal: Calendar, params: dict[str, str], multi: dict[str, list[str]], show_deleted: bool,
                  single: bool) -> list[dict[str, Any]]:
        events = sorted(cal.events.values(), key=lambda e: e["_ord"])
        out = []
        ical = params.get("iCalUID")
        wanted_private = [p.split("=", 1) for p in multi.get("privateExtendedProperty", []) if "=" in p]
        q = params.get("q", "").lower()
        time_min = datetime.fromisoformat(params["timeMin"].replace("Z", "+00:00")) if params.get("timeMin") else None
        time_max = datetime.fromisoformat(params["timeMax"].replace("Z", "+00:00")) if params.get("timeMax") else None
        for raw in events:
            cancelled = raw.get("status") == "cancelled"
            if cancelled and not show_deleted:
                # Google still lists cancelled occurrences of recurring events when
                # showDeleted and singleEvents are both false.
                if single or "recurringEventId" not in raw:
                    continue
                master = cal.events.get(raw["recurringEventId"])
                if master is None or master.get("status") == "cancelled":
                    continue
            if ical and raw.get("iCalUID") != ical:
                continue
            private = (raw.get("extendedProperties") or {}).get("private") or {}
            if any(private.get(k) != v for k, v in wanted_private):
                continue
            if q and not any(q in str(raw.get(f, "")).lower() for f in ("summary", "description", "location")):
                continue
            if (time_min or time_max) and not cancelled and not raw.get("recurrence"):
                start, _ = _parse_when(raw["start"])
                end, _ = _parse_when(raw["end"])
                lo = start if isinstance(start, datetime) else datetime.combine(start, dtime(), UTC)
                hi = end if isinstance(end, datetime) else datetime.combine(end, dtime(), UTC)
                if (time_max and lo >= time_max) or (time_min and hi <= time_min):
                    continue
            out.append(raw)
        if single:
            expanded = []
            for raw in out:
                if raw.get("recurrence") and raw.get("status") != "cancelled":
                    for occ in self._expand(raw):
                        stored = cal.events.get(occ["id"])
                        if stored is None:
                            occ["_ord"] = raw["_ord"]
                            occ["_seq"] = raw["_seq"]
                            expanded.append(occ)
                elif raw.get("recurringEventId") or not raw.get("recurrence"):
                    expanded.append(raw)
            out = expanded
        return out

    def _instances(self, cal: Calendar, event_id: str, params: dict[str, str]) -> dict[str, Any]:
        master = cal.events.get(event_id)
        if master is None or master.get("status") == "cancelled":
            raise ApiError(404 if master is None else 410, "notFound" if master is None else "deleted",
                           "Not Found" if master is None else "Resource has been deleted")
        show_deleted = params.get("showDeleted") == "true"
        max_results = min(int(params.get("maxResults", "250") or 250), 2500)
        offset = int(_unb64(params["pageToken"]).decode()) if params.get("pageToken") else 0
        items = []
        for occ in self._expand(master) if master.get("recurrence") else []:
            stored = cal.events.get(occ["id"])
            if stored is not None:
                if stored.get("status") == "cancelled" and not show_deleted:
                    continue
                items.append(self._public(stored))
            else:
                items.append({k: v for k, v in occ.items() if not k.startswith("_")})
        page = items[offset:offset + max_results]
        out: dict[str, Any] = {"kind": "calendar#events", "summary": cal.summary, "timeZone": cal.time_zone,
                               "items": page, "updated": _rfc3339(self.clock())}
        if offset + max_results < len(items):
            out["nextPageToken"] = _b64(str(offset + max_results).encode())
        return out

