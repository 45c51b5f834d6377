"""Local stand-ins for Google Cloud, started once per test session.

- the official Firestore emulator (the JAR, started with java on a free port,
  emptied between tests with its DELETE endpoint, killed at the end);
- the in-repository Secret Manager gRPC server;
- gcloud-tasks-emulator, in process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from spokesync.sandbox import cloud
from spokesync.sandbox.cloud import FIRESTORE_JAR, FunctionServer, TasksEmulator, wait_http
from tests.helpers import free_port

__all__ = ["FIRESTORE_JAR", "PROJECT", "FirestoreEmulator", "FunctionServer", "TasksEmulator", "cloud_env",
           "wait_http"]

PROJECT = "spokesync-test"


class FirestoreEmulator(cloud.FirestoreEmulator):
    def reset(self, project: str = PROJECT) -> None:
        super().reset(project)


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
