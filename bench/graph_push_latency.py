"""Notification → item written, on loopback: a two-way hub of two Microsoft 365 calendars with
push. An event is created in calendar A (as a person would, in the local Graph server); its change
notification is POSTed to the served webhook function, which enqueues a push sync of A; the queue
worker runs it, and the hub's follow-up sync of B writes the copy. Reports the time from the
create to the copy existing in B (N events, one at a time), and the share of it before the
notification reached the webhook. Loopback only: real Graph delivers notifications within
seconds to minutes, which this does not model."""

from __future__ import annotations

import statistics
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from bench._graph import build, sync_until_done

DEFAULT_N = 20


def run(n: int) -> dict[str, Any]:
    import functions_framework
    from werkzeug.serving import make_server

    from spokesync.bootstrap import set_context
    from spokesync.service import graph_push

    app = functions_framework.create_app(target="push_webhook", source="functions/push_webhook/main.py")
    web = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    s = build(0, webhook_url=f"http://127.0.0.1:{web.server_port}/")
    try:
        set_context(s.ctx)
        graph_push.open_subscription(s.ctx, s.a)
        for spoke in (s.a, s.b):
            sync_until_done(s.ctx, spoke)
        s.ctx.queue.start(workers=2)  # type: ignore[attr-defined]
        latencies, notified = [], []
        base = datetime.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
        for i in range(n):
            before = len(s.server.events_in(s.cal_b))
            delivered = len(s.server.delivery_status)
            started = time.perf_counter()
            start = base + timedelta(hours=i)
            s.server.user_create(s.cal_a, {
                "subject": f"Pushed {i}", "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "end": {"dateTime": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}})
            seen_notify = None
            deadline = started + 30
            while len(s.server.events_in(s.cal_b)) == before:
                if seen_notify is None and len(s.server.delivery_status) > delivered:
                    seen_notify = time.perf_counter() - started
                if time.perf_counter() > deadline:
                    raise AssertionError(f"event {i} did not reach B within 30 s")
                time.sleep(0.002)
            latencies.append(time.perf_counter() - started)
            notified.append(seen_notify if seen_notify is not None else latencies[-1])
        s.ctx.queue.stop()  # type: ignore[attr-defined]
        ms = sorted(round(x * 1000, 1) for x in latencies)
        return {"events": n, "median_ms": round(statistics.median(ms), 1), "p90_ms": ms[int(0.9 * (len(ms) - 1))],
                "max_ms": ms[-1], "median_notification_delivered_ms": round(statistics.median(notified) * 1000, 1),
                "invitations": sum(s.server.invitations.values())}
    finally:
        set_context(None)
        s.close()
        web.shutdown()
