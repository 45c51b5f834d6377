"""Two Google calendars in one two-way hub, converged over N events; then one
more sync of both. Cost must be proportional to change (none): reports the
Calendar API calls and round trips, and hub-store reads and writes, of that
idle round. DEFAULT_N is 2000 to keep the set-up (an initial sync) cheap on
shared machines; the idle cost does not grow with N."""

from __future__ import annotations

from typing import Any

from bench._common import measured
from bench._google import build, counts, sync_until_done

DEFAULT_N = 2000


def run(n: int) -> dict[str, Any]:
    s = build(n)
    try:
        for spoke in (s.a, s.b, s.a, s.b):  # converge; the second pass reads back our own writes (echoes)
            sync_until_done(s.ctx, spoke)
        assert len(s.sandbox.live_events("b@group.calendar.google.com")) == n
        s.sandbox.stats.reset()
        reads0, writes0 = s.store.stats["reads"], s.store.stats["writes"]
        with measured() as m:
            runs = sync_until_done(s.ctx, s.a) + sync_until_done(s.ctx, s.b)
        c = counts(s.sandbox)
        return {
            "events": n,
            "api_calls": c["api_calls"],
            "round_trips": c["http_requests"],
            "api_calls_by_method": c["api_calls_by_method"],
            "api_writes": sum(c["api_calls_by_method"].get(k, 0) for k in
                              ("events.insert", "events.patch", "events.update", "events.delete")),
            "oauth_token_requests": c["token_requests"],
            "hub_reads": s.store.stats["reads"] - reads0,
            "hub_writes": s.store.stats["writes"] - writes0,
            "idle_wall_s": m["wall_s"],
            "peak_heap_mb": m["peak_heap_mb"],
            "runs": runs,
            "min_api_calls": 2,
        }
    finally:
        s.close()
