"""The Firestore hub store passes the HubStore conformance suite against the
official Firestore emulator, and keeps an idle poll to a handful of reads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from spokesync.config import Config
from spokesync.model.hub import Hub, Spoke
from spokesync.ports import CommitBatch, HubItemConflict, HubWrite, LeaseLost
from spokesync.stores.firestore import FirestoreHubStore, doc_id, from_config
from tests.cloud.conftest import PROJECT, FirestoreEmulator
from tests.conformance.hub_store import NOW, HubStoreConformance, make_item, make_link


def make_store(prefix: str = "") -> FirestoreHubStore:
    return from_config(Config(backend="cloud", gcp_project=PROJECT, firestore_prefix=prefix))


class TestFirestoreHubStore(HubStoreConformance):
    @pytest.fixture
    def store(self, firestore: FirestoreEmulator) -> Iterator[FirestoreHubStore]:
        yield make_store()


@pytest.fixture
def seeded(firestore: FirestoreEmulator) -> FirestoreHubStore:
    store = make_store()
    store.put_hub(Hub(id="hub1", name="Team"))
    store.put_spoke(Spoke(id="s1", hub_id="hub1", name="Public folder", kind="exchange"))
    return store


def test_document_ids_survive_any_id() -> None:
    assert doc_id("abc-123") == "abc-123"
    assert doc_id("AAMkA/b+c==").startswith("~")
    assert doc_id("..") != ".." and doc_id("__x__") != "__x__"


def test_an_idle_poll_reads_at_most_five_documents(seeded: FirestoreHubStore) -> None:
    snapshot = os.urandom(2_000_000)  # incompressible: 3 cursor chunks
    assert seeded.acquire_lease("s1", "r0", NOW, 60)
    seeded.commit(CommitBatch("hub1", "s1", "r0", cursor=snapshot, set_cursor=True), NOW)
    seeded.release_lease("s1", "r0")
    fresh = make_store()  # a new function instance: nothing cached
    fresh.stats.clear()
    assert fresh.acquire_lease("s1", "r1", NOW, 60) is not None
    assert fresh.get_cursor("s1") == snapshot
    assert fresh.hub_items_since("hub1", 0) == []
    fresh.commit(CommitBatch("hub1", "s1", "r1", cursor=snapshot, set_cursor=True, hub_cursor=0), NOW)
    assert fresh.release_lease("s1", "r1", state="ok") is False
    assert fresh.stats["reads"] <= 5, fresh.stats
    assert fresh.stats["writes"] == 2, fresh.stats  # lease taken, lease released


def test_precondition_fast_path_falls_back_when_the_spoke_changed(seeded: FirestoreHubStore) -> None:
    other = make_store()
    assert seeded.acquire_lease("s1", "r1", NOW, 60) is not None
    # another instance marks the spoke dirty while r1 runs
    assert other.acquire_lease("s1", "r2", NOW, 60) is None
    seeded.commit(CommitBatch("hub1", "s1", "r1", link_upserts=[make_link("a", "ga")]), NOW)
    assert seeded.release_lease("s1", "r1") is True  # the dirty flag is reported
    # a lease taken over elsewhere fences the old run even on the fast path
    assert seeded.acquire_lease("s1", "r3", NOW, 60) is not None
    assert other.acquire_lease("s1", "r4", NOW + timedelta(seconds=61), 60) is not None
    with pytest.raises(LeaseLost):
        seeded.commit(CommitBatch("hub1", "s1", "r3", link_upserts=[make_link("b", "gb")]), NOW + timedelta(seconds=61))
    assert [link.hub_item_id for link in seeded.list_links("s1")] == ["a"]


def test_large_batches_split_into_commits_of_at_most_500_writes(seeded: FirestoreHubStore) -> None:
    assert seeded.acquire_lease("s1", "r1", NOW, 600) is not None
    ids = [f"i{n:04d}" for n in range(600)]
    seq = seeded.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item(i), 0) for i in ids],
                                    link_upserts=[make_link(i, "g" + i) for i in ids],
                                    cursor=b"done", set_cursor=True), NOW)
    items = seeded.hub_items_since("hub1", 0)
    assert len(items) == 600 and max(i.seq for i in items) == seq
    assert len({i.seq for i in items}) >= 3  # one seq per Firestore commit
    assert seeded.count_links("s1") == 600 and seeded.get_cursor("s1") == b"done"


def test_collection_prefix_isolates_deployments(firestore: FirestoreEmulator) -> None:
    a, b = make_store("a_"), make_store("b_")
    a.put_hub(Hub(id="h", name="A"))
    assert b.get_hub("h") is None and [h.name for h in a.list_hubs()] == ["A"]


def test_due_spokes_are_found_by_one_query(seeded: FirestoreHubStore) -> None:
    seeded.put_spoke(Spoke(id="s2", hub_id="hub1", name="later", kind="exchange",
                           next_run_at=NOW + timedelta(minutes=5)))
    assert {s.id for s in seeded.due_spokes(NOW)} == {"s1"}
    seeded.update_spoke("s1", next_run_at=NOW + timedelta(minutes=1))
    assert {s.id for s in seeded.due_spokes(NOW + timedelta(minutes=2))} == {"s1"}


def test_a_transaction_aborted_outside_the_clients_own_retry_is_run_again(seeded: FirestoreHubStore) -> None:
    """The client retries aborted commits only; an abort raised by a read, or the client giving
    up after aborted commits, is retried by the store in a fresh transaction."""
    from google.api_core import exceptions

    calls: list[Any] = []

    def flaky(transaction: Any) -> str:
        calls.append(transaction)
        if len(calls) == 1:
            raise exceptions.Aborted("Transaction lock timeout.")  # as a contended read raises it
        if len(calls) == 2:
            raise ValueError("Failed to commit transaction in 10 attempts.") from exceptions.Aborted("contention")
        return "done"

    result, transaction = seeded._transact(flaky)
    assert result == "done" and transaction is calls[-1] and len({id(t) for t in calls}) == 3
    assert seeded.stats["aborted"] == 2

    def broken(transaction: Any) -> str:
        raise ValueError("not an abort")

    with pytest.raises(ValueError, match="not an abort"):
        seeded._transact(broken)

    def always(transaction: Any) -> str:
        raise exceptions.Aborted("forever")

    with pytest.raises(exceptions.Aborted):
        seeded._transact(always)


# ------------------------------------------------- origin links in the hub item
def _docs(store: FirestoreHubStore) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The raw item and s1 link documents (what is stored where)."""
    items = {s.id: s.to_dict() for s in store._hub_ref("hub1").collection("items").stream()}
    links = {s.id: s.to_dict() for s in store._spoke_ref("s1").collection("links").stream()}
    return items, links


def test_the_origin_link_is_stored_in_the_item_document(seeded: FirestoreHubStore) -> None:
    assert seeded.acquire_lease("s1", "r1", NOW, 60) is not None
    seeded.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item("a"), 0)],
                              link_upserts=[make_link("a", "ga")]), NOW)
    items, links = _docs(seeded)
    assert links == {}
    assert items["a"]["link_home"] == "s1" and items["a"]["link"] == make_link("a", "ga").to_dict()
    seq, version = items["a"]["seq"], items["a"]["version"]
    # a link-only change rewrites the link field only
    seeded.commit(CommitBatch("hub1", "s1", "r1", link_upserts=[replace(make_link("a", "ga"), spoke_version="e2")]), NOW)
    items, links = _docs(seeded)
    assert links == {} and items["a"]["link"]["spoke_version"] == "e2"
    assert (items["a"]["seq"], items["a"]["version"]) == (seq, version)
    # an item write replaces the item's fields whole (nothing of an earlier event is merged in)
    ref = seeded._item_ref("hub1", "a")
    ref.update({"event.stray": "left over"})
    seeded.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item("a", 2, "new"), 1)]), NOW)
    raw = ref.get().to_dict()
    assert "stray" not in raw["event"] and raw["event"]["title"] == "new"
    assert raw["link_home"] == "s1" and raw["link"]["spoke_version"] == "e2"


def test_a_new_process_finds_the_home_of_a_link_with_one_read(seeded: FirestoreHubStore) -> None:
    assert seeded.acquire_lease("s1", "r1", NOW, 60) is not None
    seeded.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item(i), 0) for i in ("a", "b")],
                              link_upserts=[make_link(i, "g" + i) for i in ("a", "b")]), NOW)
    seeded.release_lease("s1", "r1")
    fresh = make_store()  # nothing remembered
    assert fresh.acquire_lease("s1", "r2", NOW, 60) is not None
    fresh.stats.clear()
    fresh.commit(CommitBatch("hub1", "s1", "r2", link_upserts=[replace(make_link("a", "ga"), spoke_version="e2")],
                             link_deletes=["b"]), NOW)
    assert fresh.stats["reads"] == 2 and fresh.stats["writes"] == 3, fresh.stats  # two homes; spoke, a, b
    items, links = _docs(fresh)
    assert links == {} and items["a"]["link"]["spoke_version"] == "e2" and items["b"]["link"] is None
    # homes read with the items (a run reads the hub's changes first) cost nothing more
    other = make_store()
    other.put_spoke(Spoke(id="s2", hub_id="hub1", name="Google", kind="google"))
    assert other.acquire_lease("s2", "r3", NOW, 60) is not None
    other.hub_items_since("hub1", 0)
    other.stats.clear()
    other.commit(CommitBatch("hub1", "s2", "r3", link_upserts=[make_link("a", "xa", spoke_id="s2")]), NOW)
    assert other.stats["reads"] == 0, other.stats
    assert other.links_by_hub_items("s2", ["a"]) == {"a": make_link("a", "xa", spoke_id="s2")}


def test_documents_of_the_earlier_layout_read_and_change_correctly(seeded: FirestoreHubStore) -> None:
    """Items and links written by the store before origin links moved into the item (an item
    document without `link_home`, every link in spokes/{spoke}/links) keep working."""
    old_items = ["o1", "o2", "o3"]
    for i in old_items:  # exactly what the earlier store wrote
        doc = make_item(i).to_dict()
        doc["seq"] = 1
        seeded._item_ref("hub1", i).set(doc)
        seeded._link_ref("s1", i).set(make_link(i, "g" + i).to_dict())
    seeded._hub_ref("hub1").update({"seq": 1})
    assert seeded.acquire_lease("s1", "r1", NOW, 60) is not None
    seeded.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item("n1"), 0)],
                              link_upserts=[make_link("n1", "gn1")]), NOW)
    assert [link.hub_item_id for link in seeded.list_links("s1")] == ["n1", "o1", "o2", "o3"]
    assert set(seeded.links_by_spoke_items("s1", ["go1", "gn1"])) == {"go1", "gn1"}
    assert set(seeded.links_by_hub_items("s1", ["o2", "n1"])) == {"o2", "n1"}
    assert seeded.count_links("s1") == 4
    # an old item changed by its spoke with its link: both stay in their places
    moved = replace(make_link("o1", "go1"), spoke_version="e2", hub_version=2)
    seeded.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item("o1", 2, "edited"), 1)],
                              link_upserts=[moved, replace(make_link("o2", "go2"), detached=True)],
                              link_deletes=["o3"]), NOW)
    items, links = _docs(seeded)
    assert "link_home" not in items["o1"] and links["o1"] == moved.to_dict()
    assert links["o2"]["detached"] is True and "o3" not in links
    assert seeded.count_links("s1") == 2
    assert seeded.get_hub_items("hub1", ["o1"])["o1"].event.title == "edited"  # type: ignore[union-attr]
    seeded.delete_spoke("s1")
    items, links = _docs(seeded)
    assert links == {} and "link_home" not in items["n1"] and "link" not in items["n1"]
    assert sorted(items) == ["n1", "o1", "o2", "o3"]


def test_deleting_a_spoke_clears_many_origin_links(seeded: FirestoreHubStore) -> None:
    assert seeded.acquire_lease("s1", "r1", NOW, 600) is not None
    ids = [f"i{n:04d}" for n in range(520)]  # more than one delete batch
    seeded.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item(i), 0) for i in ids],
                              link_upserts=[make_link(i, "g" + i) for i in ids]), NOW)
    assert seeded.count_links("s1") == 520
    seeded.delete_spoke("s1")
    items, _ = _docs(seeded)
    assert len(items) == 520 and not any("link_home" in d for d in items.values())


def test_new_items_are_created_without_reading_them(seeded: FirestoreHubStore) -> None:
    assert seeded.acquire_lease("s1", "r1", NOW, 60) is not None
    seeded.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item("a"), 0)]), NOW)
    seeded.stats.clear()
    ids = [f"n{i}" for i in range(50)]
    seeded.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item(i), 0) for i in ids],
                              link_upserts=[make_link(i, "g" + i) for i in ids]), NOW)
    assert seeded.stats["reads"] == 2 and seeded.stats["writes"] == 52, seeded.stats  # the spoke and the hub
    # one that exists after all: nothing is written, and the conflict names it
    with pytest.raises(HubItemConflict) as err:
        seeded.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item("x"), 0), HubWrite(make_item("a"), 0)],
                                  link_upserts=[make_link("x", "gx")]), NOW)
    assert err.value.ids == ["a"]
    assert seeded.get_hub_items("hub1", ["x"]) == {} and seeded.links_by_hub_items("s1", ["x"]) == {}
    assert len(seeded.hub_items_since("hub1", 0)) == 51


def test_link_lookups_bill_only_the_place_a_link_is_in(seeded: FirestoreHubStore) -> None:
    seeded.put_spoke(Spoke(id="s2", hub_id="hub1", name="Google", kind="google"))
    assert seeded.acquire_lease("s1", "r1", NOW, 60) is not None
    seeded.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item(i), 0) for i in ("a", "b")],
                              link_upserts=[make_link(i, "g" + i) for i in ("a", "b")]), NOW)
    assert seeded.acquire_lease("s2", "r2", NOW, 60) is not None
    seeded.commit(CommitBatch("hub1", "s2", "r2", link_upserts=[make_link(i, "x" + i, spoke_id="s2")
                                                                for i in ("a", "b")]), NOW)
    fresh = make_store()
    fresh.get_spoke("s1"), fresh.get_spoke("s2"), fresh.hub_items_since("hub1", 0)  # a run's first reads
    fresh.stats.clear()
    assert set(fresh.links_by_spoke_items("s2", ["xa", "xb"])) == {"xa", "xb"}
    assert fresh.stats["reads"] == 2, fresh.stats  # all in the links: no query of the items
    fresh.stats.clear()
    assert set(fresh.links_by_hub_items("s2", ["a", "b"])) == {"a", "b"}
    assert fresh.stats["reads"] == 2, fresh.stats  # the items' homes are known: the link documents only
    fresh.stats.clear()
    assert set(fresh.links_by_hub_items("s1", ["a", "b"])) == {"a", "b"}
    assert fresh.stats["reads"] == 2, fresh.stats  # in the items: one query, no link document
