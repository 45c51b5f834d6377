"""Two Microsoft 365 calendars in one two-way hub, converged over N events; then one more sync
of each. Cost must be proportional to change (none): the target is one Graph call per spoke (the
delta link answers "nothing new") and no hub write. DEFAULT_N keeps the set-up cheap."""

from __future__ import annotations

from typing import Any

from bench._common import measured
from bench._graph import build, sync_until_done

DEFAULT_N = 1000


def run(n: int) -> dict[str, Any]:
    s = build(n)
    try:
        for spoke in (s.a, s.b, s.a, s.b):  # converge; the second pass reads back our own writes (echoes)
            sync_until_done(s.ctx, spoke)
        assert len(s.server.events_in(s.cal_b)) == n
        s.reset()
        reads0, writes0 = s.store.stats["reads"], s.store.stats["writes"]
        seq0 = s.store.get_hub(s.a.hub_id).seq  # type: ignore[union-attr]
        with measured() as m:
            runs_a = sync_until_done(s.ctx, s.a)
            calls_a = s.server.api_calls
            runs_b = sync_until_done(s.ctx, s.b)
        c = s.counts()
        return {
            "events": n,
            "api_calls": c["round_trips"],
            "api_calls_per_spoke": {"A": calls_a, "B": c["round_trips"] - calls_a},
            "token_requests": c["token_requests"],
            "hub_reads": s.store.stats["reads"] - reads0,
            # store writes of the runs themselves (lease taken and released, the idle streak's run record)
            "hub_writes": s.store.stats["writes"] - writes0,
            "hub_item_writes": s.store.get_hub(s.a.hub_id).seq - seq0,  # type: ignore[union-attr]
            "idle_wall_s": m["wall_s"],
            "peak_heap_mb": m["peak_heap_mb"],
            "runs": runs_a + runs_b,
            "target_api_calls_per_spoke": 1,
            "target_hub_item_writes": 0,
        }
    finally:
        s.close()
