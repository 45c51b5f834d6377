"""Shared helpers for the cloud benchmarks: the Firestore emulator JAR on a free port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import bench._common  # noqa: F401 - puts shared/ on sys.path

JAR = Path(os.environ.get("FIRESTORE_EMULATOR_JAR",
                          "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"))
PROJECT = "spokesync-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Emulator:
    def __init__(self) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Emulator:
        if not JAR.exists():
            raise SystemExit(f"the Firestore emulator JAR is missing: {JAR}")
        self.process = subprocess.Popen(
            [shutil.which("java") or "java", "-cp", str(JAR),
             "com.google.cloud.datastore.emulator.firestore.CloudFirestore", "start", "--host=127.0.0.1",
             f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/", timeout=1).read()  # noqa: S310 - local emulator
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        os.environ["FIRESTORE_EMULATOR_HOST"] = self.host  # read by google-cloud-firestore itself
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
