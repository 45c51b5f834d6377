"""The SQLite hub store passes the HubStore conformance suite, and opens files of the earlier
layout (every link in `links`) without losing or moving a link."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from spokesync.model.hub import Hub, Spoke
from spokesync.ports import CommitBatch, HubWrite, LeaseLost
from spokesync.stores.sqlite import SqliteHubStore
from tests.conformance.hub_store import NOW, HubStoreConformance, make_item, make_link


class TestSqliteHubStore(HubStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> SqliteHubStore:
        return SqliteHubStore(str(tmp_path / "hub.sqlite3"))


def test_new_item_ids_ascend_so_new_rows_go_to_the_end_of_the_indexes(tmp_path: Path) -> None:
    store = SqliteHubStore(str(tmp_path / "hub.sqlite3"))
    ids = [store.new_item_id() for _ in range(5000)]
    assert ids == sorted(ids)
    other = SqliteHubStore(str(tmp_path / "hub.sqlite3"))  # another process on the same file
    assert not set(ids) & {other.new_item_id() for _ in range(5000)}


def test_links_of_many_items_in_one_commit_land_in_their_places(tmp_path: Path) -> None:
    """More links than one lookup holds (`_CHUNK`): each in its place, each one write."""
    store = SqliteHubStore(str(tmp_path / "hub.sqlite3"))
    store.put_hub(Hub(id="hub1", name="Team"))
    for spoke_id in ("s1", "s2"):
        store.put_spoke(Spoke(id=spoke_id, hub_id="hub1", name=spoke_id, kind="memory"))
    ids = [f"i{n:04d}" for n in range(1200)]
    assert store.acquire_lease("s1", "run1", NOW, 60) is not None
    store.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(make_item(i), 0) for i in ids],
                             link_upserts=[make_link(i, "g" + i) for i in ids[:700]]), NOW)
    assert store.acquire_lease("s2", "run2", NOW, 60) is not None
    before = store.stats["writes"]
    store.commit(CommitBatch("hub1", "s2", "run2", link_upserts=[make_link(i, "x" + i, spoke_id="s2") for i in ids]),
                 NOW)
    assert store.stats["writes"] - before == len(ids)  # (the lease is trusted: no other write)
    before = store.stats["writes"]
    store.commit(CommitBatch("hub1", "s1", "run1", link_upserts=[make_link(i, "g" + i) for i in ids[700:]],
                             link_deletes=ids[:100]), NOW)
    assert store.stats["writes"] - before == 500 + 100
    assert len(store.list_links("s1")) == 1100 and len(store.list_links("s2")) == 1200
    in_rows = _rows(tmp_path / "hub.sqlite3", "SELECT COUNT(*) FROM hub_items WHERE link IS NOT NULL")
    in_table = _rows(tmp_path / "hub.sqlite3", "SELECT spoke_id, COUNT(*) FROM links GROUP BY spoke_id ORDER BY 1")
    assert in_rows == [(600,)] and in_table == [("s1", 500), ("s2", 1200)]


# The hub_items and links tables as the store created them before origin links moved into the
# item's row (the rest of the schema is unchanged).
EARLIER = """
CREATE TABLE hub_items (
    hub_id TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, version INTEGER NOT NULL,
    deleted INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (hub_id, id));
CREATE INDEX hub_items_seq ON hub_items (hub_id, seq);
CREATE TABLE links (
    spoke_id TEXT NOT NULL, hub_item_id TEXT NOT NULL, spoke_item_id TEXT NOT NULL,
    detached INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (spoke_id, hub_item_id));
CREATE INDEX links_spoke_item ON links (spoke_id, spoke_item_id);
"""


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def test_a_page_of_hub_changes_is_read_along_one_index(tmp_path: Path) -> None:
    """Both queries of a page of `hub_items_since` (the page, then the rest of its last seq) walk the
    (hub, seq, id) index from where the page starts: neither scans the rest of the hub nor sorts it
    (before, the second scanned the primary key from the page's last id on, N²/page in all); and a
    file of the earlier layout gets that index in place of its (hub, seq) one."""
    path = tmp_path / "hub.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(EARLIER)
    store = SqliteHubStore(str(path))
    store.put_hub(Hub(id="hub1", name="Team"))
    store.put_spoke(Spoke(id="s1", hub_id="hub1", name="Google", kind="memory"))
    assert store.acquire_lease("s1", "r1", NOW, 60) is not None
    store.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item(f"i{n}"), 0) for n in range(5)]), NOW)
    queries: list[str] = []
    store._conn().set_trace_callback(queries.append)  # the statements the store runs, values filled in
    assert len(store.hub_items_since("hub1", 0, limit=2)) == 5  # a page of 2, then the rest of its seq
    store._conn().set_trace_callback(None)
    pages = [q for q in queries if q.startswith("SELECT seq, id, data FROM hub_items")]
    assert len(pages) == 2
    with sqlite3.connect(path) as db:
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "hub_items_order" in indexes and "hub_items_seq" not in indexes
        for sql in pages:
            plan = " ".join(str(r[3]) for r in db.execute("EXPLAIN QUERY PLAN " + sql))
            assert "USING INDEX hub_items_order" in plan and "TEMP B-TREE" not in plan, plan


def test_a_file_of_the_earlier_layout_keeps_its_links_where_they_are(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(EARLIER)
        for i in ("o1", "o2", "o3"):
            raw = make_item(i).to_dict()
            raw["seq"] = 1
            db.execute("INSERT INTO hub_items VALUES (?, ?, 1, 1, 0, ?)", ("hub1", i, json.dumps(raw)))
            link = make_link(i, "g" + i)
            db.execute("INSERT INTO links VALUES (?, ?, ?, 0, ?)", ("s1", i, link.spoke_item_id, json.dumps(link.to_dict())))
    store = SqliteHubStore(str(path))
    store.put_hub(Hub(id="hub1", name="Team", seq=1))
    store.put_spoke(Spoke(id="s1", hub_id="hub1", name="Google", kind="memory"))
    assert [link.hub_item_id for link in store.list_links("s1")] == ["o1", "o2", "o3"]
    assert store.links_by_spoke_items("s1", ["go2"]) == {"go2": make_link("o2", "go2")}
    assert store.count_links("s1") == 3
    assert store.acquire_lease("s1", "r1", NOW, 60) is not None
    # new items get their origin link in their row; the old ones keep theirs in `links`
    store.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item("n1"), 0)],
                             link_upserts=[make_link("n1", "gn1")]), NOW)
    moved = replace(make_link("o1", "go1"), spoke_version="e2", hub_version=2)
    store.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item("o1", 2, "edited"), 1)],
                             link_upserts=[moved, replace(make_link("o2", "go2"), detached=True)],
                             link_deletes=["o3"]), NOW)
    assert _rows(path, "SELECT hub_item_id, detached FROM links ORDER BY 1") == [("o1", 0), ("o2", 1)]
    assert _rows(path, "SELECT id, link_home FROM hub_items ORDER BY 1") == [
        ("n1", "s1"), ("o1", None), ("o2", None), ("o3", None)]
    assert store.links_by_hub_items("s1", ["o1", "n1", "o3"]) == {"o1": moved, "n1": make_link("n1", "gn1")}
    assert store.count_links("s1") == 2
    assert store.get_hub_items("hub1", ["o1"])["o1"].event.title == "edited"  # type: ignore[union-attr]
    # a second opening migrates nothing twice
    again = SqliteHubStore(str(path))
    assert [link.hub_item_id for link in again.list_links("s1")] == ["n1", "o1", "o2"]
    again.delete_spoke("s1")
    assert _rows(path, "SELECT COUNT(*) FROM links") == [(0,)]
    assert _rows(path, "SELECT COUNT(*) FROM hub_items WHERE link_home IS NOT NULL OR link IS NOT NULL") == [(0,)]
    assert len(again.list_hub_items("hub1")) == 4


def test_a_link_only_change_of_an_origin_link_is_one_write_in_the_items_row(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    store = SqliteHubStore(str(path))
    store.put_hub(Hub(id="hub1", name="Team"))
    store.put_spoke(Spoke(id="s1", hub_id="hub1", name="Google", kind="memory"))
    assert store.acquire_lease("s1", "r1", NOW, 60) is not None
    store.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item("a"), 0)],
                             link_upserts=[make_link("a", "ga")]), NOW)
    before = _rows(path, "SELECT seq, version, data FROM hub_items")
    store.stats.clear()
    store.commit(CommitBatch("hub1", "s1", "r1", link_upserts=[replace(make_link("a", "ga"), spoke_version="e2")]), NOW)
    assert store.stats["writes"] == 1
    assert _rows(path, "SELECT seq, version, data FROM hub_items") == before
    assert _rows(path, "SELECT COUNT(*) FROM links") == [(0,)]
    assert json.loads(str(_rows(path, "SELECT link FROM hub_items")[0][0]))["spoke_version"] == "e2"


def test_commits_trust_the_lease_they_hold_only_while_nothing_else_was_committed(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.sqlite3")
    store, other = SqliteHubStore(path), SqliteHubStore(path)  # two processes on one file
    store.put_hub(Hub(id="hub1", name="Team"))
    store.put_spoke(Spoke(id="s1", hub_id="hub1", name="Google", kind="memory"))
    assert store.acquire_lease("s1", "r1", NOW, 60) is not None
    store.stats.clear()
    for i in ("a", "b", "c"):  # commits in a row: the lease this store wrote is trusted
        store.commit(CommitBatch("hub1", "s1", "r1", link_upserts=[make_link(i, "g" + i)], hub_cursor=3), NOW)
    assert store.stats["reads"] == 0
    assert other.get_spoke("s1").hub_cursor == 3  # type: ignore[union-attr]
    # another process takes the spoke over: the next commit reads the row and is refused
    other.update_spoke("s1", lease_owner="r2")
    with pytest.raises(LeaseLost):
        store.commit(CommitBatch("hub1", "s1", "r1", link_upserts=[make_link("d", "gd")]), NOW)
    # ... and so is one after another transaction of the same store
    assert store.acquire_lease("s1", "r3", NOW + timedelta(seconds=61), 60) is not None
    store.update_spoke("s1", lease_owner="r4")
    with pytest.raises(LeaseLost):
        store.commit(CommitBatch("hub1", "s1", "r3", link_upserts=[make_link("e", "ge")]), NOW)
    assert [link.hub_item_id for link in other.list_links("s1")] == ["a", "b", "c"]
