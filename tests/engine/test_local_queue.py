"""The in-process task queue: coalescing per spoke, delays, worker threads."""

from __future__ import annotations

import threading
import time

from spokesync.ports import SyncTask
from spokesync.queue.local import LocalTaskQueue


def test_tasks_for_one_spoke_coalesce_while_waiting() -> None:
    ran: list[str] = []
    queue = LocalTaskQueue(handler=lambda t: ran.append(t.spoke_id))
    assert queue.enqueue(SyncTask("a", "push")) is True
    assert queue.enqueue(SyncTask("a", "push")) is False
    assert queue.enqueue(SyncTask("b", "poll")) is True
    assert queue.enqueue(SyncTask("a", "manual", dry_run=True)) is True  # a preview is its own task
    assert queue.drain() == 3 and ran == ["a", "b", "a"]
    assert queue.enqueue(SyncTask("a", "push")) is True  # once run, a new request queues again


def test_a_task_enqueued_by_a_running_task_runs_in_the_same_drain() -> None:
    queue = LocalTaskQueue()
    ran: list[str] = []

    def handler(task: SyncTask) -> None:
        ran.append(task.reason)
        if task.reason == "first":
            queue.enqueue(SyncTask("a", "continuation"))

    queue.handler = handler
    queue.enqueue(SyncTask("a", "first"))
    assert queue.drain() == 2 and ran == ["first", "continuation"]


def test_workers_honour_delays_and_survive_failing_tasks() -> None:
    done = threading.Event()
    seen: list[str] = []

    def handler(task: SyncTask) -> None:
        seen.append(task.spoke_id)
        if task.spoke_id == "boom":
            raise RuntimeError("a failing task")
        if task.spoke_id == "late":
            done.set()

    queue = LocalTaskQueue(handler=handler)
    queue.start(workers=1)
    try:
        queue.enqueue(SyncTask("late"), delay_s=0.3)
        queue.enqueue(SyncTask("boom"))
        assert done.wait(5)
        assert seen == ["boom", "late"]
    finally:
        queue.stop()
    started = time.monotonic()
    queue.enqueue(SyncTask("x"), delay_s=60)
    assert queue.pending()[0].spoke_id == "x" and time.monotonic() - started < 1
