"""An in-memory spoke: a change-logged dict of items behind the SpokeConnector port.

Used by the engine's tests, the state-machine test and the `engine_scale`
benchmark; it holds calendar events or contacts alike (`memory_contacts`
spokes pass contact fields, and fixed slots like Exchange's three e-mail
addresses as `limits`: what does not fit is not stored, as on such a server). It behaves like a well-behaved server (versions change on every
write, preconditions are checked, creates with a known hub id are idempotent)
and can be told to misbehave: fail a write, crash after the k-th write, read
as empty, or forget its change feed. With `page_size` it answers in pages, as
paging servers do: its change feed in resumable pages of its log, a full
listing in pages by item id (only the last page's cursor continues the feed).
`items` and `log` may be any mapping and sequence with the same operations (the
`engine_scale` benchmark keeps them in an SQLite file, outside the Python heap).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from spokesync.model.contact import Contact, fit
from spokesync.model.contact import restrict as restrict_contact
from spokesync.model.event import ALL_FIELDS, Event
from spokesync.model.event import restrict as restrict_event
from spokesync.model.item import Item
from spokesync.ports import (
    Capabilities,
    ChangeSet,
    FullResyncRequired,
    ItemDelete,
    ItemUpdate,
    NewItem,
    SpokeItem,
    WriteResult,
)


class SimulatedCrash(BaseException):
    """The process died in the middle of a write batch: like SystemExit, it is
    not an Exception, so the runner neither records the run nor releases its lease."""


@dataclass
class MemoryCalendar:
    """The server side: the calendar's items and its change log."""

    name: str = "memory"
    items: dict[str, SpokeItem] = field(default_factory=dict)
    log: list[tuple[int, str]] = field(default_factory=list)  # (seq, item id)
    seq: int = 0
    _versions: itertools.count = field(default_factory=lambda: itertools.count(1))
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    deleted: set[str] = field(default_factory=set)
    # fault injection
    fail_writes: set[str] = field(default_factory=set)  # spoke item ids / hub ids whose writes fail
    crash_after_writes: int | None = None  # raise SimulatedCrash after this many successful writes
    interrupt_after_writes: int | None = None  # raise KeyboardInterrupt (Ctrl-C) after this many writes
    read_empty: bool = False  # the next listing reads as empty (a broken server answer)
    forget_cursor: bool = False  # the next incremental read demands a full resync
    writes: int = 0  # successful writes since creation
    api_calls: int = 0
    # called at the start of every changes() read: tests start an overlapping run there
    on_read: Callable[[], None] | None = None
    _order: tuple[tuple[int, int], list[str]] | None = field(default=None, repr=False, compare=False)

    # -- direct edits, as a user of the calendar would make them
    def _touch(self, item_id: str) -> None:
        self.seq += 1
        self.log.append((self.seq, item_id))

    def user_create(self, event: Item, item_id: str | None = None) -> SpokeItem:
        item_id = item_id or f"{self.name}-u{next(self._ids)}"
        item = SpokeItem(item_id, f"v{next(self._versions)}", event, None)
        self.items[item_id] = item
        self.deleted.discard(item_id)
        self._touch(item_id)
        return item

    def user_update(self, item_id: str, event: Item) -> SpokeItem:
        item = replace(self.items[item_id], event=event, version=f"v{next(self._versions)}")
        self.items[item_id] = item
        self._touch(item_id)
        return item

    def user_delete(self, item_id: str) -> None:
        del self.items[item_id]
        self.deleted.add(item_id)
        self._touch(item_id)

    def events(self) -> list[Item]:
        return [item.event for item in self.items.values()]

    def log_since(self, seq: int) -> Iterable[tuple[int, str]]:
        """The log's entries after `seq`, in order (an iterable of (seq, item id))."""
        since = getattr(self.log, "since", None)
        if since is not None:
            return since(seq)  # type: ignore[no-any-return]
        return self.log[bisect.bisect_right(self.log, (seq, "\U0010ffff")):]

    def ids_after(self, last: str, n: int) -> list[str]:
        """Up to `n` item ids after `last`, in id order (a listing page)."""
        after = getattr(self.items, "ids_after", None)
        if after is not None:
            return list(after(last, n))
        # the ids in order, sorted once per state of the calendar rather than once per page (a
        # listing of N items in pages was N²/page; every change of the calendar moves `seq`)
        if self._order is None or self._order[0] != (self.seq, len(self.items)):
            self._order = ((self.seq, len(self.items)), sorted(self.items))
        order = self._order[1]
        start = bisect.bisect_right(order, last)
        return order[start:start + n]

    def _count_write(self) -> None:
        self.writes += 1
        if self.interrupt_after_writes is not None:
            self.interrupt_after_writes -= 1
            if self.interrupt_after_writes < 0:
                self.interrupt_after_writes = None
                raise KeyboardInterrupt(f"{self.name}: interrupted after a write")
        if self.crash_after_writes is not None:
            self.crash_after_writes -= 1
            if self.crash_after_writes < 0:
                self.crash_after_writes = None
                raise SimulatedCrash(f"{self.name}: crashed after a write")


def memory_item_id(hub_id: str) -> str:
    """Deterministic spoke item id for a hub item, like Google's base32hex ids."""
    return "h" + hashlib.sha256(hub_id.encode()).hexdigest()[:20]


class MemoryConnector:
    """SpokeConnector over a MemoryCalendar. Cursor: the log position."""

    # fields this spoke's options keep out of the sync: an update leaves the stored values
    # (set by `registry.connector_for`)
    kept: frozenset[str] = frozenset()

    def __init__(
        self,
        calendar: MemoryCalendar,
        fields: frozenset[str] = ALL_FIELDS,
        batch_size: int = 50,
        full_listing: bool = False,
        limits: Mapping[str, int] | None = None,
        page_size: int | None = None,
    ) -> None:
        self.calendar = calendar
        self.page_size = page_size  # items per `changes` answer (None: all in one)
        # full_listing: behave like a snapshot-diff spoke that always lists everything
        self.full_listing = full_listing
        self.capabilities = Capabilities(
            incremental=not full_listing,
            snapshot_diff=full_listing,
            push=False,
            batch_size=batch_size,
            fields=fields,
            deterministic_ids=True,
            limits=dict(limits or {}),
        )

    def _stored(self, item: Item) -> Item:
        """What the server keeps of a written item: a contact's lists cut to its fixed slots."""
        limits = dict(self.capabilities.limits)
        return fit(item, limits) if limits and isinstance(item, Contact) else item

    def _keep(self, item: Item, current: Item) -> Item:
        """`item` with the kept fields' values of the stored item (the server's own)."""
        if isinstance(item, Contact) and isinstance(current, Contact):
            return restrict_contact(current, item, self.kept)
        if isinstance(item, Event) and isinstance(current, Event):
            return restrict_event(current, item, self.kept)
        return item

    def changes(self, cursor: bytes | None) -> ChangeSet:
        cal = self.calendar
        cal.api_calls += 1
        if cal.on_read is not None:
            hook, cal.on_read = cal.on_read, None
            hook()
        if cal.read_empty:
            cal.read_empty = False
            # a broken answer: nothing listed, and no progress of the feed
            return ChangeSet(items=[], deleted=[], cursor=cursor, full=True)
        if cursor is not None and cursor.startswith(b"L"):
            return self._listing_page(cursor)
        if cursor is None or self.full_listing:
            if self.page_size is not None:
                return self._listing_page(b"L%d|" % cal.seq)
            return ChangeSet(items=list(cal.items.values()), deleted=[], cursor=str(cal.seq).encode(), full=True)
        if cal.forget_cursor:
            cal.forget_cursor = False
            raise FullResyncRequired(f"{cal.name}: change feed no longer valid")
        since = int(cursor.decode())
        touched: dict[str, None] = {}
        end = cal.seq
        for seq, item_id in cal.log_since(since):
            if self.page_size is not None and len(touched) >= self.page_size and item_id not in touched:
                break  # a page ends at a log position: its cursor is a position, resumable
            touched[item_id] = None
            end = seq
        items = [cal.items[i] for i in touched if i in cal.items]
        deleted = [i for i in touched if i not in cal.items]
        more = end < cal.seq
        return ChangeSet(items=items, deleted=deleted, cursor=str(end).encode(), full=False, more=more,
                         resumable=more)

    def _listing_page(self, token: bytes) -> ChangeSet:
        """A full listing's page after the token's last id; the token keeps the log position the
        listing started at, the cursor its last page gives (what changed meanwhile is read again)."""
        cal = self.calendar
        start, _, last = token[1:].decode().partition("|")
        size = self.page_size or len(cal.items) or 1
        ids = cal.ids_after(last, size)
        items = [cal.items[i] for i in ids if i in cal.items]
        if len(ids) < size:
            return ChangeSet(items=items, deleted=[], cursor=start.encode(), full=True)
        return ChangeSet(items=items, deleted=[], cursor=f"L{start}|{ids[-1]}".encode(), full=True, more=True)

    def read(self, ids: Sequence[str]) -> dict[str, SpokeItem]:
        self.calendar.api_calls += 1
        return {i: self.calendar.items[i] for i in ids if i in self.calendar.items}

    def _fails(self, *keys: str) -> bool:
        return any(k in self.calendar.fail_writes for k in keys)

    def create(self, items: Sequence[NewItem]) -> list[WriteResult]:
        cal = self.calendar
        cal.api_calls += 1
        results = []
        for new in items:
            item_id = memory_item_id(new.hub_id)
            if self._fails(new.hub_id, item_id):
                results.append(WriteResult("error", message="injected write failure"))
                continue
            if item_id in cal.items:
                existing = cal.items[item_id]
                results.append(WriteResult("exists", item_id, existing.version, item=existing))
                continue
            item = SpokeItem(item_id, f"v{next(cal._versions)}", self._stored(new.event), new.hub_id)
            cal.items[item_id] = item
            cal.deleted.discard(item_id)
            cal._touch(item_id)
            cal._count_write()
            results.append(WriteResult("ok", item_id, item.version))
        return results

    def update(self, items: Sequence[ItemUpdate]) -> list[WriteResult]:
        cal = self.calendar
        cal.api_calls += 1
        results = []
        for upd in items:
            current = cal.items.get(upd.spoke_item_id)
            if self._fails(upd.hub_id, upd.spoke_item_id):
                results.append(WriteResult("error", upd.spoke_item_id, message="injected write failure"))
            elif current is None:
                results.append(WriteResult("not_found", upd.spoke_item_id))
            elif current.version != upd.version:
                results.append(WriteResult("conflict", upd.spoke_item_id, current.version))
            else:
                written = self._keep(upd.event, current.event) if self.kept else upd.event
                item = SpokeItem(upd.spoke_item_id, f"v{next(cal._versions)}", self._stored(written), upd.hub_id)
                cal.items[upd.spoke_item_id] = item
                cal._touch(upd.spoke_item_id)
                cal._count_write()
                results.append(WriteResult("ok", upd.spoke_item_id, item.version))
        return results

    def delete(self, items: Sequence[ItemDelete]) -> list[WriteResult]:
        cal = self.calendar
        cal.api_calls += 1
        results = []
        for rem in items:
            current = cal.items.get(rem.spoke_item_id)
            if self._fails(rem.spoke_item_id):
                results.append(WriteResult("error", rem.spoke_item_id, message="injected write failure"))
            elif current is None:
                results.append(WriteResult("not_found", rem.spoke_item_id))
            elif current.version != rem.version:
                results.append(WriteResult("conflict", rem.spoke_item_id, current.version))
            else:
                cal.user_delete(rem.spoke_item_id)
                cal._count_write()
                results.append(WriteResult("ok", rem.spoke_item_id))
        return results
