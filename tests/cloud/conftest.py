"""Local stand-ins for Google Cloud, started once per test session.

- the official Firestore emulator (the JAR, started with java on a free port,
  emptied between tests with its DELETE endpoint, killed at the end);
- the in-repository Secret Manager gRPC server;
- gcloud-tasks-emulator, in process.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port

FIRESTORE_JAR = Path(
    os.environ.get(
        "FIRESTORE_EMULATOR_JAR",
        "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar",
    )
)
PROJECT = "spokesync-test"




def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - local test server
                if response.status < 500:
                    return
        except OSError:
            if time.monotonic() > deadline:
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
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_http(f"http://{self.host}/", timeout=60)
        return self

    def reset(self, project: str = PROJECT) -> None:
        url = f"http://{self.host}/emulator/v1/projects/{project}/databases/(default)/documents"
        urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10).read()  # noqa: S310

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    if not FIRESTORE_JAR.exists():
        pytest.skip(f"Firestore emulator JAR not found at {FIRESTORE_JAR}")
    emulator = FirestoreEmulator().start()
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
    try:
        yield emulator
    finally:
        emulator.stop()
        if previous is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous


@pytest.fixture
def firestore(firestore_emulator: FirestoreEmulator) -> Iterator[FirestoreEmulator]:
    """The emulator, emptied before the test."""
    firestore_emulator.reset()
    yield firestore_emulator


@pytest.fixture(scope="session")
def secret_manager_server() -> Iterator[object]:
    from spokesync.sandbox.secret_manager import SecretManagerServer

    server = SecretManagerServer().start()
    yield server
    server.stop()


class TasksEmulator:
    """gcloud-tasks-emulator in process. It delivers HTTP tasks for real but
    does not dedupe task names; `dedupe_names=True` adds the service's
    ALREADY_EXISTS for a name seen before, to test what callers do with it."""

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
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def tasks_emulator() -> Iterator[TasksEmulator]:
    emulator = TasksEmulator(f"projects/{PROJECT}/locations/us-central1/queues/q{free_port()}", dedupe_names=True).start()
    yield emulator
    emulator.stop()



def cloud_env(firestore_emulator: FirestoreEmulator, secret_manager_endpoint: str, tasks_endpoint: str, queue: str,
              prefix: str, admin_token: str, task_token: str, **settings: str) -> dict[str, str]:
    """The environment of a function served in the cloud backend against the local emulators
    (`settings`: further SPOKESYNC_* variables, without the prefix)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": "shared:.",
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host,
        "SPOKESYNC_BACKEND": "cloud",
        "SPOKESYNC_AUTH_MODE": "token",
        "SPOKESYNC_ADMIN_TOKEN": admin_token,
        "SPOKESYNC_TASK_TOKEN": task_token,
        "SPOKESYNC_GCP_PROJECT": PROJECT,
        "SPOKESYNC_FIRESTORE_PREFIX": prefix,
        "SPOKESYNC_SECRET_MANAGER_ENDPOINT": secret_manager_endpoint,
        "SPOKESYNC_SECRET_PREFIX": prefix.replace("_", "-"),
        "SPOKESYNC_TASKS_QUEUE": queue,
        "SPOKESYNC_TASKS_ENDPOINT": tasks_endpoint,
    }
    env.update({f"SPOKESYNC_{name.upper()}": value for name, value in settings.items()})
    return env

class FunctionServer:
    """One function served by functions-framework in its own process, as Cloud Run serves it."""

    def __init__(self, target: str, source: str, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.target = target
        self.source = source
        self.env = env
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> FunctionServer:
        import sys

        binary = Path(sys.executable).parent / "functions-framework"
        self.started_at = time.monotonic()
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(binary), "--target", self.target, "--source", self.source, "--port", str(self.port),
             "--host", "127.0.0.1"],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.target} did not start: {self.log_path.read_text()[-2000:]}") from None
                time.sleep(0.05)

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
