"""The embedded HubStore: one SQLite file, WAL mode, a connection per thread.

Records are JSON documents in a handful of tables, with the columns queries
need pulled out and indexed. `stats` counts records read and written, the
same unit Firestore bills, so benchmarks compare the two stores.

The origin link - the link a spoke commits together with the hub item it
brings in - lives in the hub item's row (`link_home` is that spoke, `link`
its JSON, NULL once deleted), not in `links`: creating an item is one write
instead of two. A link of (spoke, item) lives in the item's row exactly when
`link_home` is that spoke, which is set only when the row is created, so
every link has one place. Rows written before this layout have no
`link_home`: their links stay in `links` (docs/decisions/2026-12-01-origin-link-in-hub-item.md).

A commit is fenced by the spoke's lease. Like Firestore's update-time
precondition, the store remembers the lease it took or last committed under
(`_held`) and trusts it without reading the spoke's row when nothing has been
committed since: no other transaction of this store (`_txns`) and no other
connection (`PRAGMA data_version`, which changes only with other connections'
commits). Otherwise the row is read and checked.
"""

from __future__ import annotations

import itertools
import json
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from spokesync.model.hub import Channel, CredentialRef, Hub, HubItem, Link, RunRecord, Spoke
from spokesync.ports import CommitBatch, HubItemConflict, LeaseLost, StoreError

if TYPE_CHECKING:
    from spokesync.bootstrap import Context
    from spokesync.config import Config

SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hubs (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spokes (id TEXT PRIMARY KEY, hub_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS spokes_hub ON spokes (hub_id);
CREATE TABLE IF NOT EXISTS cursors (spoke_id TEXT PRIMARY KEY, data BLOB);
CREATE TABLE IF NOT EXISTS hub_items (
    hub_id TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, version INTEGER NOT NULL,
    deleted INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (hub_id, id));
-- (the origin-link columns of hub_items are added by _migrate: files of the earlier layout get them too)
-- the hub's changes in (seq, id) order, a page at a time: `hub_items_since` reads the index in
-- order and stops at the page's end (an index on (hub_id, seq) alone left the rest of a page's last
-- seq to a scan of the primary key from the page's last id on: a paged read of N items was N²/page)
CREATE INDEX IF NOT EXISTS hub_items_order ON hub_items (hub_id, seq, id);
CREATE TABLE IF NOT EXISTS links (
    spoke_id TEXT NOT NULL, hub_item_id TEXT NOT NULL, spoke_item_id TEXT NOT NULL,
    detached INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (spoke_id, hub_item_id));
CREATE INDEX IF NOT EXISTS links_spoke_item ON links (spoke_id, spoke_item_id);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, spoke_id TEXT NOT NULL, hub_id TEXT NOT NULL, started_at TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_spoke ON runs (spoke_id, started_at);
CREATE INDEX IF NOT EXISTS runs_hub ON runs (hub_id, started_at);
CREATE TABLE IF NOT EXISTS channels (id TEXT PRIMARY KEY, spoke_id TEXT NOT NULL, expires_at TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS channels_spoke ON channels (spoke_id);
"""

# The origin link in the hub item's row: (column, type). NULL in rows of the earlier layout.
_LINK_COLUMNS = (("link_home", "TEXT"), ("link_item", "TEXT"), ("link_detached", "INTEGER"), ("link", "TEXT"))
_LINK_INDEX = "CREATE INDEX IF NOT EXISTS hub_items_link ON hub_items (link_home, link_item)"
_ITEM_COLUMNS = "hub_id, id, seq, version, deleted, data, link_home, link_item, link_detached, link"
# an item write keeps the row's link unless it writes the link too
_UPSERT_ITEM = (f"INSERT INTO hub_items ({_ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
                "ON CONFLICT (hub_id, id) DO UPDATE SET seq = excluded.seq, version = excluded.version, "
                "deleted = excluded.deleted, data = excluded.data")
_UPSERT_ITEM_AND_LINK = (_UPSERT_ITEM + ", link_item = excluded.link_item, "
                         "link_detached = excluded.link_detached, link = excluded.link")
_SET_LINK = ("UPDATE hub_items SET link_item = ?, link_detached = ?, link = ? "
             "WHERE hub_id = ? AND id = ? AND link_home = ?")
_CHUNK = 500  # ids per IN (...) query, under SQLite's variable limit


def _link_columns(link: Link | None) -> tuple[str | None, int | None, str | None]:
    if link is None:
        return None, None, None
    return link.spoke_item_id, int(link.detached), _dump(link.to_dict())


# one encoder for every record: `json.dumps` with options builds a new one per call (the same text)
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _dump(raw: dict[str, Any]) -> str:
    return _ENCODE(raw)


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


class SqliteHubStore:
    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            from spokesync.private_files import create_private

            create_private(path)  # 0600 before SQLite opens it: -wal and -shm inherit the mode
        self._local = threading.local()
        # ":memory:" is one shared connection (tests); files get one per thread.
        self._shared: sqlite3.Connection | None = None
        self._shared_lock = threading.RLock()
        self.stats: Counter[str] = Counter()
        # lease fences known without a read: spoke id -> (run id, lease expiry, hub cursor,
        # number of the transaction that wrote them, data_version in it)
        self._held: dict[str, tuple[str, datetime | None, int, int, int]] = {}
        self._txns = 0  # transactions begun by this store, any thread
        self._txn_lock = threading.Lock()
        self._ids = itertools.count(secrets.randbelow(1 << 32))  # (next() is atomic under the GIL)
        self._id_tail = secrets.token_hex(6)
        with self._shared_lock:
            self._conn().executescript(SCHEMA)
            self._migrate(self._conn())
        if path != ":memory:":
            from spokesync.private_files import secure_file

            secure_file(path)

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        """Add the origin-link columns to a file of the earlier layout (its links stay where they are)."""
        have = {row[1] for row in db.execute("PRAGMA table_info(hub_items)")}
        for name, kind in _LINK_COLUMNS:
            if name not in have:
                db.execute(f"ALTER TABLE hub_items ADD COLUMN {name} {kind}")
        db.execute(_LINK_INDEX)
        db.execute("DROP INDEX IF EXISTS hub_items_seq")  # (files of the earlier layout: hub_items_order replaces it)

    # ------------------------------------------------------------ item ids
    def new_item_id(self) -> str:
        """Ascending ids: the time in milliseconds, this store's counter, then this store's random
        digits (other processes writing the same file). A new item's entries go to the right-hand
        end of the primary-key indexes of `hub_items` and `links` instead of a random leaf, so a
        commit rewrites a few pages, not one per item (docs/decisions/2026-12-01-item-ids-per-store.md)."""
        return f"{time.time_ns() // 1_000_000:012x}{next(self._ids) & 0xFFFFFFFF:08x}{self._id_tail}"

    # ------------------------------------------------------------ plumbing
    def _conn(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            if self._shared is None:
                self._shared = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            return self._shared
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: writers queue instead of failing)."""
        with self._shared_lock if self.path == ":memory:" else _nolock():
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            with self._txn_lock:
                self._txns += 1
                self._local.txn = self._txns
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            else:
                db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._shared_lock if self.path == ":memory:" else _nolock():
            rows = self._conn().execute(sql, args).fetchall()
        self.stats["reads"] += max(1, len(rows))
        return rows

    def _hold(self, db: sqlite3.Connection, spoke_id: str, run_id: str, expires: datetime | None,
              hub_cursor: int) -> None:
        """Remember, inside the transaction that wrote it, the lease a later commit may trust."""
        version = int(db.execute("PRAGMA data_version").fetchone()[0])
        self._held[spoke_id] = (run_id, expires, hub_cursor, self._local.txn, version)

    def _held_lease(self, db: sqlite3.Connection, spoke_id: str, run_id: str) -> tuple[datetime | None, int] | None:
        """(lease expiry, hub cursor) of `run_id`'s lease when nothing was committed since this
        store wrote them (so the spoke's row is unchanged); None when the row must be read."""
        held = self._held.get(spoke_id)
        if held is None or held[0] != run_id or held[3] != self._local.txn - 1:
            return None
        if int(db.execute("PRAGMA data_version").fetchone()[0]) != held[4]:
            return None
        return held[1], held[2]

    def _write(self, db: sqlite3.Connection, sql: str, args: Sequence[Any]) -> None:
        db.execute(sql, args)
        self.stats["writes"] += 1

    def _write_many(self, db: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One statement for many records (a batch's items or links): each counts as a write."""
        if rows:
            db.executemany(sql, rows)
            self.stats["writes"] += len(rows)

    # --------------------------------------------------------- credentials
    def put_credential(self, credential: CredentialRef) -> None:
        with self._tx() as db:
            self._write(db, "INSERT OR REPLACE INTO credentials VALUES (?, ?)", (credential.id, _dump(credential.to_dict())))

    def get_credential(self, credential_id: str) -> CredentialRef | None:
        rows = self._query("SELECT data FROM credentials WHERE id = ?", (credential_id,))
        return CredentialRef.from_dict(json.loads(rows[0][0])) if rows else None

    def list_credentials(self) -> list[CredentialRef]:
        return [CredentialRef.from_dict(json.loads(r[0])) for r in self._query("SELECT data FROM credentials ORDER BY id")]

    def delete_credential(self, credential_id: str) -> None:
        with self._tx() as db:
            self._write(db, "DELETE FROM credentials WHERE id = ?", (credential_id,))

    # ---------------------------------------------------------------- hubs
    def put_hub(self, hub: Hub) -> None:
        with self._tx() as db:
            self._write(db, "INSERT OR REPLACE INTO hubs VALUES (?, ?)", (hub.id, _dump(hub.to_dict())))

    def get_hub(self, hub_id: str) -> Hub | None:
        rows = self._query("SELECT data FROM hubs WHERE id = ?", (hub_id,))
        return Hub.from_dict(json.loads(rows[0][0])) if rows else None

    def list_hubs(self) -> list[Hub]:
        return [Hub.from_dict(json.loads(r[0])) for r in self._query("SELECT data FROM hubs ORDER BY id")]

    def delete_hub(self, hub_id: str) -> None:
        with self._tx() as db:
            spokes = [r[0] for r in db.execute("SELECT id FROM spokes WHERE hub_id = ?", (hub_id,))]
            for spoke_id in spokes:
                self._delete_spoke(db, spoke_id)
            self._write(db, "DELETE FROM hub_items WHERE hub_id = ?", (hub_id,))
            self._write(db, "DELETE FROM runs WHERE hub_id = ?", (hub_id,))
            self._write(db, "DELETE FROM hubs WHERE id = ?", (hub_id,))

    # -------------------------------------------------------------- spokes
    def put_spoke(self, spoke: Spoke) -> None:
        with self._tx() as db:
            self._write(db, "INSERT OR REPLACE INTO spokes VALUES (?, ?, ?)", (spoke.id, spoke.hub_id, _dump(spoke.to_dict())))

    def get_spoke(self, spoke_id: str) -> Spoke | None:
        rows = self._query("SELECT data FROM spokes WHERE id = ?", (spoke_id,))
        return Spoke.from_dict(json.loads(rows[0][0])) if rows else None

    def list_spokes(self, hub_id: str | None = None) -> list[Spoke]:
        if hub_id is None:
            rows = self._query("SELECT data FROM spokes ORDER BY id")
        else:
            rows = self._query("SELECT data FROM spokes WHERE hub_id = ? ORDER BY id", (hub_id,))
        return [Spoke.from_dict(json.loads(r[0])) for r in rows]

    def _read_spoke(self, db: sqlite3.Connection, spoke_id: str) -> Spoke:
        row = db.execute("SELECT data FROM spokes WHERE id = ?", (spoke_id,)).fetchone()
        self.stats["reads"] += 1
        if row is None:
            raise StoreError(f"spoke {spoke_id} does not exist")
        return Spoke.from_dict(json.loads(row[0]))

    def _save_spoke(self, db: sqlite3.Connection, spoke: Spoke) -> None:
        self._write(db, "UPDATE spokes SET data = ? WHERE id = ?", (_dump(spoke.to_dict()), spoke.id))

    def update_spoke(self, spoke_id: str, **changes: Any) -> Spoke:
        from dataclasses import replace

        with self._tx() as db:
            spoke = replace(self._read_spoke(db, spoke_id), **changes)
            self._save_spoke(db, spoke)
        return spoke

    def _delete_spoke(self, db: sqlite3.Connection, spoke_id: str) -> None:
        # its origin links, in the rows of the items it brought in (the items stay)
        self._write(db, "UPDATE hub_items SET link_home = NULL, link_item = NULL, link_detached = NULL, link = NULL "
                        "WHERE link_home = ?", (spoke_id,))
        for table, column in (("links", "spoke_id"), ("cursors", "spoke_id"), ("channels", "spoke_id"),
                              ("runs", "spoke_id"), ("spokes", "id")):
            self._write(db, f"DELETE FROM {table} WHERE {column} = ?", (spoke_id,))  # noqa: S608 - fixed names

    def delete_spoke(self, spoke_id: str) -> None:
        with self._tx() as db:
            self._delete_spoke(db, spoke_id)

    # -------------------------------------------------------------- leases
    def acquire_lease(self, spoke_id: str, run_id: str, now: datetime, ttl_s: float) -> Spoke | None:
        from dataclasses import replace
        from datetime import timedelta

        with self._tx() as db:
            spoke = self._read_spoke(db, spoke_id)
            if spoke.lease_owner and spoke.lease_owner != run_id and spoke.lease_expires and spoke.lease_expires > now:
                if not spoke.dirty:
                    self._save_spoke(db, replace(spoke, dirty=True))
                return None
            spoke = replace(spoke, lease_owner=run_id, lease_expires=now + timedelta(seconds=ttl_s), dirty=False)
            self._save_spoke(db, spoke)
            self._hold(db, spoke_id, run_id, spoke.lease_expires, spoke.hub_cursor)
            return spoke

    def release_lease(self, spoke_id: str, run_id: str, **changes: Any) -> bool:
        from dataclasses import replace

        with self._tx() as db:
            spoke = self._read_spoke(db, spoke_id)
            if spoke.lease_owner != run_id:
                return False
            dirty = spoke.dirty
            self._save_spoke(db, replace(spoke, lease_owner=None, lease_expires=None, dirty=False, **changes))
            return dirty

    # -------------------------------------------------------------- cursor
    def get_cursor(self, spoke_id: str) -> bytes | None:
        rows = self._query("SELECT data FROM cursors WHERE spoke_id = ?", (spoke_id,))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    # ----------------------------------------------------------- hub items
    def get_hub_items(self, hub_id: str, ids: Sequence[str]) -> dict[str, HubItem]:
        out: dict[str, HubItem] = {}
        for chunk in _chunks(list(dict.fromkeys(ids))):
            marks = ",".join("?" * len(chunk))
            for (data,) in self._query(f"SELECT data FROM hub_items WHERE hub_id = ? AND id IN ({marks})",  # noqa: S608
                                       (hub_id, *chunk)):
                item = HubItem.from_dict(json.loads(data))
                out[item.id] = item
        return out

    def hub_items_since(self, hub_id: str, seq: int, limit: int | None = None) -> list[HubItem]:
        if limit is None:
            rows = self._query("SELECT data FROM hub_items WHERE hub_id = ? AND seq > ? ORDER BY seq, id",
                               (hub_id, seq))
            return [HubItem.from_dict(json.loads(r[0])) for r in rows]
        rows = self._query("SELECT seq, id, data FROM hub_items WHERE hub_id = ? AND seq > ? ORDER BY seq, id "
                           "LIMIT ?", (hub_id, seq, max(1, limit)))
        if len(rows) >= limit:
            # a page ends where a seq ends: the rest of the last seq's items (one commit's)
            last_seq, last_id = rows[-1][0], rows[-1][1]
            rows += self._query("SELECT seq, id, data FROM hub_items WHERE hub_id = ? AND seq = ? AND id > ? "
                                "ORDER BY id", (hub_id, last_seq, last_id))
        return [HubItem.from_dict(json.loads(r[2])) for r in rows]

    def list_hub_items(self, hub_id: str, include_deleted: bool = False) -> list[HubItem]:
        sql = "SELECT data FROM hub_items WHERE hub_id = ?" + ("" if include_deleted else " AND deleted = 0")  # noqa: S608
        return [HubItem.from_dict(json.loads(r[0])) for r in self._query(sql + " ORDER BY id", (hub_id,))]

    def count_hub_items(self, hub_id: str) -> int:
        rows = self._query("SELECT COUNT(*) FROM hub_items WHERE hub_id = ? AND deleted = 0", (hub_id,))
        return int(rows[0][0])

    # --------------------------------------------------------------- links
    # Each query reads the spoke's links in both places: `links`, and the rows of the items the
    # spoke brought in (one statement: a link is in one of them).
    def links_by_spoke_items(self, spoke_id: str, spoke_item_ids: Sequence[str]) -> dict[str, Link]:
        out: dict[str, Link] = {}
        for chunk in _chunks(list(dict.fromkeys(spoke_item_ids))):
            marks = ",".join("?" * len(chunk))
            sql = (f"SELECT data FROM links WHERE spoke_id = ? AND spoke_item_id IN ({marks}) UNION ALL "  # noqa: S608
                   f"SELECT link FROM hub_items WHERE link_home = ? AND link_item IN ({marks}) AND link IS NOT NULL")
            for (data,) in self._query(sql, (spoke_id, *chunk, spoke_id, *chunk)):
                link = Link.from_dict(json.loads(data))
                out[link.spoke_item_id] = link
        return out

    def links_by_hub_items(self, spoke_id: str, hub_item_ids: Sequence[str]) -> dict[str, Link]:
        out: dict[str, Link] = {}
        for chunk in _chunks(list(dict.fromkeys(hub_item_ids))):
            marks = ",".join("?" * len(chunk))
            sql = (f"SELECT data FROM links WHERE spoke_id = ? AND hub_item_id IN ({marks}) UNION ALL "  # noqa: S608
                   "SELECT link FROM hub_items WHERE hub_id = (SELECT hub_id FROM spokes WHERE id = ?) "
                   f"AND id IN ({marks}) AND link_home = ? AND link IS NOT NULL")
            for (data,) in self._query(sql, (spoke_id, *chunk, spoke_id, *chunk, spoke_id)):
                link = Link.from_dict(json.loads(data))
                out[link.hub_item_id] = link
        return out

    def list_links(self, spoke_id: str) -> list[Link]:
        rows = self._query("SELECT hub_item_id, data FROM links WHERE spoke_id = ? UNION ALL "
                           "SELECT id, link FROM hub_items WHERE link_home = ? AND link IS NOT NULL ORDER BY 1",
                           (spoke_id, spoke_id))
        return [Link.from_dict(json.loads(r[1])) for r in rows]

    def count_links(self, spoke_id: str) -> int:
        rows = self._query("SELECT (SELECT COUNT(*) FROM links WHERE spoke_id = ? AND detached = 0) + "
                           "(SELECT COUNT(*) FROM hub_items WHERE link_home = ? AND link_detached = 0)",
                           (spoke_id, spoke_id))
        return int(rows[0][0])

    # -------------------------------------------------------------- commit
    def commit(self, batch: CommitBatch, now: datetime) -> int:
        with self._tx() as db:
            held = self._held_lease(db, batch.spoke_id, batch.run_id)
            if held is None:
                spoke = self._read_spoke(db, batch.spoke_id)
                expires, hub_cursor = spoke.lease_expires, spoke.hub_cursor
                if spoke.lease_owner != batch.run_id:
                    raise LeaseLost(f"run {batch.run_id} no longer holds the lease of spoke {batch.spoke_id}")
            else:
                expires, hub_cursor = held
            if expires is not None and expires < now:
                raise LeaseLost(f"run {batch.run_id} no longer holds the lease of spoke {batch.spoke_id}")
            seq = 0
            upserts = {link.hub_item_id: link for link in batch.link_upserts}
            deletes = set(batch.link_deletes)
            done: set[str] = set()  # hub item ids whose link was written with the item
            homes: dict[str, str | None] = {}  # the written items' `link_home` (known: no query for their links)
            if batch.hub_writes:
                ids = [w.item.id for w in batch.hub_writes]
                current: dict[str, tuple[int, str | None]] = {}
                for chunk in _chunks(ids):
                    marks = ",".join("?" * len(chunk))
                    for item_id, version, home in db.execute(
                        f"SELECT id, version, link_home FROM hub_items WHERE hub_id = ? AND id IN ({marks})",  # noqa: S608
                        (batch.hub_id, *chunk),
                    ):
                        current[item_id] = (version, home)
                stale = [w.item.id for w in batch.hub_writes if current.get(w.item.id, (0, None))[0] != w.expected_version]
                if stale:
                    raise HubItemConflict(stale)
                row = db.execute("SELECT data FROM hubs WHERE id = ?", (batch.hub_id,)).fetchone()
                if row is None:
                    raise StoreError(f"hub {batch.hub_id} does not exist")
                hub = json.loads(row[0])
                seq = int(hub.get("seq", 0)) + 1
                hub["seq"] = seq
                self._write(db, "UPDATE hubs SET data = ? WHERE id = ?", (_dump(hub), batch.hub_id))
                rows: dict[str, list[tuple[Any, ...]]] = {_UPSERT_ITEM: [], _UPSERT_ITEM_AND_LINK: []}
                for w in batch.hub_writes:
                    item_id = w.item.id
                    raw = w.item.to_dict()
                    raw["seq"] = seq
                    if w.expected_version == 0:
                        # a new item: the link its spoke commits with it is its origin link, kept in its row
                        mine = upserts.get(item_id)
                        home = batch.spoke_id if mine is not None and mine.spoke_id == batch.spoke_id else None
                    else:
                        home = current[item_id][1]
                    homes[item_id] = home
                    sql = _UPSERT_ITEM
                    link_cols: tuple[str | None, int | None, str | None] = (None, None, None)
                    if home is not None and home == batch.spoke_id and (item_id in upserts or item_id in deletes):
                        sql = _UPSERT_ITEM_AND_LINK
                        link_cols = _link_columns(None if item_id in deletes else upserts[item_id])
                        done.add(item_id)
                    rows[sql].append((batch.hub_id, item_id, seq, w.item.version, int(w.item.deleted), _dump(raw),
                                      home, *link_cols))
                for sql, items in rows.items():
                    self._write_many(db, sql, items)
            self._commit_links(db, batch, done, deletes, homes)
            if batch.set_cursor:
                self._write(db, "INSERT OR REPLACE INTO cursors VALUES (?, ?)", (batch.spoke_id, batch.cursor))
            if batch.hub_cursor is not None and batch.hub_cursor != hub_cursor:
                hub_cursor = batch.hub_cursor
                self._write(db, "UPDATE spokes SET data = json_set(data, '$.hub_cursor', ?) WHERE id = ?",
                            (hub_cursor, batch.spoke_id))
            self._hold(db, batch.spoke_id, batch.run_id, expires, hub_cursor)
            return seq

    def _commit_links(self, db: sqlite3.Connection, batch: CommitBatch, done: set[str], deletes: set[str],
                      homes: dict[str, str | None]) -> None:
        """The batch's links not written with their items: in the row of an item its spoke brought
        in, else in `links`. `homes`: the `link_home` of the items the batch wrote; one query finds
        the others', then one statement per place."""
        upserts = [link for link in batch.link_upserts if link.hub_item_id not in done and link.hub_item_id not in deletes]
        dropped = [hub_item_id for hub_item_id in batch.link_deletes if hub_item_id not in done]
        if not upserts and not dropped:
            return
        unknown = {*(link.hub_item_id for link in upserts), *dropped} - homes.keys()
        for chunk in _chunks(sorted(unknown)):
            marks = ",".join("?" * len(chunk))
            homes.update(db.execute(f"SELECT id, link_home FROM hub_items WHERE hub_id = ? AND id IN ({marks})",  # noqa: S608
                                    (batch.hub_id, *chunk)).fetchall())
        in_rows: list[tuple[Any, ...]] = []
        in_table: list[tuple[Any, ...]] = []
        for link in upserts:
            spoke_item_id, detached, data = _link_columns(link)
            if homes.get(link.hub_item_id) == link.spoke_id:
                in_rows.append((spoke_item_id, detached, data, batch.hub_id, link.hub_item_id, link.spoke_id))
            else:
                in_table.append((link.spoke_id, link.hub_item_id, spoke_item_id, detached, data))
        self._write_many(db, _SET_LINK, in_rows)
        self._write_many(db, "INSERT OR REPLACE INTO links VALUES (?, ?, ?, ?, ?)", in_table)
        row_drops = [(None, None, None, batch.hub_id, i, batch.spoke_id) for i in dropped if homes.get(i) == batch.spoke_id]
        if row_drops:  # (a row whose link is gone already is no write)
            self.stats["writes"] += db.executemany(_SET_LINK + " AND link IS NOT NULL", row_drops).rowcount
        self._write_many(db, "DELETE FROM links WHERE spoke_id = ? AND hub_item_id = ?",
                         [(batch.spoke_id, i) for i in dropped if homes.get(i) != batch.spoke_id])

    # ---------------------------------------------------------------- runs
    def put_run(self, run: RunRecord) -> None:
        with self._tx() as db:
            self._write(db, "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)",
                        (run.id, run.spoke_id, run.hub_id, run.started_at.isoformat(), _dump(run.to_dict())))

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._query("SELECT data FROM runs WHERE id = ?", (run_id,))
        return RunRecord.from_dict(json.loads(rows[0][0])) if rows else None

    def list_runs(self, spoke_id: str | None = None, hub_id: str | None = None, limit: int = 20) -> list[RunRecord]:
        if spoke_id is not None:
            rows = self._query("SELECT data FROM runs WHERE spoke_id = ? ORDER BY started_at DESC, id DESC LIMIT ?",
                               (spoke_id, limit))
        elif hub_id is not None:
            rows = self._query("SELECT data FROM runs WHERE hub_id = ? ORDER BY started_at DESC, id DESC LIMIT ?",
                               (hub_id, limit))
        else:
            rows = self._query("SELECT data FROM runs ORDER BY started_at DESC, id DESC LIMIT ?", (limit,))
        return [RunRecord.from_dict(json.loads(r[0])) for r in rows]

    # ------------------------------------------------------------ channels
    def put_channel(self, channel: Channel) -> None:
        with self._tx() as db:
            self._write(db, "INSERT OR REPLACE INTO channels VALUES (?, ?, ?, ?)",
                        (channel.id, channel.spoke_id, channel.expires_at.isoformat(), _dump(channel.to_dict())))

    def get_channel(self, channel_id: str) -> Channel | None:
        rows = self._query("SELECT data FROM channels WHERE id = ?", (channel_id,))
        return Channel.from_dict(json.loads(rows[0][0])) if rows else None

    def list_channels(self, spoke_id: str | None = None, expiring_before: datetime | None = None) -> list[Channel]:
        rows = self._query("SELECT data FROM channels ORDER BY expires_at")
        channels = [Channel.from_dict(json.loads(r[0])) for r in rows]
        return [
            c for c in channels
            if (spoke_id is None or c.spoke_id == spoke_id) and (expiring_before is None or c.expires_at < expiring_before)
        ]

    def delete_channel(self, channel_id: str) -> None:
        with self._tx() as db:
            self._write(db, "DELETE FROM channels WHERE id = ?", (channel_id,))


@contextmanager
def _nolock() -> Iterator[None]:
    yield


def from_config(config: Config, ctx: Context | None = None) -> SqliteHubStore:
    return SqliteHubStore(config.sqlite_file)
