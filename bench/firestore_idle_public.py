"""Firestore cost of an idle poll of an N-item Exchange public-folder spoke.

The Firestore hub store against the official emulator, the Exchange connector
against the local EWS server, the real runner. After the initial sync and one
settling poll, one more poll with nothing changed is measured: Firestore
documents read and written (counted by the store the way Firestore bills:
each document returned, one for an empty query, one per 1000 index entries
of a count), the cursor's size and chunk count. Target: <= 5 reads. The
spoke is two-way, so the poll also asks the hub for changes.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from bench._cloud import PROJECT, Emulator
from bench._common import measured

DEFAULT_N = 10_000
KEY = "a2V5LWZvci10ZXN0cy1vbmx5LTMyLWJ5dGVzLWxvbmc="
PASSWORD = "Bench-1"


def run(n: int) -> dict[str, Any]:
    from bench._exchange import fill
    from spokesync.bootstrap import build_context
    from spokesync.config import Config
    from spokesync.connectors import exchange
    from spokesync.engine.runner import Runner
    from spokesync.queue.local import LocalTaskQueue
    from spokesync.sandbox.ews import EwsServer
    from spokesync.service import hubs
    from spokesync.stores.firestore import from_config

    with Emulator():
        ews = EwsServer(users={"sync": PASSWORD}).start()
        try:
            config = Config(data_dir=tempfile.mkdtemp(prefix="bench-fs-"), secret_key=KEY, gcp_project=PROJECT,
                            exchange_allow_http=True, exchange_allowed_cidrs=("127.0.0.0/8",),
                            run_budget_s=3600, lease_ttl_s=7200)
            store = from_config(config)
            ctx = build_context(config, store=store, queue=LocalTaskQueue())
            cred = exchange.save_credential(ctx, "bench", {
                "ews_url": ews.url, "username": "EXAMPLE\\sync", "version": "2016", "auth_type": "NTLM",
                "mailbox": "shared@example.com"}, PASSWORD)
            folder = ews.public_folder("Bench public")
            fill(ews, folder, n)
            hub = hubs.create_hub(ctx, "Bench")
            spoke = hubs.add_spoke(ctx, hub.id, "Public", "exchange", {"folder_id": folder.id, "public": True},
                                   cred.id, options={"direction": "two_way"})
            started = time.perf_counter()
            first = Runner(ctx).sync(spoke.id, reason="initial")
            initial_s = round(time.perf_counter() - started, 1)
            assert first.status == "ok", first.reason
            initial = {"reads": store.stats["reads"], "writes": store.stats["writes"], "wall_s": initial_s}
            settle = Runner(ctx).sync(spoke.id, reason="poll")
            assert settle.status == "ok", settle.reason
            fresh = from_config(config)  # a new function instance: nothing cached from earlier runs
            ctx.store = fresh
            ews.reset_counts()
            with measured() as m:
                idle = Runner(ctx).sync(spoke.id, reason="poll")
            assert idle.status == "ok", idle.reason
            reads, writes = fresh.stats["reads"], fresh.stats["writes"]
            header = (fresh.client.collection("spokes").document(spoke.id).get().to_dict() or {}).get("cursor") or {}
            run_docs = len(fresh.list_runs(spoke_id=spoke.id, limit=100))  # idle runs share one record
            return {
                "items": n,
                "idle_poll_reads": reads,
                "idle_poll_writes": writes,
                "target_reads": 5,
                "within_target": reads <= 5,
                "cursor_bytes": header.get("size"),
                "cursor_chunks": header.get("chunks"),
                "cursor_compressed": header.get("z"),
                "idle_poll_wall_s": m["wall_s"],
                "run_counts": {k: v for k, v in idle.counts.items() if v},
                "idle_runs_in_last_record": idle.runs,
                "run_documents_after_3_runs": run_docs,
                "initial_sync": initial,
                "ews_calls_idle": dict(ews.requests),
            }
        finally:
            ews.stop()
