"""CloudTasksQueue against gcloud-tasks-emulator, which POSTs the tasks to a
local HTTP server like Cloud Tasks POSTs them to `sync_spoke`."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from spokesync.config import Config
from spokesync.ports import SyncTask
from spokesync.queue.cloud_tasks import CloudTasksQueue, dispatch_deadline_s, from_config
from tests.cloud.conftest import TasksEmulator


class Receiver:
    """A local HTTP endpoint recording what it is sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "at": time.time()})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/sync"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.requests


@pytest.fixture
def receiver() -> Any:
    r = Receiver()
    yield r
    r.server.shutdown()


def make_queue(emulator: TasksEmulator, receiver: Receiver, **overrides: Any) -> CloudTasksQueue:
    settings: dict[str, Any] = dict(backend="cloud", tasks_queue=emulator.queue, tasks_endpoint=emulator.endpoint,
                                    sync_url=receiver.url, auth_mode="token", task_token="tok-123",
                                    tasks_coalesce_s=0.5, run_budget_s=300)
    settings.update(overrides)
    return from_config(Config(**settings))


def test_a_task_is_delivered_to_the_sync_url_with_its_body_and_token(
        tasks_emulator: TasksEmulator, receiver: Receiver) -> None:
    queue = make_queue(tasks_emulator, receiver)
    assert queue.enqueue(SyncTask("spoke-1", reason="push")) is True
    [request] = receiver.wait(1)
    assert request["path"] == "/sync"
    assert json.loads(request["body"]) == {"spoke_id": "spoke-1", "reason": "push", "dry_run": False}
    assert request["headers"]["authorization"] == "Bearer tok-123"
    assert request["headers"]["x-cloudtasks-taskname"].startswith("spoke-1-sync-")


def test_a_burst_for_one_spoke_runs_at_once_and_leaves_one_follow_up(
        tasks_emulator: TasksEmulator, receiver: Receiver) -> None:
    window = 3.0
    queue = make_queue(tasks_emulator, receiver, tasks_coalesce_s=window)
    # line the burst up at the start of a window so that it cannot straddle two
    time.sleep(window - time.time() % window + 0.01)
    first_at = time.time()
    window_end = (first_at // window + 1) * window
    results = [queue.enqueue(SyncTask("spoke-1", reason="push")) for _ in range(5)]
    other = queue.enqueue(SyncTask("spoke-2", reason="push"))
    # the first starts a run at once, the second leaves the window's one follow-up, the rest are covered
    assert results == [True, True, False, False, False] and other is True
    requests = receiver.wait(3, timeout=window + 10)
    time.sleep(0.3)
    assert len(requests) == 3
    names = sorted(r["headers"]["x-cloudtasks-taskname"] for r in requests)
    assert [n.endswith("-after") for n in names] == [False, True, False]
    leading = [r for r in requests if not r["headers"]["x-cloudtasks-taskname"].endswith("-after")]
    follow = [r for r in requests if r["headers"]["x-cloudtasks-taskname"].endswith("-after")]
    assert all(r["at"] < window_end for r in leading)  # the leading edge did not wait for the window
    assert all(r["at"] >= window_end for r in follow)  # the follow-up fires after the window


def test_continuations_and_dry_runs_are_never_swallowed(tasks_emulator: TasksEmulator, receiver: Receiver) -> None:
    queue = make_queue(tasks_emulator, receiver, tasks_coalesce_s=60)
    assert queue.enqueue(SyncTask("spoke-1", reason="continuation")) is True
    assert queue.enqueue(SyncTask("spoke-1", reason="continuation")) is True
    assert queue.enqueue(SyncTask("spoke-1", reason="manual", dry_run=True)) is True
    assert len(receiver.wait(3)) == 3


def test_oidc_mode_builds_an_oidc_task_with_the_run_deadline(tasks_emulator: TasksEmulator, receiver: Receiver) -> None:
    queue = make_queue(tasks_emulator, receiver, auth_mode="oidc", tasks_service_account="tasks@p.iam.gserviceaccount.com",
                       oidc_audience="https://sync.example", run_budget_s=480)
    task = queue.build_task(SyncTask("a/b c", reason="poll"))
    assert task["http_request"]["oidc_token"] == {"service_account_email": "tasks@p.iam.gserviceaccount.com",
                                                  "audience": "https://sync.example"}
    assert "Authorization" not in task["http_request"]["headers"]
    assert task["dispatch_deadline"].seconds == 600
    name = task["name"].rsplit("/", 1)[1]
    assert name.startswith("a_b_c_") and "/" not in name
    assert dispatch_deadline_s(1) == 121 and dispatch_deadline_s(5000) == 1800
    # accepted by the real client and the emulator's gRPC API
    assert queue.enqueue(SyncTask("spoke-9", reason="poll")) is True


def test_missing_settings_are_explained() -> None:
    with pytest.raises(ValueError, match="SPOKESYNC_TASKS_QUEUE"):
        CloudTasksQueue(Config(backend="cloud", sync_url="http://x"))
