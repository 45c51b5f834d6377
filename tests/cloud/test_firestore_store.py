"""The Firestore hub store passes the HubStore conformance suite against the
official Firestore emulator, and keeps an idle poll to a handful of reads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from spokesync.config import Config
from spokesync.model.hub import Hub, Spoke
from spokesync.ports import CommitBatch, HubWrite, LeaseLost
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
