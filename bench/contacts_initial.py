"""Initial sync of a contacts hub (issue 15): a spoke with fixed slots joins a hub of N contacts.

Figures: spoke round trips against the batching minimum, hub-store reads and writes, the
contacts matched instead of copied, wall time and peak memory (Python heap during the join, and
the process's peak RSS) at 10,000 contacts. In-memory spokes: the engine's share of the cost.
"""

from __future__ import annotations

import tempfile
from typing import Any

from bench._common import measured, peak_rss_mb
from bench._contacts import batching_minimum, contacts_hub

DEFAULT_N = 10_000


def run(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, contacts_hub(n, tmp) as s:
        from spokesync.engine.runner import Runner

        with measured() as memory:
            join = s.phase(lambda: [Runner(s.ctx).sync(s.b.id, reason="initial").status])
        record = s.store.list_runs(spoke_id=s.b.id, limit=1)[0]
        settle = s.phase(s.sync_all)  # each spoke reads its own writes back once
        hub_items = len(s.store.list_hub_items(s.a.hub_id))
        overflow_kept = sum(1 for i in s.store.list_hub_items(s.a.hub_id) if len(i.event.emails) == 4)  # type: ignore[union-attr]
        assert len(s.fb.items) == n and hub_items == n, "the benchmark's spokes did not converge"
    minimum = batching_minimum(n)
    return {
        "name": "contacts_initial",
        "n": n,
        "join": {**join, "round_trips_minimum": minimum["b"],
                 "round_trips_over_minimum": round(join["round_trips"] / minimum["b"], 2),
                 "hub_reads_per_contact": round(join["hub_reads"] / n, 3),
                 "hub_writes_per_contact": round(join["hub_writes"] / n, 3),
                 "ms_per_contact": round(join["wall_s"] * 1000 / n, 3),
                 "peak_heap_mb": memory["peak_heap_mb"], "counts": record.counts},
        "settle": settle,
        "hub_items": hub_items,
        "contacts_with_a_fourth_address_kept": overflow_kept,
        "peak_rss_mb": peak_rss_mb(),
    }
