"""JSON-lines logging for Cloud Logging, and the scheduler's poll job."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

from spokesync import logs
from spokesync.bootstrap import build_context
from spokesync.config import Config
from spokesync.model.hub import Hub, Spoke
from spokesync.ports import FakeClock, SyncTask
from spokesync.service import scheduler
from tests.cloud.conftest import PROJECT, FirestoreEmulator
from tests.cloud.test_firestore_store import make_store


def capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger("spokesync.test-logs")
    logger.handlers[:] = []
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("my-project"))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_one_json_object_per_line_with_severity_ids_and_trace() -> None:
    logger, stream = capture()
    headers = {"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}
    trace, span = logs.trace_from(headers)
    with logs.bind(trace=trace, span_id=span, hub_id="h1"):
        logger.info("sync run finished", extra={"spoke_id": "s1", "run_id": "r1", "counts": {"hub_created": 2}})
        logger.error("boom")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["severity"] == "INFO" and first["message"] == "sync run finished"
    assert first["logging.googleapis.com/trace"] == "projects/my-project/traces/105445aa7843bc8bf206b12000100000"
    assert (first["hub_id"], first["spoke_id"], first["run_id"]) == ("h1", "s1", "r1")
    assert first["counts"] == {"hub_created": 2}
    assert second["severity"] == "ERROR" and "ReportedErrorEvent" in second["@type"]
    assert logs.trace_from({"traceparent": "00-abc-def-01"}) == ("abc", "def")


def test_secrets_never_reach_a_line() -> None:
    logger, stream = capture()
    logger.warning("login failed for https://user:hunter2@mail.example.com/EWS with Bearer ya29.secret-token "
                   "and password=hunter2; body {\"refresh_token\": \"1//refresh\"}",
                   extra={"password": "hunter2", "settings": {"username": "u", "client_secret": "cs"}})
    try:
        raise ValueError("token=abc123 rejected")
    except ValueError:
        logger.exception("failed")
    text = stream.getvalue()
    for secret in ("hunter2", "ya29.secret-token", "1//refresh", "abc123", "\"cs\""):
        assert secret not in text
    entry = json.loads(text.splitlines()[0])
    assert entry["settings"] == {"username": "u"} and "password" not in entry


def test_the_poll_job_enqueues_due_idle_spokes_only(firestore: FirestoreEmulator) -> None:
    from spokesync.queue.local import LocalTaskQueue

    clock = FakeClock()
    now = clock.now()
    store = make_store()
    queue = LocalTaskQueue()
    ctx = build_context(Config(backend="cloud", gcp_project=PROJECT), clock=clock, store=store,
                        secrets=object(), queue=queue)  # type: ignore[arg-type]
    store.put_hub(Hub(id="h", name="h"))
    spokes = {
        "due": Spoke(id="due", hub_id="h", name="a", kind="memory", next_run_at=now - timedelta(seconds=5)),
        "new": Spoke(id="new", hub_id="h", name="b", kind="memory"),
        "later": Spoke(id="later", hub_id="h", name="c", kind="memory", next_run_at=now + timedelta(minutes=4)),
        "paused": Spoke(id="paused", hub_id="h", name="d", kind="memory", state="needs_confirmation",
                        next_run_at=now - timedelta(minutes=1)),
        "running": Spoke(id="running", hub_id="h", name="e", kind="memory", lease_owner="r",
                         lease_expires=now + timedelta(minutes=5), next_run_at=now - timedelta(minutes=1)),
    }
    for spoke in spokes.values():
        store.put_spoke(spoke)
    result = scheduler.run_job(ctx, "poll", now)
    assert result == {"poll": {"due": 2, "enqueued": 2, "coalesced": 0}}
    assert sorted(t.spoke_id for t in queue.pending()) == ["due", "new"]
    assert all(t == SyncTask(t.spoke_id, reason="poll") for t in queue.pending())
