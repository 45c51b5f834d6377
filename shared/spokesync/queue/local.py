"""The in-process TaskQueue: coalescing per spoke, optional delays, worker threads.

`enqueue` drops a task when one for the same spoke is already waiting, and
coalesces on the leading edge as the Cloud Tasks queue does: the first request
inside a window of `window_s` runs at once, later ones in the window leave one
follow-up at the window's end (bursts of push notifications — our own writes
coming back — cost at most two runs a window). An administrator's requests and
continuations are never held back. Tests call `drain()` to run every waiting
task synchronously, delays ignored; `serve` starts workers instead.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from spokesync.ports import SyncTask

if TYPE_CHECKING:
    from spokesync.bootstrap import Context
    from spokesync.config import Config

log = logging.getLogger("spokesync.queue")


IMMEDIATE_REASONS = frozenset({"continuation", "manual", "confirmed", "refused"})


class LocalTaskQueue:
    def __init__(self, handler: Callable[[SyncTask], Any] | None = None, window_s: float = 0.0) -> None:
        self.handler = handler
        self.window_s = window_s
        self._lead: dict[tuple[str, bool], float] = {}  # when each spoke's window started
        self._heap: list[tuple[float, int, SyncTask]] = []
        self._waiting: set[tuple[str, bool]] = set()
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._workers: list[threading.Thread] = []
        self._stopping = False
        self.enqueued: list[SyncTask] = []  # every accepted task, in order (tests and status read it)

    def enqueue(self, task: SyncTask, delay_s: float = 0.0) -> bool:
        key = (task.spoke_id, task.dry_run)
        now = time.monotonic()
        with self._cond:
            if key in self._waiting:
                return False
            due = now + delay_s
            if self.window_s > 0 and task.reason not in IMMEDIATE_REASONS and not task.dry_run:
                started = self._lead.get(key)
                if started is not None and now - started < self.window_s:
                    due = max(due, started + self.window_s)  # the window's one follow-up
                else:
                    self._lead[key] = now  # the leading edge: at once
            self._waiting.add(key)
            self.enqueued.append(task)
            heapq.heappush(self._heap, (due, next(self._order), task))
            self._cond.notify()
        return True

    def pending(self) -> list[SyncTask]:
        with self._cond:
            return [t for _, _, t in sorted(self._heap)]

    def _pop(self, ignore_delay: bool) -> SyncTask | None:
        with self._cond:
            if not self._heap:
                return None
            due, _, task = self._heap[0]
            if not ignore_delay and due > time.monotonic():
                return None
            heapq.heappop(self._heap)
            self._waiting.discard((task.spoke_id, task.dry_run))
            return task

    def _run(self, task: SyncTask) -> None:
        if self.handler is None:
            raise RuntimeError("the local queue has no handler")
        from spokesync.engine.runner import Interrupted

        try:
            self.handler(task)
        except Interrupted:  # the process is stopping: the run recorded itself and released its lease
            log.info("task interrupted by shutdown", extra={"spoke_id": task.spoke_id})
        except Exception:  # noqa: BLE001 - a failing task must not kill the worker
            log.exception("task failed", extra={"spoke_id": task.spoke_id})

    def drain(self, max_tasks: int = 10_000) -> int:
        """Run waiting tasks (and the tasks they enqueue) now; returns how many ran."""
        ran = 0
        while ran < max_tasks:
            task = self._pop(ignore_delay=True)
            if task is None:
                break
            self._run(task)
            ran += 1
        return ran

    # ---------------------------------------------------------- background
    def start(self, workers: int = 2) -> None:
        self._stopping = False
        for n in range(workers):
            thread = threading.Thread(target=self._loop, name=f"spokesync-worker-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._workers:
            thread.join(timeout=5)
        self._workers.clear()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    timeout = None if not self._heap else max(0.0, self._heap[0][0] - time.monotonic())
                    self._cond.wait(timeout)
                if self._stopping:
                    return
            task = self._pop(ignore_delay=False)
            if task is not None:
                self._run(task)


def from_config(config: Config, ctx: Context) -> LocalTaskQueue:
    return LocalTaskQueue(handler=ctx.run_task, window_s=config.tasks_coalesce_s)
