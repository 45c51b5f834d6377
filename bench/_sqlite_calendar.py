"""A memory calendar whose items and change log live in an SQLite file, outside the Python heap.

`engine_scale` fills its spokes with up to 200,000 events: held as Python objects they would
be most of the process's memory, and the peak RSS would measure the benchmark's data, not the
engine. Here each item is kept pickled in a table (SQLite's page cache is a few MiB) and read
when the connector reads it; `MemoryConnector` works on it unchanged (`items` is a mapping,
`log` a sequence with `since`, see `spokesync.connectors.memory`).
"""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Iterator, MutableMapping

from spokesync.connectors.memory import MemoryCalendar
from spokesync.ports import SpokeItem


class SqliteItems(MutableMapping[str, SpokeItem]):
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.execute("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, data BLOB)")

    def __getitem__(self, key: str) -> SpokeItem:
        row = self.db.execute("SELECT data FROM items WHERE id = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return pickle.loads(row[0])  # noqa: S301 - the benchmark's own rows

    def __setitem__(self, key: str, value: SpokeItem) -> None:
        self.db.execute("INSERT OR REPLACE INTO items VALUES (?, ?)", (key, pickle.dumps(value)))

    def __delitem__(self, key: str) -> None:
        if self.db.execute("DELETE FROM items WHERE id = ?", (key,)).rowcount == 0:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return self.db.execute("SELECT 1 FROM items WHERE id = ?", (key,)).fetchone() is not None

    def __iter__(self) -> Iterator[str]:
        return (r[0] for r in self.db.execute("SELECT id FROM items ORDER BY rowid").fetchall())

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def values(self) -> Iterator[SpokeItem]:  # type: ignore[override]
        return (pickle.loads(r[0]) for r in self.db.execute("SELECT data FROM items ORDER BY rowid"))  # noqa: S301

    def ids_after(self, last: str, n: int) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM items WHERE id > ? ORDER BY id LIMIT ?", (last, n))]


class SqliteLog:
    """The change log: (seq, item id) rows."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.execute("CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, item_id TEXT)")

    def append(self, entry: tuple[int, str]) -> None:
        self.db.execute("INSERT INTO log VALUES (?, ?)", entry)

    def since(self, seq: int) -> Iterator[tuple[int, str]]:
        return iter(self.db.execute("SELECT seq, item_id FROM log WHERE seq > ? ORDER BY seq", (seq,)))

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM log").fetchone()[0])


def sqlite_calendar(name: str, path: str) -> MemoryCalendar:
    db = sqlite3.connect(path, isolation_level=None)  # autocommit: each write is its own
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    return MemoryCalendar(name, items=SqliteItems(db), log=SqliteLog(db))  # type: ignore[arg-type]
