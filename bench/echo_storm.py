"""Own-write echoes: N items created in the Google spoke of a Google + Exchange
hub with push on, through the webhook, the local queue and both local servers.

Counts (stable, not timed): runs started per spoke, runs that wrote something,
webhook calls, tasks enqueued, run records kept, API calls, hub-store reads and
writes. The target (issue 10): at most 3 runs per spoke per coalescing window,
and runs that only read back our own writes write nothing into the hub.
"""

from __future__ import annotations

from typing import Any

from bench._storm import Storm

DEFAULT_N = 400


def run(n: int) -> dict[str, Any]:
    storm = Storm(options={"max_delete_count": n + 10})
    try:
        storm.wait_quiet()
        storm.sandbox.stats.reset()
        storm.store.stats.clear()
        storm.ews.reset_counts()
        storm.create_google(n)
        storm.wait_quiet()
        figures = storm.figures()
        figures["google_events"] = len(storm.google_ids())
        figures["exchange_items"] = storm.exchange_count()
        return figures
    finally:
        storm.close()
