"""The self-test against a real Google account (opt-in).

Run with `pytest --live tests/live` and `SPOKESYNC_LIVE_GOOGLE=/path/to/live.json`, where the file is either
`{"service_account_key": {...key JSON...}, "subject": "user@your-domain"}` (subject optional) or
`{"refresh_token": "...", "client_id": "...", "client_secret": "..."}`. It works in a scratch calendar it
creates and removes and touches nothing else. Without both, the test is skipped: "no live credentials given".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from spokesync.bootstrap import build_context
from spokesync.config import Config
from spokesync.connectors.google.auth import save_oauth_credential, save_service_account_credential
from spokesync.queue.local import LocalTaskQueue
from spokesync.secrets.local import LocalSecretStore
from spokesync.service import selftest
from spokesync.stores.sqlite import SqliteHubStore

pytestmark = pytest.mark.live


def _live_file(request: pytest.FixtureRequest) -> Path:
    path = os.environ.get("SPOKESYNC_LIVE_GOOGLE", "")
    if not request.config.getoption("--live") or not path:
        pytest.skip("no live credentials given")
    return Path(path)


def test_the_self_test_passes_against_a_real_google_account(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    given = json.loads(_live_file(request).read_text())
    config = Config(data_dir=str(tmp_path), google_client_id=given.get("client_id", ""),
                    google_client_secret=given.get("client_secret", ""),
                    webhook_url=os.environ.get("SPOKESYNC_LIVE_WEBHOOK_URL", ""))
    secrets = LocalSecretStore.open(str(tmp_path / "s.enc"), key_file=str(tmp_path / "s.key"))
    ctx = build_context(config, store=SqliteHubStore(":memory:"), secrets=secrets, queue=LocalTaskQueue())
    if "service_account_key" in given:
        save_service_account_credential(ctx.store, secrets, "live", "Live", given["service_account_key"],
                                        subject=given.get("subject", ""))
    else:
        save_oauth_credential(ctx.store, secrets, "live", "Live", given["refresh_token"])
    report = selftest.run(ctx, "live")
    print(report.text())  # the record of what real Google does, for the issue
    assert report.cleaned_up, report.text()
    assert report.ok, report.text()
