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


class TasksEmulator:
    """gcloud-tasks-emulator in this process (it POSTs each HTTP task to its URL), as tests/cloud starts it."""

    def __init__(self, queue: str) -> None:
        from gcloud_tasks_emulator.server import create_server

        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.server = create_server("127.0.0.1", self.port, default_queue_names=[queue], max_retries=3)

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


class FunctionServer:
    """One function served by functions-framework in its own process, as Cloud Run serves it."""

    def __init__(self, target: str, source: str, env: dict[str, str], log_path: Path, port: int) -> None:
        self.target, self.source, self.env, self.log_path, self.port = target, source, env, log_path, port
        self.url = f"http://127.0.0.1:{port}/"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> FunctionServer:
        import sys

        binary = Path(sys.executable).parent / "functions-framework"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(binary), "--target", self.target, "--source", self.source, "--port", str(self.port),
             "--host", "127.0.0.1"], env=self.env, cwd=Path(__file__).resolve().parent.parent,
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
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
