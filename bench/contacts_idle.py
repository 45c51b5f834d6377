"""Idle polls of a contacts hub (issue 15): after the initial sync, polls that find nothing.

Figures per idle poll of each spoke: spoke round trips (minimum: one change-feed read), hub-store
reads and writes (target: no write), wall time; and the same after 1 % of the contacts changed.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from typing import Any

from bench._common import peak_rss_mb
from bench._contacts import contacts_hub

DEFAULT_N = 10_000
POLLS = 5


def run(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, contacts_hub(n, tmp) as s:
        from spokesync.engine.runner import Runner

        Runner(s.ctx).sync(s.b.id, reason="initial")
        s.sync_all()
        s.sync_all()
        idle = s.phase(lambda: [s.sync_all() for _ in range(POLLS)])
        changed = max(1, n // 100)
        s.clock.advance(60)
        for item_id in sorted(s.fa.items)[:changed]:
            item = s.fa.items[item_id]
            s.fa.user_update(item_id, replace(item.event, job_title="Manager", modified=s.clock.now()))
        one_pct = s.phase(s.sync_all)
        s.sync_all()
        after = s.phase(s.sync_all)
    polls = POLLS * 2
    return {
        "name": "contacts_idle",
        "n": n,
        "idle": {"polls": polls, "round_trips_per_poll": round(idle["round_trips"] / polls, 2),
                 "round_trips_minimum_per_poll": 1,
                 "hub_reads_per_poll": round(idle["hub_reads"] / polls, 2),
                 "hub_writes": idle["hub_writes"], "ms_per_poll": round(idle["wall_s"] * 1000 / polls, 2)},
        "changed_1pct": {**one_pct, "changed": changed},
        "idle_after_change": after,
        "peak_rss_mb": peak_rss_mb(),
    }
