"""The HubStore on Firestore (google-cloud-firestore), for the cloud deployment.

Layout (every collection name gets `config.firestore_prefix` in front):

    credentials/{id}                 CredentialRef (secret *names* only)
    hubs/{hub}                       Hub, with `seq` bumped once per Firestore commit
    hubs/{hub}/items/{item}          HubItem (`seq`, `deleted` queried), and the origin link:
                                     `link_home` (the spoke that brought the item in) and `link`
    spokes/{spoke}                   Spoke config + state + lease + cursor header
    spokes/{spoke}/links/{hub item}  Link (`spoke_item_id`, `detached` queried)
    spokes/{spoke}/cursor/{gen-i}    the opaque cursor, zlib'd when that helps, in <= 900 KB chunks
    runs/{run}                       RunRecord (`spoke_id`/`hub_id` + `started_at` queried)
    channels/{id}                    Channel (`spoke_id`, `expires_at` queried)

Every query is backed by an index listed in `firestore_indexes.py`.

The origin link - the link a spoke commits together with the hub item it
brings in - is kept in the item's document (`link`, None once deleted), not
in `spokes/{spoke}/links`: creating an item costs one write instead of two.
A link of (spoke, item) lives in the item's document exactly when the item's
`link_home` is that spoke; `link_home` is set only when the document is
created, so every link has one place, and a process remembers the homes it
has read (`_homes`) instead of reading them again. Changing such a link
updates only `link`: the item's `seq` and `version` stay, so other spokes do
not see a hub change. Items written before this layout have no `link_home`
and their links stay in `links` (docs/decisions/2026-12-01-origin-link-in-hub-item.md).

Cost is what Firestore bills (documents read and written), counted in `stats`
the way SQLite's store counts rows. An idle poll stays at a handful of reads:
the lease is taken in a transaction (1 read) whose result - the spoke's update
time, lease expiry and cursor header - is remembered for the run; the cursor
is then read without re-reading the spoke; a commit that changes nothing
writes nothing; commits without hub writes and the lease release are plain
writes with an update-time precondition on the spoke document (0 reads),
falling back to a read-check-write transaction whenever anything else touched
the spoke meanwhile (another run, an admin edit, a dirty flag).

Commits with hub writes run in a transaction: lease fence, expected-version
checks, one `seq` bump, item/link/cursor writes. A batch larger than
`MAX_WRITES` Firestore writes is split per hub item (an item's hub write and
its link always land together), each part its own transaction with its own
seq, the cursor and hub cursor in the last part: a failure between parts
leaves a consistent prefix and an unadvanced cursor, which the next run
re-reads without duplicating anything.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from spokesync.model.hub import SPOKE_TIMES, Channel, CredentialRef, Hub, HubItem, Link, RunRecord, Spoke
from spokesync.ports import CommitBatch, HubItemConflict, LeaseLost, StoreError

if TYPE_CHECKING:
    from spokesync.bootstrap import Context
    from spokesync.config import Config

MAX_WRITES = 500  # Firestore writes per commit
CURSOR_CHUNK = 900_000  # bytes per cursor document (Firestore's limit is 1 MiB)
_IN_LIMIT = 30  # values per `in` filter
_TXN_ATTEMPTS = 10  # contended transactions are aborted and retried by the client
_TXN_READ_RETRIES = 8  # ... and by us when the abort comes from a read (see _transact)
_GET_ALL = 300  # references per BatchGetDocuments
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RUN_PLAN_MAX = 600_000  # bytes of dry-run plan kept in a run document
_HOMES_MAX = 20_000  # hub items whose link home a process remembers (about 5 MB): more than a run's batch
_SAFE_ID = re.compile(r"^(?!\.\.?$)(?!__.*__$)[^/]{1,700}$")


def doc_id(value: str) -> str:
    """A Firestore document id for an arbitrary id: itself when valid, else a hash."""
    if _SAFE_ID.match(value) and len(value.encode()) <= 1500:
        return value
    return "~" + hashlib.sha256(value.encode()).hexdigest()


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


@dataclass(frozen=True)
class _Held:
    """What this process knows about a lease it holds (for precondition writes)."""

    run_id: str
    update_time: Any  # the spoke document's update time after our last write
    expires: datetime
    cursor: dict[str, Any] | None  # the cursor header
    hub_cursor: int
    dirty: bool = False  # the spoke was flagged dirty (seen by our last transaction)


class FirestoreHubStore:
    def __init__(self, client: Any, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self.stats: Counter[str] = Counter()
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        # (hub id, item id) -> the spoke whose link the item's document holds ("" for none): fixed
        # when the document is created (cleared only with that spoke), so never stale for a live spoke
        self._homes: dict[tuple[str, str], str] = {}
        self._spoke_hubs: dict[str, str] = {}  # spoke id -> hub id (a spoke never changes hub)

    # ------------------------------------------------------------ plumbing
    def _col(self, name: str) -> Any:
        return self.client.collection(self.prefix + name)

    def _hub_ref(self, hub_id: str) -> Any:
        return self._col("hubs").document(doc_id(hub_id))

    def _item_ref(self, hub_id: str, item_id: str) -> Any:
        return self._hub_ref(hub_id).collection("items").document(doc_id(item_id))

    def _spoke_ref(self, spoke_id: str) -> Any:
        return self._col("spokes").document(doc_id(spoke_id))

    def _link_ref(self, spoke_id: str, hub_item_id: str) -> Any:
        return self._spoke_ref(spoke_id).collection("links").document(doc_id(hub_item_id))

    def _cursor_refs(self, spoke_id: str, header: dict[str, Any] | None) -> list[Any]:
        if not header:
            return []
        col = self._spoke_ref(spoke_id).collection("cursor")
        return [col.document(f"{header['gen']:08d}-{i:03d}") for i in range(int(header["chunks"]))]

    def _transact(self, fn: Any) -> tuple[Any, Any]:
        """Run a ``@firestore.transactional`` callable; return its result and the transaction.

        The client retries a transaction only when its *commit* is aborted, at once and at most
        ``_TXN_ATTEMPTS`` times. Under contention Firestore (and its emulator: "Transaction lock
        timeout") also aborts a *read* inside the transaction, and writers retrying at once can
        keep aborting each other; the client then rolls back and raises. Such an attempt wrote
        nothing, so it is run again in a fresh transaction after a short randomised pause.
        """
        from google.api_core import exceptions

        for attempt in range(_TXN_READ_RETRIES):
            transaction = self.client.transaction(max_attempts=_TXN_ATTEMPTS)
            try:
                return fn(transaction), transaction
            except (exceptions.Aborted, ValueError) as exc:
                # ValueError: the client gave up after aborted commits (contending writers that
                # retry at once can keep aborting each other); a randomised pause breaks the tie.
                aborted = isinstance(exc, exceptions.Aborted) or isinstance(exc.__cause__, exceptions.Aborted)
                if not aborted or attempt == _TXN_READ_RETRIES - 1:
                    raise
                self.stats["aborted"] += 1
                time.sleep(random.uniform(0, min(1.0, 0.05 * 2 ** attempt)))
        raise AssertionError("unreachable")

    def _get(self, ref: Any, transaction: Any = None) -> Any:
        snap = ref.get(transaction=transaction)
        self.stats["reads"] += 1
        return snap

    def _get_all(self, refs: Sequence[Any], transaction: Any = None, field_paths: list[str] | None = None) -> list[Any]:
        out: list[Any] = []
        for part in _chunks(list(refs), _GET_ALL):
            snaps = list(self.client.get_all(list(part), field_paths=field_paths, transaction=transaction))
            self.stats["reads"] += len(snaps)  # missing documents are billed too
            out.extend(s for s in snaps if s.exists)
        return out

    def _stream(self, query: Any, transaction: Any = None) -> list[Any]:
        snaps = list(query.stream(transaction=transaction))
        self.stats["reads"] += max(1, len(snaps))  # an empty result is billed one read
        return snaps

    def _commit_batch(self, writes: list[tuple[str, Any, Any, Any]]) -> list[Any]:
        """Apply (op, ref, data, option) writes in one atomic batch; returns write results."""
        batch = self.client.batch()
        for op, ref, data, option in writes:
            if op == "set":
                batch.set(ref, data)
            elif op == "merge":  # replace these top-level fields, keep the others
                batch.set(ref, data, merge=list(data))
            elif op == "update":
                batch.update(ref, data, option=option) if option is not None else batch.update(ref, data)
            elif op == "create":
                batch.create(ref, data)
            else:
                batch.delete(ref)
        results = list(batch.commit())
        self.stats["writes"] += len(writes)
        return results

    def _delete_query(self, query: Any) -> None:
        while True:
            refs = [s.reference for s in self._stream(query.limit(MAX_WRITES))]
            if not refs:
                return
            self._commit_batch([("delete", ref, None, None) for ref in refs])
            if len(refs) < MAX_WRITES:
                return

    # ---------------------------------------------------------- documents
    @staticmethod
    def _spoke_doc(spoke: Spoke) -> dict[str, Any]:
        raw = spoke.to_dict()
        for name in SPOKE_TIMES:
            raw[name] = getattr(spoke, name)
        raw["due_at"] = spoke.next_run_at or _EPOCH
        return raw

    @staticmethod
    def _spoke_fields(changes: dict[str, Any]) -> dict[str, Any]:
        """Spoke field changes as Firestore values (options serialised, due_at kept in step)."""
        out: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "options":
                out[name] = value.to_dict()
            else:
                out[name] = value
            if name == "next_run_at":
                out["due_at"] = value or _EPOCH
        return out

    def _spoke_from(self, snap: Any) -> Spoke:
        spoke = Spoke.from_dict(snap.to_dict())
        self._spoke_hubs[spoke.id] = spoke.hub_id
        return spoke

    # ------------------------------------------------------- origin links
    def _hub_of(self, spoke_id: str) -> str | None:
        hub_id = self._spoke_hubs.get(spoke_id)
        if hub_id is None:
            snap = self._get(self._spoke_ref(spoke_id))
            if not snap.exists:
                return None
            hub_id = self._spoke_from(snap).hub_id
        return hub_id

    def _learn_homes(self, hub_id: str, snaps: Sequence[Any]) -> None:
        """Remember the link homes of hub item documents just read (whole, or with `link_home`)."""
        with self._lock:
            if len(self._homes) > _HOMES_MAX:
                for key in list(self._homes)[: _HOMES_MAX // 2]:  # the oldest half
                    del self._homes[key]
            for snap in snaps:
                if snap.exists:
                    self._homes[(hub_id, snap.id)] = sys.intern((snap.to_dict() or {}).get("link_home") or "")

    def _homes_of(self, hub_id: str, item_ids: Sequence[str], transaction: Any = None) -> dict[str, str]:
        """item id -> the spoke whose link its document holds ("": none, or no such item)."""
        with self._lock:
            known = {i: self._homes[(hub_id, doc_id(i))] for i in item_ids if (hub_id, doc_id(i)) in self._homes}
        missing = [i for i in dict.fromkeys(item_ids) if i not in known]
        if missing:
            snaps = self._get_all([self._item_ref(hub_id, i) for i in missing], transaction, field_paths=["link_home"])
            self._learn_homes(hub_id, snaps)
            found = {s.id: (s.to_dict() or {}).get("link_home") or "" for s in snaps}
            known.update({i: found.get(doc_id(i), "") for i in missing})
        return known

    def _embedded(self, spoke_id: str) -> tuple[str, Any] | None:
        """(hub id, the hub's items) for queries of a spoke's embedded links; None without the spoke."""
        hub_id = self._hub_of(spoke_id)
        if hub_id is None:
            return None
        return hub_id, self._hub_ref(hub_id).collection("items").where(filter=self._eq("link_home", spoke_id))

    # --------------------------------------------------------- credentials
    def put_credential(self, credential: CredentialRef) -> None:
        self._commit_batch([("set", self._col("credentials").document(doc_id(credential.id)), credential.to_dict(), None)])

    def get_credential(self, credential_id: str) -> CredentialRef | None:
        snap = self._get(self._col("credentials").document(doc_id(credential_id)))
        return CredentialRef.from_dict(snap.to_dict()) if snap.exists else None

    def list_credentials(self) -> list[CredentialRef]:
        return [CredentialRef.from_dict(s.to_dict()) for s in self._stream(self._col("credentials"))]

    def delete_credential(self, credential_id: str) -> None:
        self._commit_batch([("delete", self._col("credentials").document(doc_id(credential_id)), None, None)])

    # ---------------------------------------------------------------- hubs
    def put_hub(self, hub: Hub) -> None:
        self._commit_batch([("set", self._hub_ref(hub.id), hub.to_dict(), None)])

    def get_hub(self, hub_id: str) -> Hub | None:
        snap = self._get(self._hub_ref(hub_id))
        return Hub.from_dict(snap.to_dict()) if snap.exists else None

    def list_hubs(self) -> list[Hub]:
        return [Hub.from_dict(s.to_dict()) for s in self._stream(self._col("hubs"))]

    def delete_hub(self, hub_id: str) -> None:
        for spoke in self.list_spokes(hub_id):
            self._delete_spoke(spoke.id, origin_links=False)  # (they go with the items)
        self._delete_query(self._hub_ref(hub_id).collection("items"))
        self._delete_query(self._col("runs").where(filter=self._eq("hub_id", hub_id)))
        self._commit_batch([("delete", self._hub_ref(hub_id), None, None)])

    # -------------------------------------------------------------- spokes
    def put_spoke(self, spoke: Spoke) -> None:
        # "merge" keeps the cursor header of an existing spoke: put_spoke saves config and state
        ref = self._spoke_ref(spoke.id)
        self._spoke_hubs[spoke.id] = spoke.hub_id
        self._commit_batch([("merge", ref, self._spoke_doc(spoke), None)])
        with self._lock:
            self._held.pop(spoke.id, None)

    def get_spoke(self, spoke_id: str) -> Spoke | None:
        snap = self._get(self._spoke_ref(spoke_id))
        return self._spoke_from(snap) if snap.exists else None

    def list_spokes(self, hub_id: str | None = None) -> list[Spoke]:
        query = self._col("spokes")
        if hub_id is not None:
            query = query.where(filter=self._eq("hub_id", hub_id))
        return [self._spoke_from(s) for s in self._stream(query)]

    def due_spokes(self, now: datetime) -> list[Spoke]:
        """Spokes whose next run is due (never scheduled counts as due): one indexed query."""
        query = self._col("spokes").where(filter=self._op("due_at", "<=", now))
        return [self._spoke_from(s) for s in self._stream(query)]

    def update_spoke(self, spoke_id: str, **changes: Any) -> Spoke:
        from google.cloud import firestore

        ref = self._spoke_ref(spoke_id)

        @firestore.transactional
        def change(transaction: Any) -> Spoke:
            snap = self._get(ref, transaction)
            if not snap.exists:
                raise StoreError(f"spoke {spoke_id} does not exist")
            spoke = replace(self._spoke_from(snap), **changes)
            transaction.update(ref, self._spoke_fields(changes))
            return spoke

        spoke, _ = self._transact(change)
        self.stats["writes"] += 1
        return spoke

    def delete_spoke(self, spoke_id: str) -> None:
        self._delete_spoke(spoke_id)

    def _delete_spoke(self, spoke_id: str, origin_links: bool = True) -> None:
        from google.cloud import firestore

        ref = self._spoke_ref(spoke_id)
        self._delete_query(ref.collection("links"))
        embedded = self._embedded(spoke_id) if origin_links else None  # (before the spoke document: it names the hub)
        if embedded is not None:
            # its origin links, in the documents of the items it brought in (the items stay)
            hub_id, query = embedded
            while True:
                snaps = self._stream(query.select(["link_home"]).limit(MAX_WRITES))
                refs = [s.reference for s in snaps if s.exists]
                if not refs:
                    break
                self._commit_batch([("update", r, {"link_home": firestore.DELETE_FIELD, "link": firestore.DELETE_FIELD},
                                     None) for r in refs])
                with self._lock:
                    for r in refs:
                        self._homes[(hub_id, r.id)] = ""
                if len(refs) < MAX_WRITES:
                    break
        self._delete_query(ref.collection("cursor"))
        self._delete_query(self._col("channels").where(filter=self._eq("spoke_id", spoke_id)))
        self._delete_query(self._col("runs").where(filter=self._eq("spoke_id", spoke_id)))
        self._commit_batch([("delete", ref, None, None)])
        with self._lock:
            self._held.pop(spoke_id, None)

    # -------------------------------------------------------------- leases
    def acquire_lease(self, spoke_id: str, run_id: str, now: datetime, ttl_s: float) -> Spoke | None:
        from google.cloud import firestore

        ref = self._spoke_ref(spoke_id)
        expires = now + timedelta(seconds=ttl_s)
        outcome: dict[str, Any] = {}

        @firestore.transactional
        def take(transaction: Any) -> Spoke | None:
            outcome.clear()
            snap = self._get(ref, transaction)
            if not snap.exists:
                raise StoreError(f"spoke {spoke_id} does not exist")
            raw = snap.to_dict()
            spoke = Spoke.from_dict(raw)
            self._spoke_hubs[spoke.id] = spoke.hub_id
            if spoke.lease_owner and spoke.lease_owner != run_id and spoke.lease_expires and spoke.lease_expires > now:
                if not spoke.dirty:
                    transaction.update(ref, {"dirty": True})
                    outcome["wrote"] = True
                return None
            transaction.update(ref, {"lease_owner": run_id, "lease_expires": expires, "dirty": False})
            outcome.update(wrote=True, cursor=raw.get("cursor"))
            return replace(spoke, lease_owner=run_id, lease_expires=expires, dirty=False)

        spoke, transaction = self._transact(take)
        if outcome.get("wrote"):
            self.stats["writes"] += 1
        with self._lock:
            if spoke is not None:
                self._held[spoke_id] = _Held(run_id, transaction.write_results[0].update_time, expires,
                                             outcome.get("cursor"), spoke.hub_cursor)
            elif self._held.get(spoke_id) is not None and self._held[spoke_id].run_id != run_id:
                pass  # another of our runs holds it; its knowledge stays valid until the doc changes
        return spoke

    def _held_by(self, spoke_id: str, run_id: str) -> _Held | None:
        with self._lock:
            held = self._held.get(spoke_id)
        return held if held is not None and held.run_id == run_id else None

    def release_lease(self, spoke_id: str, run_id: str, **changes: Any) -> bool:
        from google.api_core import exceptions
        from google.cloud import firestore

        ref = self._spoke_ref(spoke_id)
        fields = {"lease_owner": None, "lease_expires": None, "dirty": False, **self._spoke_fields(changes)}
        held = self._held_by(spoke_id, run_id)
        with self._lock:
            self._held.pop(spoke_id, None)
        if held is not None:
            # Unchanged since our last write: nobody set dirty, nobody took over.
            option = self.client.write_option(last_update_time=held.update_time)
            try:
                self._commit_batch([("update", ref, fields, option)])
                return held.dirty
            except (exceptions.FailedPrecondition, exceptions.NotFound):
                pass

        @firestore.transactional
        def release(transaction: Any) -> bool:
            snap = self._get(ref, transaction)
            if not snap.exists:
                return False
            raw = snap.to_dict()
            if raw.get("lease_owner") != run_id:
                return False
            transaction.update(ref, fields)
            return bool(raw.get("dirty"))

        dirty, transaction = self._transact(release)
        if transaction.write_results:
            self.stats["writes"] += 1
        return dirty

    # -------------------------------------------------------------- cursor
    def get_cursor(self, spoke_id: str) -> bytes | None:
        with self._lock:
            held = self._held.get(spoke_id)
        if held is not None:
            data = self._read_cursor(spoke_id, held.cursor)
            if data is not None or not held.cursor:
                return data
        snap = self._get(self._spoke_ref(spoke_id))
        if not snap.exists:
            return None
        return self._read_cursor(spoke_id, snap.to_dict().get("cursor"))

    def _read_cursor(self, spoke_id: str, header: dict[str, Any] | None) -> bytes | None:
        if not header:
            return None
        refs = self._cursor_refs(spoke_id, header)
        snaps = {s.id: s for s in self._get_all(refs)}
        if len(snaps) != len(refs):
            return None  # replaced concurrently: the caller re-reads the header
        data = b"".join(bytes(snaps[r.id].get("data")) for r in refs)
        if header.get("z"):
            data = zlib.decompress(data)
        if hashlib.sha256(data).hexdigest() != header.get("sha"):
            return None
        return data

    @staticmethod
    def _encode_cursor(cursor: bytes, gen: int) -> tuple[dict[str, Any], list[bytes]]:
        sha = hashlib.sha256(cursor).hexdigest()
        packed = zlib.compress(cursor, 6)
        compressed = len(packed) < len(cursor) * 0.9
        body = packed if compressed else cursor
        parts = [body[i : i + CURSOR_CHUNK] for i in range(0, len(body), CURSOR_CHUNK)] or [b""]
        return {"gen": gen, "chunks": len(parts), "sha": sha, "size": len(cursor), "z": compressed}, parts

    # ----------------------------------------------------------- hub items
    @staticmethod
    def _eq(field: str, value: Any) -> Any:
        from google.cloud.firestore_v1.base_query import FieldFilter

        return FieldFilter(field, "==", value)

    @staticmethod
    def _op(field: str, op: str, value: Any) -> Any:
        from google.cloud.firestore_v1.base_query import FieldFilter

        return FieldFilter(field, op, value)

    def new_item_id(self) -> str:
        """Random ids: Google asks not to use monotonically increasing document ids, which
        lead to hotspots (https://cloud.google.com/firestore/docs/best-practices#document_ids)."""
        return uuid.uuid4().hex

    def get_hub_items(self, hub_id: str, ids: Sequence[str]) -> dict[str, HubItem]:
        refs = [self._item_ref(hub_id, i) for i in dict.fromkeys(ids)]
        out = {}
        snaps = self._get_all(refs)
        self._learn_homes(hub_id, snaps)
        for snap in snaps:
            item = HubItem.from_dict(snap.to_dict())
            out[item.id] = item
        return out

    def hub_items_since(self, hub_id: str, seq: int, limit: int | None = None) -> list[HubItem]:
        items_ref = self._hub_ref(hub_id).collection("items")
        query = items_ref.where(filter=self._op("seq", ">", seq)).order_by("seq")
        if limit is not None:
            query = query.limit(max(1, limit))
        snaps = self._stream(query)
        self._learn_homes(hub_id, snaps)
        items = [HubItem.from_dict(s.to_dict()) for s in snaps]
        if limit is not None and len(items) >= limit:
            # a page ends where a seq ends: the rest of the last seq's items (one commit's)
            last = max(i.seq for i in items)
            have = {i.id for i in items}
            rest = [s for s in self._stream(items_ref.where(filter=self._eq("seq", last))) if s.id not in have]
            self._learn_homes(hub_id, rest)
            items += [i for i in (HubItem.from_dict(s.to_dict()) for s in rest) if i.id not in have]
        return sorted(items, key=lambda i: (i.seq, i.id))

    def list_hub_items(self, hub_id: str, include_deleted: bool = False) -> list[HubItem]:
        query = self._hub_ref(hub_id).collection("items")
        if not include_deleted:
            query = query.where(filter=self._eq("deleted", False))
        snaps = self._stream(query)
        self._learn_homes(hub_id, snaps)
        return sorted((HubItem.from_dict(s.to_dict()) for s in snaps), key=lambda i: i.id)

    def count_hub_items(self, hub_id: str) -> int:
        query = self._hub_ref(hub_id).collection("items").where(filter=self._eq("deleted", False))
        return self._count(query)

    def _count(self, query: Any) -> int:
        result = query.count().get()
        count = int(result[0][0].value)
        self.stats["reads"] += max(1, -(-count // 1000))  # aggregations bill one read per 1000 entries
        return count

    # --------------------------------------------------------------- links
    # A spoke's links are in `spokes/{spoke}/links` and, for the items it brought in, in the items'
    # documents (`link_home` == the spoke): each read looks in both, and a link is in one of them.
    def links_by_spoke_items(self, spoke_id: str, spoke_item_ids: Sequence[str]) -> dict[str, Link]:
        col = self._spoke_ref(spoke_id).collection("links")
        embedded = self._embedded(spoke_id)
        out: dict[str, Link] = {}
        for part in _chunks(list(dict.fromkeys(spoke_item_ids)), _IN_LIMIT):  # `in` takes 30 values a query
            for snap in self._stream(col.where(filter=self._op("spoke_item_id", "in", list(part)))):
                link = Link.from_dict(snap.to_dict())
                out[link.spoke_item_id] = link
            rest = [i for i in part if i not in out]  # (all found: no second query, no read billed for it)
            if embedded is not None and rest:
                query = embedded[1].where(filter=self._op("link.spoke_item_id", "in", rest)).select(["link"])
                for link in self._links_in(self._stream(query)):
                    out[link.spoke_item_id] = link
        return out

    @staticmethod
    def _links_in(snaps: Sequence[Any]) -> list[Link]:
        return [Link.from_dict(raw["link"]) for raw in (s.to_dict() or {} for s in snaps) if raw.get("link")]

    def links_by_hub_items(self, spoke_id: str, hub_item_ids: Sequence[str]) -> dict[str, Link]:
        from google.cloud.firestore_v1.field_path import FieldPath

        ids = list(dict.fromkeys(hub_item_ids))
        out: dict[str, Link] = {}
        embedded = self._embedded(spoke_id)
        if embedded is not None:
            hub_id, query = embedded
            with self._lock:  # items known to hold another spoke's link (or none) are not queried
                elsewhere = {i for i in ids if self._homes.get((hub_id, doc_id(i)), spoke_id) != spoke_id}
            for part in _chunks([i for i in ids if i not in elsewhere], _IN_LIMIT):
                refs = [self._item_ref(hub_id, i) for i in part]
                snaps = self._stream(query.where(filter=self._op(FieldPath.document_id(), "in", refs)).select(["link"]))
                for link in self._links_in(snaps):
                    out[link.hub_item_id] = link
        for snap in self._get_all([self._link_ref(spoke_id, i) for i in ids if i not in out]):
            link = Link.from_dict(snap.to_dict())
            out[link.hub_item_id] = link
        return out

    def list_links(self, spoke_id: str) -> list[Link]:
        links = [Link.from_dict(s.to_dict()) for s in self._stream(self._spoke_ref(spoke_id).collection("links"))]
        embedded = self._embedded(spoke_id)
        if embedded is not None:
            links += self._links_in(self._stream(embedded[1].select(["link"])))
        return sorted(links, key=lambda link: link.hub_item_id)

    def count_links(self, spoke_id: str) -> int:
        count = self._count(self._spoke_ref(spoke_id).collection("links").where(filter=self._eq("detached", False)))
        embedded = self._embedded(spoke_id)
        if embedded is not None:
            count += self._count(embedded[1].where(filter=self._eq("link.detached", False)))
        return count

    # -------------------------------------------------------------- commit
    def commit(self, batch: CommitBatch, now: datetime) -> int:
        groups: dict[str, list[tuple[str, Any]]] = {}
        for w in batch.hub_writes:
            groups.setdefault(w.item.id, []).append(("hub", w))
        for link in batch.link_upserts:
            groups.setdefault(link.hub_item_id, []).append(("link", link))
        for hub_item_id in batch.link_deletes:
            groups.setdefault(hub_item_id, []).append(("unlink", hub_item_id))
        held = self._held_by(batch.spoke_id, batch.run_id)
        header = held.cursor if held is not None else None
        cursor_parts = 0
        if batch.set_cursor:
            new = len(batch.cursor or b"") // CURSOR_CHUNK + 1
            cursor_parts = new + (int(header["chunks"]) if header else new + 2)
        budget = MAX_WRITES - 2 - cursor_parts  # spoke + hub documents, cursor chunks
        if budget < 10:
            raise StoreError("cursor too large for one Firestore commit")
        parts: list[list[tuple[str, Any]]] = [[]]
        for ops in groups.values():
            if parts[-1] and len(parts[-1]) + len(ops) > budget:
                parts.append([])
            parts[-1].extend(ops)
        if len(parts) > 1 and batch.hub_writes:
            self._precheck_versions(batch)
        seq = 0
        for index, ops in enumerate(parts):
            last = index == len(parts) - 1
            seq = self._commit_part(batch, ops, last, now) or seq
        return seq

    def _precheck_versions(self, batch: CommitBatch) -> None:
        current = self.get_hub_items(batch.hub_id, [w.item.id for w in batch.hub_writes])
        stale = [w.item.id for w in batch.hub_writes
                 if (current[w.item.id].version if w.item.id in current else 0) != w.expected_version]
        if stale:
            raise HubItemConflict(stale)

    def _commit_part(self, batch: CommitBatch, ops: list[tuple[str, Any]], last: bool, now: datetime) -> int:
        from google.api_core import exceptions

        held = self._held_by(batch.spoke_id, batch.run_id)
        hub_writes = [w for kind, w in ops if kind == "hub"]
        spoke_fields: dict[str, Any] = {}
        cursor_writes: list[tuple[str, Any, Any, Any]] = []
        new_header: dict[str, Any] | None = None
        cursor_changed = False
        if last and batch.set_cursor:
            old = held.cursor if held is not None else None
            if batch.cursor is None:
                cursor_changed = old is not None or held is None
            else:
                cursor_changed = old is None or old.get("sha") != hashlib.sha256(batch.cursor).hexdigest()
        if last and batch.hub_cursor is not None and (held is None or held.hub_cursor != batch.hub_cursor):
            spoke_fields["hub_cursor"] = batch.hub_cursor
        if held is not None and not ops and not spoke_fields and not cursor_changed and held.expires >= now:
            return 0  # nothing to write: no I/O at all
        if held is not None and not hub_writes and held.expires >= now:
            # Fast path: a plain batch, fenced by the spoke document's update time.
            if cursor_changed:
                new_header, cursor_writes = self._cursor_writes(batch, held.cursor)
                spoke_fields["cursor"] = new_header
            spoke_fields["last_commit_run"] = batch.run_id
            writes = [("update", self._spoke_ref(batch.spoke_id), spoke_fields,
                       self.client.write_option(last_update_time=held.update_time))]
            writes += self._link_writes(batch, ops, self._link_homes(batch, ops)) + cursor_writes
            try:
                results = self._commit_batch(writes)
            except (exceptions.FailedPrecondition, exceptions.NotFound):
                pass  # the spoke changed since: check the lease properly below
            else:
                self._remember(batch, held, results[0].update_time, new_header if cursor_changed else held.cursor,
                               spoke_fields.get("hub_cursor", held.hub_cursor))
                return 0
        return self._commit_transaction(batch, ops, hub_writes, last, now)

    def _link_homes(self, batch: CommitBatch, ops: list[tuple[str, Any]], transaction: Any = None,
                    skip: frozenset[str] = frozenset()) -> dict[str, str]:
        """The link homes of the items whose links `ops` change (those in `skip` aside). Read outside
        a transaction they hold all the same: a home is fixed when the item is created, and only
        this spoke's runs - this one, under the lease - change this spoke's links."""
        ids = [value.hub_item_id if kind == "link" else value for kind, value in ops if kind in ("link", "unlink")]
        ids = [i for i in ids if i not in skip]
        return self._homes_of(batch.hub_id, ids, transaction) if ids else {}

    def _link_writes(self, batch: CommitBatch, ops: list[tuple[str, Any]], homes: dict[str, str],
                     done: frozenset[str] = frozenset()) -> list[tuple[str, Any, Any, Any]]:
        """Writes of the links in `ops` (those of items in `done` were written with the item): in
        the item's document when it is the link's home, else in the spoke's `links`."""
        writes: list[tuple[str, Any, Any, Any]] = []
        for kind, value in ops:
            if kind == "link" and value.hub_item_id not in done:
                if homes.get(value.hub_item_id) == batch.spoke_id:  # only `link`: seq and version stay
                    writes.append(("update", self._item_ref(batch.hub_id, value.hub_item_id),
                                   {"link": value.to_dict()}, None))
                else:
                    writes.append(("set", self._link_ref(batch.spoke_id, value.hub_item_id), value.to_dict(), None))
            elif kind == "unlink" and value not in done:
                if homes.get(value) == batch.spoke_id:
                    writes.append(("update", self._item_ref(batch.hub_id, value), {"link": None}, None))
                else:
                    writes.append(("delete", self._link_ref(batch.spoke_id, value), None, None))
        return writes

    def _cursor_writes(self, batch: CommitBatch, old: dict[str, Any] | None) -> tuple[
            dict[str, Any] | None, list[tuple[str, Any, Any, Any]]]:
        writes: list[tuple[str, Any, Any, Any]] = [("delete", ref, None, None)
                                                   for ref in self._cursor_refs(batch.spoke_id, old)]
        if batch.cursor is None:
            return None, writes
        header, parts = self._encode_cursor(batch.cursor, (int(old["gen"]) + 1) if old else 1)
        for ref, part in zip(self._cursor_refs(batch.spoke_id, header), parts, strict=True):
            writes.append(("set", ref, {"data": part}, None))
        return header, writes

    def _remember(self, batch: CommitBatch, held: _Held | None, update_time: Any, cursor: dict[str, Any] | None,
                  hub_cursor: int) -> None:
        with self._lock:
            current = self._held.get(batch.spoke_id)
            if held is not None and current is held:
                self._held[batch.spoke_id] = replace(held, update_time=update_time, cursor=cursor, hub_cursor=hub_cursor)

    def _commit_transaction(self, batch: CommitBatch, ops: list[tuple[str, Any]], hub_writes: list[Any],
                            last: bool, now: datetime) -> int:
        from google.api_core import exceptions
        from google.cloud import firestore

        spoke_ref = self._spoke_ref(batch.spoke_id)
        hub_ref = self._hub_ref(batch.hub_id)
        result: dict[str, Any] = {}
        # New items (expected version 0) are not read: they are created with Firestore's
        # "must not exist" precondition. When one exists after all, the commit fails as a
        # whole and is made again reading them, to name the stale items.
        read_new = [False]

        @firestore.transactional
        def apply(transaction: Any) -> int:
            result.clear()
            snap = self._get(spoke_ref, transaction)
            raw = snap.to_dict() if snap.exists else None
            if raw is None or raw.get("lease_owner") != batch.run_id or (
                raw.get("lease_expires") is not None and raw["lease_expires"] < now
            ):
                raise LeaseLost(f"run {batch.run_id} no longer holds the lease of spoke {batch.spoke_id}")
            seq = 0
            writes: list[tuple[str, Any, Any, Any]] = []
            done: set[str] = set()  # items whose link is written with the item
            homes: dict[str, str] = {}
            if hub_writes:
                refs = [self._item_ref(batch.hub_id, w.item.id) for w in hub_writes]
                snaps = self._get_all([r for w, r in zip(hub_writes, refs, strict=True)
                                       if w.expected_version or read_new[0]], transaction)
                current = {s.get("id"): int(s.get("version")) for s in snaps}
                homes = {s.get("id"): (s.to_dict() or {}).get("link_home") or "" for s in snaps}
                stale = [w.item.id for w in hub_writes if current.get(w.item.id, 0) != w.expected_version]
                if stale:
                    raise HubItemConflict(stale)
                hub_snap = self._get(hub_ref, transaction)
                if not hub_snap.exists:
                    raise StoreError(f"hub {batch.hub_id} does not exist")
                seq = int(hub_snap.get("seq") or 0) + 1
                writes.append(("update", hub_ref, {"seq": seq}, None))
                upserts = {v.hub_item_id: v for kind, v in ops if kind == "link"}
                unlinked = {v for kind, v in ops if kind == "unlink"}
                for w, ref in zip(hub_writes, refs, strict=True):
                    item_id = w.item.id
                    doc = w.item.to_dict()
                    doc["seq"] = seq
                    if w.expected_version == 0:
                        # a new item: the link its spoke commits with it is its origin link, kept in it
                        homes[item_id] = ""
                        if item_id in upserts and upserts[item_id].spoke_id == batch.spoke_id:
                            homes[item_id] = doc["link_home"] = batch.spoke_id
                            doc["link"] = None if item_id in unlinked else upserts[item_id].to_dict()
                            done.add(item_id)
                        writes.append(("set" if read_new[0] else "create", ref, doc, None))
                        continue
                    if (item_id in upserts or item_id in unlinked) and homes.get(item_id) == batch.spoke_id:
                        doc["link"] = None if item_id in unlinked else upserts[item_id].to_dict()
                        done.add(item_id)
                    writes.append(("update", ref, doc, None))  # fields of the item (and link): the home stays
            homes.update(self._link_homes(batch, ops, transaction, skip=frozenset(homes)))
            writes += self._link_writes(batch, ops, homes, frozenset(done))
            result["homes"] = homes
            fields: dict[str, Any] = {"last_commit_run": batch.run_id}
            header = raw.get("cursor")
            if last and batch.set_cursor:
                same = batch.cursor is not None and header and header.get("sha") == hashlib.sha256(batch.cursor).hexdigest()
                if not same and (batch.cursor is not None or header):
                    header, cursor_writes = self._cursor_writes(batch, header)
                    fields["cursor"] = header
                    writes += cursor_writes
            hub_cursor = int(raw.get("hub_cursor") or 0)
            if last and batch.hub_cursor is not None and batch.hub_cursor != hub_cursor:
                fields["hub_cursor"] = hub_cursor = batch.hub_cursor
            writes.insert(0, ("update", spoke_ref, fields, None))
            for op, ref, data, _ in writes:
                if op == "create":
                    transaction.create(ref, data)
                elif op == "set":
                    transaction.set(ref, data)
                elif op == "update":
                    transaction.update(ref, data)
                else:
                    transaction.delete(ref)
            result.update(writes=len(writes), header=header, hub_cursor=hub_cursor,
                          expires=raw.get("lease_expires"), dirty=bool(raw.get("dirty")))
            return seq

        try:
            seq, transaction = self._transact(apply)
        except exceptions.AlreadyExists:
            read_new[0] = True
            seq, transaction = self._transact(apply)
        self.stats["writes"] += int(result.get("writes", 0))
        with self._lock:
            for item_id, home in result.get("homes", {}).items():
                self._homes[(batch.hub_id, doc_id(item_id))] = home
        held = self._held_by(batch.spoke_id, batch.run_id)
        update_time = transaction.write_results[0].update_time
        with self._lock:
            self._held[batch.spoke_id] = _Held(batch.run_id, update_time,
                                               result.get("expires") or (held.expires if held else now),
                                               result.get("header"), int(result.get("hub_cursor", 0)),
                                               bool(result.get("dirty")))
        return seq

    # ---------------------------------------------------------------- runs
    def put_run(self, run: RunRecord) -> None:
        raw = run.to_dict()
        raw["started_at"] = run.started_at
        raw["finished_at"] = run.finished_at
        if run.plan is not None and len(json.dumps(run.plan, default=str)) > _RUN_PLAN_MAX:
            kept: list[dict[str, Any]] = []
            size = 0
            for step in run.plan:
                size += len(json.dumps(step, default=str))
                if size > _RUN_PLAN_MAX:
                    break
                kept.append(step)
            raw["plan"] = kept
            raw["plan_truncated"] = len(run.plan) - len(kept)
        self._commit_batch([("set", self._col("runs").document(doc_id(run.id)), raw, None)])

    def get_run(self, run_id: str) -> RunRecord | None:
        snap = self._get(self._col("runs").document(doc_id(run_id)))
        return RunRecord.from_dict(snap.to_dict()) if snap.exists else None

    def list_runs(self, spoke_id: str | None = None, hub_id: str | None = None, limit: int = 20) -> list[RunRecord]:
        from google.cloud import firestore

        query = self._col("runs")
        if spoke_id is not None:
            query = query.where(filter=self._eq("spoke_id", spoke_id))
        elif hub_id is not None:
            query = query.where(filter=self._eq("hub_id", hub_id))
        query = query.order_by("started_at", direction=firestore.Query.DESCENDING).limit(limit)
        return [RunRecord.from_dict(s.to_dict()) for s in self._stream(query)]

    # ------------------------------------------------------------ channels
    def put_channel(self, channel: Channel) -> None:
        raw = channel.to_dict()
        raw["expires_at"] = channel.expires_at
        self._commit_batch([("set", self._col("channels").document(doc_id(channel.id)), raw, None)])

    def get_channel(self, channel_id: str) -> Channel | None:
        snap = self._get(self._col("channels").document(doc_id(channel_id)))
        return Channel.from_dict(snap.to_dict()) if snap.exists else None

    def list_channels(self, spoke_id: str | None = None, expiring_before: datetime | None = None) -> list[Channel]:
        query = self._col("channels")
        if spoke_id is not None:
            query = query.where(filter=self._eq("spoke_id", spoke_id))
        elif expiring_before is not None:
            query = query.where(filter=self._op("expires_at", "<", expiring_before)).order_by("expires_at")
        channels = [Channel.from_dict(s.to_dict()) for s in self._stream(query)]
        if expiring_before is not None:  # with a spoke filter too: few channels per spoke, filtered here
            channels = [c for c in channels if c.expires_at < expiring_before]
        return sorted(channels, key=lambda c: c.expires_at)

    def delete_channel(self, channel_id: str) -> None:
        self._commit_batch([("delete", self._col("channels").document(doc_id(channel_id)), None, None)])


_CLIENTS: dict[tuple[str, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def client_for(project: str, database: str) -> Any:
    """One Firestore client per (project, database) per process."""
    key = (project, database)
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            from google.cloud import firestore

            _CLIENTS[key] = firestore.Client(project=project or None, database=database)
        return _CLIENTS[key]


def from_config(config: Config, ctx: Context | None = None) -> FirestoreHubStore:
    return FirestoreHubStore(client_for(config.gcp_project, config.firestore_database), prefix=config.firestore_prefix)
