"""The self-test against a real Exchange server (opt-in).

Run with `pytest --live tests/live` and `SPOKESYNC_LIVE_EXCHANGE=/path/to/live.json`, where the file is
`{"ews_url": "https://mail.example.com/EWS/Exchange.asmx", "username": "EXAMPLE\\\\user", "password": "...",
"mailbox": "shared@example.com", "version": "2016", "auth_type": "NTLM"}` (version and auth_type optional;
add `"allowed_ports": "8443"` or private ranges through the usual SPOKESYNC_* settings when needed). It
works in a calendar folder it creates in the mailbox and deletes, and touches nothing else. Without both,
the test is skipped: "no live credentials given".
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from spokesync.bootstrap import build_context
from spokesync.config import Config
from spokesync.connectors import exchange
from spokesync.queue.local import LocalTaskQueue
from spokesync.secrets.local import LocalSecretStore
from spokesync.service import selftest
from spokesync.stores.sqlite import SqliteHubStore

pytestmark = pytest.mark.live


def _live_file(request: pytest.FixtureRequest) -> Path:
    path = os.environ.get("SPOKESYNC_LIVE_EXCHANGE", "")
    if not request.config.getoption("--live") or not path:
        pytest.skip("no live credentials given")
    return Path(path)


def test_the_self_test_passes_against_a_real_exchange_server(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    given = json.loads(_live_file(request).read_text())
    password = given.pop("password")
    config = replace(Config.from_env(), data_dir=str(tmp_path))
    secrets = LocalSecretStore.open(str(tmp_path / "s.enc"), key_file=str(tmp_path / "s.key"))
    ctx = build_context(config, store=SqliteHubStore(":memory:"), secrets=secrets, queue=LocalTaskQueue())
    credential = exchange.save_credential(ctx, "Live", given, password)
    report = selftest.run(ctx, credential.id)
    print(report.text())  # the record of what the real server does, for the issue
    assert report.cleaned_up, report.text()
    assert report.ok, report.text()
