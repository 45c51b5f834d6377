"""The scheduler's jobs: enqueue the polls that are due, renew push channels.

Cloud Scheduler calls the `scheduler` function (functions/sync_spoke/main.py)
with `{"job": "poll"}` every minute or so and `{"job": "renew_channels"}`
less often; the local server calls `tick` from a loop. A spoke is due when
its `next_run_at` has passed (a run sets the next one when it finishes) and
it is not paused, waiting for a confirmation or holding a live lease (its
run is still going: a second task would only be skipped and mark it dirty).
Enqueueing is idempotent enough: the queue coalesces, the lease decides.

An idle poll writes nothing, so `next_run_at` stays where the last run that
wrote left it; from there a spoke is due once per `poll_interval_s`: a tick is
due when a multiple of the interval after `next_run_at` fell inside the tick's
own period (`tick_s`, the caller's loop period; unknown: every tick, which is
right when the ticks come once per interval, as the default Cloud Scheduler job
does). See docs/decisions/2026-12-01-idle-polls.md.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from spokesync.ports import SyncTask

if TYPE_CHECKING:
    from spokesync.bootstrap import Context
    from spokesync.model.hub import Spoke

log = logging.getLogger("spokesync.scheduler")

# "paused" is a quota pause: its next_run_at lies hours ahead, so it is retried then.
POLLABLE_STATES = ("ok", "failed", "paused")
JOBS = ("poll", "renew_channels")


def _slot_open(spoke: Spoke, now: datetime, tick_s: float | None) -> bool:
    """Does one of the spoke's poll times (next_run_at + k * interval) fall in (now - tick_s, now]?"""
    if tick_s is None or spoke.next_run_at is None:
        return True
    interval = max(1.0, float(spoke.options.poll_interval_s))
    elapsed = (now - spoke.next_run_at).total_seconds()
    return tick_s >= interval or elapsed < tick_s or elapsed % interval < tick_s


def due_spokes(ctx: Context, now: datetime, tick_s: float | None = None) -> list[Spoke]:
    store: Any = ctx.store
    # Firestore answers "due" with one indexed query; other stores list their spokes.
    candidates = store.due_spokes(now) if hasattr(store, "due_spokes") else store.list_spokes()
    return [
        s for s in candidates
        if s.state in POLLABLE_STATES
        and (s.next_run_at is None or s.next_run_at <= now)
        and not (s.lease_owner and s.lease_expires is not None and s.lease_expires > now)
        and _slot_open(s, now, tick_s)
    ]


def enqueue_due_polls(ctx: Context, now: datetime | None = None, tick_s: float | None = None) -> dict[str, int]:
    now = now or ctx.clock.now()
    due = due_spokes(ctx, now, tick_s)
    enqueued = 0
    for spoke in due:
        try:
            enqueued += bool(ctx.queue.enqueue(SyncTask(spoke.id, reason="poll")))
        except Exception:  # noqa: BLE001 - one failed enqueue must not starve the other spokes
            log.exception("could not enqueue a poll", extra={"spoke_id": spoke.id, "hub_id": spoke.hub_id})
    return {"due": len(due), "enqueued": enqueued, "coalesced": len(due) - enqueued}


def renew_channels(ctx: Context, now: datetime | None = None) -> dict[str, int]:
    try:
        from spokesync.service import push
    except ImportError:  # a build without the Google connector
        return {"opened": 0, "stopped": 0, "failed": 0}
    out = push.renew_channels(ctx, now).to_dict()
    from spokesync.service import graph_push

    graph = graph_push.renew_subscriptions(ctx, now).to_dict()
    out["graph_opened"], out["graph_renewed"], out["graph_failed"] = graph["opened"], graph["renewed"], graph["failed"]
    return out


def run_job(ctx: Context, job: str | None, now: datetime | None = None, tick_s: float | None = None) -> dict[str, Any]:
    """One scheduler job by name; None runs both."""
    if job is not None and job not in JOBS:
        raise ValueError(f"unknown scheduler job {job!r}; known: {', '.join(JOBS)}")
    out: dict[str, Any] = {}
    if job in (None, "poll"):
        out["poll"] = enqueue_due_polls(ctx, now, tick_s)
    if job in (None, "renew_channels"):
        out["renew_channels"] = renew_channels(ctx, now)
    log.info("scheduler job done", extra={"job": job or "all", "result": out})
    return out


def tick(ctx: Context, now: datetime | None = None, tick_s: float | None = None) -> dict[str, Any]:
    return run_job(ctx, None, now, tick_s)
