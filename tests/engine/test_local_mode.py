"""One-machine mode: the CLI, the encrypted secret file, and the local server
mounting the three functions' handlers over real HTTP."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from spokesync import cli
from spokesync.bootstrap import build_context, set_context
from spokesync.config import Config
from spokesync.connectors import memory_registry
from spokesync.model.event import Event
from spokesync.ports import SecretNotFound
from spokesync.secrets.local import LocalSecretStore


def ev(title: str) -> Event:
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    return Event(title=title, start=start, end=start + timedelta(hours=1))


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SPOKESYNC_DATA_DIR", str(tmp_path))
    memory_registry.CALENDARS.clear()
    yield tmp_path
    memory_registry.CALENDARS.clear()


def test_secret_file_is_encrypted_and_private(tmp_path: Path) -> None:
    store = LocalSecretStore.open(str(tmp_path / "secrets.enc"), key_file=str(tmp_path / "secret.key"))
    store.put("exchange-c1", "correct horse battery staple")
    raw = (tmp_path / "secrets.enc").read_bytes()
    assert b"correct horse" not in raw
    for name in ("secrets.enc", "secret.key"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    again = LocalSecretStore.open(str(tmp_path / "secrets.enc"), key_file=str(tmp_path / "secret.key"))
    assert again.get("exchange-c1") == "correct horse battery staple"
    again.delete("exchange-c1")
    with pytest.raises(SecretNotFound):
        again.get("exchange-c1")
    wrong = LocalSecretStore.open(str(tmp_path / "secrets.enc"), key="A" * 43 + "=")
    with pytest.raises(RuntimeError, match="cannot be decrypted"):
        wrong.get("x")


def test_cli_creates_a_hub_and_syncs_two_memory_spokes(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["hub", "create", "Team"]) == 0
    assert cli.main(["spoke", "add", "Team", "google-ish", "--kind", "memory", "--address", "calendar=a",
                     "--two-way"]) == 0
    assert cli.main(["spoke", "add", "Team", "exchange-ish", "--kind", "memory", "--address", "calendar=b",
                     "--two-way", "--option", "filters.categories=[\"team\"]", "days_future=365"]) == 0
    memory_registry.calendar("a").user_create(replace(ev("planning"), categories=("team",)))
    capsys.readouterr()
    assert cli.main(["sync", "--all"]) == 0
    out = capsys.readouterr().out
    assert "google-ish: done in " in out and ": 1 into the hub, 0 into the spoke" in out
    assert [e.title for e in memory_registry.calendar("b").events()] == ["planning"]
    assert cli.main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    spokes = {s["name"]: s for s in status[0]["spokes"]}
    assert status[0]["items"] == 1 and spokes["exchange-ish"]["linked_items"] == 1
    assert spokes["exchange-ish"]["options"]["filters"]["categories"] == ["team"]
    assert cli.main(["sync", "exchange-ish", "--dry-run"]) == 0
    assert "nothing to do: the spoke and the hub agree" in capsys.readouterr().out


def test_cli_reports_bad_input_clearly(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["spoke", "add", "Nowhere", "x", "--kind", "memory"]) == 2
    assert "no hub named or numbered 'Nowhere'" in capsys.readouterr().err
    cli.main(["hub", "create", "Team"])
    assert cli.main(["spoke", "add", "Team", "x", "--kind", "carrier-pigeon"]) == 2
    assert "unknown spoke kind 'carrier-pigeon'" in capsys.readouterr().err
    assert cli.main(["spoke", "add", "Team", "x", "--kind", "memory", "--option", "direction=sideways"]) == 2
    assert "Choose whether the hub may also write into this spoke (two-way) or not. (option direction)" \
        in capsys.readouterr().err


def test_local_server_mounts_the_functions(data_dir: Path) -> None:
    from werkzeug.serving import make_server

    from spokesync.local_server import create_app, local_config
    from spokesync.service import hubs

    config = local_config(Config.from_env())
    assert stat.S_IMODE(os.stat(data_dir / "admin.token").st_mode) == 0o600
    ctx = build_context(config)
    set_context(ctx)
    server = make_server("127.0.0.1", 0, create_app(ctx), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        admin = {"Authorization": f"Bearer {config.admin_token}"}
        assert requests.get(f"{base}/api/hubs", timeout=5).status_code == 401
        created = requests.post(f"{base}/api/hubs", json={"name": "Team"}, headers=admin, timeout=5)
        assert created.status_code in (200, 201), created.text
        hub_id = created.json()["id"] if "id" in created.json() else created.json()["hub"]["id"]
        spoke = hubs.add_spoke(ctx, hub_id, "a", "memory", {"calendar": "a"})
        memory_registry.calendar("a").user_create(ev("from the local server"))
        task = {"Authorization": f"Bearer {config.task_token}"}
        assert requests.post(f"{base}/sync_spoke", json={"spoke_id": spoke.id}, timeout=5).status_code == 401
        ran = requests.post(f"{base}/sync_spoke", json={"spoke_id": spoke.id}, headers=task, timeout=30)
        assert ran.status_code == 200 and ran.json()["counts"]["hub_created"] == 1
        assert requests.post(f"{base}/scheduler", json={"job": "poll"}, headers=task, timeout=30).status_code == 200
        forged = requests.post(f"{base}/push_webhook", headers={"X-Goog-Channel-ID": "nope",
                                                                "X-Goog-Resource-State": "exists"}, timeout=5)
        assert 400 <= forged.status_code < 500
        assert config.admin_token not in created.text and config.task_token not in ran.text
    finally:
        server.shutdown()
        set_context(None)


def test_hub_create_leaves_only_private_files(data_dir: Path) -> None:
    """0700 folder, 0600 files: the database and its -wal/-shm journals included (umask 022)."""
    old = os.umask(0o022)
    try:
        assert cli.main(["hub", "create", "Private"]) == 0
    finally:
        os.umask(old)
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert {"hub.sqlite3", "hub.sqlite3-wal", "hub.sqlite3-shm"} <= {p.name for p in files}
    assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_a_looser_existing_file_is_tightened_on_start_with_a_warning(data_dir: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    assert cli.main(["hub", "create", "Old"]) == 0
    os.chmod(data_dir, 0o755)
    os.chmod(data_dir / "hub.sqlite3", 0o644)
    (data_dir / "admin.token").write_text("copied-from-a-backup\n")
    os.chmod(data_dir / "admin.token", 0o664)
    with caplog.at_level("WARNING", logger="spokesync.files"):
        assert cli.main(["hub", "list"]) == 0
    assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(data_dir / "hub.sqlite3").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(data_dir / "admin.token").st_mode) == 0o600
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "hub.sqlite3 was readable by other users" in warned and "admin.token" in warned
    assert "copied-from-a-backup" not in warned


def test_the_admin_token_is_shown_once_at_creation(data_dir: Path) -> None:
    from spokesync.local_server import admin_token_line, local_config

    first = local_config(Config.from_env())
    assert first.admin_token in admin_token_line(first) and "only this once" in admin_token_line(first)
    import spokesync.local_server as local_server

    local_server.CREATED.clear()  # a later start of spokesync: a new process
    again = local_config(Config.from_env())
    assert again.admin_token == first.admin_token
    line = admin_token_line(again)
    assert again.admin_token not in line and str(data_dir / "admin.token") in line
