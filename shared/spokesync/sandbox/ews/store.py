"""The EWS sandbox's state: folders (a mailbox tree and a public-folder tree),
calendar items with server-computed fields, a change log for SyncFolderItems.

Items keep the `t:` elements a client sent, keyed by local name, so whatever
exchangelib writes it reads back; the server adds what Exchange computes
(ItemId/ChangeKey, ItemClass, UID, created/modified times, CalendarItemType,
modified/deleted occurrences, first/last occurrence).
"""

from __future__ import annotations

import base64
import copy
import itertools
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from spokesync.sandbox.ews import recurrence
from spokesync.sandbox.ews.timezones import DefinitionZone

T = "http://schemas.microsoft.com/exchange/services/2006/types"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"


def t(name: str) -> str:
    return f"{{{T}}}{name}"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def fmt(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_dt(value: str) -> datetime:
    value = value.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class EwsError(Exception):
    """A per-item EWS error: becomes a ResponseMessage with ResponseClass="Error"."""

    def __init__(self, code: str, text: str = "") -> None:
        super().__init__(text or code)
        self.code = code
        self.text = text or code


@dataclass
class Folder:
    id: str
    name: str
    folder_class: str
    parent_id: str | None
    public: bool
    distinguished: str | None = None
    changekey: str = "fck1"
    content_mailbox: str = ""  # public folders with several public-folder mailboxes: the content's mailbox GUID


@dataclass
class Item:
    id: str
    changekey: str
    folder_id: str
    tag: str  # CalendarItem, Contact, Message
    fields: dict[str, etree._Element]
    extended: dict[tuple[tuple[str, str], ...], etree._Element]
    created: datetime
    modified: datetime
    uid: str
    created_seq: int
    master_id: str | None = None  # exceptions of a recurring series
    original_start: datetime | None = None
    deleted_occurrences: set[datetime] = field(default_factory=set)
    exceptions: dict[datetime, str] = field(default_factory=dict)  # original start -> exception id
    attachments: list[Any] = field(default_factory=list)  # attachments.Attachment, in the order they were added

    def text(self, name: str) -> str | None:
        elem = self.fields.get(name)
        return None if elem is None else (elem.text or "")


def extended_key(uri: etree._Element) -> tuple[tuple[str, str], ...]:
    attrs = dict(uri.attrib)
    attrs.pop("PropertyType", None)
    if "PropertySetId" in attrs:
        attrs["PropertySetId"] = attrs["PropertySetId"].lower()
    return tuple(sorted(attrs.items()))


def tz_of(elem: etree._Element | None) -> Any:
    from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

    if elem is None:
        return UTC
    for ms_id in (elem.get("Id") or "", elem.get("Name") or ""):
        iana = MS_TIMEZONE_TO_IANA_MAP.get(ms_id)
        if iana:
            return ZoneInfo(iana)
    if elem.find(f"{{{T}}}Periods") is not None:
        # not a Windows id ("Customized Time Zone", a display name, empty): Exchange goes by the definition
        return DefinitionZone(elem)
    return UTC


class Store:
    """All mutable state, guarded by one lock (the server is threaded)."""

    def __init__(self, mailbox: str = "shared@example.com") -> None:
        self.lock = threading.RLock()
        self.mailbox = mailbox
        # the primary SMTP addresses that have a mailbox here (others: ErrorNonExistentMailbox)
        self.mailboxes: set[str] = {mailbox.lower()}
        # the directory ResolveNames searches: primary SMTP address -> (display name, proxy addresses)
        self.directory: dict[str, tuple[str, tuple[str, ...]]] = {mailbox.lower(): ("Shared calendar", ())}
        self.folders: dict[str, Folder] = {}
        self.items: dict[str, Item] = {}
        self.seq = 0
        self.log: dict[str, list[tuple[int, str]]] = {}  # folder id -> (seq, item id)
        # item id -> (folder id, created seq, deleted seq) for SyncFolderItems
        self.tombstones: dict[str, tuple[str, int, int]] = {}
        self._ids = itertools.count(1)
        self._ck = itertools.count(1)
        self.distinguished: dict[str, str] = {}
        root = self.add_folder("root", "IPF.Note", None, public=False, distinguished="root")
        top = self.add_folder("Top of Information Store", "IPF.Note", root.id, public=False,
                              distinguished="msgfolderroot")
        self.add_folder("Calendar", "IPF.Appointment", top.id, public=False, distinguished="calendar")
        self.add_folder("Contacts", "IPF.Contact", top.id, public=False, distinguished="contacts")
        self.add_folder("Inbox", "IPF.Note", top.id, public=False, distinguished="inbox")
        self.add_folder("IPM_SUBTREE", "IPF.Note", None, public=True, distinguished="publicfoldersroot")

    def check_mailbox(self, address: str) -> None:
        """Microsoft's ResponseCode reference (docs/web-service-reference/responsecode.md): ErrorNonExistentMailbox
        when "the e-mail address does not refer to a valid account in a request that takes an e-mail address
        in the body or in the SOAP header, such as in an Exchange Impersonation call" (here: a
        DistinguishedFolderId's Mailbox, the impersonated user, X-AnchorMailbox)."""
        if address.strip().lower() not in self.mailboxes:
            raise EwsError("ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.")

    def add_mailbox(self, primary: str, name: str = "", proxies: tuple[str, ...] = ()) -> None:
        """A mailbox in the directory: `proxies` are its other (secondary) SMTP addresses."""
        with self.lock:
            self.mailboxes.add(primary.lower())
            self.directory[primary.lower()] = (name or primary.split("@")[0], tuple(p.lower() for p in proxies))

    def resolve_names(self, entry: str) -> list[tuple[str, str]]:
        """(display name, primary address) of the directory entries an UnresolvedEntry matches.

        Microsoft's ResolveNames operation reference: without a routing type the entry is matched against
        the primary SMTP address (not the proxy addresses); with a prefix such as "smtp:" it is matched
        partially against each proxy address; names match display names and aliases that start with them
        (ambiguous name resolution)."""
        text = entry.strip().lower()
        out = []
        for primary, (name, proxies) in sorted(self.directory.items()):
            if text.startswith("smtp:"):
                hit = any(a.startswith(text[5:]) for a in (primary, *proxies))
            elif "@" in text:
                hit = primary == text
            else:
                hit = any(w.startswith(text) for w in (*name.lower().split(), name.lower(), primary.split("@")[0]))
            if hit:
                out.append((name, primary))
        return out

    # ----------------------------------------------------------------- ids
    def _new_id(self, prefix: str) -> str:
        raw = f"{prefix}{next(self._ids):08d}{uuid.uuid4().hex[:8]}"
        return base64.b64encode(raw.encode()).decode()

    def new_changekey(self) -> str:
        return base64.b64encode(f"CQAAAB{next(self._ck):010d}".encode()).decode()

    # ------------------------------------------------------------- folders
    def add_folder(self, name: str, folder_class: str, parent_id: str | None, *, public: bool,
                   distinguished: str | None = None) -> Folder:
        with self.lock:
            folder = Folder(self._new_id("F"), name, folder_class, parent_id, public, distinguished)
            self.folders[folder.id] = folder
            self.log[folder.id] = []
            if distinguished:
                self.distinguished[distinguished] = folder.id
            return folder

    def folder(self, folder_id: str) -> Folder:
        found = self.folders.get(folder_id) or self.folders.get(self.distinguished.get(folder_id, ""))
        if found is None:
            raise EwsError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
        return found

    def children(self, folder_id: str) -> list[Folder]:
        return [f for f in self.folders.values() if f.parent_id == folder_id]

    def remove_folder(self, folder_id: str) -> None:
        with self.lock:
            folder = self.folder(folder_id)
            for child in self.children(folder.id):
                self.remove_folder(child.id)
            for item_id in [i.id for i in self.items.values() if i.folder_id == folder.id]:
                del self.items[item_id]
            del self.folders[folder.id]
            if folder.distinguished:
                self.distinguished.pop(folder.distinguished, None)

    def count(self, folder_id: str) -> int:
        return sum(1 for i in self.items.values() if i.folder_id == folder_id and i.master_id is None)

    # --------------------------------------------------------------- items
    def _touch(self, item: Item) -> None:
        self.seq += 1
        item.changekey = self.new_changekey()
        item.modified = utc_now()
        self.log[item.folder_id].append((self.seq, item.id))

    def create(self, folder_id: str, tag: str, fields: dict[str, etree._Element],
               extended: dict[tuple[tuple[str, str], ...], etree._Element]) -> Item:
        with self.lock:
            folder = self.folder(folder_id)
            now = utc_now()
            uid_elem = fields.pop("UID", None)
            uid = (uid_elem.text if uid_elem is not None and uid_elem.text else None) or uuid.uuid4().hex.upper()
            item = Item(self._new_id("I"), "", folder.id, tag, fields, extended, now, now, uid, self.seq + 1)
            self._normalise(item)
            self.items[item.id] = item
            self._touch(item)
            return item

    def get(self, item_id: str) -> Item:
        item = self.items.get(item_id)
        if item is None or item.folder_id not in self.folders:
            raise EwsError("ErrorItemNotFound", "The specified object was not found in the store.")
        return item

    def master(self, item: Item) -> Item:
        return self.get(item.master_id) if item.master_id else item

    def touch(self, item: Item) -> None:
        with self.lock:
            self._normalise(item)
            self._touch(item)
            if item.master_id:  # an exception lives inside its master: the master changes too
                self._touch(self.get(item.master_id))

    def delete(self, item: Item) -> None:
        with self.lock:
            if item.master_id:
                master = self.get(item.master_id)
                assert item.original_start is not None
                master.deleted_occurrences.add(item.original_start)
                if master.exceptions.get(item.original_start) == item.id:
                    del master.exceptions[item.original_start]
                self.items.pop(item.id, None)
                self._touch(master)
                return
            for exc_id in item.exceptions.values():
                self.items.pop(exc_id, None)
            del self.items[item.id]
            self.seq += 1
            self.log[item.folder_id].append((self.seq, item.id))
            self.tombstones[item.id] = (item.folder_id, item.created_seq, self.seq)

    def drop_exceptions(self, master: Item) -> None:
        """A master's pattern replaced or removed: its exceptions and deleted occurrences are gone, as in
        Exchange. The exception items go too: an occurrence's id is derived from the master and the original
        start, so a stale exception left in the store would answer for the new pattern's occurrence of the
        same start (and take its changes outside the series)."""
        with self.lock:
            for exc_id in master.exceptions.values():
                self.items.pop(exc_id, None)
            master.exceptions.clear()
            master.deleted_occurrences.clear()

    def _normalise(self, item: Item) -> None:
        """What Exchange does to a body it stores: HTML gets a document wrapper."""
        body = item.fields.get("Body")
        if body is not None and body.get("BodyType") == "HTML" and body.text and "<html" not in body.text[:200].lower():
            body.text = ("<html>\r\n<head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">"
                         f"\r\n</head>\r\n<body>\r\n{body.text}\r\n</body>\r\n</html>\r\n")

    # ---------------------------------------------------------- recurrence
    def start_tz(self, item: Item) -> Any:
        elem = item.fields.get("StartTimeZone")
        return tz_of(elem if elem is not None else item.fields.get("MeetingTimeZone"))

    def occurrences(self, item: Item, until: datetime | None = None) -> list[datetime]:
        rec = item.fields.get("Recurrence")
        start = item.text("Start")
        if rec is None or not start:
            return []
        return recurrence.expand(rec, parse_dt(start), self.start_tz(item), until)

    def duration(self, item: Item) -> timedelta:
        start, end = item.text("Start"), item.text("End")
        if not start or not end:
            return timedelta(0)
        return parse_dt(end) - parse_dt(start)

    def occurrence(self, master: Item, index: int) -> Item:
        """The item for the index-th occurrence: its exception, or a fresh copy of the master."""
        if master.fields.get("Recurrence") is None:
            raise EwsError("ErrorCalendarCannotUseIdForRecurringMasterId", "The item is not a recurring master.")
        starts = self.occurrences(master) if index > 0 else []
        if index < 1 or index > len(starts):
            raise EwsError("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
                           "Occurrence index is out of recurrence range.")
        original = starts[index - 1]
        if original in master.deleted_occurrences:
            raise EwsError("ErrorCalendarOccurrenceIsDeletedFromRecurrence", "Occurrence was deleted from the series.")
        if original in master.exceptions:
            return self.get(master.exceptions[original])
        return self.virtual_occurrence(master, original)

    def virtual_occurrence(self, master: Item, original: datetime) -> Item:
        fields = {k: copy.deepcopy(v) for k, v in master.fields.items() if k != "Recurrence"}
        duration = self.duration(master)
        start = etree.Element(t("Start"))
        start.text = fmt(original)
        end = etree.Element(t("End"))
        end.text = fmt(original + duration)
        fields["Start"], fields["End"] = start, end
        occ_id = base64.b64encode(f"OCC:{master.id}:{fmt(original)}".encode()).decode()
        return Item(occ_id, master.changekey, master.folder_id, master.tag, fields, copy.deepcopy(master.extended),
                    master.created, master.modified, master.uid, master.created_seq, master.id, original)

    def resolve(self, item_id: str) -> Item:
        """An item id, including the ids of occurrences not yet turned into exceptions."""
        if item_id in self.items:
            return self.get(item_id)
        try:
            raw = base64.b64decode(item_id.encode(), validate=True).decode()
        except Exception:
            raw = ""
        if raw.startswith("OCC:"):
            _, master_id, when = raw.split(":", 2)
            master = self.get(master_id)
            original = parse_dt(when)
            if original in master.deleted_occurrences:
                raise EwsError("ErrorItemNotFound", "The specified object was not found in the store.")
            if original in master.exceptions:
                return self.get(master.exceptions[original])
            return self.virtual_occurrence(master, original)
        raise EwsError("ErrorItemNotFound", "The specified object was not found in the store.")

    def materialise(self, occ: Item) -> Item:
        """Turn a virtual occurrence into a stored exception (before it is modified)."""
        if occ.id in self.items:
            return occ
        master = self.get(occ.master_id or "")
        assert occ.original_start is not None
        occ.created_seq = self.seq
        self.items[occ.id] = occ
        master.exceptions[occ.original_start] = occ.id
        return occ

    # ----------------------------------------------------------- sync state
    def sync_state(self, folder_id: str, seq: int) -> str:
        return base64.b64encode(f"SSv1:{folder_id}:{seq}".encode()).decode()

    def parse_sync_state(self, folder_id: str, state: str) -> int:
        try:
            tag, fid, seq = base64.b64decode(state.encode(), validate=True).decode().split(":")
            if tag != "SSv1" or fid != folder_id:
                raise ValueError(state)
            return int(seq)
        except Exception as exc:
            raise EwsError("ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid.") from exc
