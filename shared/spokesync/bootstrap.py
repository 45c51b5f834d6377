"""Wiring: builds the Context (store, secrets, queue, clock, config) once.

Backends are chosen by `config.backend` and imported lazily, so a function
instance imports only the SDKs it uses. Everything else receives a Context.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spokesync.config import Config
from spokesync.ports import Clock, SystemClock

if TYPE_CHECKING:
    from spokesync.model.hub import Spoke
    from spokesync.ports import HubStore, RunProgress, SecretStore, SpokeConnector, SyncTask, TaskQueue

# backend -> (store, secrets, queue) factories, each "module:callable(config, ctx)".
BACKENDS: dict[str, tuple[str, str, str]] = {
    "local": (
        "spokesync.stores.sqlite:from_config",
        "spokesync.secrets.local:from_config",
        "spokesync.queue.local:from_config",
    ),
    "cloud": (
        "spokesync.stores.firestore:from_config",
        "spokesync.secrets.secret_manager:from_config",
        "spokesync.queue.cloud_tasks:from_config",
    ),
}


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


@dataclass
class Context:
    config: Config
    clock: Clock = field(default_factory=SystemClock)
    store: HubStore = field(init=False)
    secrets: SecretStore = field(init=False)
    queue: TaskQueue = field(init=False)
    # Progress of the runs going on in this process: the CLI's progress bar listens, the
    # local dashboard reads `live_runs` (spoke id -> latest report) for running spokes.
    progress_listeners: list[Callable[[RunProgress], None]] = field(default_factory=list)
    live_runs: dict[str, RunProgress] = field(default_factory=dict)
    # Progress also goes to the store's run record (status "running"), at most once a second per
    # run, so that other processes (the CLI, a dashboard served elsewhere) see it; the run's own
    # record replaces it when the run ends. run id -> (hub id, started at, monotonic time of the last write).
    _stored: dict[str, tuple[str, Any, float]] = field(default_factory=dict, repr=False)

    def run_progress(self, progress: RunProgress) -> None:
        if progress.phase == "done":
            self.live_runs.pop(progress.spoke_id, None)
            self._stored.pop(progress.run_id, None)
        else:
            self.live_runs[progress.spoke_id] = progress
            self._store_progress(progress)
        for listener in list(self.progress_listeners):
            listener(progress)

    STORE_PROGRESS_EVERY_S = 1.0

    def _store_progress(self, progress: RunProgress) -> None:
        """Write a running run's progress into its run record. Only once there is something to
        write (a run that only reads may end as one folded record under another id: it leaves no
        "running" record behind); the first report, then at most once a second, and the last."""
        import time

        from spokesync.model.hub import RunRecord

        if progress.phase != "writing" or progress.total <= 0:
            return
        now = time.monotonic()
        known = self._stored.get(progress.run_id)
        if known is not None and now - known[2] < self.STORE_PROGRESS_EVERY_S and progress.done < progress.total:
            return
        if known is None:
            spoke = self.store.get_spoke(progress.spoke_id)
            known = (spoke.hub_id if spoke is not None else "", self.clock.now(), now)
        self._stored[progress.run_id] = (known[0], known[1], now)
        try:
            self.store.put_run(RunRecord(
                id=progress.run_id, spoke_id=progress.spoke_id, hub_id=known[0], started_at=known[1],
                status="running", reason="syncing", progress={
                    "done": progress.done, "total": progress.total, "into_hub": progress.into_hub,
                    "into_spoke": progress.into_spoke}))
        except Exception:  # noqa: BLE001 - progress is for people; the run itself must not fail on it
            import logging

            logging.getLogger("spokesync.progress").warning("could not store a run's progress", exc_info=True)

    def connector(self, spoke: Spoke) -> SpokeConnector:
        from spokesync.connectors.registry import connector_for

        credential = self.store.get_credential(spoke.credential_id) if spoke.credential_id else None
        return connector_for(spoke, credential, self.secrets, self.config, self.clock)  # type: ignore[no-any-return]

    def object_type(self, spoke: Spoke) -> str:
        from spokesync.connectors.registry import object_type_of

        return object_type_of(spoke.kind)

    def credential_broken(self, credential_id: str, reason: str) -> None:
        from spokesync.service.credentials import mark_broken

        mark_broken(self, credential_id, reason)

    def run_task(self, task: SyncTask) -> Any:
        """What a queue does with a task: run the spoke's sync."""
        from spokesync.engine.runner import Runner

        return Runner(self).sync(task.spoke_id, reason=task.reason, dry_run=task.dry_run)


def build_context(
    config: Config | None = None,
    *,
    clock: Clock | None = None,
    store: HubStore | None = None,
    secrets: SecretStore | None = None,
    queue: TaskQueue | None = None,
) -> Context:
    config = config or Config.from_env()
    if config.backend not in BACKENDS:
        raise ValueError(f"SPOKESYNC_BACKEND must be one of {', '.join(BACKENDS)}, not {config.backend!r}")
    ctx = Context(config=config, clock=clock or SystemClock())
    if config.backend == "local":
        from spokesync.private_files import secure_data_dir

        secure_data_dir(config.data_dir)  # 0700 / 0600, tightened with a warning when looser
    store_f, secrets_f, queue_f = BACKENDS[config.backend]
    ctx.store = store if store is not None else _load(store_f)(config, ctx)
    ctx.secrets = secrets if secrets is not None else _load(secrets_f)(config, ctx)
    ctx.queue = queue if queue is not None else _load(queue_f)(config, ctx)
    return ctx


_CONTEXT: Context | None = None
_LOCK = threading.Lock()


def get_context() -> Context:
    """The process-wide Context, built on first use (clients once per instance)."""
    global _CONTEXT
    if _CONTEXT is None:
        with _LOCK:
            if _CONTEXT is None:
                _CONTEXT = build_context()
    return _CONTEXT


def set_context(ctx: Context | None) -> None:
    """Install (or clear) the process-wide Context: the local server and tests."""
    global _CONTEXT
    _CONTEXT = ctx
