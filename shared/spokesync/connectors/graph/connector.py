"""The Microsoft 365 spoke: one calendar of a user or shared mailbox, or a Microsoft 365 group's
calendar, through Microsoft Graph v1.0, behind the SpokeConnector port.

Change detection (`calendarView/delta`, v1.0 needs a window):
- `changes(None)`: a delta round over the window is started first (its token marks the moment),
  then the calendar's events (single events and series masters, every date) are listed with
  their hub id and exceptions: a complete listing (`full=True`), so nothing outside the window
  looks deleted. The cursor keeps the `@odata.deltaLink` and the window.
- `changes(cursor)`: the delta link gives what changed in the window: single events, series
  masters, occurrences and exceptions (folded into their master's id) and `@removed` ids. Each
  is read back once in `$batch`es; only an id that no longer exists is reported deleted (an item
  that left the window is not a deletion). An expired or refused delta token:
  `FullResyncRequired`. A window older than `REANCHOR_DAYS` is renewed the same way.
- A series is one item: the master with its `recurrence`, its exceptions
  (`$expand=exceptionOccurrences`) and its cancelled occurrences (`cancelledOccurrences`).
  Occurrences are never items of their own.

Writes: `$batch`es of ≤ 20; creates carry a `transactionId` derived from the hub id (a retried
create returns the first event); updates and deletes carry `If-Match` with the etag, after a
read in the same batch style that checks the etag and refuses to touch a meeting that has real
attendees (Graph would notify them). Exceptions are written to the series' occurrences
(found through `events/{id}/instances`) after the master; the version is the master's etag
read afterwards (Exchange changes the master's change key with each exception).
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from spokesync.connectors.graph import mapping
from spokesync.connectors.graph.client import GraphClient, Response
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

CURSOR = b"G1"
LIST_PAGE = 200
DELTA_PAGE = 200
REANCHOR_DAYS = 7
DEFAULT_DAYS_PAST = 365
DEFAULT_DAYS_FUTURE = 730
_RESYNC_CODES = {"syncStateNotFound", "syncStateInvalid", "resyncRequired", "ErrorInvalidSyncStateData"}
_TXN = uuid.UUID("6f1c1d1e-3c1b-4c52-9a53-7370c4b5e001")


@dataclass(frozen=True)
class Target:
    kind: str  # "user" (a user's or a shared mailbox) | "group"
    mailbox: str  # user principal name / SMTP address / object id; group object id
    calendar_id: str | None = None  # None: the default calendar (groups have only that one)

    @property
    def root(self) -> str:
        return f"{'users' if self.kind == 'user' else 'groups'}/{self.mailbox}"

    @property
    def calendar_path(self) -> str:
        if self.kind == "group" or not self.calendar_id:
            return f"{self.root}/calendar"
        return f"{self.root}/calendars/{self.calendar_id}"

    def event_path(self, event_id: str) -> str:
        return f"{self.root}/events/{event_id}"


def transaction_id(target: Target, hub_id: str) -> str:
    """The same for every retry of one hub item's create in one calendar (Graph deduplicates by it)."""
    return str(uuid.uuid5(_TXN, f"{target.calendar_path}|{hub_id}"))


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def delta_round(client: GraphClient, url: str, page_size: int,
                fail: Callable[[Response], ConnectorError]) -> tuple[list[dict[str, Any]], str]:
    """Follow one delta round (`@odata.nextLink` pages) to its `@odata.deltaLink`.

    An expired or refused delta token (410 `syncStateNotFound` / `resyncRequired`, "Use delta
    query to track changes"): `FullResyncRequired`.
    """
    items, resp = client.pages(url, headers={"Prefer": f"odata.maxpagesize={page_size}"})
    if resp.status == 410 or resp.code in _RESYNC_CODES:
        raise FullResyncRequired("the Microsoft 365 delta token expired: full resync")
    if not resp.ok:
        raise fail(resp)
    link = resp.body.get("@odata.deltaLink")
    if not link:
        raise ConnectorError("Microsoft Graph returned no delta link")
    return items, str(link)


def batch_get(client: GraphClient, urls: Sequence[str], fail: Callable[[Response], ConnectorError]
              ) -> dict[int, dict[str, Any]]:
    """GET each url in `$batch`es; {index: body} of those that exist (a missing or malformed id is absent)."""
    out: dict[int, dict[str, Any]] = {}
    requests = [{"id": str(n), "method": "GET", "url": url} for n, url in enumerate(urls)]
    for key, resp in client.batch(requests).items():
        if resp.ok and isinstance(resp.body, dict):
            out[int(key)] = resp.body
        elif resp.status in (404, 400) and resp.code in ("ErrorItemNotFound", "ErrorInvalidIdMalformed",
                                                          "ResourceNotFound", "Request_ResourceNotFound"):
            continue
        else:
            raise fail(resp)
    return out


def classify_conflicts(items: Sequence[ItemUpdate | ItemDelete], indexes: list[int],
                       results: list[WriteResult | None],
                       read: Callable[[Sequence[str]], dict[str, dict[str, Any]]]) -> None:
    """412: changed meanwhile (conflict) or deleted meanwhile (not_found)."""
    if not indexes:
        return
    current = read([items[i].spoke_item_id for i in indexes])
    for index in indexes:
        raw = current.get(items[index].spoke_item_id)
        results[index] = WriteResult("not_found", items[index].spoke_item_id) if raw is None else WriteResult(
            "conflict", items[index].spoke_item_id, str(raw.get("@odata.etag") or ""))


def write_failure(resp: Response, spoke_item_id: str = "") -> WriteResult:
    if resp.status == 404:
        return WriteResult("not_found", spoke_item_id)
    if resp.status == 412:
        return WriteResult("conflict", spoke_item_id)
    return WriteResult("error", spoke_item_id, message=f"Microsoft 365 refused the write ({resp.status} "
                                                       f"{resp.code or 'error'})")


class GraphConnector:
    # fields this spoke's options keep out of the sync: updates leave Microsoft 365's values
    # (set by `registry.connector_for`)
    kept: frozenset[str] = frozenset()

    def __init__(self, client: GraphClient, target: Target, *, days_past: int | None = None,
                 days_future: int | None = None, now: Callable[[], datetime] | None = None) -> None:
        self.client = client
        self.target = target
        self.days_past = DEFAULT_DAYS_PAST if days_past is None else max(days_past, 1) + 1
        self.days_future = DEFAULT_DAYS_FUTURE if days_future is None else max(days_future, 1) + 1
        self._now = now or (lambda: datetime.now(UTC))
        self.capabilities = Capabilities(incremental=True, snapshot_diff=False, push=True, batch_size=20,
                                         fields=mapping.FIELDS, deterministic_ids=False)

    # ------------------------------------------------------------ reading
    def _window(self) -> tuple[datetime, datetime]:
        now = self._now().replace(microsecond=0)
        return now - timedelta(days=self.days_past), now + timedelta(days=self.days_future)

    def _delta_round(self, url: str) -> tuple[list[dict[str, Any]], str]:
        return delta_round(self.client, url, DELTA_PAGE, lambda r: self._error(r, "read the calendar's changes"))

    def _error(self, resp: Response, doing: str) -> ConnectorError:
        from spokesync.connectors.graph import describe_response

        return describe_response(resp, self.target, doing)

    def _item(self, raw: dict[str, Any]) -> SpokeItem:
        try:
            event = mapping.graph_to_event(raw)
        except (mapping.UnsupportedEvent, ValueError, KeyError) as exc:
            event = Event(title=raw.get("subject") or "", description=f"(unreadable recurrence: {exc})")
        return SpokeItem(str(raw["id"]), str(raw.get("@odata.etag") or ""), event, mapping.hub_id_of(raw))

    def _cursor(self, link: str, window: tuple[datetime, datetime]) -> bytes:
        payload = {"delta": link, "window": [_iso(window[0]), _iso(window[1])], "anchored": _iso(self._now())}
        return CURSOR + zlib.compress(json.dumps(payload, separators=(",", ":")).encode())

    def _payload(self, cursor: bytes) -> dict[str, Any]:
        try:
            if cursor[:2] != CURSOR:
                raise ValueError("not a Graph cursor")
            payload: dict[str, Any] = json.loads(zlib.decompress(cursor[2:]))
        except (ValueError, zlib.error) as exc:
            raise FullResyncRequired("unreadable Microsoft 365 cursor: full resync") from exc
        anchored = datetime.fromisoformat(payload["anchored"].replace("Z", "+00:00"))
        if self._now() - anchored > timedelta(days=REANCHOR_DAYS):
            raise FullResyncRequired("the Microsoft 365 date window moved on: full resync")
        return payload

    def change_versions(self, cursor: bytes) -> tuple[dict[str, str], list[str], bytes]:
        """`changes(cursor)` as ids and etags only (`ports.VersionFeed`): the same delta round,
        without reading the changed events again. A lone event or a series master is taken with
        the `@odata.etag` of its delta entry; a series whose occurrence was changed (an
        `exception` entry), or whose occurrences came without the master, is given no version, and
        an entry without an etag none either: the caller then does not take them for its own
        writes, and the next run reads them with `changes`, as before."""
        payload = self._payload(cursor)
        raws, link = self._delta_round(str(payload["delta"]))
        changed: dict[str, str] = {}
        deleted: list[str] = []
        series: set[str] = set()
        edited: set[str] = set()
        for raw in raws:
            if "@removed" in raw:
                deleted.append(str(raw["id"]))
            elif raw.get("type") in ("occurrence", "exception"):
                (edited if raw.get("type") == "exception" else series).add(str(raw.get("seriesMasterId")))
            else:
                changed[str(raw["id"])] = str(raw.get("@odata.etag") or "")
        for master in series | edited:
            if master in edited or master not in changed:
                changed[master] = ""
        new_cursor = cursor if not raws else CURSOR + zlib.compress(
            json.dumps({**payload, "delta": link}, separators=(",", ":")).encode())
        return changed, [i for i in dict.fromkeys(deleted) if i not in changed], new_cursor

    def changes(self, cursor: bytes | None) -> ChangeSet:
        if cursor is None:
            return self._full()
        payload = self._payload(cursor)
        raws, link = self._delta_round(str(payload["delta"]))
        touched: dict[str, None] = {}
        removed: dict[str, None] = {}
        for raw in raws:
            if "@removed" in raw:
                removed[str(raw["id"])] = None
            elif raw.get("type") in ("occurrence", "exception"):
                touched[str(raw.get("seriesMasterId"))] = None
            else:
                touched[str(raw["id"])] = None
        ids = list(dict.fromkeys([*touched, *removed]))
        found = self._read(ids)
        items = [found[i] for i in touched if i in found] + [found[i] for i in removed if i in found
                                                               and i not in touched]
        deleted = [i for i in ids if i not in found]
        # Nothing new: keep the cursor as it was (the old delta link stays valid), so an idle run writes no cursor.
        new_cursor = cursor if not raws else CURSOR + zlib.compress(
            json.dumps({**payload, "delta": link}, separators=(",", ":")).encode())
        return ChangeSet(items=items, deleted=deleted, cursor=new_cursor, full=False)

    def _full(self) -> ChangeSet:
        window = self._window()
        start = (f"{self.target.calendar_path}/calendarView/delta?startDateTime={_iso(window[0])}"
                 f"&endDateTime={_iso(window[1])}")
        _, link = self._delta_round(start)
        listing = (f"{self.target.calendar_path}/events?$select={mapping.SELECT}&$expand={mapping.EXPAND}"
                   f"&$top={LIST_PAGE}")
        raws, resp = self.client.pages(listing, headers={"Prefer": f"odata.maxpagesize={LIST_PAGE}"})
        if not resp.ok:
            raise self._error(resp, "list the calendar")
        items = [self._item(r) for r in raws if r.get("type") in (None, "singleInstance", "seriesMaster")]
        return ChangeSet(items=items, deleted=[], cursor=self._cursor(link, window), full=True)

    def _read_raw(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        ids = list(dict.fromkeys(ids))
        urls = [f"/{self.target.event_path(i)}?$select={mapping.SELECT}&$expand={mapping.EXPAND}" for i in ids]
        found = batch_get(self.client, urls, lambda r: self._error(r, "read events"))
        # an occurrence id is never an item of its own
        return {ids[n]: raw for n, raw in found.items() if raw.get("type") not in ("occurrence", "exception")}

    def _read(self, ids: Sequence[str]) -> dict[str, SpokeItem]:
        return {i: self._item(raw) for i, raw in self._read_raw(ids).items()}

    def read(self, ids: Sequence[str]) -> dict[str, SpokeItem]:
        return self._read(ids)

    # ------------------------------------------------------------ series exceptions
    def _write_exceptions(self, work: dict[int, tuple[str, Event]]) -> dict[int, WriteResult]:
        """Bring each series' exceptions and cancellations to what the event says. Returns failures."""
        failures: dict[int, WriteResult] = {}
        current = self._read_raw([master for master, _ in work.values()])
        lookups: list[dict[str, Any]] = []
        plans: dict[int, list[tuple[str, str, Any]]] = {}  # index -> [(key, "patch"|"delete", body)]
        known: dict[tuple[int, str], str] = {}  # (index, key) -> occurrence id
        for index, (master_id, event) in work.items():
            raw = current.get(master_id)
            if raw is None:
                failures[index] = WriteResult("not_found", master_id)
                continue
            now = mapping.graph_to_event(raw)
            have = {mapping.original_key(o.original_start): o.event for o in now.overrides}
            have_ids = {mapping.original_key(mapping.original_of(e, _tz(now), now.all_day)): str(e["id"])
                        for e in raw.get("exceptionOccurrences") or []}
            cancelled_now = {mapping.original_key(c) for c in now.cancelled}
            want = {mapping.original_key(o.original_start): o for o in event.overrides}
            want_cancel = {mapping.original_key(c): c for c in event.cancelled}
            steps: list[tuple[str, str, Any]] = []
            for key, override in want.items():
                if key in cancelled_now or key in want_cancel:
                    continue
                if key in have and mapping.same_occurrence(have[key], override.event):
                    continue
                steps.append((key, "patch", mapping.without_kept(mapping.occurrence_to_graph(override.event, event),
                                                                 self.kept)))
                if key in have_ids:
                    known[(index, key)] = have_ids[key]
                else:
                    lookups.append(self._instances_request(index, key, master_id, override.original_start, event))
            for key, when in want_cancel.items():
                if key in cancelled_now:
                    continue
                steps.append((key, "delete", None))
                if key in have_ids:
                    known[(index, key)] = have_ids[key]
                else:
                    lookups.append(self._instances_request(index, key, master_id, when, event))
            for key in have:
                if key not in want and key not in want_cancel and key in have_ids:
                    # back to the series' own fields at the original time
                    original = next(o.original_start for o in now.overrides if mapping.original_key(o.original_start)
                                    == key)
                    plain = _occurrence_of(event, original)
                    steps.append((key, "patch", mapping.without_kept(mapping.occurrence_to_graph(plain, event),
                                                                     self.kept)))
                    known[(index, key)] = have_ids[key]
            if steps:
                plans[index] = steps
        if lookups:
            for key, resp in self.client.batch(lookups).items():
                index_s, occ_key = key.split("|", 1)
                if not resp.ok:
                    failures[int(index_s)] = write_failure(resp, work[int(index_s)][0])
                    continue
                for inst in resp.body.get("value") or []:
                    master_event = work[int(index_s)][1]
                    original = mapping.original_of(inst, _tz(master_event), master_event.all_day)
                    if mapping.original_key(original) == occ_key:
                        known[(int(index_s), occ_key)] = str(inst["id"])
        writes: list[dict[str, Any]] = []
        for index, steps in plans.items():
            if index in failures:
                continue
            for n, (key, action, body) in enumerate(steps):
                occ_id = known.get((index, key))
                if occ_id is None:
                    continue  # no such occurrence in the series (outside its pattern): nothing to change
                request: dict[str, Any] = {"id": f"{index}|{n}", "method": "PATCH" if action == "patch" else "DELETE",
                                           "url": f"/{self.target.event_path(occ_id)}"}
                if body is not None:
                    request["body"] = body
                writes.append(request)
        if writes:
            for key, resp in self.client.batch(writes).items():
                index = int(key.split("|", 1)[0])
                if not resp.ok and resp.status != 404:
                    failures.setdefault(index, write_failure(resp, work[index][0]))
        return failures

    def _instances_request(self, index: int, key: str, master_id: str, original: Any, event: Event) -> dict[str, Any]:
        if isinstance(original, datetime):
            start, end = original - timedelta(minutes=1), original + timedelta(minutes=1)
        else:
            base = datetime(original.year, original.month, original.day, tzinfo=UTC)
            start, end = base - timedelta(hours=14), base + timedelta(hours=38)
        return {"id": f"{index}|{key}", "method": "GET",
                "url": f"/{self.target.event_path(master_id)}/instances?startDateTime={_iso(start)}"
                       f"&endDateTime={_iso(end)}&$select=id,originalStart,type"}

    def _finish(self, results: list[WriteResult | None], done: dict[int, str],
                series: dict[int, tuple[str, Event]]) -> None:
        """Write exceptions, then read the masters written for their final etags."""
        if series:
            for index, failure in self._write_exceptions(series).items():
                results[index] = failure
        final = [i for i in series if results[i] is None]
        if final:
            current = self._read_raw([series[i][0] for i in final])
            for index in final:
                raw = current.get(series[index][0])
                results[index] = WriteResult("not_found", series[index][0]) if raw is None else WriteResult(
                    "ok", series[index][0], str(raw.get("@odata.etag") or ""))
        for index, event_id in done.items():
            if results[index] is None:
                results[index] = WriteResult("ok", event_id, "")

    # ------------------------------------------------------------ writing
    def create(self, items: Sequence[NewItem]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(items)
        requests: list[dict[str, Any]] = []
        for index, new in enumerate(items):
            try:
                body = mapping.event_to_graph(as_event(new.event), new.hub_id)
            except mapping.UnsupportedEvent as exc:
                results[index] = WriteResult("error", message=f"not written to Microsoft 365: {exc}")
                continue
            body["transactionId"] = transaction_id(self.target, new.hub_id)
            requests.append({"id": str(index), "method": "POST", "url": f"/{self.target.calendar_path}/events",
                             "body": body})
        series: dict[int, tuple[str, Event]] = {}
        for key, resp in self.client.batch(requests).items():
            index = int(key)
            if not resp.ok or not isinstance(resp.body, dict):
                results[index] = write_failure(resp)
                continue
            event_id = str(resp.body["id"])
            event = as_event(items[index].event)
            if event.overrides or event.cancelled:
                series[index] = (event_id, event)
            else:
                results[index] = WriteResult("ok", event_id, str(resp.body.get("@odata.etag") or ""))
        self._finish(results, {}, series)
        return [r if r is not None else WriteResult("error", message="no result") for r in results]

    def _precheck(self, items: Sequence[ItemUpdate | ItemDelete],
                  results: list[WriteResult | None]) -> None:
        """Etag and attendees, read before writing: a meeting with real attendees is never touched."""
        current = self._read_raw([i.spoke_item_id for i in items])
        for index, item in enumerate(items):
            raw = current.get(item.spoke_item_id)
            if raw is None:
                results[index] = WriteResult("not_found", item.spoke_item_id)
            elif str(raw.get("@odata.etag") or "") != item.version:
                results[index] = WriteResult("conflict", item.spoke_item_id, str(raw.get("@odata.etag") or ""))
            elif raw.get("attendees"):
                results[index] = WriteResult(
                    "error", item.spoke_item_id,
                    message="not changed in Microsoft 365: this meeting has attendees, and Microsoft 365 would send "
                            "them an update. Change it in Outlook, or remove its attendees there.")

    def update(self, items: Sequence[ItemUpdate]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(items)
        self._precheck(items, results)
        requests: list[dict[str, Any]] = []
        for index, upd in enumerate(items):
            if results[index] is not None:
                continue
            try:
                body = mapping.without_kept(mapping.event_to_graph(as_event(upd.event), upd.hub_id), self.kept)
            except mapping.UnsupportedEvent as exc:
                results[index] = WriteResult("error", upd.spoke_item_id, message=f"not written to Microsoft 365: {exc}")
                continue
            requests.append({"id": str(index), "method": "PATCH", "url": f"/{self.target.event_path(upd.spoke_item_id)}",
                             "body": body, "headers": {"If-Match": upd.version}})
        series: dict[int, tuple[str, Event]] = {}
        conflicts: list[int] = []
        for key, resp in self.client.batch(requests).items():
            index = int(key)
            upd = items[index]
            if resp.status == 412:
                conflicts.append(index)
            elif not resp.ok or not isinstance(resp.body, dict):
                results[index] = write_failure(resp, upd.spoke_item_id)
            elif as_event(upd.event).recurrence:
                series[index] = (upd.spoke_item_id, as_event(upd.event))
            else:
                results[index] = WriteResult("ok", upd.spoke_item_id, str(resp.body.get("@odata.etag") or ""))
        classify_conflicts(items, conflicts, results, self._read_raw)
        self._finish(results, {}, series)
        return [r if r is not None else WriteResult("error", message="no result") for r in results]

    def delete(self, items: Sequence[ItemDelete]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(items)
        self._precheck(items, results)
        requests = [{"id": str(index), "method": "DELETE", "url": f"/{self.target.event_path(rem.spoke_item_id)}",
                     "headers": {"If-Match": rem.version}}
                    for index, rem in enumerate(items) if results[index] is None]
        conflicts: list[int] = []
        for key, resp in self.client.batch(requests).items():
            index = int(key)
            if resp.ok:
                results[index] = WriteResult("ok", items[index].spoke_item_id)
            elif resp.status == 412:
                conflicts.append(index)
            else:
                results[index] = write_failure(resp, items[index].spoke_item_id)
        classify_conflicts(items, conflicts, results, self._read_raw)
        return [r if r is not None else WriteResult("error", message="no result") for r in results]

    # ------------------------------------------------------------ push (change notifications)
    def subscribe(self, notification_url: str, lifecycle_url: str, client_state: str,
                  expires: datetime) -> tuple[str, datetime]:
        """Create a subscription to this calendar's events; returns (id, expiration)."""
        resource = (f"{self.target.root}/calendar/events" if self.target.kind == "group" or not self.target.calendar_id
                    else f"{self.target.root}/calendars/{self.target.calendar_id}/events")
        body = {"changeType": "created,updated,deleted", "notificationUrl": notification_url,
                "lifecycleNotificationUrl": lifecycle_url, "resource": resource,
                "expirationDateTime": _iso(expires), "clientState": client_state, "latestSupportedTlsVersion": "v1_2"}
        resp = self.client.request("POST", "subscriptions", body)
        if not resp.ok:
            raise self._error(resp, "subscribe to change notifications")
        return str(resp.body["id"]), datetime.fromisoformat(str(resp.body["expirationDateTime"]).replace("Z", "+00:00"))

    def renew(self, subscription_id: str, expires: datetime) -> datetime | None:
        """Extend a subscription; None when Graph no longer has it."""
        resp = self.client.request("PATCH", f"subscriptions/{subscription_id}", {"expirationDateTime": _iso(expires)})
        if resp.status == 404:
            return None
        if not resp.ok:
            raise self._error(resp, "renew a change-notification subscription")
        return datetime.fromisoformat(str(resp.body["expirationDateTime"]).replace("Z", "+00:00"))

    def unsubscribe(self, subscription_id: str) -> bool:
        resp = self.client.request("DELETE", f"subscriptions/{subscription_id}")
        return resp.ok


def _tz(event: Event) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(event.timezone or getattr(getattr(event.start, "tzinfo", None), "key", None) or "UTC")


def _occurrence_of(series: Event, original: Any) -> Event:
    from dataclasses import replace

    assert series.start is not None and series.end is not None
    duration = series.end - series.start  # type: ignore[operator]
    return replace(series, start=original, end=original + duration, recurrence=(), overrides=(), cancelled=())

