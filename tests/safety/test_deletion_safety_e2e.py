"""No data loss end to end, on the local servers: the webhook, the local queue,
the real Google and Exchange connectors (issue 10's scenarios).

- 400 of 404 events deleted in a Google calendar in slices of 50, each slice's
  push notifications driving its own runs: the deletion budget pauses the spoke
  long before 400 are gone, and the pause lists the items.
- An Exchange public folder paused on deletions flowing from the hub, refused:
  nothing is deleted anywhere, the hub and the Google calendar are restored
  from the folder's copies.
- Own-write echoes: a change written into Google comes back as notifications;
  the runs they cause write nothing into the hub.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench._storm import Storm
from spokesync.service import hubs


@pytest.fixture
def storm() -> Iterator[Storm]:
    s = Storm()
    try:
        yield s
    finally:
        s.close()


def live_hub(storm: Storm) -> int:
    return storm.ctx.store.count_hub_items(storm.hub.id)


def spoke(storm: Storm, spoke_id: str):  # type: ignore[no-untyped-def]
    found = storm.ctx.store.get_spoke(spoke_id)
    assert found is not None
    return found


@pytest.mark.slow
def test_deleting_in_slices_through_push_pauses_within_the_budget(storm: Storm) -> None:
    ids = storm.create_google(404)
    storm.wait_quiet()
    assert live_hub(storm) == 404 and storm.exchange_count() == 404
    options = spoke(storm, storm.google_spoke.id).options
    budget = max(options.max_delete_count, int(options.max_delete_share * 404))
    for start in range(0, 400, 50):  # a person deleting 50 at a time; each slice pushes its own runs
        storm.delete_google(ids[start:start + 50])
        storm.wait_quiet()
    google = spoke(storm, storm.google_spoke.id)
    assert google.state == "needs_confirmation", google.state_reason
    deleted = 404 - live_hub(storm)
    assert deleted <= budget, f"{deleted} hub items deleted without a confirmation (budget {budget})"
    assert storm.exchange_count() == live_hub(storm)  # the other spoke lost no more than the hub did
    # the pause says what it is about: titles, dates, where they were deleted
    status = hubs.spoke_status(storm.ctx, google)
    assert status["pending_deletions"] > 0 and status["pending_items"]
    first = status["pending_items"][0]
    assert first["title"].startswith("Event ") and first["start"] and first["deleted_in"] == "spoke"
    # confirming deletes exactly what was shown, and the other spoke follows without asking again
    shown = set(google.pending_ids)
    before = {i.id for i in storm.ctx.store.list_hub_items(storm.hub.id)}
    hubs.confirm_deletions(storm.ctx, google.id)
    storm.wait_quiet()
    gone = before - {i.id for i in storm.ctx.store.list_hub_items(storm.hub.id)}
    assert gone == shown
    assert spoke(storm, storm.exchange_spoke.id).state == "ok"
    assert storm.exchange_count() == live_hub(storm)


@pytest.mark.slow
def test_refusing_a_pause_of_deletions_from_the_hub_restores_every_side(storm: Storm) -> None:
    # the Google spoke's administrator allows big deletions there; the Exchange folder keeps the default budget
    hubs.set_options(storm.ctx, storm.google_spoke.id, {"max_delete_share": 1.0, "max_delete_count": 1000})
    ids = storm.create_google(404)
    storm.wait_quiet()
    assert storm.exchange_count() == 404
    storm.delete_google(ids[:400])
    storm.wait_quiet()
    ex = spoke(storm, storm.exchange_spoke.id)
    assert ex.state == "needs_confirmation", ex.state_reason
    assert "400 of its 404" in ex.state_reason
    assert storm.exchange_count() == 404  # paused before deleting anything in the folder
    assert {p["deleted_in"] for p in ex.pending_items} == {"hub"}
    hubs.cancel_deletions(storm.ctx, ex.id)
    storm.wait_quiet()
    assert storm.exchange_count() == 404  # nothing deleted in the folder
    assert live_hub(storm) == 404  # the hub restored from the folder's copies
    assert len(storm.google_ids()) == 404  # and the Google calendar got them back
    runs = storm.ctx.store.list_runs(spoke_id=ex.id, limit=50)
    assert any(r.counts.get("hub_restored") == 400 for r in runs)  # the restore is recorded
    # a further quiet round changes nothing
    storm.sandbox.stats.reset()
    hubs.sync_now(storm.ctx, ex.id)
    hubs.sync_now(storm.ctx, storm.google_spoke.id)
    storm.wait_quiet()
    assert live_hub(storm) == 404 and storm.exchange_count() == 404 and len(storm.google_ids()) == 404


@pytest.mark.slow
def test_own_write_echoes_write_nothing(storm: Storm) -> None:
    # items created in the Exchange folder are written into Google, whose notifications come back
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 3, 2, 8, tzinfo=UTC)
    for i in range(60):
        begin = start + timedelta(hours=i)
        storm.ews.user_create(storm.folder, f"Folder event {i}", begin, begin + timedelta(minutes=30))
    hubs.sync_now(storm.ctx, storm.exchange_spoke.id)
    storm.wait_quiet()
    assert len(storm.google_ids()) == 60
    google_runs = [r for r in storm.counter.runs if r.spoke_id == storm.google_spoke.id]
    echoes = [r for r in google_runs if r.reason != "manual" and not r.counts.get("spoke_created")]
    assert all(not any(r.counts.get(k) for k in ("hub_created", "hub_updated", "hub_deleted")) for r in echoes)
    # leading-edge coalescing: one run at once, at most one follow-up per window, not one per notification
    notifications = [n for n in storm.sandbox.notifications if n.get("state") == "exists"]
    assert len(notifications) >= 60 and len(google_runs) <= 4
