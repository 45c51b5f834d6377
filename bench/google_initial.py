"""Initial sync of N events from one Google calendar through the hub into another.

Reports API round trips (HTTP requests to the Calendar API; a batch is one),
API calls (what Google's quota counts: each call in a batch), events per
second and peak memory. `baseline` is the same copy done one call per event
(no batching) in the same process; `min_round_trips` is the least the API
allows: the listing of A in pages of 2500, one listing of the empty B, and
the inserts in batches of 50.
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench._common import measured
from bench._google import A, B, build, counts, sync_until_done

DEFAULT_N = 10_000


def _baseline(n: int) -> dict[str, Any]:
    from spokesync.connectors.google.mapping import event_from_google, event_to_google

    s = build(n)
    try:
        connector = s.ctx.connector(s.a)
        target = s.ctx.connector(s.b)
        events = connector._events  # type: ignore[attr-defined]
        inserts = target._events  # type: ignore[attr-defined]
        s.sandbox.stats.reset()
        started = time.perf_counter()
        page = None
        copied = 0
        while True:
            resp = events.list(calendarId=A, maxResults=2500, pageToken=page).execute()
            for raw in resp["items"]:
                body = event_to_google(event_from_google(raw))
                inserts.insert(calendarId=B, body=body, sendUpdates="none").execute()
                copied += 1
            page = resp.get("nextPageToken")
            if not page:
                break
        wall = time.perf_counter() - started
        assert copied == n
        out = counts(s.sandbox)
        return {"round_trips": out["http_requests"], "api_calls": out["api_calls"], "wall_s": round(wall, 3),
                "events_per_s": round(n / wall, 1)}
    finally:
        s.close()


def run(n: int) -> dict[str, Any]:
    s = build(n)
    try:
        s.sandbox.stats.reset()
        reads0, writes0 = s.store.stats["reads"], s.store.stats["writes"]
        with measured() as m:
            runs = sync_until_done(s.ctx, s.a) + sync_until_done(s.ctx, s.b)
        copied = len(s.sandbox.live_events(B))
        assert copied == n, (copied, n, runs)
        c = counts(s.sandbox)
        result: dict[str, Any] = {
            "events": n,
            "round_trips": c["http_requests"],
            "api_calls": c["api_calls"],
            "batches": c["batches"],
            "api_calls_by_method": c["api_calls_by_method"],
            "oauth_token_requests": c["token_requests"],
            "events_per_s": round(n / m["wall_s"], 1),
            "sync_wall_s": m["wall_s"],
            "peak_heap_mb": m["peak_heap_mb"],
            "hub_reads": s.store.stats["reads"] - reads0,
            "hub_writes": s.store.stats["writes"] - writes0,
            "runs": runs,
            "min_round_trips": math.ceil(n / 2500) + 1 + math.ceil(n / 50),
        }
    finally:
        s.close()
    result["baseline"] = _baseline(n)
    result["speedup_vs_baseline"] = round(result["events_per_s"] / result["baseline"]["events_per_s"], 1)
    return result

