"""Initial sync of N events from one Google calendar through the hub into another.

Reports API round trips (HTTP requests to the Calendar API; a batch is one),
API calls (what Google's quota counts: each call in a batch), events per
second and peak memory (process RSS right after the run, before the
baseline). `baseline` is the same work — the same engine run through the hub
— with batching switched off (one HTTP request per event), in the same
process; `min_round_trips` is the least the API allows: the listing of A in
pages of 2500, one listing of the still empty B, and the inserts in batches
of 50. Timings are taken without tracemalloc (it triples Python's run time).
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench._common import peak_rss_mb
from bench._google import B, build, counts, sync_until_done

DEFAULT_N = 10_000


def _sync(n: int) -> dict[str, Any]:
    s = build(n)
    try:
        s.sandbox.stats.reset()
        reads0, writes0 = s.store.stats["reads"], s.store.stats["writes"]
        started = time.perf_counter()
        runs = sync_until_done(s.ctx, s.a) + sync_until_done(s.ctx, s.b)
        wall = time.perf_counter() - started
        copied = len(s.sandbox.live_events(B))
        assert copied == n, (copied, n, runs)
        c = counts(s.sandbox)
        return {
            "events": n,
            "round_trips": c["http_requests"],
            "api_calls": c["api_calls"],
            "batches": c["batches"],
            "api_calls_by_method": c["api_calls_by_method"],
            "oauth_token_requests": c["token_requests"],
            "events_per_s": round(n / wall, 1),
            "sync_wall_s": round(wall, 3),
            "hub_reads": s.store.stats["reads"] - reads0,
            "hub_writes": s.store.stats["writes"] - writes0,
            "runs": runs,
        }
    finally:
        s.close()


def run(n: int) -> dict[str, Any]:
    from spokesync.connectors.google import client

    result = _sync(n)
    result["peak_rss_mb_after_run"] = peak_rss_mb()
    result["min_round_trips"] = math.ceil(n / 2500) + 1 + math.ceil(n / 50)
    limit = client.BATCH_LIMIT
    client.BATCH_LIMIT = 1  # the unbatched baseline: one request per event
    try:
        base = _sync(n)
    finally:
        client.BATCH_LIMIT = limit
    result["baseline"] = {k: base[k] for k in ("round_trips", "api_calls", "events_per_s", "sync_wall_s")}
    result["round_trips_vs_baseline"] = round(base["round_trips"] / result["round_trips"], 1)
    result["speedup_vs_baseline"] = round(result["events_per_s"] / base["events_per_s"], 2)
    # Loopback has no latency; with Google's (~50 ms a round trip) the round trips dominate.
    result["est_wall_s_at_50ms_rtt"] = round(result["sync_wall_s"] + 0.05 * result["round_trips"], 1)
    result["baseline"]["est_wall_s_at_50ms_rtt"] = round(base["sync_wall_s"] + 0.05 * base["round_trips"], 1)
    return result
