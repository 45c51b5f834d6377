"""TaskQueue on Cloud Tasks: one HTTP task per spoke sync, POSTed to `sync_spoke`.

- Authentication: the task carries an OIDC token of `tasks_service_account`
  for `oidc_audience` (Cloud Tasks mints it; `service.auth` verifies it). With
  `auth_mode=token` (local servers and the emulator, which sends no OIDC token)
  it carries `Authorization: Bearer <task_token>` instead.
- Dispatch deadline: the run's time budget plus a margin for the commit, the
  lease release and the continuation enqueue, within Cloud Tasks' 15 s-30 min.
- Coalescing, on the leading edge (docs/decisions/2026-12-01-coalescing.md):
  the first request for a spoke inside a window of `tasks_coalesce_s` starts
  its run at once (task `<spoke>-sync-<window>`); a later request in the same
  window leaves one follow-up at the window's end (`<spoke>-sync-<window>-after`),
  which covers every request after it (ALREADY_EXISTS: `enqueue` returns
  False). So a burst — the push notifications our own writes cause, say —
  costs at most two runs a window, and no request is left uncovered: the
  follow-up starts after every request it absorbed was made. Names are never
  reused after their window, so the service's one-hour name tombstones never
  swallow a later request; the names this instance created are also
  remembered, so it does not ask twice. Continuations, dirty re-runs, dry runs
  and an administrator's requests are unnamed: each must run. Correctness
  never depends on this dedupe (the emulator's is partial, the service's best
  effort): the spoke lease does.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from spokesync.ports import SyncTask

if TYPE_CHECKING:
    from spokesync.bootstrap import Context
    from spokesync.config import Config

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
UNNAMED_REASONS = frozenset({"continuation", "dirty", "manual", "confirmed", "refused"})
_REMEMBERED = 4096  # task names this instance created (a burst's duplicates need no round trip)
DEADLINE_MARGIN_S = 120.0
_TIMEOUT_S = 30.0


def dispatch_deadline_s(run_budget_s: float) -> float:
    return min(1800.0, max(15.0, run_budget_s + DEADLINE_MARGIN_S))


def _safe(spoke_id: str) -> str:
    cleaned = _UNSAFE.sub("_", spoke_id)
    if cleaned == spoke_id and len(spoke_id) <= 200:
        return spoke_id
    return f"{cleaned[:180]}_{hashlib.sha256(spoke_id.encode()).hexdigest()[:12]}"


def task_body(task: SyncTask) -> bytes:
    return json.dumps({"spoke_id": task.spoke_id, "reason": task.reason, "dry_run": task.dry_run}).encode()


class CloudTasksQueue:
    def __init__(self, config: Config, client: Any = None, wall_clock: Any = time.time) -> None:
        if not config.tasks_queue:
            raise ValueError("Cloud Tasks needs a queue: set SPOKESYNC_TASKS_QUEUE=projects/P/locations/L/queues/Q")
        if not config.sync_url:
            raise ValueError("Cloud Tasks needs the sync_spoke URL: set SPOKESYNC_SYNC_URL")
        self.config = config
        self._client = client
        self._lock = threading.Lock()
        self._time = wall_clock
        self._created: dict[str, None] = {}  # insertion-ordered set of recent task names

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from google.cloud import tasks_v2

                    if self.config.tasks_endpoint:  # the emulator: plain gRPC
                        import grpc
                        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

                        channel = grpc.insecure_channel(self.config.tasks_endpoint)
                        self._client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
                    else:
                        self._client = tasks_v2.CloudTasksClient()
        return self._client

    def build_task(self, task: SyncTask, delay_s: float = 0.0, follow_up: bool = False) -> dict[str, Any]:
        """The Cloud Tasks `Task` (as a dict) for a sync request made now (`follow_up`: the
        window's trailing task, when its leading one exists)."""
        from google.protobuf import duration_pb2, timestamp_pb2

        config = self.config
        headers = {"Content-Type": "application/json"}
        http_request: dict[str, Any] = {
            "http_method": "POST",
            "url": config.sync_url,
            "headers": headers,
            "body": task_body(task),
        }
        if config.effective_auth_mode == "oidc" and config.tasks_queue_auth:
            pass  # the queue's own routing adds the invoker's token and fixes the URL (terraform: tasks.tf)
        elif config.effective_auth_mode == "oidc":
            http_request["oidc_token"] = {
                "service_account_email": config.tasks_service_account,
                "audience": config.oidc_audience or config.sync_url,
            }
        elif config.task_token:
            headers["Authorization"] = f"Bearer {config.task_token}"
        eta = self._time() + max(0.0, delay_s)
        out: dict[str, Any] = {
            "http_request": http_request,
            "dispatch_deadline": duration_pb2.Duration(seconds=int(dispatch_deadline_s(config.run_budget_s))),
        }
        window = config.tasks_coalesce_s
        if task.dry_run or task.reason in UNNAMED_REASONS or window <= 0:
            fire_at = eta
        else:
            bucket = math.floor(eta / window)
            name = f"{config.tasks_queue}/tasks/{_safe(task.spoke_id)}-sync-{bucket}"
            if follow_up:
                fire_at = (bucket + 1) * window  # the end of the window: after every request it absorbs
                name += "-after"
            else:
                fire_at = eta  # the leading edge: at once
            out["name"] = name
        if fire_at > self._time():
            ts = timestamp_pb2.Timestamp()
            ts.FromNanoseconds(int(fire_at * 1e9))
            out["schedule_time"] = ts
        return out

    def enqueue(self, task: SyncTask, delay_s: float = 0.0) -> bool:
        lead = self.build_task(task, delay_s)
        if "name" not in lead:
            return self._create(lead)
        if self._create(lead):
            return True
        return self._create(self.build_task(task, delay_s, follow_up=True))

    def _create(self, built: dict[str, Any]) -> bool:
        from google.api_core import exceptions

        name = built.get("name")
        if name is not None:
            with self._lock:
                if name in self._created:
                    return False
        try:
            self.client.create_task(request={"parent": self.config.tasks_queue, "task": built}, timeout=_TIMEOUT_S)
        except exceptions.AlreadyExists:
            created = False
        else:
            created = True
        if name is not None:
            with self._lock:
                self._created[name] = None
                while len(self._created) > _REMEMBERED:
                    self._created.pop(next(iter(self._created)))
        return created


def from_config(config: Config, ctx: Context | None = None) -> CloudTasksQueue:
    return CloudTasksQueue(config)
