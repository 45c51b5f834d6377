"""One-machine mode: one local web server for all three functions.

It mounts the functions' own handlers (`functions/<name>/main.py`, loaded
from the checkout) under one Flask app, runs the in-process task queue's
workers and a polling loop (due polls, push-channel renewal). Local
authentication: an admin token for setup and a task token for sync_spoke and
the scheduler, generated on first start and kept in the data directory (0600).
The admin token is shown once, when it is created (`LocalTokens.created`).

Every route passes the front door first (`web.gate.refuse`: the Host must name
this server, a declared body over the limit is refused unread), and the
access log masks codes and tokens (`logs.mask_access_log`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import threading
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from spokesync.config import Config

if TYPE_CHECKING:
    from flask import Flask

    from spokesync.bootstrap import Context

log = logging.getLogger("spokesync.local")

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
FUNCTIONS = {"setup": ("setup",), "sync_spoke": ("sync_spoke", "scheduler"), "push_webhook": ("push_webhook",)}


def load_function(name: str) -> ModuleType:
    """A function's main.py, loaded from the checkout as module `functions_<name>`."""
    path = Path(os.environ.get("SPOKESYNC_FUNCTIONS_DIR", FUNCTIONS_DIR)) / name / "main.py"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run spokesync from its checkout")
    spec = importlib.util.spec_from_file_location(f"functions_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Token files this process created (paths): the admin token is printed only when it is new.
CREATED: set[str] = set()


def _token_file(config: Config, name: str) -> str:
    path = Path(config.data_dir) / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    CREATED.add(str(path))
    return token


def admin_token_line(config: Config) -> str:
    """What `spokesync serve` says about the admin token: the token itself only when it was just created."""
    path = Path(config.data_dir) / "admin.token"
    if str(path) in CREATED:
        return f"admin token (created now and shown only this once; also kept in {path}): {config.admin_token}"
    if not path.exists():
        return "admin token: the one in SPOKESYNC_ADMIN_TOKEN"
    return f"admin token: in {path} (readable by you only)"


def local_config(config: Config | None = None, port: int | None = None) -> Config:
    """The configuration with local tokens filled in and URLs pointing at this server."""
    config = config or Config.from_env()
    from spokesync.private_files import secure_data_dir

    secure_data_dir(config.data_dir)
    changes: dict[str, Any] = {}
    if not config.admin_token:
        changes["admin_token"] = _token_file(config, "admin.token")
    if not config.task_token:
        changes["task_token"] = _token_file(config, "task.token")
    if port is not None and config.public_url == Config().public_url:
        changes["public_url"] = f"http://127.0.0.1:{port}"
    return replace(config, **changes)


def create_app(ctx: Context) -> Flask:
    from flask import Flask, redirect, request

    from spokesync import logs
    from spokesync.web import gate, security

    app = Flask("spokesync")
    app.config["MAX_CONTENT_LENGTH"] = security.MAX_BODY_BYTES
    handlers = {target: getattr(load_function(fn), target) for fn, targets in FUNCTIONS.items() for target in targets}
    logs.mask_access_log()

    @app.before_request
    def front_door() -> Any:
        # every route: the Host names this server (DNS rebinding), a declared oversized body is refused unread
        return gate.refuse(ctx.config, request)

    def call(target: str) -> Any:
        return handlers[target](request)

    @app.route("/")
    def index() -> Any:
        return redirect("/setup/")

    @app.route("/api/<path:rest>", methods=["GET", "POST", "PATCH", "DELETE"])
    @app.route("/setup/", defaults={"rest": ""}, methods=["GET", "POST"])
    @app.route("/setup/<path:rest>", methods=["GET", "POST", "PATCH", "DELETE"])
    def setup(rest: str) -> Any:
        return call("setup")

    @app.route("/sync_spoke", methods=["POST"])
    def sync_spoke() -> Any:
        return call("sync_spoke")

    @app.route("/scheduler", methods=["POST"])
    def scheduler() -> Any:
        return call("scheduler")

    @app.route("/push_webhook", methods=["GET", "POST"])
    @app.route("/push_webhook/graph", methods=["GET", "POST"])
    @app.route("/push_webhook/graph/lifecycle", methods=["GET", "POST"])
    def push_webhook() -> Any:
        return call("push_webhook")

    @app.route("/healthz")
    def healthz() -> Any:
        return {"ok": True}

    return app


class PollingLoop:
    """Every `interval_s`: enqueue due polls and renew expiring push channels."""

    def __init__(self, ctx: Context, interval_s: float = 30.0) -> None:
        self.ctx = ctx
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="spokesync-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        from spokesync.service import scheduler

        while not self._stop.is_set():
            try:
                scheduler.tick(self.ctx, tick_s=self.interval_s)
            except Exception:  # noqa: BLE001 - the loop must survive one bad tick
                log.exception("polling tick failed")
            self._stop.wait(self.interval_s)


def serve(ctx: Context, host: str = "127.0.0.1", port: int = 8080, poll_s: float = 30.0) -> None:
    """Run the local server until interrupted (Werkzeug's threaded server)."""
    from werkzeug.serving import make_server

    from spokesync import logs
    from spokesync.bootstrap import set_context

    logs.setup(ctx.config.gcp_project)  # one handler, one line per record, before anything logs
    set_context(ctx)
    queue: Any = ctx.queue
    queue.start(workers=2)
    poller = PollingLoop(ctx, poll_s)
    poller.start()
    server = make_server(host, port, create_app(ctx), threaded=True)
    try:
        server.serve_forever()
    finally:
        poller.stop()
        queue.stop()
