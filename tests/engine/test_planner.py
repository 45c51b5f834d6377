"""Planner unit tests on plain data: no store, no connector."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from spokesync.engine import rules
from spokesync.engine.planner import (
    DeletionBudget,
    HubUpsert,
    LinkChange,
    PlanInput,
    SpokeCreate,
    SpokeDelete,
    SpokeUpdate,
    check_guards,
    plan_sync,
)
from spokesync.model.event import ALL_FIELDS, Attendee, Event, content_hash
from spokesync.model.hub import Filters, HubItem, Link, SyncOptions
from spokesync.ports import ChangeSet, SpokeItem

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
T0 = NOW - timedelta(hours=2)
T1 = NOW - timedelta(hours=1)


def ev(title: str = "Meeting", days: int = 1, **kw: Any) -> Event:
    start = NOW + timedelta(days=days)
    kw.setdefault("modified", T0)
    return Event(title=title, start=start, end=start + timedelta(hours=1), **kw)


def hub_item(item_id: str, event: Event | None, version: int = 1, seq: int = 1, modified: datetime = T0) -> HubItem:
    return HubItem(id=item_id, hub_id="hub", version=version, seq=seq, event=event,
                   hash="" if event is None else content_hash(event), origin_spoke_id="s", modified=modified,
                   deleted=event is None)


def link(hub_id: str, spoke_item: str, event: Event, hub_version: int = 1, created_by_hub: bool = False,
         options: SyncOptions | None = None, **kw: Any) -> Link:
    names = rules.compared_fields(options or SyncOptions(), ALL_FIELDS, created_by_hub)
    return Link(spoke_id="s", hub_item_id=hub_id, spoke_item_id=spoke_item, spoke_version="v1",
                spoke_hash=content_hash(event, names), hub_version=hub_version, created_by_hub=created_by_hub, **kw)


def plan(
    items: list[SpokeItem] = (),  # type: ignore[assignment]
    deleted: list[str] = (),  # type: ignore[assignment]
    hub: list[HubItem] = (),  # type: ignore[assignment]
    hub_changed: list[HubItem] = (),  # type: ignore[assignment]
    links: list[Link] = (),  # type: ignore[assignment]
    full: bool = False,
    **opts: Any,
):  # type: ignore[no-untyped-def]
    options = SyncOptions(**opts)
    ids = (f"new{n}" for n in itertools.count())
    all_hub = {h.id: h for h in [*hub, *hub_changed]}
    return plan_sync(PlanInput(
        hub_id="hub", spoke_id="s", options=options, fields=ALL_FIELDS,
        changes=ChangeSet(list(items), list(deleted), b"c", full),
        hub_changed=list(hub_changed), hub_items=all_hub,
        links_by_spoke={lk.spoke_item_id: lk for lk in links}, links_by_hub={lk.hub_item_id: lk for lk in links},
        now=NOW, new_id=lambda: next(ids),
    ))


TWO_WAY = {"direction": "two_way"}


# ------------------------------------------------------------ each way


def test_new_spoke_item_creates_a_hub_item_and_a_link() -> None:
    p = plan(items=[SpokeItem("g1", "v1", ev("A"))])
    assert len(p.hub) == 1
    action = p.hub[0]
    assert action.expected_version == 0 and action.item.event is not None and action.item.event.title == "A"
    assert action.link is not None and action.link.spoke_item_id == "g1" and not action.link.created_by_hub
    assert p.spoke == []


def test_edited_spoke_item_updates_the_hub() -> None:
    old = ev("A")
    p = plan(items=[SpokeItem("g1", "v2", replace(old, title="B"))], hub=[hub_item("h1", old)],
             links=[link("h1", "g1", old)])
    [action] = p.hub
    assert action.expected_version == 1 and action.item.version == 2 and action.item.event.title == "B"  # type: ignore[union-attr]


def test_deleted_spoke_item_tombstones_the_hub_item() -> None:
    old = ev("A")
    p = plan(deleted=["g1"], hub=[hub_item("h1", old)], links=[link("h1", "g1", old)])
    [action] = p.hub
    assert action.item.deleted and action.item.event is None and action.drop_link


def test_hub_item_is_created_updated_and_deleted_in_a_two_way_spoke() -> None:
    e = ev("A")
    created = plan(hub_changed=[hub_item("h1", e)], **TWO_WAY)
    assert [type(a) for a in created.spoke] == [SpokeCreate]
    updated = plan(hub_changed=[hub_item("h1", replace(e, title="B"), version=2)],
                   links=[link("h1", "g1", e, created_by_hub=True)], **TWO_WAY)
    assert [type(a) for a in updated.spoke] == [SpokeUpdate]
    assert updated.spoke[0].version == "v1"  # type: ignore[union-attr]
    deleted = plan(hub_changed=[hub_item("h1", None, version=3)], links=[link("h1", "g1", e, created_by_hub=True)],
                   **TWO_WAY)
    assert [type(a) for a in deleted.spoke] == [SpokeDelete]


def test_one_way_spoke_receives_nothing() -> None:
    p = plan(hub_changed=[hub_item("h1", ev("A"))])
    assert p.spoke == [] and p.hub == []


# ------------------------------------------------------- echo suppression


def test_our_own_write_read_back_is_not_an_edit() -> None:
    e = ev("A", attendees=(Attendee("B@x.com"), Attendee("a@x.com")))
    lk = link("h1", "g1", e, created_by_hub=True)
    # the server reorders attendees, lower-cases emails and bumps its timestamp and etag
    echoed = replace(e, attendees=(Attendee("a@x.com"), Attendee("b@x.com")), modified=NOW)
    p = plan(items=[SpokeItem("g1", "v9", echoed)], hub=[hub_item("h1", e)], links=[lk], **TWO_WAY)
    assert p.hub == [] and p.spoke == []
    assert [lc.link.spoke_version for lc in p.links if lc.link] == ["v9"]


def test_hub_version_already_in_the_spoke_is_skipped() -> None:
    e = ev("A")
    p = plan(hub_changed=[hub_item("h1", e)], links=[link("h1", "g1", e)], **TWO_WAY)
    assert p.spoke == [] and p.hub == [] and p.links == []


def test_spoke_item_carrying_our_hub_id_is_adopted_not_duplicated() -> None:
    e = ev("A")
    p = plan(items=[SpokeItem("g1", "v1", e, hub_id="h1")], hub=[hub_item("h1", e)], **TWO_WAY)
    assert p.hub == [] and p.spoke == []
    [change] = p.links
    assert change.link is not None and change.link.created_by_hub and change.link.hub_item_id == "h1"


def test_a_change_in_a_field_the_spoke_cannot_hold_writes_nothing() -> None:
    e = ev("A", categories=("Red",))
    names = ALL_FIELDS - {"categories"}
    lk = replace(link("h1", "g1", e, created_by_hub=True), spoke_hash=content_hash(e, names))
    options = SyncOptions(direction="two_way")
    p = plan_sync(PlanInput("hub", "s", options, names, ChangeSet([], [], b"c"),
                            [hub_item("h1", replace(e, categories=("Blue",)), version=2)], {},
                            {"g1": lk}, {"h1": lk}, NOW, lambda: "x"))
    assert p.spoke == [] and p.links[0].link.hub_version == 2  # type: ignore[union-attr]


# -------------------------------------------------------------- conflicts


@pytest.mark.parametrize(
    ("policy", "spoke_modified", "winner"),
    [
        ("latest", T1, "spoke"),  # the spoke's edit is newer
        ("latest", T0 - timedelta(minutes=5), "hub"),  # the hub's edit is newer
        ("hub", T1, "hub"),
        ("spoke:s", T0 - timedelta(minutes=5), "spoke"),  # this spoke is the named winner
        ("spoke:other", T1, "hub"),  # another spoke is the named winner
    ],
)
def test_edit_against_edit_follows_the_policy_and_is_recorded(policy: str, spoke_modified: datetime,
                                                              winner: str) -> None:
    base = ev("A")
    hub_now = hub_item("h1", replace(base, title="hub edit"), version=2, modified=T0)
    spoke_now = SpokeItem("g1", "v2", replace(base, title="spoke edit", modified=spoke_modified))
    p = plan(items=[spoke_now], hub=[hub_now], hub_changed=[hub_now], links=[link("h1", "g1", base)],
             conflict_policy=policy, **TWO_WAY)
    [conflict] = p.conflicts
    assert conflict.winner == winner and conflict.kind == "edit_edit"
    assert conflict.hub_version["title"] == "hub edit" and conflict.spoke_version["title"] == "spoke edit"  # type: ignore[index]
    if winner == "spoke":
        assert [a.item.event.title for a in p.hub] == ["spoke edit"] and p.spoke == []  # type: ignore[union-attr]
    else:
        assert p.hub == [] and [a.event.title for a in p.spoke] == ["hub edit"]  # type: ignore[union-attr]
        assert p.spoke[0].version == "v2"  # type: ignore[union-attr]


def test_delete_in_spoke_against_hub_edit_keeps_the_edit() -> None:
    base = ev("A")
    edited = hub_item("h1", replace(base, title="edited"), version=2)
    p = plan(deleted=["g1"], hub=[edited], hub_changed=[edited], links=[link("h1", "g1", base)], **TWO_WAY)
    assert p.hub == [] and [c.kind for c in p.conflicts] == ["delete_edit"]
    assert [type(a) for a in p.spoke] == [SpokeCreate]  # written back into the spoke


def test_edit_in_spoke_against_hub_delete_brings_it_back() -> None:
    base = ev("A")
    tomb = hub_item("h1", None, version=2)
    p = plan(items=[SpokeItem("g1", "v2", replace(base, title="still here"))], hub=[tomb], hub_changed=[tomb],
             links=[link("h1", "g1", base)], **TWO_WAY)
    [action] = p.hub
    assert not action.item.deleted and action.item.version == 3 and action.item.event.title == "still here"  # type: ignore[union-attr]
    assert [c.kind for c in p.conflicts] == ["edit_delete"] and p.spoke == []


# ------------------------------------------------------ filters and window


def test_filters_gate_what_enters_the_hub() -> None:
    f = Filters(categories=("Team",), subject_contains="sync", exclude_all_day=True, exclude_private=True,
                show_as=("busy",))
    allday = Event(title="sync", start=date(2026, 3, 3), end=date(2026, 3, 4), categories=("Team",))
    items = [
        SpokeItem("ok", "v", ev("Team sync", categories=("Team",))),
        SpokeItem("nocat", "v", ev("Team sync")),
        SpokeItem("nosubj", "v", ev("Lunch", categories=("Team",))),
        SpokeItem("allday", "v", allday),
        SpokeItem("private", "v", ev("sync", categories=("Team",), privacy="private")),
        SpokeItem("free", "v", ev("sync", categories=("Team",), show_as="free")),
    ]
    p = plan(items=items, filters=f)
    assert [a.link.spoke_item_id for a in p.hub] == ["ok"]  # type: ignore[union-attr]


def test_hub_item_leaving_the_filter_is_removed_from_a_hub_made_copy() -> None:
    e = ev("A", categories=("Team",))
    changed = hub_item("h1", replace(e, categories=("Private",)), version=2)
    opts = {"filters": Filters(categories=("Team",)), **TWO_WAY}
    made = plan(hub_changed=[changed], links=[link("h1", "g1", e, created_by_hub=True)], **opts)
    assert [type(a) for a in made.spoke] == [SpokeDelete]
    own = plan(hub_changed=[changed], links=[link("h1", "g1", e, created_by_hub=False)], **opts)
    assert own.spoke == [] and own.links[0].link.detached  # type: ignore[union-attr]


@pytest.mark.parametrize(("days", "past", "future", "created"), [
    (-30, 30, 30, True),  # ends 30 days ago minus an hour later: just inside
    (-31, 30, 30, False),
    (30, 30, 30, True),
    (31, 30, 30, False),
    (400, None, None, True),
])
def test_window_edges(days: int, past: int | None, future: int | None, created: bool) -> None:
    e = ev("A", days=days)
    p = plan(hub_changed=[hub_item("h1", e)], days_past=past, days_future=future, **TWO_WAY)
    assert bool(p.spoke) is created


def test_recurring_series_still_running_is_inside_the_window() -> None:
    e = ev("Weekly", days=-100, recurrence=("RRULE:FREQ=WEEKLY;UNTIL=20261231T000000Z",))
    ended = ev("Old", days=-100, recurrence=("RRULE:FREQ=WEEKLY;UNTIL=20251231T000000Z",))
    p = plan(hub_changed=[hub_item("h1", e), hub_item("h2", ended)], days_past=30, **TWO_WAY)
    assert [a.hub_item.id for a in p.spoke] == ["h1"]


def test_window_does_not_delete_items_that_age_out() -> None:
    e = ev("A", days=-60)
    p = plan(hub_changed=[hub_item("h1", replace(e, title="B"), version=2)],
             links=[link("h1", "g1", e, created_by_hub=True)], days_past=30, **TWO_WAY)
    assert [type(a) for a in p.spoke] == [SpokeUpdate]


# -------------------------------------------------- privacy and fields


def test_busy_only_mode_writes_a_placeholder_and_reads_back_only_times() -> None:
    e = ev("Salary talk", description="secret", location="HR", attendees=(Attendee("x@y.z"),))
    opts = {"privacy_mode": "busy_only", "placeholder_title": "Blocked", **TWO_WAY}
    created = plan(hub_changed=[hub_item("h1", e)], **opts)
    [action] = created.spoke
    written = action.event  # type: ignore[union-attr]
    assert (written.title, written.description, written.location, written.attendees) == ("Blocked", "", "", ())
    assert written.start == e.start and written.privacy == "private"
    # the placeholder read back, then moved by a user: only the time flows into the hub
    options = SyncOptions(**opts)
    lk = link("h1", "g1", written, created_by_hub=True, options=options)
    moved = replace(written, start=e.start + timedelta(hours=2), end=e.end + timedelta(hours=2),  # type: ignore[operator]
                    title="Blocked")
    p = plan(items=[SpokeItem("g1", "v2", moved)], hub=[hub_item("h1", e)], links=[lk], **opts)
    [upd] = p.hub
    assert upd.item.event.title == "Salary talk" and upd.item.event.start == moved.start  # type: ignore[union-attr]
    assert upd.item.event.description == "secret"  # type: ignore[union-attr]


def test_private_mode_marks_copies_private() -> None:
    p = plan(hub_changed=[hub_item("h1", ev("A"))], privacy_mode="private", **TWO_WAY)
    assert p.spoke[0].event.privacy == "private"  # type: ignore[union-attr]


def test_switched_off_fields_are_neither_written_nor_taken() -> None:
    e = ev("A", description="notes", location="Room", reminders=(5,), attendees=(Attendee("a@b.c"),))
    opts = {"sync_description": False, "sync_location": False, "sync_attendees": False, "sync_reminders": False}
    p = plan(hub_changed=[hub_item("h1", e)], **opts, **TWO_WAY)
    out = p.spoke[0].event  # type: ignore[union-attr]
    assert (out.description, out.location, out.reminders, out.attendees) == ("", "", None, ())
    # inbound: a description typed in the spoke does not reach the hub
    lk = link("h1", "g1", out, created_by_hub=True, options=SyncOptions(**opts))
    p2 = plan(items=[SpokeItem("g1", "v2", replace(out, description="typed"))], hub=[hub_item("h1", e)],
              links=[lk], **opts)
    assert p2.hub == []


# ------------------------------------------------------------- deletions


def test_keep_deletions_detaches_instead_of_deleting() -> None:
    e = ev("A")
    p = plan(deleted=["g1"], hub=[hub_item("h1", e)], links=[link("h1", "g1", e)], deletions="keep", **TWO_WAY)
    assert p.hub == [] and p.spoke == [] and p.links[0].link.detached  # type: ignore[union-attr]
    p2 = plan(hub_changed=[hub_item("h1", None, version=2)], links=[link("h1", "g1", e, created_by_hub=True)],
              deletions="keep", **TWO_WAY)
    assert p2.spoke == [] and p2.links[0].link.detached  # type: ignore[union-attr]


def test_full_listing_missing_a_linked_item_means_it_was_deleted() -> None:
    a, b = ev("A"), ev("B")
    p = plan(items=[SpokeItem("g1", "v1", a)], full=True, hub=[hub_item("h1", a), hub_item("h2", b)],
             links=[link("h1", "g1", a), link("h2", "g2", b)])
    assert [(x.item.id, x.item.deleted) for x in p.hub] == [("h2", True)]


def test_guards_stop_an_empty_read_and_a_mass_deletion() -> None:
    options = SyncOptions(max_delete_share=0.5, max_delete_count=2)
    empty = ChangeSet([], [], b"c", full=True)
    no_plan = plan()
    assert not check_guards(empty, no_plan, DeletionBudget(10), options, "Team").ok
    assert check_guards(empty, no_plan, DeletionBudget(0), options, "Team").ok
    assert check_guards(empty, no_plan, DeletionBudget(10, confirmed_all=True), options, "Team").ok  # confirmed
    e = ev("A")
    links = [link(f"h{n}", f"g{n}", e) for n in range(10)]
    many = plan(deleted=[f"g{n}" for n in range(6)], hub=[hub_item(f"h{n}", e) for n in range(10)], links=links)
    verdict = check_guards(ChangeSet([], [], b"c"), many, DeletionBudget(10), options, "Team")
    assert not verdict.ok and verdict.deletions == 6 and "6 of its 10" in verdict.reason
    assert sorted(verdict.ids) == [f"h{n}" for n in range(6)]
    few = plan(deleted=["g0", "g1"], hub=[hub_item(f"h{n}", e) for n in range(10)], links=links)
    assert check_guards(ChangeSet([], [], b"c"), few, DeletionBudget(10), options, "Team").ok


def test_the_deletion_budget_counts_what_earlier_runs_deleted_in_the_window() -> None:
    options = SyncOptions(max_delete_share=0.25, max_delete_count=2)
    e = ev("A")
    links = [link(f"h{n}", f"g{n}", e) for n in range(8)]
    two = plan(deleted=["g0", "g1"], hub=[hub_item(f"h{n}", e) for n in range(8)], links=links)
    # alone, 2 of 10 passes (not more than 2 items); after 2 earlier deletions, 4 of 10 is more than 25 %
    assert check_guards(ChangeSet([], [], b"c"), two, DeletionBudget(8, spoke_window=0), options, "Team").ok
    verdict = check_guards(ChangeSet([], [], b"c"), two, DeletionBudget(8, spoke_window=2), options, "Team")
    assert not verdict.ok and "4 of its 10" in verdict.reason and "2 already deleted" in verdict.reason
    # confirmed ids are not counted; the hub's own budget counts every spoke's deletions into it
    assert check_guards(ChangeSet([], [], b"c"), two,
                        DeletionBudget(8, spoke_window=2, confirmed=frozenset({"h0", "h1"})), options, "Team").ok
    hub_full = check_guards(ChangeSet([], [], b"c"), two,
                            DeletionBudget(100, hub_window=3, hub_live=10), options, "Team")
    assert not hub_full.ok and "hub's deletions" in hub_full.reason


def test_refused_deletion_restores_instead() -> None:
    e = ev("A")
    options = SyncOptions(direction="two_way")
    p = plan_sync(PlanInput("hub", "s", options, ALL_FIELDS, ChangeSet([], ["g1"], b"c"), [],
                            {"h1": hub_item("h1", e)}, {"g1": link("h1", "g1", e)}, {}, NOW, lambda: "x",
                            refuse_deletions=True))
    assert p.hub == [] and [type(a) for a in p.spoke] == [SpokeCreate]
    assert isinstance(p.links[0], LinkChange) and p.links[0].drop


def test_hub_upserts_carry_expected_versions() -> None:
    e = ev("A")
    p = plan(items=[SpokeItem("g1", "v2", replace(e, title="B"))], hub=[hub_item("h1", e, version=7)],
             links=[link("h1", "g1", e, hub_version=7)])
    assert isinstance(p.hub[0], HubUpsert) and p.hub[0].expected_version == 7 and p.hub[0].item.version == 8


def test_occurrence_overrides_are_compared_over_the_spoke_fields_only() -> None:
    from spokesync.model.event import Override, Person

    base = ev("Weekly", recurrence=("RRULE:FREQ=WEEKLY;COUNT=5",))
    moved = ev("Weekly (moved)", days=8)
    with_org = replace(base, overrides=(Override(base.start + timedelta(days=7), replace(moved, organizer=Person("o@x.y"))),))  # type: ignore[operator]
    without = replace(base, overrides=(Override(base.start + timedelta(days=7), moved),))  # type: ignore[operator]
    names = ALL_FIELDS - {"organizer"}
    assert content_hash(with_org, names) == content_hash(without, names)
    assert content_hash(with_org) != content_hash(without)
