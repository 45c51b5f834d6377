"""sync_spoke: the Cloud Tasks target (one sync run of one spoke), and
`scheduler`, the Cloud Scheduler target (due polls, push-channel renewal).

Two entry points in one source directory: both need the same code and the
same OIDC check, and terraform deploys each as its own function.

Answers: 200 when the task is done with (run finished, skipped because
another run holds the lease, failed in a way a retry would not fix - the run
record says why, the next poll tries again), 400 for a malformed task (a
retry cannot help), 401/403 for a caller that is not Cloud Tasks/Scheduler,
500 only when our own backends failed, so that Cloud Tasks retries.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from spokesync import lifecycle

_JSON = {"Content-Type": "application/json"}
log = logging.getLogger("spokesync.functions")
lifecycle.install()  # SIGTERM (the instance stopping): runs stop at their next batch, leases released


def _deny(err: Exception, status: int) -> tuple[str, int, dict[str, str]]:
    return json.dumps({"error": str(err)}), status, _JSON


def sync_spoke(request: Any) -> tuple[str, int, dict[str, str]]:
    from spokesync import logs
    from spokesync.bootstrap import get_context
    from spokesync.ports import StoreError, SyncTask
    from spokesync.service import auth

    ctx = get_context()
    task_name = request.headers.get("X-CloudTasks-TaskName", "")
    with logs.request("sync_spoke", request.headers, ctx.config.gcp_project, task=task_name or None):
        try:
            auth.check_task_caller(ctx.config, request.headers)
        except auth.Unauthorized as err:
            return _deny(err, 401)
        except auth.Forbidden as err:
            return _deny(err, 403)
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("spoke_id"), str) or not body["spoke_id"]:
            return json.dumps({"error": "body must be {\"spoke_id\": ..., \"reason\": ...}"}), 400, _JSON
        task = SyncTask(body["spoke_id"], reason=str(body.get("reason") or "manual"), dry_run=bool(body.get("dry_run")))
        with logs.bind(spoke_id=task.spoke_id, reason=task.reason):
            if ctx.store.get_spoke(task.spoke_id) is None:
                log.warning("task for a spoke that no longer exists: dropped")
                return json.dumps({"status": "gone"}), 200, _JSON
            try:
                run = ctx.run_task(task)
            except lifecycle.Interrupted:  # the instance is stopping: the run released its lease; retried
                return json.dumps({"status": "interrupted"}), 503, _JSON
            except StoreError:
                log.exception("hub store failure: the task will be retried")
                return json.dumps({"error": "hub store unavailable"}), 500, _JSON
            return json.dumps({"run_id": run.id, "status": run.status, "counts": run.counts}), 200, _JSON


def scheduler(request: Any) -> tuple[str, int, dict[str, str]]:
    from spokesync import logs
    from spokesync.bootstrap import get_context
    from spokesync.service import auth
    from spokesync.service import scheduler as jobs

    ctx = get_context()
    with logs.request("scheduler", request.headers, ctx.config.gcp_project):
        try:
            auth.check_task_caller(ctx.config, request.headers)
        except auth.Unauthorized as err:
            return _deny(err, 401)
        except auth.Forbidden as err:
            return _deny(err, 403)
        body = request.get_json(silent=True) or {}
        job = body.get("job") if isinstance(body, dict) else None
        try:
            result = jobs.run_job(ctx, job)
        except ValueError as err:
            return json.dumps({"error": str(err)}), 400, _JSON
        return json.dumps(result), 200, _JSON
