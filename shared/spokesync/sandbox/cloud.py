"""Local stand-ins for Google Cloud, for the tests and the cloud benchmarks: the official Firestore
emulator (the JAR, started with java on a free port, emptied with its DELETE endpoint),
gcloud-tasks-emulator in this process, and a function served by functions-framework in its own
process, as Cloud Run serves it. (The Secret Manager stand-in is `spokesync.sandbox.secret_manager`.)"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

FIRESTORE_JAR = Path(os.environ.get(
    "FIRESTORE_EMULATOR_JAR",
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - a local server
                if response.status < 500:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _wait_port(port: int, timeout: float, alive: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if (alive is not None and not alive()) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class FirestoreEmulator:
    def __init__(self) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> FirestoreEmulator:
        java = shutil.which("java") or "java"
        self.process = subprocess.Popen(
            [java, "-cp", str(FIRESTORE_JAR), "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
             "start", "--host=127.0.0.1", f"--port={self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://{self.host}/", timeout=60)
        return self

    def reset(self, project: str) -> None:
        url = f"http://{self.host}/emulator/v1/projects/{project}/databases/(default)/documents"
        urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10).read()  # noqa: S310

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


class TasksEmulator:
    """gcloud-tasks-emulator in process. It delivers HTTP tasks for real but does not dedupe task
    names; `dedupe_names=True` adds the service's ALREADY_EXISTS for a name seen before, to test
    what callers do with it."""

    def __init__(self, queue: str, max_retries: int = 3, dedupe_names: bool = False) -> None:
        from gcloud_tasks_emulator.server import create_server

        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.queue = queue
        self.server = create_server("127.0.0.1", self.port, default_queue_names=[queue], max_retries=max_retries)
        if dedupe_names:
            from google.api_core.exceptions import AlreadyExists

            state = self.server._state
            original = state.create_task
            seen: set[str] = set()

            def create_task(queue_name: str, task: object) -> object:
                name = getattr(task, "name", "")
                if name and name in seen:
                    raise AlreadyExists(f"Requested entity already exists: {name}")
                if name:
                    seen.add(name)
                return original(queue_name, task)

            state.create_task = create_task

    def start(self) -> TasksEmulator:
        self.server.start()
        _wait_port(self.port, 10)
        return self

    def stop(self) -> None:
        self.server.stop()


class FunctionServer:
    """One function served by functions-framework in its own process, as Cloud Run serves it."""

    def __init__(self, target: str, source: str, env: dict[str, str], log_path: Path, port: int | None = None,
                 cwd: Path | None = None) -> None:
        self.target = target
        self.source = source
        self.env = env
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self, timeout: float = 60) -> FunctionServer:
        binary = Path(sys.executable).parent / "functions-framework"
        self.started_at = time.monotonic()
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(binary), "--target", self.target, "--source", self.source, "--port", str(self.port),
             "--host", "127.0.0.1"], env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT)
        process = self.process
        try:
            _wait_port(self.port, timeout, alive=lambda: process.poll() is None)
        except OSError:
            raise RuntimeError(f"{self.target} did not start: {self.log_path.read_text()[-2000:]}") from None
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
            self._log.close()
