"""Initial sync of N items from an Exchange public folder through the hub into a mailbox folder.

Reports EWS round trips (SOAP operations; NTLM handshakes add HTTP requests, reported apart),
items per second, peak memory; `baseline` is the same work done one request per item in the
same process (GetItem per item + CreateItem per item), and `min_round_trips` the least EWS
allows with the batch sizes Exchange accepts (connector.py; docs/decisions/2026-12-01-exchange-batch-sizes.md):
FindItem listing pages of 1000, GetItem batches of 1000, CreateItem batches of 500, and the first
SyncFolderItems of the (empty) mailbox folder; no hub-id lookup, since the mailbox run's own
listing answers it. `ratio_to_min` = round_trips / min_round_trips (target ≤ 1.1).
`min_round_trips_idle_after` adds what the mailbox run spends to leave its folder's sync state after
its own writes (SyncFolderItems, 512 changes a call, IdOnly: no GetItem), so that `next_run` (the
mailbox spoke's next poll) reads nothing; before, the next run read all n back.
`BENCH_EXCHANGE_BASELINE=0` skips the one-request-per-item baseline (17 minutes at 10,000 items;
it does not depend on spokesync's batching): `baseline` is then null.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from bench._common import peak_rss_mb
from bench._exchange import PASSWORD, build
from spokesync.connectors.exchange.connector import FIND_PAGE, SYNC_PAGE

# the batch sizes of connector.py (READ_BATCH, WRITE_BATCH); fixed here so that a "before" run of
# an older connector is measured against the same minimum
READ_BATCH, WRITE_BATCH = 1000, 500

DEFAULT_N = 10_000


def _baseline(n: int) -> dict[str, Any]:
    from exchangelib import CalendarItem

    from spokesync.connectors.exchange import connector_for_folder
    from spokesync.connectors.exchange.access import ExchangeSettings
    from spokesync.connectors.exchange.connector import CreateItem, GetItem

    s = build(n, with_mailbox=False)
    try:
        settings = ExchangeSettings(ews_url=s.ews.url, username="EXAMPLE\\sync", mailbox="shared@example.com")
        source = connector_for_folder(settings, PASSWORD, s.ctx.config, s.public_folder.id, public=True)
        target = connector_for_folder(settings, PASSWORD, s.ctx.config, s.mailbox_folder.id, public=False)
        s.ews.reset_counts()
        started = time.perf_counter()
        ids = source._list_ids()
        for item_id in ids:
            item = next(iter(GetItem(account=source.account).call(items=[(item_id, None)],
                                                                  additional_fields=source._read_paths, shape="IdOnly")))
            copy = CalendarItem(account=target.account, folder=target.folder, subject=item.subject, body=item.body,
                                start=item.start, end=item.end, location=item.location)
            list(CreateItem(account=target.account).call(items=[copy], folder=target.folder,
                                                         message_disposition="SaveOnly",
                                                         send_meeting_invitations="SendToNone"))
        wall = time.perf_counter() - started
        return {"round_trips": s.ews.calls(), "http_requests": s.ews.http_requests, "wall_s": round(wall, 3),
                "items_per_s": round(n / wall, 1)}
    finally:
        s.ews.stop()


def run(n: int) -> dict[str, Any]:
    from spokesync.engine.runner import Runner

    s = build(n)
    try:
        s.ews.reset_counts()
        started = time.perf_counter()
        if True:  # timed without tracemalloc (it slows Python down several times); memory: peak RSS
            first = Runner(s.ctx).sync(s.public_spoke.id, reason="initial")
            runs = [first]
            while True:  # the mailbox spoke, with continuations if a run's budget ends
                run = Runner(s.ctx).sync(s.mailbox_spoke.id, reason="initial")
                runs.append(run)
                if run.status != "continued":
                    break
        m = {"wall_s": round(time.perf_counter() - started, 3)}
        copied = len(s.ews.items(s.mailbox_folder))
        assert copied == n, (copied, n, [r.reason for r in runs])
        per_op = dict(s.ews.requests)
        result: dict[str, Any] = {
            "items": n,
            "round_trips": s.ews.calls(),
            "round_trips_by_operation": per_op,
            "http_requests": s.ews.http_requests,
            "items_per_s": round(n / m["wall_s"], 1),
            "sync_wall_s": m["wall_s"],
            "peak_rss_mb_after_sync": peak_rss_mb(),
            "hub_reads": s.store.stats["reads"],
            "hub_writes": s.store.stats["writes"],
            "runs": [r.status for r in runs],
            "min_round_trips": (math.ceil(n / FIND_PAGE) + math.ceil(n / READ_BATCH) + math.ceil(n / WRITE_BATCH)
                                + max(1, math.ceil(0 / SYNC_PAGE))),
        }
        result["ratio_to_min"] = round(result["round_trips"] / result["min_round_trips"], 3)
        # The mailbox run then leaves the folder's sync state after its own writes, so that its next
        # run is idle (docs/decisions/2026-12-01-own-writes.md): SyncFolderItems over n creates, at
        # most SYNC_PAGE a call, with no GetItem. Without that, the next run reads them back.
        result["min_round_trips_idle_after"] = result["min_round_trips"] + math.ceil(n / SYNC_PAGE)
        result["ratio_to_min_idle_after"] = round(result["round_trips"] / result["min_round_trips_idle_after"], 3)
        s.ews.reset_counts()
        after = Runner(s.ctx).sync(s.mailbox_spoke.id, reason="poll")
        result["next_run"] = {"round_trips": s.ews.calls(), "reason": after.reason}
    finally:
        s.ews.stop()
    result["baseline"] = _baseline(n) if os.environ.get("BENCH_EXCHANGE_BASELINE", "1") != "0" else None
    return result
