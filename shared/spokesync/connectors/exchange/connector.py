"""The Exchange spoke: one calendar folder (public or mailbox) behind the SpokeConnector port.

Change detection:
- public folders (no SyncFolderItems there): FindItem IdOnly pages of ≤1000
  (id + ChangeKey) diffed against the snapshot kept in the cursor, then
  GetItem for the changed ids only;
- mailbox folders: SyncFolderItems (≤512 changes a call) from the sync state
  kept in the cursor, with the snapshot kept alongside so that a refused
  state falls back to the snapshot diff instead of a blind full resync.

Writes go in batches, never notify anyone (SendToNone), and use
NEVER_OVERWRITE with the ChangeKey. Every item carries the hub id in a
PublicStrings extended property; creates look it up first (one FindItem per
batch) so a create retried after a crash adopts the item instead of
duplicating it.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from exchangelib import CalendarItem, EWSTimeZone
from exchangelib import errors as ews_errors
from exchangelib.fields import FieldPath
from exchangelib.folders import Folder, PublicFoldersRoot, Root
from exchangelib.items import ID_ONLY, SHALLOW
from exchangelib.properties import ItemId, OccurrenceItemId
from exchangelib.restriction import Q, Restriction
from exchangelib.services import CreateItem as _CreateItem
from exchangelib.services import DeleteItem as _DeleteItem
from exchangelib.services import FindItem as _FindItem
from exchangelib.services import GetItem as _GetItem
from exchangelib.services import SyncFolderItems
from exchangelib.services import UpdateItem as _UpdateItem
from exchangelib.util import TNS
from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

from spokesync.connectors.exchange import mapping, routing, timezones
from spokesync.connectors.exchange.access import ExchangeSettings, describe, translated
from spokesync.connectors.exchange.recurrence import UnsupportedRecurrence
from spokesync.model.event import Event
from spokesync.model.item import Item, as_event
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


# Per-item failures come back as exception objects in order, for every kind of
# response error (exchangelib raises most of them by default, aborting a batch).
class FindItem(routing.Routed, _FindItem):  # type: ignore[misc]
    pass


class CreateItem(routing.Routed, _CreateItem):  # type: ignore[misc]
    ERRORS_TO_CATCH_IN_RESPONSE = ews_errors.ResponseMessageError


class UpdateItem(routing.Routed, _UpdateItem):  # type: ignore[misc]
    ERRORS_TO_CATCH_IN_RESPONSE = ews_errors.ResponseMessageError


class DeleteItem(routing.Routed, _DeleteItem):  # type: ignore[misc]
    ERRORS_TO_CATCH_IN_RESPONSE = ews_errors.ResponseMessageError


class GetItem(routing.Routed, _GetItem):  # type: ignore[misc]
    ERRORS_TO_CATCH_IN_RESPONSE = ews_errors.ResponseMessageError
    year: int | None = None  # the app clock's year, for zones resolved from their definition (connectors set it)

    def _elem_to_obj(self, elem: Any) -> Any:
        """exchangelib has no zone for a StartTimeZone whose Id is not a Windows id (it warns and gives
        None, which would read as UTC): resolve such a zone from its definition instead."""
        resolved: dict[str, str | None] = {}
        for field, tag in (("_start_timezone", "StartTimeZone"), ("_end_timezone", "EndTimeZone")):
            zone_elem = elem.find(f"{{{TNS}}}{tag}")
            if zone_elem is not None and not any(v in MS_TIMEZONE_TO_IANA_MAP for v in
                                                 (zone_elem.get("Id") or "", zone_elem.get("Name") or "")):
                resolved[field] = timezones.iana_for_definition(zone_elem, self.year)
                zone_elem.set("Id", "UTC")  # exchangelib would warn, or fail on a missing Name
        item = super()._elem_to_obj(elem)  # (exchangelib clears the element while parsing it)
        for field, name in resolved.items():
            setattr(item, field, EWSTimeZone(name) if name else None)
        return item


# Batch and page sizes Exchange accepts (docs/decisions/2026-12-01-exchange-batch-sizes.md):
# - FindItem without a restriction: pages of 1000, the default EWSFindCountLimit; with a restriction
#   (the hub-id lookup) Exchange 2013+ and Exchange Online return at most 250 ("EWS throttling in
#   Exchange", MicrosoftDocs/office-developer-exchange-docs, ews-throttling-in-exchange.md, table 1);
# - GetItem / CreateItem / UpdateItem / DeleteItem: EWS sets no item count, only the request size
#   (64 MB for EWS clients: OfficeDocs-Exchange, mail-flow/message-size-limits.md, "Server limits")
#   and one minute of execution per batch, with the budget checked after each item (same throttling
#   article, "Throttling implications for EWS batch requests"). Reads go in batches of 1000 (IdOnly
#   plus the mapped fields, a few KB an item); writes in batches of 500, half the read size, so a
#   batch stays well inside the minute when the server slows each item down under budget pressure.
FIND_PAGE = 1000  # Exchange's default EWSFindCountLimit
RESTRICTED_FIND_PAGE = 250  # EWSFindCountLimit for a search with a restriction (Exchange 2013+, Online)
HUB_ID_CHUNK = 200  # hub ids per restricted FindItem (an Or of IsEqualTo; ≤ one restricted page)
READ_BATCH = 1000
WRITE_BATCH = 500
SYNC_PAGE = 512  # SyncFolderItems' maximum
CURSOR_SNAPSHOT = b"S1"
CURSOR_SYNC = b"Y1"


# SyncFolderItems' answers to a sync state it no longer accepts
_REFUSED_STATE = (ews_errors.ErrorInvalidSyncStateData, ews_errors.ErrorSyncFolderNotFound,
                  ews_errors.ErrorInvalidOperation)


def _listing_diff(previous: dict[str, str], current: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """A listing (id -> ChangeKey) against the last one: (changed or new id -> ChangeKey, gone ids)."""
    return {i: ck for i, ck in current.items() if previous.get(i) != ck}, [i for i in previous if i not in current]


def encode_cursor(kind: bytes, payload: dict[str, Any]) -> bytes:
    return kind + zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 6)


def decode_cursor(cursor: bytes) -> tuple[bytes, dict[str, Any]]:
    kind, body = cursor[:2], cursor[2:]
    if kind not in (CURSOR_SNAPSHOT, CURSOR_SYNC):
        raise ValueError("not an Exchange cursor")
    return kind, json.loads(zlib.decompress(body))


@dataclass
class _Read:
    items: dict[str, SpokeItem]
    missing: list[str]


class ExchangeConnector:
    # The item kind; `contacts.ExchangeContactsConnector` overrides these and the item methods
    # (`_new_item`, `_to_spoke_items`), and shares the listing, change feeds, batching and hub-id lookup.
    ITEM_CLASS: Any = CalendarItem
    FOLDER_CLASS = "IPF.Appointment"
    FOLDER_WORD = "calendar folder"
    WRONG_FOLDER_CODE = "not_a_calendar"
    READ_FIELDS: tuple[str, ...] = mapping.READ_FIELDS
    FIELDS: frozenset[str] = mapping.FIELDS
    LIMITS: dict[str, int] = {}

    @staticmethod
    def _register() -> None:
        mapping.register()

    # fields this spoke's options keep out of the sync: updates leave Exchange's values
    # (set by `registry.connector_for`)
    kept: frozenset[str] = frozenset()
    # canonical fields -> the exchangelib field names that hold them
    _KEPT_FIELDNAMES = mapping.KEPT_FIELDNAMES

    def _write_fieldnames(self) -> list[str]:
        return [*mapping.WRITE_FIELDS, "spokesync_hub_id"]

    def _without_kept(self, fieldnames: list[str]) -> list[str]:
        """An update's field list without the fields this spoke keeps: UpdateItem changes only
        the fields it names (SetItemField / DeleteItemField per field path)."""
        if not self.kept:
            return fieldnames
        drop = {name for field in self.kept for name in self._KEPT_FIELDNAMES.get(field, ())}
        return [f for f in fieldnames if f not in drop]

    def _has_exceptions(self, event: Any) -> bool:
        """A series with modified/cancelled occurrences: written in a second step (`_apply_exceptions`)."""
        event = as_event(event)
        return bool(event.overrides or event.cancelled or mapping.exdates(event))

    def __init__(self, account: Any, folder_id: str, *, public: bool, settings: ExchangeSettings,
                 batch_size: int = WRITE_BATCH, read_batch: int | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        self._register()
        # the app's clock (the registry passes Context.clock.now); the system clock only for direct use
        self._now = now or (lambda: datetime.now(UTC))
        self.account = account
        self.settings = settings
        self.public = public
        self.folder_id = folder_id
        root_cls = PublicFoldersRoot if public else Root
        # A folder object by id: no GetFolder round trip per run.
        self.folder = Folder(root=root_cls(account=account, id=folder_id), id=folder_id)
        self.batch_size = batch_size
        # reads twice the write size (1000 by default), never past READ_BATCH unless writes are larger
        self.read_batch = read_batch or max(batch_size, min(READ_BATCH, 2 * batch_size))
        self.capabilities = Capabilities(
            incremental=not public,
            snapshot_diff=True,
            push=False,
            batch_size=batch_size,
            fields=self.FIELDS,
            deterministic_ids=False,
            limits=dict(self.LIMITS),
        )
        self._read_paths = {FieldPath(field=self.ITEM_CLASS.get_field_by_fieldname(n)) for n in self.READ_FIELDS}
        self._hub_id_path = {FieldPath(field=self.ITEM_CLASS.get_field_by_fieldname("spokesync_hub_id"))}
        self._routing: dict[str, str] | None = None
        # hub id -> (item id, ChangeKey) of every item carrying one, when this run listed the whole
        # folder: creates then need no FindItem lookup (the spoke's lease keeps other runs out).
        self._listed: dict[str, tuple[str, str]] | None = None

    @contextmanager
    def _scope(self) -> Iterator[None]:
        """Errors in plain words; in the several-public-folder-mailboxes mode, every request routed to
        the mailbox holding this folder's content (found once per connector: routing.py)."""
        with translated(self.settings):
            if self.public and self.settings.public_folder_mailboxes and self._routing is None:
                self._routing = routing.discover(self.account, self.settings.ews_url, self.folder_id)
            with routing.headers(self._routing):
                yield

    def check(self) -> str:
        """The folder's name, after one GetFolder call: refuses an address that is not a calendar (contacts) folder
        this account can open (before a spoke is saved, not at its first sync)."""
        from exchangelib.services import GetFolder

        try:
            found = list(GetFolder(account=self.account).call(
                folders=[self.folder], additional_fields={FieldPath(field=Folder.get_field_by_fieldname(n))
                                                          for n in ("name", "folder_class")}, shape=ID_ONLY))
        except Exception as exc:  # noqa: BLE001 - translated into the administrator's words
            raise describe(exc, self.settings) from exc
        folder = found[0] if found else None
        if folder is None or isinstance(folder, Exception):
            if folder is not None and type(folder).__name__ in ("ErrorInvalidIdMalformed", "ErrorFolderNotFound",
                                                               "ErrorItemNotFound", "ErrorInvalidIdNotAnItemAttachmentId"):
                raise ConnectorError(f"there is no Exchange folder with id '{self.folder_id}' that "
                                     f"{self.settings.account_name} can open: pick one from `spokesync folders`", code="address_not_found")
            raise describe(folder or ConnectorError("no answer"), self.settings)
        folder_class = getattr(folder, "folder_class", None) or ""
        if folder_class and not folder_class.startswith(self.FOLDER_CLASS):
            raise ConnectorError(f"'{folder.name}' is not a {self.FOLDER_WORD} (it holds {folder_class}): "
                                 f"pick a {self.FOLDER_WORD}", code=self.WRONG_FOLDER_CODE)
        return str(folder.name or self.folder_id)

    def _remember_listing(self, items: dict[str, SpokeItem]) -> None:
        self._listed = {i.hub_id: (i.id, i.version) for i in items.values() if i.hub_id}

    # ------------------------------------------------------------ listing
    def _list_ids(self) -> dict[str, str]:
        """id -> ChangeKey of every item in the folder (FindItem IdOnly, pages of ≤1000)."""
        svc = FindItem(account=self.account, page_size=FIND_PAGE)
        out: dict[str, str] = {}
        for found in svc.call(folders=[self.folder], additional_fields=None, restriction=None, order_fields=None,
                              shape=ID_ONLY, query_string=None, depth=SHALLOW, calendar_view=None, max_items=None,
                              offset=0):
            if isinstance(found, Exception):
                raise found
            item_id, changekey = found  # IdOnly without additional fields: (id, changekey)
            out[item_id] = changekey
        return out

    def _get_item(self, chunk_size: int) -> GetItem:
        svc = GetItem(account=self.account, chunk_size=chunk_size)
        svc.year = self._now().year
        return svc

    def _fetch(self, ids: Iterable[str]) -> _Read:
        """GetItem (batched) for `ids`: the items as SpokeItems, and the ids that are gone."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return _Read({}, [])
        svc = self._get_item(self.read_batch)
        got: list[tuple[str, Any]] = []
        missing: list[str] = []
        for item_id, found in zip(ids, svc.call(items=[ItemId(i) for i in ids], additional_fields=self._read_paths,
                                                shape=ID_ONLY), strict=True):
            if isinstance(found, (ews_errors.ErrorItemNotFound, ews_errors.ErrorInvalidIdMalformed)):
                missing.append(item_id)
                continue
            if isinstance(found, Exception):
                raise found
            got.append((item_id, found))
        return _Read(self._to_spoke_items(got, svc), missing)

    def _to_spoke_items(self, got: list[tuple[str, Any]], svc: Any) -> dict[str, SpokeItem]:
        items: dict[str, SpokeItem] = {}
        masters: list[tuple[str, CalendarItem]] = []
        for item_id, found in got:
            if getattr(found, "type", None) in ("Occurrence", "Exception"):
                # a series' occurrence is part of its master (read with it), never an item of its own:
                # a change feed that names one also names the master
                continue
            masters.append((item_id, found))
        exception_ids = [occ.id for _, m in masters for occ in (m.modified_occurrences or ())]
        exceptions: dict[str, CalendarItem] = {}
        if exception_ids:
            for occ_id, occ in zip(exception_ids, svc.call(items=[ItemId(i) for i in exception_ids],
                                                            additional_fields=self._read_paths, shape=ID_ONLY),
                                   strict=True):
                if not isinstance(occ, Exception):
                    exceptions[occ_id] = occ
        for item_id, found in masters:
            try:
                event = mapping.item_to_event(found, exceptions, now=self._now())
            except UnsupportedRecurrence as exc:
                event = Event(title=found.subject or "", description=f"(unreadable recurrence: {exc})")
            items[item_id] = SpokeItem(found.id, found.changekey, event, found.spokesync_hub_id or None)
        return items

    # ------------------------------------------------------------- changes
    def changes(self, cursor: bytes | None) -> ChangeSet:
        with self._scope():
            if self.public:
                return self._snapshot_changes(cursor)
            return self._sync_changes(cursor)

    def change_versions(self, cursor: bytes) -> tuple[dict[str, str], list[str], bytes]:
        """`changes(cursor)` as ids and ChangeKeys only (`ports.VersionFeed`): the same
        SyncFolderItems (mailbox folders) or FindItem listing (public folders), without the
        GetItem of the changed items, and the cursor `changes` would have stored. A cursor this
        cannot continue (or a sync state Exchange refuses) is FullResyncRequired: the caller
        then keeps its cursor and the next run reads the feed with `changes`, as before."""
        try:
            kind, payload = decode_cursor(cursor)
        except Exception as exc:
            raise FullResyncRequired("not a cursor of this folder") from exc
        if kind != (CURSOR_SNAPSHOT if self.public else CURSOR_SYNC):
            raise FullResyncRequired("not a cursor of this folder")
        with self._scope():
            if self.public:
                current = self._list_ids()
                changed, deleted = _listing_diff(payload.get("items", {}), current)
                return changed, deleted, encode_cursor(CURSOR_SNAPSHOT, {"items": current})
            snapshot = dict(payload.get("items", {}))
            try:
                changed, deleted, state = self._sync_round(payload.get("state"))
            except _REFUSED_STATE as exc:
                raise FullResyncRequired("Exchange refused the folder's sync state") from exc
        deleted = [i for i in dict.fromkeys(deleted) if i not in changed]
        for item_id in deleted:
            snapshot.pop(item_id, None)
        snapshot.update(changed)
        return changed, deleted, encode_cursor(CURSOR_SYNC, {"state": state, "items": snapshot})

    def _snapshot_changes(self, cursor: bytes | None) -> ChangeSet:
        previous: dict[str, str] | None = None
        if cursor is not None:
            try:
                _, payload = decode_cursor(cursor)
                previous = payload.get("items", {})
            except Exception:
                previous = None
        current = self._list_ids()
        if previous is None:
            read = self._fetch(current)
            self._remember_listing(read.items)
            return ChangeSet(list(read.items.values()), [], encode_cursor(CURSOR_SNAPSHOT, {"items": current}), True)
        changed, deleted = _listing_diff(previous, current)
        read = self._fetch(changed)
        for gone in read.missing:  # deleted between FindItem and GetItem
            current.pop(gone, None)
            if gone in previous:
                deleted.append(gone)
        for item in read.items.values():
            current[item.id] = item.version
        return ChangeSet(list(read.items.values()), deleted, encode_cursor(CURSOR_SNAPSHOT, {"items": current}), False)

    def _sync_round(self, state: str | None) -> tuple[dict[str, str], list[str], str]:
        """Run SyncFolderItems to the end: (changed id -> ChangeKey, deleted ids, new state)."""
        changed: dict[str, str] = {}
        deleted: list[str] = []
        while True:
            svc = SyncFolderItems(account=self.account)
            for change_type, obj in svc.call(folder=self.folder, shape=ID_ONLY, additional_fields=None,
                                             sync_state=state, ignore=None, max_changes_returned=SYNC_PAGE,
                                             sync_scope="NormalItems"):
                if change_type == SyncFolderItems.DELETE:
                    changed.pop(obj.id, None)
                    deleted.append(obj.id)
                elif change_type in (SyncFolderItems.CREATE, SyncFolderItems.UPDATE):
                    changed[obj.id] = obj.changekey
            state = svc.sync_state
            if svc.includes_last_item_in_range:
                return changed, deleted, state or ""

    def _sync_changes(self, cursor: bytes | None) -> ChangeSet:
        payload: dict[str, Any] | None = None
        if cursor is not None:
            try:
                kind, payload = decode_cursor(cursor)
            except Exception:
                payload = None
        if payload is None:
            changed, _, state = self._sync_round(None)
            read = self._fetch(changed)
            self._remember_listing(read.items)
            snapshot = {i.id: i.version for i in read.items.values()}
            return ChangeSet(list(read.items.values()), [],
                             encode_cursor(CURSOR_SYNC, {"state": state, "items": snapshot}), True)
        snapshot = dict(payload.get("items", {}))
        try:
            changed, deleted, state = self._sync_round(payload.get("state"))
        except _REFUSED_STATE:
            # The state was refused: diff a listing against the snapshot, then start a new state.
            changed, deleted = _listing_diff(snapshot, self._list_ids())
            _, _, state = self._sync_round(None)
        deleted = [i for i in dict.fromkeys(deleted) if i not in changed]
        read = self._fetch(changed)
        for gone in read.missing:
            deleted.append(gone)
        for item_id in deleted:
            snapshot.pop(item_id, None)
        for item in read.items.values():
            snapshot[item.id] = item.version
        return ChangeSet(list(read.items.values()), list(dict.fromkeys(deleted)),
                         encode_cursor(CURSOR_SYNC, {"state": state, "items": snapshot}), False)

    def read(self, ids: Sequence[str]) -> dict[str, SpokeItem]:
        with self._scope():
            return self._fetch(ids).items

    # -------------------------------------------------------------- writes
    def _find_hub_ids(self, hub_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """hub id -> (item id, ChangeKey) for items already carrying one of these hub ids."""
        out: dict[str, tuple[str, str]] = {}
        for start in range(0, len(hub_ids), HUB_ID_CHUNK):
            chunk = list(hub_ids[start:start + HUB_ID_CHUNK])
            restriction = Restriction(Q(spokesync_hub_id__in=chunk), folders=[self.folder], applies_to=Restriction.ITEMS)
            svc = FindItem(account=self.account, page_size=RESTRICTED_FIND_PAGE)
            for found in svc.call(folders=[self.folder], additional_fields=self._hub_id_path, restriction=restriction,
                                  order_fields=None, shape=ID_ONLY, query_string=None, depth=SHALLOW,
                                  calendar_view=None, max_items=None, offset=0):
                if isinstance(found, Exception):
                    raise found
                if found.spokesync_hub_id and found.spokesync_hub_id not in out:
                    out[found.spokesync_hub_id] = (found.id, found.changekey)
        return out

    def _new_item(self, event: Item, hub_id: str | None, **ids: Any) -> CalendarItem:
        values = mapping.item_values(as_event(event))
        item = CalendarItem(account=self.account, folder=self.folder, **ids, **values)
        if hub_id is not None:
            item.spokesync_hub_id = hub_id
        return item

    def create(self, items: Sequence[NewItem]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(items)
        with self._scope():
            if self._listed is not None:  # this run's own complete listing answers it
                existing = {n.hub_id: self._listed[n.hub_id] for n in items if n.hub_id in self._listed}
            else:
                existing = self._find_hub_ids([n.hub_id for n in items])
            adopted = self._fetch([existing[n.hub_id][0] for n in items if n.hub_id in existing]).items
            to_create: list[tuple[int, CalendarItem]] = []
            for pos, new in enumerate(items):
                if new.hub_id in existing:
                    item_id, ck = existing[new.hub_id]
                    results[pos] = WriteResult("exists", item_id, ck, item=adopted.get(item_id))
                    continue
                if any(n.hub_id == new.hub_id for _, n in ((p, items[p]) for p, _ in to_create)):
                    continue  # the same hub id twice in one batch: the first one wins
                try:
                    to_create.append((pos, self._new_item(new.event, new.hub_id)))
                except (UnsupportedRecurrence, ValueError) as exc:
                    results[pos] = WriteResult("error", message=f"Exchange cannot hold this event: {exc}")
            svc = CreateItem(account=self.account, chunk_size=self.batch_size)
            created = list(svc.call(items=[i for _, i in to_create], folder=self.folder, message_disposition="SaveOnly",
                                    send_meeting_invitations="SendToNone")) if to_create else []
            series: list[tuple[int, str, Event]] = []
            for (pos, _), outcome in zip(to_create, created, strict=True):
                if isinstance(outcome, Exception):
                    results[pos] = self._failure(outcome, "")
                else:
                    results[pos] = WriteResult("ok", outcome.id, outcome.changekey)
                    if self._listed is not None and items[pos].hub_id:
                        self._listed[items[pos].hub_id] = (outcome.id, outcome.changekey)
                    event = items[pos].event
                    if self._has_exceptions(event):
                        series.append((pos, outcome.id, as_event(event)))
            if series:
                self._apply_exceptions(series, results)
            for pos, new in enumerate(items):  # duplicates inside the batch point at the first copy
                if results[pos] is None:
                    first = next(r for p, r in enumerate(results) if r is not None and items[p].hub_id == new.hub_id)
                    results[pos] = WriteResult("exists", first.spoke_item_id, first.version)
        return [r for r in results if r is not None]

    def _apply_exceptions(self, series: list[tuple[int, str, Event]], results: list[WriteResult | None]) -> None:
        """Modified and cancelled occurrences of freshly written series, addressed by their real ItemIds.

        The master's pattern as the server holds it (one GetItem) gives each occurrence's InstanceIndex on
        Exchange's semantics (`recurrence.exchange_dates`: day 31 on the last day of shorter months, 29
        February on the 28th); one GetItem of those OccurrenceItemIds returns the occurrences with their own
        ItemIds and ChangeKeys, checked against the wanted original start; one UpdateItem and one DeleteItem
        for the whole batch then use those ids. Occurrences the master already lists as deleted are not
        deleted again."""
        from zoneinfo import ZoneInfo

        from spokesync.connectors.exchange import recurrence as rec

        paths = {FieldPath(field=CalendarItem.get_field_by_fieldname(n))
                 for n in ("recurrence", "start", "deleted_occurrences")}
        svc = self._get_item(self.batch_size)
        ids = [master_id for _, master_id, _ in series]
        masters = {i: m for i, m in zip(ids, svc.call(items=[ItemId(i) for i in ids], additional_fields=paths,
                                                         shape=ID_ONLY), strict=True)}
        # (pos, override event or None for a cancellation, wanted local day, zone) per occurrence looked up
        wanted: list[tuple[int, Event | None, Any, Any]] = []
        lookups: list[OccurrenceItemId] = []
        for pos, master_id, event in series:
            master = masters.get(master_id)
            if isinstance(master, Exception) or master is None or master.recurrence is None:
                results[pos] = WriteResult("error", master_id, message="Exchange did not keep this event's "
                                           "recurrence, so its changed occurrences could not be written")
                continue
            tz = ZoneInfo(mapping.ews_zone(event.timezone, event.start).key)

            def day_of(value: Any, tz: Any = tz) -> Any:
                return value.astimezone(tz).date() if isinstance(value, datetime) else value

            deleted = {day_of(d.start) for d in (master.deleted_occurrences or ())}
            todo: list[tuple[Event | None, Any]] = [(o.event, o.original_start) for o in event.overrides]
            todo += [(None, c) for c in (*event.cancelled, *mapping.exdates(event))]
            if not todo:
                continue
            days = rec.exchange_dates(master.recurrence, until=max(day_of(w) for _, w in todo))
            for override, original in todo:
                day = day_of(original)
                if day in deleted:
                    continue  # already deleted in Exchange (a cancellation), nothing to change (an override)
                if day not in days:
                    if override is not None:
                        results[pos] = WriteResult("error", master_id,
                                                   message="an override is not an occurrence of the series")
                    continue
                wanted.append((pos, override, day, tz))
                lookups.append(OccurrenceItemId(id=master_id, instance_index=days.index(day) + 1))
        updates: list[tuple[CalendarItem, list[str]]] = []
        update_pos: list[int] = []
        deletes: list[ItemId] = []
        if lookups:
            found_paths = {FieldPath(field=CalendarItem.get_field_by_fieldname(n)) for n in ("start", "original_start")}
            found_all = list(svc.call(items=lookups, additional_fields=found_paths, shape=ID_ONLY))
            for (pos, override, day, tz), found in zip(wanted, found_all, strict=True):
                master_id = next(m for p, m, _ in series if p == pos)
                if isinstance(found, ews_errors.ErrorCalendarOccurrenceIsDeletedFromRecurrence):
                    continue
                if isinstance(found, Exception):
                    raise found
                start = found.original_start or found.start
                if start is None or (start.astimezone(tz).date() if isinstance(start, datetime) else start) != day:
                    # never write into the wrong occurrence
                    results[pos] = WriteResult("error", master_id, message=(
                        f"Exchange's occurrence of this series for {day:%d %B %Y} could not be found; its change "
                        "was not written"))
                    continue
                if override is None:
                    deletes.append(ItemId(found.id, found.changekey))
                    continue
                event = next(e for p, _, e in series if p == pos)
                values = mapping.item_values(replace(override, recurrence=(), timezone=event.timezone),
                                             occurrence=True)
                occ = CalendarItem(account=self.account, folder=self.folder, id=found.id, changekey=found.changekey,
                                   **values)
                updates.append((occ, self._without_kept(mapping.OCCURRENCE_WRITE_FIELDS)))
                update_pos.append(pos)
        if updates:
            outcomes = UpdateItem(account=self.account, chunk_size=self.batch_size).call(
                items=updates, conflict_resolution="AutoResolve", message_disposition="SaveOnly",
                send_meeting_invitations_or_cancellations="SendToNone", suppress_read_receipts=True)
            for pos, outcome in zip(update_pos, outcomes, strict=True):
                if isinstance(outcome, ews_errors.ErrorOccurrenceCrossingBoundary):
                    # one refused occurrence is this item's error, not a failed batch
                    master_id = next(m for p, m, _ in series if p == pos)
                    results[pos] = WriteResult(
                        "error", master_id, message="Exchange refuses a moved occurrence: it would fall on or past "
                        "the day of a neighbouring occurrence of the series. Move it within the days between its "
                        "neighbours, or make it a separate event")
                elif isinstance(outcome, Exception):
                    raise outcome
        if deletes:
            for outcome in DeleteItem(account=self.account, chunk_size=self.batch_size).call(
                    items=deletes, delete_type="HardDelete", send_meeting_cancellations="SendToNone",
                    affected_task_occurrences="AllOccurrences", suppress_read_receipts=True):
                if isinstance(outcome, Exception) and not isinstance(
                        outcome, ews_errors.ErrorCalendarOccurrenceIsDeletedFromRecurrence):
                    raise outcome
        # The exceptions changed the masters: report their final ChangeKeys.
        ids = [master_id for _, master_id, _ in series]
        current = self._current_changekeys(ids)
        for pos, master_id, _ in series:
            result = results[pos]
            if result is not None and result.status == "ok" and master_id in current:
                results[pos] = replace(result, version=current[master_id])

    def _current_changekeys(self, ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        if not ids:
            return out
        svc = self._get_item(self.read_batch)
        for item_id, found in zip(ids, svc.call(items=[ItemId(i) for i in ids], additional_fields=None, shape=ID_ONLY),
                                  strict=True):
            if not isinstance(found, Exception):
                out[item_id] = found.changekey
        return out

    def _failure(self, exc: BaseException, item_id: str) -> WriteResult:
        if isinstance(exc, ews_errors.ErrorIrresolvableConflict):
            return WriteResult("conflict", item_id, message="the item changed in Exchange since it was read")
        if isinstance(exc, (ews_errors.ErrorItemNotFound, ews_errors.ErrorInvalidIdMalformed)):
            return WriteResult("not_found", item_id)
        if isinstance(exc, (ews_errors.ErrorServerBusy, ews_errors.RateLimitError)):
            return WriteResult("retry", item_id, message="Exchange is throttling")
        err = describe(exc, self.settings)
        return WriteResult("error", item_id, message=str(err))

    def update(self, items: Sequence[ItemUpdate]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(items)
        with self._scope():
            pending: list[tuple[int, CalendarItem]] = []
            for pos, upd in enumerate(items):
                try:
                    item = self._new_item(upd.event, upd.hub_id, id=upd.spoke_item_id, changekey=upd.version)
                except (UnsupportedRecurrence, ValueError) as exc:
                    results[pos] = WriteResult("error", upd.spoke_item_id, message=f"Exchange cannot hold this event: {exc}")
                    continue
                pending.append((pos, item))
            fieldnames = self._without_kept(self._write_fieldnames())
            outcomes = list(UpdateItem(account=self.account, chunk_size=self.batch_size).call(
                items=[(i, fieldnames) for _, i in pending], conflict_resolution="NeverOverwrite",
                message_disposition="SaveOnly", send_meeting_invitations_or_cancellations="SendToNone",
                suppress_read_receipts=True)) if pending else []
            series: list[tuple[int, str, Event]] = []
            for (pos, item), outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    results[pos] = self._failure(outcome, item.id)
                    continue
                new_id, new_ck = outcome
                results[pos] = WriteResult("ok", new_id or item.id, new_ck)
                event = items[pos].event
                if self._has_exceptions(event):
                    series.append((pos, new_id or item.id, as_event(event)))
            if series:
                self._apply_exceptions(series, results)
        return [r if r is not None else WriteResult("error", message="not attempted") for r in results]

    def delete(self, items: Sequence[ItemDelete]) -> list[WriteResult]:
        """DeleteItem has no ChangeKey precondition in EWS: check the ChangeKeys first (one GetItem)."""
        results: list[WriteResult | None] = [None] * len(items)
        with self._scope():
            current = self._current_changekeys([d.spoke_item_id for d in items])
            to_delete: list[tuple[int, str]] = []
            for pos, rem in enumerate(items):
                ck = current.get(rem.spoke_item_id)
                if ck is None:
                    results[pos] = WriteResult("not_found", rem.spoke_item_id)
                elif ck != rem.version:
                    results[pos] = WriteResult("conflict", rem.spoke_item_id, ck,
                                               message="the item changed in Exchange since it was read")
                else:
                    to_delete.append((pos, rem.spoke_item_id))
            outcomes = list(DeleteItem(account=self.account, chunk_size=self.batch_size).call(
                items=[ItemId(i) for _, i in to_delete], delete_type="HardDelete",
                send_meeting_cancellations="SendToNone", affected_task_occurrences="AllOccurrences",
                suppress_read_receipts=True)) if to_delete else []
            for (pos, item_id), outcome in zip(to_delete, outcomes, strict=True):
                results[pos] = self._failure(outcome, item_id) if isinstance(outcome, Exception) \
                    else WriteResult("ok", item_id)
        return [r for r in results if r is not None]


__all__ = ["ConnectorError", "ExchangeConnector", "decode_cursor", "encode_cursor"]
