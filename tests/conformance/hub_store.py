"""The HubStore conformance suite.

Subclass `HubStoreConformance` and provide a `store` fixture yielding an
empty store. Every adapter (SQLite, Firestore) must pass all of it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from spokesync.model.event import Event
from spokesync.model.hub import Channel, CredentialRef, Hub, HubItem, Link, RunRecord, Spoke, SyncOptions
from spokesync.ports import CommitBatch, HubItemConflict, HubStore, HubWrite, LeaseLost

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def make_item(item_id: str, version: int = 1, title: str = "x", hub_id: str = "hub1", deleted: bool = False) -> HubItem:
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    event = None if deleted else Event(title=title, start=start, end=start + timedelta(hours=1))
    return HubItem(id=item_id, hub_id=hub_id, version=version, seq=0, event=event, hash=f"h{version}",
                   origin_spoke_id="s1", modified=NOW, deleted=deleted)


def make_link(hub_item_id: str, spoke_item_id: str, spoke_id: str = "s1", detached: bool = False) -> Link:
    return Link(spoke_id=spoke_id, hub_item_id=hub_item_id, spoke_item_id=spoke_item_id, spoke_version="e1",
                spoke_hash="x", hub_version=1, detached=detached)


class HubStoreConformance:
    @pytest.fixture
    def seeded(self, store: HubStore) -> HubStore:
        store.put_hub(Hub(id="hub1", name="Team"))
        store.put_spoke(Spoke(id="s1", hub_id="hub1", name="Google", kind="memory",
                              options=SyncOptions(direction="two_way")))
        store.put_spoke(Spoke(id="s2", hub_id="hub1", name="Exchange", kind="memory"))
        return store

    def _lease(self, store: HubStore, spoke_id: str = "s1", run_id: str = "run1") -> None:
        assert store.acquire_lease(spoke_id, run_id, NOW, 60) is not None

    # ------------------------------------------------------------ records
    def test_credentials_round_trip(self, store: HubStore) -> None:
        cred = CredentialRef(id="c1", kind="exchange", label="Exchange", secret_name="spokesync-c1",
                             settings={"ews_url": "https://mail.example.com/EWS/Exchange.asmx", "username": "u"})
        store.put_credential(cred)
        assert store.get_credential("c1") == cred
        assert [c.id for c in store.list_credentials()] == ["c1"]
        store.delete_credential("c1")
        assert store.get_credential("c1") is None

    def test_hubs_and_spokes_round_trip(self, seeded: HubStore) -> None:
        assert seeded.get_hub("hub1") == Hub(id="hub1", name="Team")
        assert [h.id for h in seeded.list_hubs()] == ["hub1"]
        spoke = seeded.get_spoke("s1")
        assert spoke is not None and spoke.options.two_way and spoke.kind == "memory"
        assert sorted(s.id for s in seeded.list_spokes("hub1")) == ["s1", "s2"]
        assert seeded.list_spokes("other") == []
        changed = seeded.update_spoke("s1", state="failed", state_reason="boom")
        assert changed.state == "failed"
        again = seeded.get_spoke("s1")
        assert again is not None and again.state_reason == "boom" and again.options.two_way

    def test_delete_spoke_removes_its_links_cursor_and_channels(self, seeded: HubStore) -> None:
        self._lease(seeded)
        seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(make_item("a"), 0)],
                                  link_upserts=[make_link("a", "ga")], cursor=b"c", set_cursor=True), NOW)
        seeded.put_channel(Channel(id="ch1", spoke_id="s1", resource_id="r", token_hash="t", expires_at=NOW))
        seeded.delete_spoke("s1")
        assert seeded.get_spoke("s1") is None
        assert seeded.list_links("s1") == [] and seeded.get_cursor("s1") is None
        assert seeded.get_channel("ch1") is None
        assert "a" in seeded.get_hub_items("hub1", ["a"])  # the hub keeps its items

    # ------------------------------------------------------------- leases
    def test_lease_admits_one_run_and_flags_the_other(self, seeded: HubStore) -> None:
        first = seeded.acquire_lease("s1", "run1", NOW, 60)
        assert first is not None and first.lease_owner == "run1"
        assert seeded.acquire_lease("s1", "run2", NOW + timedelta(seconds=10), 60) is None
        spoke = seeded.get_spoke("s1")
        assert spoke is not None and spoke.dirty
        assert seeded.release_lease("s1", "run1", state="ok") is True  # it reports the dirty flag
        spoke = seeded.get_spoke("s1")
        assert spoke is not None and spoke.lease_owner is None and not spoke.dirty
        assert seeded.acquire_lease("s1", "run2", NOW, 60) is not None

    def test_expired_lease_can_be_taken_over_and_fences_the_old_run(self, seeded: HubStore) -> None:
        self._lease(seeded, run_id="old")
        later = NOW + timedelta(seconds=61)
        assert seeded.acquire_lease("s1", "new", later, 60) is not None
        with pytest.raises(LeaseLost):
            seeded.commit(CommitBatch("hub1", "s1", "old", hub_writes=[HubWrite(make_item("a"), 0)]), later)
        assert seeded.get_hub_items("hub1", ["a"]) == {}
        assert seeded.release_lease("s1", "old") is False

    def test_commit_without_lease_is_refused(self, seeded: HubStore) -> None:
        with pytest.raises(LeaseLost):
            seeded.commit(CommitBatch("hub1", "s1", "nobody", link_upserts=[make_link("a", "ga")]), NOW)
        assert seeded.list_links("s1") == []

    # ------------------------------------------------------------- commit
    def test_commit_assigns_one_new_seq_per_commit(self, seeded: HubStore) -> None:
        self._lease(seeded)
        seq1 = seeded.commit(CommitBatch("hub1", "s1", "run1",
                                         hub_writes=[HubWrite(make_item("a"), 0), HubWrite(make_item("b"), 0)]), NOW)
        seq2 = seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(make_item("c"), 0)]), NOW)
        assert seq2 > seq1 > 0
        assert [(i.id, i.seq) for i in seeded.hub_items_since("hub1", 0)] == [("a", seq1), ("b", seq1), ("c", seq2)]
        assert [i.id for i in seeded.hub_items_since("hub1", seq1)] == ["c"]
        assert seeded.hub_items_since("hub1", seq2) == []
        hub = seeded.get_hub("hub1")
        assert hub is not None and hub.seq == seq2

    def test_hub_items_since_in_pages_ends_a_page_where_a_seq_ends(self, seeded: HubStore) -> None:
        self._lease(seeded)
        seq1 = seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[
            HubWrite(make_item(i), 0) for i in ("a", "b", "c")]), NOW)
        seq2 = seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(make_item("d"), 0)]), NOW)
        seq3 = seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[
            HubWrite(make_item(i), 0) for i in ("e", "f")]), NOW)
        # a page of 2 reaches into the first commit: the rest of that commit's items come with it
        assert [(i.id, i.seq) for i in seeded.hub_items_since("hub1", 0, limit=2)] == [
            ("a", seq1), ("b", seq1), ("c", seq1)]
        assert [i.id for i in seeded.hub_items_since("hub1", seq1, limit=2)] == ["d", "e", "f"]
        assert [i.id for i in seeded.hub_items_since("hub1", seq2, limit=5)] == ["e", "f"]
        assert seeded.hub_items_since("hub1", seq3, limit=2) == []
        # pages read one after the other give every item once, in order
        pages, after = [], 0
        while page := seeded.hub_items_since("hub1", after, limit=1):
            pages.append([i.id for i in page])
            after = page[-1].seq
        assert pages == [["a", "b", "c"], ["d"], ["e", "f"]]

    def test_stale_expected_version_rejects_the_whole_commit(self, seeded: HubStore) -> None:
        self._lease(seeded)
        seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(make_item("a"), 0)]), NOW)
        with pytest.raises(HubItemConflict) as err:
            seeded.commit(CommitBatch("hub1", "s1", "run1",
                                      hub_writes=[HubWrite(make_item("b"), 0), HubWrite(make_item("a", 2), 0)],
                                      link_upserts=[make_link("b", "gb")]), NOW)
        assert err.value.ids == ["a"]
        assert seeded.get_hub_items("hub1", ["a", "b"]).keys() == {"a"}
        assert seeded.list_links("s1") == []
        seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(make_item("a", 2, "new"), 1)]), NOW)
        item = seeded.get_hub_items("hub1", ["a"])["a"]
        assert item.version == 2 and item.event is not None and item.event.title == "new"

    def test_contacts_hub_items_and_matching_state_round_trip(self, store: HubStore) -> None:
        """A contacts hub's items (typed lists, a date without a year, a photo) come back equal, and
        so does a spoke's matching state (issue 15)."""
        from spokesync.model.contact import Address, Contact, Email, PartialDate, Phone, Photo

        store.put_hub(Hub(id="people", name="People", object_type="contacts"))
        spoke = Spoke(id="c1", hub_id="people", name="CRM", kind="memory_contacts",
                      ambiguous=[{"spoke_item_id": "x", "title": "Ada", "candidates": [{"hub_item_id": "a",
                                                                                         "title": "Ada"}]}],
                      match_decisions={"y": ""})
        store.put_spoke(spoke)
        assert store.get_spoke("c1") == spoke
        assert store.acquire_lease("c1", "run1", NOW, 60) is not None
        person = Contact(display_name="Ada Lovelace", emails=(Email("ada@example.com"), Email("a@home.example", "home")),
                         phones=(Phone("+44 20 7946 0018", "mobile"),), addresses=(Address("home", "1 Lane", "London"),),
                         birthday=PartialDate(12, 10), photo=Photo.of(b"\xff\xd8jpeg"), categories=("VIP",),
                         modified=NOW)
        item = HubItem(id="a", hub_id="people", version=1, seq=0, event=person, hash="h", modified=NOW)
        store.commit(CommitBatch("people", "c1", "run1", hub_writes=[HubWrite(item, 0)]), NOW)
        back = store.get_hub_items("people", ["a"])["a"]
        assert back.event == person
        assert [i.event for i in store.hub_items_since("people", 0)] == [person]

    def test_what_an_items_hash_covers_is_kept_and_replaced_with_it(self, seeded: HubStore) -> None:
        """`HubItem.hash_of` travels with `hash`: a later version without one (a tombstone, a hash
        of unknown fields) must not keep the earlier version's (it would be reused wrongly)."""
        self._lease(seeded)
        first = replace(make_item("a"), hash_of="0123456789abcdef")
        seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(first, 0)]), NOW)
        (got,) = seeded.get_hub_items("hub1", ["a"]).values()
        assert (got.hash, got.hash_of) == ("h1", "0123456789abcdef")
        second = make_item("a", version=2)  # hash_of ""
        seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(second, 1)]), NOW)
        (got,) = seeded.get_hub_items("hub1", ["a"]).values()
        assert (got.version, got.hash, got.hash_of) == (2, "h2", "")
        tomb = replace(make_item("a", version=3, deleted=True), hash="")
        seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(tomb, 2)]), NOW)
        (got,) = [i for i in seeded.list_hub_items("hub1", include_deleted=True) if i.id == "a"]
        assert (got.deleted, got.hash, got.hash_of) == (True, "", "")

    def test_tombstones_are_listed_only_when_asked(self, seeded: HubStore) -> None:
        self._lease(seeded)
        seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[
            HubWrite(make_item("a"), 0), HubWrite(make_item("b", deleted=True), 0)]), NOW)
        assert [i.id for i in seeded.list_hub_items("hub1")] == ["a"]
        assert seeded.count_hub_items("hub1") == 1 and seeded.count_hub_items("another hub") == 0
        both = seeded.list_hub_items("hub1", include_deleted=True)
        assert {i.id: i.deleted for i in both} == {"a": False, "b": True}
        assert both[1].event is None

    def test_links_are_found_by_either_id_and_counted_without_detached(self, seeded: HubStore) -> None:
        self._lease(seeded)
        seeded.commit(CommitBatch("hub1", "s1", "run1", link_upserts=[
            make_link("a", "ga"), make_link("b", "gb"), make_link("c", "gc", detached=True)]), NOW)
        assert set(seeded.links_by_spoke_items("s1", ["ga", "gc", "zz"])) == {"ga", "gc"}
        assert set(seeded.links_by_hub_items("s1", ["a", "b", "zz"])) == {"a", "b"}
        assert seeded.links_by_hub_items("s2", ["a"]) == {}
        assert seeded.count_links("s1") == 2
        seeded.commit(CommitBatch("hub1", "s1", "run1", link_deletes=["a"],
                                  link_upserts=[replace(make_link("b", "gb"), spoke_version="e2")]), NOW)
        assert [(link.hub_item_id, link.spoke_version) for link in seeded.list_links("s1")] == [("b", "e2"), ("c", "e1")]

    def test_many_ids_in_one_lookup(self, seeded: HubStore) -> None:
        self._lease(seeded)
        ids = [f"i{n:04d}" for n in range(1200)]
        for start in range(0, len(ids), 400):
            seeded.commit(CommitBatch("hub1", "s1", "run1",
                                      hub_writes=[HubWrite(make_item(i), 0) for i in ids[start:start + 400]],
                                      link_upserts=[make_link(i, "g" + i) for i in ids[start:start + 400]]), NOW)
        assert len(seeded.get_hub_items("hub1", ids)) == 1200
        assert len(seeded.links_by_spoke_items("s1", ["g" + i for i in ids])) == 1200

    def test_cursors_hold_large_opaque_bytes(self, seeded: HubStore) -> None:
        self._lease(seeded)
        assert seeded.get_cursor("s1") is None
        blob = os.urandom(2_500_000)  # a public-folder snapshot of ~10k items, incompressible
        seeded.commit(CommitBatch("hub1", "s1", "run1", cursor=blob, set_cursor=True, hub_cursor=7), NOW)
        assert seeded.get_cursor("s1") == blob
        spoke = seeded.get_spoke("s1")
        assert spoke is not None and spoke.hub_cursor == 7
        seeded.commit(CommitBatch("hub1", "s1", "run1", cursor=b"small", set_cursor=True), NOW)
        assert seeded.get_cursor("s1") == b"small"

    def _race(self, store: HubStore, writers: list[tuple[str, str]], item_id: str, expected: int) -> list[str]:
        """Every writer commits a new version of one hub item at once; returns their outcomes."""
        outcomes: list[str] = []
        start = threading.Barrier(len(writers))

        def write(spoke_id: str, run_id: str) -> None:
            start.wait()
            try:
                store.commit(CommitBatch("hub1", spoke_id, run_id,
                                         hub_writes=[HubWrite(make_item(item_id, expected + 1, spoke_id),
                                                              expected)]), NOW)
                outcomes.append("ok")
            except HubItemConflict:
                outcomes.append("conflict")
            except Exception as exc:  # anything else is a failure of the store: show it
                outcomes.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=write, args=a) for a in writers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(outcomes)

    def test_concurrent_writers_of_one_item_exactly_one_wins(self, seeded: HubStore) -> None:
        self._lease(seeded, "s1", "r1")
        self._lease(seeded, "s2", "r2")
        seeded.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item("a"), 0)]), NOW)
        assert self._race(seeded, [("s1", "r1"), ("s2", "r2")], "a", 1) == ["conflict", "ok"]
        assert seeded.get_hub_items("hub1", ["a"])["a"].version == 2

    def test_many_contending_writers_never_fail_and_exactly_one_wins_each_round(self, seeded: HubStore) -> None:
        """Under contention a store may abort transactions (Firestore aborts reads too):
        every writer still ends in "ok" or "conflict", never in an error."""
        writers = [("s1", "r1"), ("s2", "r2")]
        for n in range(3, 5):
            seeded.put_spoke(Spoke(id=f"s{n}", hub_id="hub1", name=f"Spoke {n}", kind="memory"))
            writers.append((f"s{n}", f"r{n}"))
        for spoke_id, run_id in writers:
            self._lease(seeded, spoke_id, run_id)
        seeded.commit(CommitBatch("hub1", "s1", "r1", hub_writes=[HubWrite(make_item("a"), 0)]), NOW)
        for version in range(1, 3):
            outcomes = self._race(seeded, writers, "a", version)
            assert outcomes == ["conflict"] * (len(writers) - 1) + ["ok"], outcomes
            assert seeded.get_hub_items("hub1", ["a"])["a"].version == version + 1

    # --------------------------------------------------------- runs, channels
    def test_runs_newest_first(self, seeded: HubStore) -> None:
        for n in range(5):
            seeded.put_run(RunRecord(id=f"run{n}", spoke_id="s1" if n % 2 == 0 else "s2", hub_id="hub1",
                                     started_at=NOW + timedelta(minutes=n), status="ok", counts={"hub_created": n},
                                     conflicts=[{"hub_item_id": "a", "winner": "hub"}]))
        runs = seeded.list_runs(spoke_id="s1")
        assert [r.id for r in runs] == ["run4", "run2", "run0"]
        assert runs[0].counts == {"hub_created": 4} and runs[0].conflicts == [{"hub_item_id": "a", "winner": "hub"}]
        assert [r.id for r in seeded.list_runs(hub_id="hub1", limit=2)] == ["run4", "run3"]
        fetched = seeded.get_run("run3")
        assert fetched is not None and fetched.spoke_id == "s2" and fetched.started_at == NOW + timedelta(minutes=3)

    def test_channels_by_spoke_and_expiry(self, seeded: HubStore) -> None:
        for n in range(3):
            seeded.put_channel(Channel(id=f"ch{n}", spoke_id="s1" if n < 2 else "s2", resource_id=f"r{n}",
                                       token_hash="t", expires_at=NOW + timedelta(days=n)))
        assert {c.id for c in seeded.list_channels(spoke_id="s1")} == {"ch0", "ch1"}
        assert {c.id for c in seeded.list_channels(expiring_before=NOW + timedelta(hours=36))} == {"ch0", "ch1"}
        got = seeded.get_channel("ch2")
        assert got is not None and got.resource_id == "r2" and got.expires_at == NOW + timedelta(days=2)
        seeded.delete_channel("ch0")
        assert seeded.get_channel("ch0") is None

    # ------------------------------------------- origin links (in the hub item)
    def _origin(self, store: HubStore, ids: list[str]) -> int:
        """Spoke s1 brings `ids` in: each item committed with its link (the origin link)."""
        self._lease(store)
        return store.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(make_item(i), 0) for i in ids],
                                        link_upserts=[make_link(i, "g" + i) for i in ids]), NOW)

    def test_an_item_and_its_origin_link_cost_one_write(self, seeded: HubStore) -> None:
        ids = [f"i{n}" for n in range(20)]
        self._lease(seeded)
        before = seeded.stats["writes"]  # type: ignore[attr-defined]
        seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(make_item(i), 0) for i in ids],
                                  link_upserts=[make_link(i, "g" + i) for i in ids]), NOW)
        # one per item, and the commit's own records (the hub's seq, the spoke's lease fence)
        assert seeded.stats["writes"] - before <= len(ids) + 2  # type: ignore[attr-defined]
        assert set(seeded.links_by_spoke_items("s1", ["gi3", "gi7", "zz"])) == {"gi3", "gi7"}
        assert set(seeded.links_by_hub_items("s1", ["i3", "i19", "zz"])) == {"i3", "i19"}
        assert seeded.links_by_hub_items("s1", ["i3"])["i3"] == make_link("i3", "gi3")
        assert [link.hub_item_id for link in seeded.list_links("s1")] == sorted(ids)
        assert seeded.count_links("s1") == 20
        # the other spoke sees none of them
        assert seeded.links_by_hub_items("s2", ids) == {} and seeded.links_by_spoke_items("s2", ["gi3"]) == {}
        assert seeded.list_links("s2") == [] and seeded.count_links("s2") == 0
        # the items read as they were written
        assert seeded.get_hub_items("hub1", ["i3"])["i3"].event == make_item("i3").event

    def test_a_link_only_change_of_an_origin_link_is_no_hub_change(self, seeded: HubStore) -> None:
        seq = self._origin(seeded, ["a", "b"])
        item = seeded.get_hub_items("hub1", ["a"])["a"]
        # the hub wrote to s1: its copy has a new version (the item itself did not change)
        moved = replace(make_link("a", "ga"), spoke_version="e2", hub_version=2)
        seeded.commit(CommitBatch("hub1", "s1", "run1", link_upserts=[moved]), NOW)
        assert seeded.links_by_hub_items("s1", ["a"]) == {"a": moved}
        assert seeded.links_by_spoke_items("s1", ["ga"]) == {"ga": moved}
        assert seeded.hub_items_since("hub1", seq) == []  # nothing for the other spokes to look at
        assert seeded.get_hub_items("hub1", ["a"])["a"] == item
        hub = seeded.get_hub("hub1")
        assert hub is not None and hub.seq == seq
        # detached: still found, not counted
        detached = replace(moved, detached=True)
        seeded.commit(CommitBatch("hub1", "s1", "run1", link_upserts=[detached]), NOW)
        assert seeded.links_by_spoke_items("s1", ["ga"]) == {"ga": detached}
        assert seeded.count_links("s1") == 1
        # deleted: gone everywhere, the item stays as it was
        seeded.commit(CommitBatch("hub1", "s1", "run1", link_deletes=["a"]), NOW)
        assert seeded.links_by_hub_items("s1", ["a", "b"]).keys() == {"b"}
        assert seeded.links_by_spoke_items("s1", ["ga", "gb"]).keys() == {"gb"}
        assert [link.hub_item_id for link in seeded.list_links("s1")] == ["b"]
        assert seeded.count_links("s1") == 1
        assert seeded.get_hub_items("hub1", ["a"])["a"] == item and seeded.hub_items_since("hub1", seq) == []
        # linked again later (a copy found again): one link, in one place
        again = make_link("a", "ga2")
        seeded.commit(CommitBatch("hub1", "s1", "run1", link_upserts=[again]), NOW)
        assert seeded.links_by_hub_items("s1", ["a"]) == {"a": again}
        assert seeded.links_by_spoke_items("s1", ["ga", "ga2"]) == {"ga2": again}
        assert seeded.count_links("s1") == 2 and len(seeded.list_links("s1")) == 2

    def test_hub_writes_keep_or_change_the_origin_link_as_asked(self, seeded: HubStore) -> None:
        self._origin(seeded, ["a", "b", "c"])
        self._lease(seeded, "s2", "run2")
        # another spoke changes the item and links its copy: s1's link stays as it was
        seq = seeded.commit(CommitBatch("hub1", "s2", "run2", hub_writes=[HubWrite(make_item("a", 2, "from s2"), 1)],
                                        link_upserts=[make_link("a", "xa", spoke_id="s2")]), NOW)
        assert seeded.links_by_hub_items("s1", ["a"]) == {"a": make_link("a", "ga")}
        assert seeded.links_by_hub_items("s2", ["a"]) == {"a": make_link("a", "xa", spoke_id="s2")}
        assert [i.id for i in seeded.hub_items_since("hub1", seq - 1)] == ["a"]
        # the origin spoke changes its item and its link in one commit
        mine = replace(make_link("b", "gb"), spoke_version="e9", hub_version=2)
        seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(make_item("b", 2, "from s1"), 1)],
                                  link_upserts=[mine]), NOW)
        assert seeded.links_by_spoke_items("s1", ["gb"]) == {"gb": mine}
        back = seeded.get_hub_items("hub1", ["a", "b"])
        assert back["b"].version == 2 and back["b"].event is not None and back["b"].event.title == "from s1"
        assert back["a"].event is not None and back["a"].event.title == "from s2"
        # deleted in s1: the tombstone drops its link
        seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(make_item("c", 2, deleted=True), 1)],
                                  link_deletes=["c"]), NOW)
        assert seeded.links_by_hub_items("s1", ["c"]) == {}
        assert [link.hub_item_id for link in seeded.list_links("s1")] == ["a", "b"]
        assert seeded.count_links("s1") == 2 and seeded.count_links("s2") == 1
        tomb = seeded.get_hub_items("hub1", ["c"])["c"]
        assert tomb.deleted and tomb.event is None

    def test_a_stale_commit_leaves_origin_links_untouched(self, seeded: HubStore) -> None:
        self._origin(seeded, ["a"])
        with pytest.raises(HubItemConflict):
            seeded.commit(CommitBatch("hub1", "s1", "run1",
                                      hub_writes=[HubWrite(make_item("b"), 0), HubWrite(make_item("a", 3), 2)],
                                      link_upserts=[make_link("b", "gb"), replace(make_link("a", "ga"), spoke_version="e5")]),
                          NOW)
        assert seeded.list_links("s1") == [make_link("a", "ga")]
        assert seeded.get_hub_items("hub1", ["b"]) == {}

    def test_delete_spoke_removes_its_origin_links_and_keeps_the_items(self, seeded: HubStore) -> None:
        seq = self._origin(seeded, ["a", "b"])
        self._lease(seeded, "s2", "run2")
        seeded.commit(CommitBatch("hub1", "s2", "run2", link_upserts=[make_link("a", "xa", spoke_id="s2")]), NOW)
        items = seeded.get_hub_items("hub1", ["a", "b"])
        seeded.delete_spoke("s1")
        assert seeded.list_links("s1") == [] and seeded.count_links("s1") == 0
        assert seeded.links_by_spoke_items("s1", ["ga", "gb"]) == {}
        assert seeded.links_by_hub_items("s1", ["a", "b"]) == {}
        assert seeded.get_hub_items("hub1", ["a", "b"]) == items  # the hub keeps its items, unchanged
        assert seeded.hub_items_since("hub1", seq) == []
        assert seeded.list_links("s2") == [make_link("a", "xa", spoke_id="s2")]

    def test_links_of_items_created_without_their_link_stay_apart(self, seeded: HubStore) -> None:
        """Items whose link was committed later (as the earlier layout kept every link) and items
        with their origin link, side by side: every lookup finds both kinds."""
        self._lease(seeded)
        seeded.commit(CommitBatch("hub1", "s1", "run1", hub_writes=[HubWrite(make_item("old"), 0)]), NOW)
        seeded.commit(CommitBatch("hub1", "s1", "run1", link_upserts=[make_link("old", "gold")]), NOW)
        self._origin(seeded, ["new"])
        assert set(seeded.links_by_spoke_items("s1", ["gold", "gnew"])) == {"gold", "gnew"}
        assert set(seeded.links_by_hub_items("s1", ["old", "new"])) == {"old", "new"}
        assert [link.hub_item_id for link in seeded.list_links("s1")] == ["new", "old"]
        assert seeded.count_links("s1") == 2
        seeded.commit(CommitBatch("hub1", "s1", "run1", link_upserts=[
            replace(make_link("old", "gold"), detached=True), replace(make_link("new", "gnew"), detached=True)]), NOW)
        assert seeded.count_links("s1") == 0 and len(seeded.list_links("s1")) == 2
        seeded.commit(CommitBatch("hub1", "s1", "run1", link_deletes=["old", "new"]), NOW)
        assert seeded.list_links("s1") == [] and seeded.links_by_spoke_items("s1", ["gold", "gnew"]) == {}

    def test_one_commit_changes_links_in_both_places_at_one_write_each(self, seeded: HubStore) -> None:
        """s1's links live in the rows of the items s1 brought in, s2's in `links`; a commit of
        s1 that changes and deletes links of both kinds writes each once and moves none."""
        self._origin(seeded, ["a", "b", "c"])
        self._lease(seeded, "s2", "run2")
        seeded.commit(CommitBatch("hub1", "s2", "run2", hub_writes=[HubWrite(make_item("x"), 0), HubWrite(make_item("y"), 0)]), NOW)
        self._lease(seeded)
        seeded.commit(CommitBatch("hub1", "s1", "run1", link_upserts=[make_link("x", "gx"), make_link("y", "gy")]), NOW)
        before = seeded.stats["writes"]  # type: ignore[attr-defined]
        moved = [replace(make_link(i, "g" + i), spoke_version="e7") for i in ("a", "x")]
        seeded.commit(CommitBatch("hub1", "s1", "run1", link_upserts=moved, link_deletes=["b", "y"]), NOW)
        assert seeded.stats["writes"] - before <= 4 + 1  # type: ignore[attr-defined]  # (+ the lease fence)
        assert seeded.list_links("s1") == sorted([*moved, make_link("c", "gc")], key=lambda link: link.hub_item_id)
        assert seeded.links_by_spoke_items("s1", ["ga", "gb", "gc", "gx", "gy"]).keys() == {"ga", "gc", "gx"}
        assert seeded.links_by_hub_items("s1", ["a", "b", "c", "x", "y"]).keys() == {"a", "c", "x"}
        assert seeded.count_links("s1") == 3 and seeded.list_links("s2") == []

    def test_new_item_ids_are_unique_lowercase_hex(self, store: HubStore) -> None:
        ids = [store.new_item_id() for _ in range(2000)]
        assert len(set(ids)) == len(ids)
        assert all(len(i) == 32 and set(i) <= set("0123456789abcdef") for i in ids)

    def test_delete_hub_removes_its_items_spokes_and_every_link(self, seeded: HubStore) -> None:
        self._origin(seeded, ["a", "b"])
        self._lease(seeded, "s2", "run2")
        seeded.commit(CommitBatch("hub1", "s2", "run2", link_upserts=[make_link("a", "xa", spoke_id="s2")]), NOW)
        seeded.put_hub(Hub(id="hub2", name="Other"))
        seeded.delete_hub("hub1")
        assert seeded.get_hub("hub1") is None and [h.id for h in seeded.list_hubs()] == ["hub2"]
        assert seeded.list_spokes("hub1") == [] and seeded.list_hub_items("hub1", include_deleted=True) == []
        assert seeded.list_links("s1") == [] and seeded.list_links("s2") == []
        assert seeded.links_by_hub_items("s1", ["a"]) == {} and seeded.count_links("s2") == 0
