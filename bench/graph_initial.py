"""Initial sync of N events from one Microsoft 365 calendar through the hub into another.

Reports Graph round trips (HTTP requests; a `$batch` is one), requests (batch members counted),
events per second and peak memory. `baseline` is the same engine work with batching switched
off (one HTTP request per item), in the same process. `min_round_trips` is the least the API
allows for this design: for A the delta round (pages of 200) and the listing (pages of 200), for
the empty B one delta page and one listing page, and the creates in batches of 20.
`min_round_trips_idle_after` adds B's delta round over its own n creates (pages of 200, read as
etags: no event read again), which leaves B's cursor after them so that `next_run` (B's next poll)
reads nothing (docs/decisions/2026-12-01-own-writes.md); before, the next run read all n back.
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench._common import peak_rss_mb
from bench._graph import build, sync_until_done
from spokesync.engine.runner import Runner

DEFAULT_N = 1000


def _sync(n: int) -> dict[str, Any]:
    s = build(n)
    try:
        s.reset()
        reads0, writes0 = s.store.stats["reads"], s.store.stats["writes"]
        started = time.perf_counter()
        runs = sync_until_done(s.ctx, s.a) + sync_until_done(s.ctx, s.b)
        wall = time.perf_counter() - started
        copied = len(s.server.events_in(s.cal_b))
        assert copied == n, (copied, n, runs)
        c = s.counts()
        assert c["invitations"] == 0
        out = {"events": n, **c, "events_per_s": round(n / wall, 1), "sync_wall_s": round(wall, 3),
               "hub_reads": s.store.stats["reads"] - reads0, "hub_writes": s.store.stats["writes"] - writes0,
               "runs": runs}
        s.reset()
        after = Runner(s.ctx).sync(s.b.id, reason="poll")
        out["next_run"] = {"round_trips": s.counts()["round_trips"], "reason": after.reason}
        return out
    finally:
        s.close()


def run(n: int) -> dict[str, Any]:
    from spokesync.connectors.graph import client

    result = _sync(n)
    result["peak_rss_mb_after_run"] = peak_rss_mb()
    pages = math.ceil(max(n, 1) / 200)
    result["min_round_trips"] = 2 * pages + 2 + math.ceil(n / 20)
    limit = client.MAX_BATCH
    client.MAX_BATCH = 1  # the unbatched baseline: one request per item
    try:
        base = _sync(n)
    finally:
        client.MAX_BATCH = limit
    result["baseline"] = {k: base[k] for k in ("round_trips", "requests", "events_per_s", "sync_wall_s", "next_run")}
    result["round_trips_vs_baseline"] = round(base["round_trips"] / result["round_trips"], 1)
    result["round_trips_vs_min"] = round(result["round_trips"] / result["min_round_trips"], 2)
    result["min_round_trips_idle_after"] = result["min_round_trips"] + pages
    result["round_trips_vs_min_idle_after"] = round(result["round_trips"] / result["min_round_trips_idle_after"], 2)
    result["speedup_vs_baseline"] = round(result["events_per_s"] / base["events_per_s"], 2)
    # Loopback has no latency; with Graph's (~50 ms a round trip) the round trips dominate.
    result["est_wall_s_at_50ms_rtt"] = round(result["sync_wall_s"] + 0.05 * result["round_trips"], 1)
    result["baseline"]["est_wall_s_at_50ms_rtt"] = round(base["sync_wall_s"] + 0.05 * base["round_trips"], 1)
    return result
