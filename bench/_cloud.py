"""Shared helpers for the cloud benchmarks: the local stand-ins of `spokesync.sandbox.cloud`, with
the Firestore emulator as a context manager that points google-cloud-firestore at it."""

from __future__ import annotations

import os
from pathlib import Path

import bench._common  # noqa: F401 - puts shared/ on sys.path
from spokesync.sandbox import cloud
from spokesync.sandbox.cloud import FIRESTORE_JAR as JAR
from spokesync.sandbox.cloud import TasksEmulator, free_port

PROJECT = "spokesync-bench"
ROOT = Path(__file__).resolve().parent.parent


class Emulator(cloud.FirestoreEmulator):
    def __enter__(self) -> Emulator:
        if not JAR.exists():
            raise SystemExit(f"the Firestore emulator JAR is missing: {JAR}")
        self.start()
        os.environ["FIRESTORE_EMULATOR_HOST"] = self.host  # read by google-cloud-firestore itself
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FunctionServer(cloud.FunctionServer):
    """A function served from the repository's root."""

    def __init__(self, target: str, source: str, env: dict[str, str], log_path: Path, port: int) -> None:
        super().__init__(target, source, env, log_path, port, cwd=ROOT)


__all__ = ["JAR", "PROJECT", "Emulator", "FunctionServer", "TasksEmulator", "free_port"]
