"""Initial sync of N items from an Exchange public folder through the hub into a mailbox folder.

Reports EWS round trips (SOAP operations; NTLM handshakes add HTTP requests, reported apart),
items per second, peak memory; `baseline` is the same work done one request per item in the
same process (GetItem per item + CreateItem per item), and `min_round_trips` the least EWS
allows with pages of 1000 (FindItem listing, GetItem, CreateItem) plus the hub-id lookup and
the first SyncFolderItems of the mailbox folder.
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench._common import peak_rss_mb
from bench._exchange import PASSWORD, build

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
            "min_round_trips": 3 * math.ceil(n / 1000) + math.ceil(n / 1000) + 1,
        }
    finally:
        s.ews.stop()
    result["baseline"] = _baseline(n)
    return result
