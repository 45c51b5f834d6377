"""Own-write echoes and notification storms: N items created in one spoke of a
Google + Exchange hub with push on, through the webhook, the local queue (with
its coalescing window, as `spokesync serve` has it) and both local servers.

Two phases, each counted on its own (stable counts, not times):
- `from_google`: N events created by a user in the Google calendar: N push
  notifications, the items written into the Exchange folder.
- `from_exchange`: N items created in the Exchange folder (polled once): our
  writes into Google come back as N notifications of our own writes.

Counts: runs started per spoke, runs that wrote something, hub writes made by
echo runs, webhook calls, tasks enqueued, run records kept, API calls, hub-store
reads and writes. Target (issue 10): at most 3 runs per spoke per coalescing
window, and 0 hub writes in runs that only read back our own writes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bench._storm import Storm
from spokesync.service import hubs

DEFAULT_N = 400
HUB_WRITES = ("hub_created", "hub_updated", "hub_deleted", "hub_restored")


def _phase(storm: Storm, act: Any) -> dict[str, Any]:
    storm.wait_quiet()
    storm.counter.runs.clear()
    storm.queue.enqueued.clear()
    storm.sandbox.notifications.clear()
    storm.sandbox.stats.reset()
    storm.store.stats.clear()
    storm.ews.reset_counts()
    records_before = len(storm.store.list_runs(limit=100_000))
    act()
    storm.wait_quiet()
    figures = storm.figures()
    figures["run_records"] -= records_before
    google_runs = [r for r in storm.counter.runs if r.spoke_id == storm.google_spoke.id]
    figures["google_runs_without_spoke_writes_hub_writes"] = sum(
        sum(r.counts.get(k, 0) for k in HUB_WRITES) for r in google_runs
        if not any(r.counts.get(k, 0) for k in ("spoke_created", "spoke_updated", "spoke_deleted"))
        and r.counts.get("hub_created", 0) == 0)
    return figures


def run(n: int) -> dict[str, Any]:
    storm = Storm(options={"max_delete_count": n + 10})
    try:
        from_google = _phase(storm, lambda: storm.create_google(n))

        def from_folder() -> None:
            start = datetime(2027, 3, 1, 8, tzinfo=UTC)
            for i in range(n):
                begin = start + timedelta(hours=i)
                storm.ews.user_create(storm.folder, f"Folder {i}", begin, begin + timedelta(minutes=30))
            hubs.sync_now(storm.ctx, storm.exchange_spoke.id)  # the poll that finds them

        from_exchange = _phase(storm, from_folder)
        return {"from_google": from_google, "from_exchange": from_exchange,
                "coalesce_window_s": storm.ctx.config.tasks_coalesce_s,
                "google_events": len(storm.google_ids()), "exchange_items": storm.exchange_count()}
    finally:
        storm.close()
