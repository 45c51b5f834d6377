"""Ctrl-C of a real `spokesync sync` process: the run is recorded as interrupted,
its lease released, no traceback; the next sync starts at once and finishes.
Two syncs at once: the second says it was skipped and exits 3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spokesync.bootstrap import build_context
from spokesync.config import Config
from spokesync.connectors import exchange
from spokesync.engine.runner import Runner
from spokesync.sandbox.ews import EwsServer
from spokesync.service import hubs

KEY = "a2V5LWZvci10ZXN0cy1vbmx5LTMyLWJ5dGVzLWxvbmc="
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[dict[str, str], EwsServer, str]]:
    ews = EwsServer(users={"sync": "Cli-Pass-1"}).start()
    env = {**os.environ, "SPOKESYNC_DATA_DIR": str(tmp_path), "SPOKESYNC_SECRET_KEY": KEY,
           "SPOKESYNC_EXCHANGE_ALLOW_HTTP": "1", "SPOKESYNC_EXCHANGE_ALLOWED_CIDRS": "127.0.0.0/8",
           "PYTHONPATH": f"{ROOT / 'shared'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    config = replace(Config.from_env(), data_dir=str(tmp_path), secret_key=KEY, exchange_allow_http=True,
                     exchange_allowed_cidrs=("127.0.0.0/8",))
    ctx = build_context(config)
    cred = exchange.save_credential(ctx, "Exchange", {"ews_url": ews.url, "username": "EXAMPLE\\sync",
                                                      "version": "2016", "auth_type": "NTLM",
                                                      "mailbox": "shared@example.com"}, "Cli-Pass-1")
    folder = ews.public_folder("Big")
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)
    for i in range(1500):
        begin = start + timedelta(hours=i)
        ews.user_create(folder, f"Event {i}", begin, begin + timedelta(minutes=30))
    hub = hubs.create_hub(ctx, "Team")
    spoke = hubs.add_spoke(ctx, hub.id, "Big folder", "exchange", {"folder_id": folder.id, "public": True}, cred.id)
    try:
        yield env, ews, spoke.id
    finally:
        ews.stop()


def cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "spokesync.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_ctrl_c_releases_the_spoke_and_the_next_sync_runs_at_once(setup: tuple[dict[str, str], EwsServer, str]) -> None:
    env, ews, spoke_id = setup
    proc = cli(env, "sync", "Big folder")
    deadline = time.monotonic() + 60
    while ews.calls("GetItem") == 0 and time.monotonic() < deadline:  # the run is reading the folder
        time.sleep(0.02)
    assert ews.calls("GetItem") > 0
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "nothing was lost" in err
    ctx = build_context(replace(Config.from_env(), data_dir=env["SPOKESYNC_DATA_DIR"], secret_key=KEY))
    spoke = ctx.store.get_spoke(spoke_id)
    assert spoke is not None and spoke.lease_owner is None
    last = ctx.store.get_run(spoke.last_run_id or "")
    assert last is not None and last.status == "interrupted" and "Nothing was lost" in last.reason
    again = cli(env, "sync", "Big folder")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, (out, err)
    assert "skipped" not in out and ctx.store.count_hub_items(spoke.hub_id) == 1500


def test_a_second_sync_while_one_runs_is_skipped_with_exit_code_3(
        setup: tuple[dict[str, str], EwsServer, str]) -> None:
    env, _ews, spoke_id = setup
    ctx = build_context(replace(Config.from_env(), data_dir=env["SPOKESYNC_DATA_DIR"], secret_key=KEY))
    now = datetime.now(UTC)
    ctx.store.acquire_lease(spoke_id, "other-run", now, 600)  # another process holds the spoke
    proc = cli(env, "sync", "Big folder")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    assert "another run of this spoke is in progress" in out and "try again" in err
    assert "--clear-lease" in err
    skipped = ctx.store.get_run("other-run-skipped")
    assert skipped is not None and skipped.status == "skipped"  # recorded (folded per holder)
    # resume refuses to clear a live mark without being told; with --clear-lease it clears it
    proc = cli(env, "resume", "Big folder")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "marked as in progress" in err and "Traceback" not in err
    proc = cli(env, "resume", "Big folder", "--clear-lease")
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    spoke = ctx.store.get_spoke(spoke_id)
    assert spoke is not None and spoke.lease_owner is None
    assert Runner(ctx).sync(spoke_id).status != "skipped"
