"""An idle poll of an N-item Exchange public folder after convergence.

The cost must be FindItem pages (IdOnly + ChangeKey, 1000 a page) only: no GetItem, no write,
and hub-store reads proportional to nothing but the cursor.
"""

from __future__ import annotations

import math
from typing import Any

from bench._common import measured
from bench._exchange import build

DEFAULT_N = 10_000


def run(n: int) -> dict[str, Any]:
    from spokesync.engine.runner import Runner

    s = build(n, with_mailbox=False)
    try:
        first = Runner(s.ctx).sync(s.public_spoke.id, reason="initial")
        assert first.status == "ok", first.reason
        # the first poll after the initial sync, then a steady-state one
        settle = Runner(s.ctx).sync(s.public_spoke.id, reason="poll")
        first_poll = {"hub_reads": s.store.stats["reads"], "status": settle.status}
        cursor = s.ctx.store.get_cursor(s.public_spoke.id) or b""
        s.ews.reset_counts()
        s.store.stats.clear()
        with measured() as m:
            idle = Runner(s.ctx).sync(s.public_spoke.id, reason="poll")
        assert idle.status == "ok", idle.reason
        return {
            "items": n,
            "api_calls": s.ews.calls(),
            "api_calls_by_operation": dict(s.ews.requests),
            "http_requests": s.ews.http_requests,
            "min_api_calls": math.ceil(n / 1000),
            "hub_reads": s.store.stats["reads"],
            "hub_writes": s.store.stats["writes"],
            "poll_wall_s": m["wall_s"],
            "peak_heap_mb": m["peak_heap_mb"],
            "cursor_bytes": len(cursor),
            "run_counts": idle.counts,
            "first_poll_after_initial": first_poll,
        }
    finally:
        s.ews.stop()
