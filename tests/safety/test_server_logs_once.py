"""The local server writes each log line once, in one format chosen by the
environment: plain lines for a person at a terminal, JSON for Cloud Logging."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_each_request_is_logged_once_in_the_chosen_format(tmp_path: Path, fmt: str) -> None:
    port = free_port()
    env = {**os.environ, "SPOKESYNC_DATA_DIR": str(tmp_path), "SPOKESYNC_LOG_FORMAT": fmt,
           "PYTHONPATH": f"{ROOT / 'shared'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "spokesync.cli", "serve", "--port", str(port), "--poll", "3600"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert requests.get(f"http://127.0.0.1:{port}/setup/login", timeout=5).status_code == 200
        time.sleep(0.5)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    lines = [line for line in (out + err).splitlines() if "GET /setup/login" in line]
    assert len(lines) == 1, lines
    if fmt == "json":
        assert json.loads(lines[0])["logger"] == "werkzeug"
    else:
        assert not lines[0].startswith("{") and "INFO" in lines[0]
    assert "Traceback" not in err
