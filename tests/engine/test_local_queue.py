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


def test_a_burst_runs_at_once_and_leaves_one_follow_up_per_window() -> None:
    """Leading-edge coalescing: the first push runs at once; the rest of the window's burst
    (our own writes coming back as notifications, say) leaves one follow-up, not one each."""
    ran: list[tuple[str, float]] = []
    started = threading.Event()
    release = threading.Event()

    def handler(task: SyncTask) -> None:
        ran.append((task.reason, time.monotonic()))
        started.set()
        release.wait(5)

    queue = LocalTaskQueue(handler=handler, window_s=0.6)
    queue.start(workers=1)
    try:
        t0 = time.monotonic()
        assert queue.enqueue(SyncTask("a", "push")) is True
        assert started.wait(5)  # the leading edge did not wait for the window
        burst = [queue.enqueue(SyncTask("a", "push")) for _ in range(20)]
        assert burst == [True] + [False] * 19  # while the first runs: one follow-up covers them all
        assert [t.reason for t in queue.pending()] == ["push"]
        assert queue.enqueue(SyncTask("a", "manual")) is False  # already covered by the waiting follow-up
        release.set()
        deadline = time.monotonic() + 5
        while len(ran) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(ran) == 2
        assert ran[1][1] - t0 >= 0.6  # the follow-up came at the window's end, after the whole burst
    finally:
        release.set()
        queue.stop()


def test_an_administrators_request_is_not_held_back_by_the_window() -> None:
    queue = LocalTaskQueue(window_s=60)
    assert queue.enqueue(SyncTask("a", "push")) is True
    queue._pop(ignore_delay=False)  # the leading run starts
    assert queue.enqueue(SyncTask("a", "manual")) is True
    assert queue._pop(ignore_delay=False) is not None  # due at once, not at the window's end
