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

    def run_progress(self, progress: RunProgress) -> None:
        if progress.phase == "done":
            self.live_runs.pop(progress.spoke_id, None)
        else:
            self.live_runs[progress.spoke_id] = progress
        for listener in list(self.progress_listeners):
            listener(progress)

    def connector(self, spoke: Spoke) -> SpokeConnector:
        from spokesync.connectors.registry import connector_for

        credential = self.store.get_credential(spoke.credential_id) if spoke.credential_id else None
        return connector_for(spoke, credential, self.secrets, self.config)  # type: ignore[no-any-return]

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
