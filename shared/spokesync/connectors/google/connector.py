"""The Google Calendar spoke: `SpokeConnector` over Calendar API v3.

- Change feed: `events.list` with `showDeleted`, `maxResults=2500`, paged
  until `nextSyncToken`; the cursor is the sync token. 410 → `FullResyncRequired`.
- One SpokeItem per series: the master's id, the series folded with its
  exception instances, and a version that is the master's etag for a plain
  event or a digest of the master's and every exception's etag for a series
  (so a change to one occurrence changes the series' version).
- Writes go through the batch endpoint (≤ 50 calls a batch), always with
  `sendUpdates=none`; creates use deterministic ids (409 duplicate → "exists"),
  updates and deletes use `If-Match` (412 → "conflict", or "not_found" when
  the event is gone).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import Any

from spokesync.connectors.google.client import BatchOutcome, GoogleClient
from spokesync.connectors.google.mapping import (
    FIELDS,
    HUB_ID_KEY,
    Series,
    event_id_for,
    event_to_google,
    exception_plan,
    fold_series,
    fresh_event_id,
    hub_id_of,
    series_version,
    without_kept,
)
from spokesync.model.event import Event
from spokesync.model.item import as_event
from spokesync.ports import (
    Capabilities,
    ChangeSet,
    ConnectorError,
    FullResyncRequired,
    ItemDelete,
    ItemUpdate,
    NewItem,
    SpokeItem,
    WriteResult,
)

PAGE_SIZE = 2500
FRESH_ID_ATTEMPTS = 5


def _headers(request: Any, etag: str | None) -> Any:
    if etag:
        request.headers["If-Match"] = etag
    return request


# Refusals Google documents for events this calendar may not change (see
# sandbox/google_calendar/rules.py for the sources), in plain words.
_REFUSALS = {
    "forbiddenForNonOrganizer": "Google accepts changes to this invitation only from its organiser: change it in "
                                "the organiser's calendar, or undo the change on the other side",
    "eventTypeRestriction": "Google does not let apps change this kind of event (birthday, Gmail, out-of-office, "
                            "focus time or working location): change it in Google Calendar itself",
    "forbiddenForServiceAccounts": "Google refused the attendees: a service account needs domain-wide delegation "
                                   "to set attendees (add a Workspace user to act as in the credential)",
}


# Events this calendar may not change, by what they are (read from Google; the sandbox's
# rules.py cites the sources): their versions carry a marker, so that a later run knows without a
# read that the event is not to be written ("ro:<kind>:<version>").
_READ_ONLY_PREFIX = "ro:"
SPECIAL_EVENT_TYPES = frozenset({"birthday", "fromGmail", "workingLocation", "outOfOffice", "focusTime"})
_KEPT = {
    "invitation": "not changed in Google: this is an invitation from another organiser, and Google accepts "
                  "changes to it only from its organiser. The Google copy stays as it is; change the event in the "
                  "organiser's calendar to change it everywhere",
    "type": "not changed in Google: Google does not let apps change this kind of event (birthday, Gmail, "
            "out-of-office, focus time or working location). The Google copy stays as it is; change it in Google "
            "Calendar itself",
}


def read_only_kind(raw: dict[str, Any], calendar_id: str) -> str | None:
    """'invitation', 'type' (a special eventType) or None (this calendar may change the event)."""
    if (raw.get("eventType") or "default") in SPECIAL_EVENT_TYPES:
        return "type"
    organizer = raw.get("organizer") or {}
    email = str(organizer.get("email") or "")
    if email and not organizer.get("self") and email.lower() != calendar_id.lower() and not raw.get("guestsCanModify"):
        return "invitation"
    return None


def _split_version(version: str) -> tuple[str | None, str]:
    """(read-only kind or None, the version Google's precondition compares)."""
    if version.startswith(_READ_ONLY_PREFIX):
        kind, _, rest = version[len(_READ_ONLY_PREFIX):].partition(":")
        return kind, rest
    return None, version


def _failure(outcome: BatchOutcome, spoke_item_id: str = "") -> WriteResult:
    if not outcome.done:
        return WriteResult("retry", spoke_item_id, message="Google Calendar rate limit: retried later")
    if outcome.status in (404, 410):
        return WriteResult("not_found", spoke_item_id)
    refusal = next((_REFUSALS[r] for r in outcome.reasons if r in _REFUSALS), None)
    if refusal is not None:
        return WriteResult("error", spoke_item_id, message=refusal)
    reason = ", ".join(outcome.reasons) or str(outcome.status)
    return WriteResult("error", spoke_item_id, message=f"Google Calendar refused the write ({reason})")


class GoogleCalendarConnector:
    # fields this spoke's options keep out of the sync: updates leave Google's values
    # (set by `registry.connector_for`)
    kept: frozenset[str] = frozenset()

    def __init__(self, client: GoogleClient, calendar_id: str, *, can_set_attendees: bool = True) -> None:
        self.client = client
        self.calendar_id = calendar_id
        # False for a service account acting as itself: Google refuses attendees
        # (403 forbiddenForServiceAccounts), so they are held in a private property.
        self.can_set_attendees = can_set_attendees
        self._events_resource: Any = None
        self.capabilities = Capabilities(incremental=True, snapshot_diff=False, push=True, batch_size=50,
                                         fields=FIELDS, deterministic_ids=True)

    @property
    def _events(self) -> Any:
        # Building a discovery resource costs ~10 ms: build it once per connector.
        if self._events_resource is None:
            self._events_resource = self.client.service.events()
        return self._events_resource

    def check(self) -> str:
        """Refuses a calendar id this account cannot open, before a spoke is saved (one events.list call)."""
        from googleapiclient.errors import HttpError

        try:
            self.client.execute(self._events.list(calendarId=self.calendar_id, maxResults=1), "checking the calendar")
        except HttpError as exc:
            if exc.resp.status in (403, 404):
                raise ConnectorError(f"there is no Google calendar '{self.calendar_id}' this account can open: "
                                     "pick one from `spokesync calendars`", code="address_not_found") from None
            raise ConnectorError(f"Google Calendar refused to show '{self.calendar_id}' (HTTP {exc.resp.status}); "
                                 "try again later") from None
        return self.calendar_id

    # ---------------------------------------------------------------- reading

    def _list(self, sync_token: str | None) -> tuple[list[dict[str, Any]], str]:
        from googleapiclient.errors import HttpError

        from spokesync.connectors.google.client import error_status

        raws: list[dict[str, Any]] = []
        page: str | None = None
        while True:
            kwargs: dict[str, Any] = {"calendarId": self.calendar_id, "showDeleted": True, "maxResults": PAGE_SIZE}
            if page:
                kwargs["pageToken"] = page
            if sync_token:
                kwargs["syncToken"] = sync_token
            try:
                resp = self.client.execute(self._events.list(**kwargs), "events.list")
            except HttpError as exc:
                if error_status(exc) == 410:
                    raise FullResyncRequired("Google Calendar sync token expired: full resync") from exc
                if error_status(exc) == 404:
                    raise ConnectorError(f"calendar {self.calendar_id!r} not found or not shared with "
                                         "this credential") from exc
                raise ConnectorError(f"Google Calendar list failed ({error_status(exc)})") from exc
            raws.extend(resp.get("items", []))
            page = resp.get("nextPageToken")
            if not page:
                token = resp.get("nextSyncToken")
                if not token:
                    raise ConnectorError("Google Calendar returned no sync token")
                return raws, token

    def _body(self, event: Event, hub_id: str | None) -> dict[str, Any]:
        return event_to_google(event, hub_id, hold_attendees=not self.can_set_attendees)

    def _item(self, series: Series) -> SpokeItem:
        version = series_version(series)
        kind = read_only_kind(series.master, self.calendar_id)
        if kind is not None:  # read into the hub, never written back (see update)
            version = f"{_READ_ONLY_PREFIX}{kind}:{version}"
        return SpokeItem(id=str(series.master["id"]), version=version, event=fold_series(series),
                         hub_id=hub_id_of(series.master))

    def changes(self, cursor: bytes | None) -> ChangeSet:
        raws, token = self._list(cursor.decode() if cursor else None)
        if cursor is None:
            return ChangeSet(items=self._fold_listing(raws), deleted=[], cursor=token.encode(), full=True)
        items: list[SpokeItem] = []
        deleted: list[str] = []
        touched: dict[str, dict[str, Any] | None] = {}
        for raw in raws:
            event_id = str(raw["id"])
            master_id = raw.get("recurringEventId")
            if master_id:
                touched.setdefault(str(master_id), None)
            elif raw.get("status") == "cancelled":
                deleted.append(event_id)
                touched.pop(event_id, None)
            elif raw.get("recurrence"):
                touched[event_id] = raw
            else:
                items.append(self._item(Series(raw)))
        gone = set(deleted)
        wanted = {k: v for k, v in touched.items() if k not in gone}
        for master_id, series in self._read_series(wanted).items():
            if series is None:
                deleted.append(master_id)
            else:
                items.append(self._item(series))
        return ChangeSet(items=items, deleted=deleted, cursor=token.encode(), full=False)

    def _fold_listing(self, raws: list[dict[str, Any]]) -> list[SpokeItem]:
        masters: dict[str, dict[str, Any]] = {}
        exceptions: dict[str, list[dict[str, Any]]] = {}
        for raw in raws:
            if raw.get("recurringEventId"):
                exceptions.setdefault(str(raw["recurringEventId"]), []).append(raw)
            elif raw.get("status") != "cancelled":
                masters[str(raw["id"])] = raw
        items = [self._item(Series(m, tuple(exceptions.get(i, ())))) for i, m in masters.items()]
        for master_id, excs in exceptions.items():
            if master_id in masters:
                continue
            # An occurrence whose series is not in this calendar (an invitation's
            # private copy): keep it as a plain event.
            items.extend(self._item(Series(e)) for e in excs if e.get("status") != "cancelled")
        return items

    def _read_series(self, masters: dict[str, dict[str, Any] | None]) -> dict[str, Series | None]:
        """Current master + exceptions for each id (None: gone). A known master
        resource may be passed in to save its `get`."""
        out: dict[str, Series | None] = {}
        need_get = [i for i, raw in masters.items() if raw is None]
        current: dict[str, dict[str, Any]] = {i: raw for i, raw in masters.items() if raw is not None}
        if need_get:
            got = self.client.batch([(i, self._events.get(calendarId=self.calendar_id, eventId=i))
                                     for i in need_get])
            for i in need_get:
                outcome = got[i]
                if outcome.ok:
                    current[i] = outcome.response
                elif outcome.status in (404, 410):
                    out[i] = None
                else:
                    raise ConnectorError(f"Google Calendar read failed ({outcome.status})")
        recurring: list[tuple[Hashable, Any]] = []
        for i, raw in current.items():
            if raw.get("status") == "cancelled":
                out[i] = None
            elif raw.get("recurrence"):
                recurring.append((i, self._events.list(calendarId=self.calendar_id, iCalUID=raw.get("iCalUID"),
                                                       showDeleted=True, maxResults=PAGE_SIZE)))
            else:
                out[i] = Series(raw)
        if recurring:
            listed = self.client.batch(recurring)
            for key, _ in recurring:
                i = str(key)
                outcome = listed[key]
                if not outcome.ok:
                    raise ConnectorError(f"Google Calendar read failed ({outcome.status})")
                items = list(outcome.response.get("items", []))
                page = outcome.response.get("nextPageToken")
                while page:
                    more = self.client.execute(self._events.list(
                        calendarId=self.calendar_id, iCalUID=current[i].get("iCalUID"), showDeleted=True,
                        maxResults=PAGE_SIZE, pageToken=page), "events.list")
                    items.extend(more.get("items", []))
                    page = more.get("nextPageToken")
                master = next((e for e in items if e.get("id") == i), current[i])
                excs = tuple(e for e in items if e.get("recurringEventId") == i)
                out[i] = None if master.get("status") == "cancelled" else Series(master, excs)
        return out

    def read(self, ids: Sequence[str]) -> dict[str, SpokeItem]:
        found = self._read_series(dict.fromkeys(ids))
        return {i: self._item(s) for i, s in found.items() if s is not None}

    # ---------------------------------------------------------------- writing

    def _write_exceptions(self, work: dict[int, tuple[str, Event, Series | None]]) -> dict[int, WriteResult | None]:
        """Write each series' instance events; a result only for items that failed."""
        requests: list[tuple[Hashable, Any]] = []
        for index, (master_id, event, current) in work.items():
            for n, write in enumerate(exception_plan(master_id, event, current,
                                                     hold_attendees=not self.can_set_attendees)):
                if write.body is not None:
                    without_kept(write.body, self.kept)
                if write.body is None:
                    req = self._events.delete(calendarId=self.calendar_id, eventId=write.instance_id,
                                              sendUpdates="none")
                else:
                    req = self._events.patch(calendarId=self.calendar_id, eventId=write.instance_id,
                                             body=write.body, sendUpdates="none")
                requests.append(((index, n), _headers(req, write.etag)))
        failed: dict[int, WriteResult | None] = {}
        for (index, _), outcome in self.client.batch(requests).items():  # type: ignore[misc]
            if outcome.ok or outcome.status in (404, 410):
                # 404: the occurrence is not in the series; 410: already cancelled.
                continue
            master_id = work[index][0]
            if outcome.status == 412:
                failed[index] = WriteResult("conflict", master_id, message="an occurrence changed meanwhile")
            else:
                failed.setdefault(index, _failure(outcome, master_id))
        return failed

    def _finish_series(self, results: list[WriteResult | None], work: dict[int, tuple[str, Event, Series | None]],
                       status: str = "ok") -> None:
        """Write the exceptions of freshly written masters, then read the series back for its version."""
        if not work:
            return
        failed = self._write_exceptions(work)
        for index, result in failed.items():
            results[index] = result
        remaining = {i: w for i, w in work.items() if i not in failed}
        current = self._read_series({w[0]: None for w in remaining.values()})
        for index, (master_id, _, _) in remaining.items():
            series = current.get(master_id)
            if series is None:
                results[index] = WriteResult("not_found", master_id)
            else:
                results[index] = WriteResult(status, master_id, series_version(series),  # type: ignore[arg-type]
                                             item=self._item(series) if status == "exists" else None)

    def create(self, items: Sequence[NewItem]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(items)
        requests = []
        for index, new in enumerate(items):
            body = {"id": event_id_for(new.hub_id), **self._body(as_event(new.event), new.hub_id)}
            requests.append((index, self._events.insert(calendarId=self.calendar_id, body=body, sendUpdates="none")))
        outcomes = self.client.batch(requests)
        series_work: dict[int, tuple[str, Event, Series | None]] = {}
        duplicates: dict[int, str] = {}
        for index, new in enumerate(items):
            outcome = outcomes[index]
            event_id = event_id_for(new.hub_id)
            if outcome.ok:
                event = as_event(new.event)
                if event.overrides or event.cancelled:
                    series_work[index] = (event_id, event, Series(outcome.response))
                else:
                    results[index] = WriteResult("ok", event_id, str(outcome.response.get("etag", "")))
            elif outcome.status == 409:
                duplicates[index] = event_id
            else:
                results[index] = _failure(outcome, event_id)
        if duplicates:
            self._resolve_duplicates(items, duplicates, results, series_work)
        self._finish_series(results, series_work)
        return [r if r is not None else WriteResult("error", message="no result") for r in results]

    def _resolve_duplicates(self, items: Sequence[NewItem], duplicates: dict[int, str],
                            results: list[WriteResult | None],
                            series_work: dict[int, tuple[str, Event, Series | None]]) -> None:
        """A retried create: report the existing event, or bring back one deleted since.

        Google keeps a deleted event's id: re-inserting it answers 409, and an
        event the *user* deleted cannot be updated back (403); once purged it
        answers 404 to `get` while the id stays taken. Then the item is created
        under a fresh id, after looking for one made that way before (the hub
        id in the private extended property), so a retry never duplicates it.
        """
        got = self.client.batch([(i, self._events.get(calendarId=self.calendar_id, eventId=event_id))
                                 for i, event_id in duplicates.items()])
        undelete: list[tuple[Hashable, Any]] = []
        existing: dict[str, dict[str, Any] | None] = {}
        fresh: list[int] = []
        for index, event_id in duplicates.items():
            outcome = got[index]
            if outcome.ok and outcome.response.get("status") == "cancelled":
                new = items[index]
                body = {**self._body(as_event(new.event), new.hub_id), "status": "confirmed"}
                if as_event(new.event).status == "tentative":
                    body["status"] = "tentative"
                req = self._events.update(calendarId=self.calendar_id, eventId=event_id, body=body,
                                          sendUpdates="none")
                undelete.append((index, _headers(req, outcome.response.get("etag"))))
            elif outcome.ok:
                existing[event_id] = outcome.response
            elif outcome.done and outcome.status == 404:
                fresh.append(index)  # purged, the id stays reserved
            else:
                results[index] = _failure(outcome, event_id)
        if undelete:
            for key, outcome in self.client.batch(undelete).items():
                index = int(key)  # type: ignore[call-overload]
                new = items[index]
                if outcome.done and outcome.status == 403 and not set(outcome.reasons) & set(_REFUSALS):
                    fresh.append(index)  # deleted by the user: Google will not bring it back
                elif not outcome.ok:
                    results[index] = _failure(outcome, event_id_for(new.hub_id))
                elif new.event.overrides or new.event.cancelled:
                    series_work[index] = (event_id_for(new.hub_id), new.event, Series(outcome.response))
                else:
                    results[index] = WriteResult("ok", event_id_for(new.hub_id), str(outcome.response.get("etag")))
        if existing:
            found = self._read_series(existing)
            for index, event_id in duplicates.items():
                if event_id in existing:
                    series = found.get(event_id)
                    if series is None:
                        results[index] = WriteResult("error", event_id, message="duplicate id but no event")
                    else:
                        results[index] = WriteResult("exists", event_id, series_version(series),
                                                     item=self._item(series))
        for index in fresh:
            self._create_fresh(index, items[index], results, series_work)

    def _find_by_hub_id(self, hub_id: str) -> dict[str, Any] | None:
        """A live master event carrying `hub_id` in its private extended property."""
        resp = self.client.execute(self._events.list(
            calendarId=self.calendar_id, privateExtendedProperty=f"{HUB_ID_KEY}={hub_id}", maxResults=50),
            "events.list")
        return next((e for e in resp.get("items", []) if not e.get("recurringEventId")
                     and e.get("status") != "cancelled"), None)

    def _create_fresh(self, index: int, new: NewItem, results: list[WriteResult | None],
                      series_work: dict[int, tuple[str, Event, Series | None]]) -> None:
        from googleapiclient.errors import HttpError

        from spokesync.connectors.google.client import error_reasons, error_status

        adopted = self._find_by_hub_id(new.hub_id)
        if adopted is not None:
            series = self._read_series({str(adopted["id"]): adopted}).get(str(adopted["id"]))
            if series is not None:
                results[index] = WriteResult("exists", str(adopted["id"]), series_version(series),
                                             item=self._item(series))
                return
        for attempt in range(1, FRESH_ID_ATTEMPTS + 1):
            event_id = fresh_event_id(new.hub_id, attempt)
            try:
                created = self.client.execute(self._events.insert(
                    calendarId=self.calendar_id, body={"id": event_id, **self._body(as_event(new.event), new.hub_id)},
                    sendUpdates="none"), "events.insert")
            except HttpError as exc:
                if error_status(exc) == 409:
                    continue  # that id was used and deleted before: the next one
                results[index] = _failure(BatchOutcome(status=error_status(exc),
                                                       reasons=tuple(error_reasons(exc))), event_id)
                return
            event = as_event(new.event)
            if event.overrides or event.cancelled:
                series_work[index] = (event_id, event, Series(created))
            else:
                results[index] = WriteResult("ok", event_id, str(created.get("etag", "")))
            return
        results[index] = WriteResult("error", event_id_for(new.hub_id),
                                     message="Google keeps refusing to recreate this event (its ids are taken)")

    def _classify_precondition_failures(self, failed: dict[int, str], results: list[WriteResult | None]) -> None:
        """412: the event changed (conflict) or is gone (deleted since: not_found)."""
        if not failed:
            return
        current = self._read_series(dict.fromkeys(failed.values()))
        for index, event_id in failed.items():
            series = current.get(event_id)
            results[index] = WriteResult("not_found", event_id) if series is None else WriteResult(
                "conflict", event_id, series_version(series))

    def _precheck_series(self, entries: dict[int, tuple[str, str]],
                         results: list[WriteResult | None]) -> dict[int, Series]:
        """Series versions are digests: compare them with a fresh read first."""
        if not entries:
            return {}
        current = self._read_series({event_id: None for event_id, _ in entries.values()})
        ready: dict[int, Series] = {}
        for index, (event_id, version) in entries.items():
            series = current.get(event_id)
            if series is None:
                results[index] = WriteResult("not_found", event_id)
            elif series_version(series) != version:
                results[index] = WriteResult("conflict", event_id, series_version(series))
            else:
                ready[index] = series
        return ready

    def update(self, items: Sequence[ItemUpdate]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(items)
        for index, upd in enumerate(items):
            kind, _ = _split_version(upd.version)
            if kind is not None:
                # Invitations and special event types are not written: Google would refuse it
                # (403 forbiddenForNonOrganizer / eventType restrictions). Nothing is sent; the item
                # stays as it is, and the run lists it with this sentence.
                results[index] = WriteResult("error", upd.spoke_item_id, message=_KEPT.get(kind, _KEPT["type"]))
        series_versions = {i: (u.spoke_item_id, u.version) for i, u in enumerate(items)
                           if results[i] is None and not u.version.startswith('"')}
        prechecked = self._precheck_series(series_versions, results)
        requests = []
        for index, upd in enumerate(items):
            if results[index] is not None:
                continue
            etag = str(prechecked[index].master.get("etag")) if index in prechecked else upd.version
            req = self._events.patch(calendarId=self.calendar_id, eventId=upd.spoke_item_id,
                                     body=without_kept(self._body(as_event(upd.event), upd.hub_id), self.kept),
                                     sendUpdates="none")
            requests.append((index, _headers(req, etag)))
        outcomes = self.client.batch(requests)
        conflicts: dict[int, str] = {}
        series_work: dict[int, tuple[str, Event, Series | None]] = {}
        for key, outcome in outcomes.items():
            index = int(key)  # type: ignore[call-overload]
            upd = items[index]
            if outcome.ok:
                before = prechecked.get(index)
                if upd.event.recurrence or (before is not None and before.exceptions):
                    excs = before.exceptions if before is not None else ()
                    series_work[index] = (upd.spoke_item_id, upd.event, Series(outcome.response, excs))
                else:
                    results[index] = WriteResult("ok", upd.spoke_item_id, str(outcome.response.get("etag", "")))
            elif outcome.status == 412:
                conflicts[index] = upd.spoke_item_id
            else:
                results[index] = _failure(outcome, upd.spoke_item_id)
        self._classify_precondition_failures(conflicts, results)
        self._finish_series(results, series_work)
        return [r if r is not None else WriteResult("error", message="no result") for r in results]

    def delete(self, items: Sequence[ItemDelete]) -> list[WriteResult]:
        # Deleting an invitation's copy is allowed (it leaves this calendar only): the marker is dropped.
        items = [replace(d, version=_split_version(d.version)[1]) for d in items]
        results: list[WriteResult | None] = [None] * len(items)
        series_versions = {i: (d.spoke_item_id, d.version) for i, d in enumerate(items) if not d.version.startswith('"')}
        prechecked = self._precheck_series(series_versions, results)
        requests = []
        for index, rem in enumerate(items):
            if results[index] is not None:
                continue
            etag = str(prechecked[index].master.get("etag")) if index in prechecked else rem.version
            req = self._events.delete(calendarId=self.calendar_id, eventId=rem.spoke_item_id, sendUpdates="none")
            requests.append((index, _headers(req, etag)))
        conflicts: dict[int, str] = {}
        for key, outcome in self.client.batch(requests).items():
            index = int(key)  # type: ignore[call-overload]
            rem = items[index]
            if outcome.ok:
                results[index] = WriteResult("ok", rem.spoke_item_id)
            elif outcome.status == 412:
                conflicts[index] = rem.spoke_item_id
            else:
                results[index] = _failure(outcome, rem.spoke_item_id)
        self._classify_precondition_failures(conflicts, results)
        return [r if r is not None else WriteResult("error", message="no result") for r in results]

    # ---------------------------------------------------------------- push channels

    def watch(self, channel_id: str, token: str, address: str, ttl_s: int) -> tuple[str, int]:
        """Open an events.watch channel; returns (resource id, expiration in ms)."""
        body = {"id": channel_id, "type": "web_hook", "address": address, "token": token,
                "params": {"ttl": str(int(ttl_s))}}
        resp = self.client.execute(self._events.watch(calendarId=self.calendar_id, body=body), "events.watch")
        return str(resp["resourceId"]), int(resp.get("expiration") or 0)

    def stop_channel(self, channel_id: str, resource_id: str) -> bool:
        """Stop a channel; False when Google no longer knows it."""
        from googleapiclient.errors import HttpError

        from spokesync.connectors.google.client import error_status

        try:
            self.client.execute(self.client.service.channels().stop(body={"id": channel_id,
                                                                         "resourceId": resource_id}),
                                "channels.stop")
        except HttpError as exc:
            if error_status(exc) in (404, 410):
                return False
            raise ConnectorError(f"Google refused to stop a push channel ({error_status(exc)})") from exc
        return True
