"""A sync's progress is seen outside the process that runs it: the run keeps its record in the
store current ("running", done of total), so `spokesync sync` (following a busy spoke),
`spokesync status` / `--watch` and the dashboard's `/setup/live` of another process show it.
Here two Contexts on one SQLite store stand for the two processes (the local server's queue
and the CLI); the running one is held at half way until the other has seen its progress."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spokesync import cli
from spokesync.bootstrap import build_context
from spokesync.connectors import memory_registry
from spokesync.engine.runner import Runner
from spokesync.model.event import Event
from spokesync.model.hub import RunRecord
from spokesync.ports import RunProgress
from spokesync.service import hubs

KEY = "k" * 43 + "="
N = 600


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SPOKESYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPOKESYNC_SECRET_KEY", KEY)
    memory_registry.CALENDARS.clear()
    yield tmp_path
    memory_registry.CALENDARS.clear()


def _hub_with_items(n: int) -> tuple[Any, str]:
    ctx = build_context()
    hub = hubs.create_hub(ctx, "Team")
    spoke = hubs.add_spoke(ctx, hub.id, "office", "memory", {"calendar": "a"}, options={"direction": "two_way"})
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    for i in range(n):
        memory_registry.calendar("a").user_create(
            Event(title=f"meeting {i}", start=start + timedelta(hours=i), end=start + timedelta(hours=i, minutes=30)))
    return ctx, spoke.id


class HeldAtHalfWay:
    """A progress listener of the running process: at the first report past half way it waits
    until the other process has seen that progress (or 20 s)."""

    def __init__(self) -> None:
        self.seen = threading.Event()
        self.held = threading.Event()

    def __call__(self, progress: RunProgress) -> None:
        if progress.phase == "writing" and progress.total and progress.done * 2 >= progress.total \
                and not self.held.is_set():
            self.held.set()
            self.seen.wait(20)


def _run_elsewhere(ctx: Any, spoke_id: str) -> tuple[threading.Thread, list[RunRecord]]:
    done: list[RunRecord] = []
    thread = threading.Thread(target=lambda: done.append(Runner(ctx).sync(spoke_id, reason="manual")))
    thread.start()
    return thread, done


def test_status_and_the_dashboard_of_another_process_show_a_running_sync(data_dir: Path) -> None:
    running, spoke_id = _hub_with_items(N)
    running.STORE_PROGRESS_EVERY_S = 0.0  # type: ignore[misc]  # every report reaches the store here
    hold = HeldAtHalfWay()
    running.progress_listeners.append(hold)
    thread, finished = _run_elsewhere(running, spoke_id)
    try:
        assert hold.held.wait(30)
        other = build_context()  # another process: nothing in its memory about the run
        assert other.live_runs == {}
        status = hubs.spoke_status(other, hubs.get_spoke(other, spoke_id))
        assert status["running"] is True
        progress = status["progress"]
        assert progress["phase"] == "writing" and progress["total"] == N and N // 2 <= progress["done"] < N
        record = other.store.get_run(progress["run_id"])
        assert record is not None and record.status == "running" and record.progress["total"] == N

        out = io.StringIO()
        import contextlib

        with contextlib.redirect_stdout(out):
            cli._print_status(other, hubs.status(other))
        assert f"  office: syncing: {progress['done']:,} of {N:,} items written ({progress['done'] / N:.0%})" \
            in out.getvalue().splitlines()

        watched = io.StringIO()
        assert cli._watch(other, 0.01, watched, rounds=2) == 0
        assert "office: syncing:" in watched.getvalue() and "Hub 'Team'" in watched.getvalue()

        # the run history lists the running run as running, not as stopped
        history = hubs.run_history(other, spoke_id=spoke_id)
        assert history[0]["status"] == "running" and history[0]["progress"]["total"] == N
    finally:
        hold.seen.set()
        thread.join(60)
    assert finished and finished[0].status == "ok"
    after = build_context()
    record = after.store.get_run(finished[0].id)
    assert record is not None and record.status == "ok" and record.progress == {}  # the run's own record replaced it
    assert hubs.spoke_status(after, hubs.get_spoke(after, spoke_id))["progress"] is None


def test_sync_of_a_busy_spoke_follows_the_other_processes_run(data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    running, spoke_id = _hub_with_items(N)
    running.STORE_PROGRESS_EVERY_S = 0.0  # type: ignore[misc]
    hold = HeldAtHalfWay()
    running.progress_listeners.append(hold)
    monkeypatch.setattr(cli, "FOLLOW_EVERY_S", 0.02)
    shown = cli._progress_of

    def seen(status: dict[str, Any]) -> RunProgress | None:
        progress = shown(status)
        if progress is not None and progress.phase == "writing" and progress.done:
            hold.seen.set()  # the follower saw the other run past half way: let it finish
        return progress

    monkeypatch.setattr(cli, "_progress_of", seen)
    thread, finished = _run_elsewhere(running, spoke_id)
    try:
        assert hold.held.wait(30)
        assert cli.main(["sync", "office"]) == cli.EXIT_BUSY
    finally:
        hold.seen.set()
        thread.join(60)
    err = capsys.readouterr().err
    assert "office: another run is going (started elsewhere); following it" in err
    assert f"of {N:,} items written" in err  # its progress, read from the store
    assert f"office: the other run done: {N:,} into the hub, 0 into the spoke" in err
    assert "not synced by this command: another run of 'office' was going" in err
    assert finished[0].status == "ok"


def test_a_running_record_left_by_a_dead_process_reads_as_stopped(data_dir: Path) -> None:
    ctx, spoke_id = _hub_with_items(0)
    spoke = hubs.get_spoke(ctx, spoke_id)
    ctx.store.put_run(RunRecord(id="dead-run", spoke_id=spoke_id, hub_id=spoke.hub_id,
                                started_at=datetime.now(UTC) - timedelta(hours=1), status="running",
                                progress={"done": 5, "total": 10, "into_hub": 5, "into_spoke": 0}))
    history = hubs.run_history(ctx, spoke_id=spoke_id)
    assert history[0]["status"] == "interrupted"
    assert history[0]["reason"].startswith("the process running it stopped before the end (nothing was lost")
    assert hubs.spoke_status(ctx, spoke)["progress"] is None  # no lease: nothing is running
