"""The run's garbage-collector setting: raised for the run, put back after it."""

from __future__ import annotations

import gc
import threading
from datetime import UTC, datetime, timedelta

import pytest

from spokesync.engine import collecting
from spokesync.engine.collecting import RUN_GEN2_THRESHOLD, fewer_full_collections
from spokesync.model.event import Event
from tests.engine.conftest import Harness


@pytest.fixture(autouse=True)
def _thresholds():  # type: ignore[no-untyped-def]
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_raised_for_the_block_and_restored_after() -> None:
    with fewer_full_collections():
        assert gc.get_threshold() == (700, 10, RUN_GEN2_THRESHOLD)
    assert gc.get_threshold() == (700, 10, 10)


def test_restored_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), fewer_full_collections():
        raise RuntimeError("a failed run")
    assert gc.get_threshold() == (700, 10, 10)


def test_nested_and_concurrent_runs_share_one_setting() -> None:
    inside = threading.Event()
    release = threading.Event()
    seen: list[tuple[int, int, int]] = []

    def other_run() -> None:
        with fewer_full_collections():
            inside.set()
            release.wait(5)
            seen.append(gc.get_threshold())

    thread = threading.Thread(target=other_run)
    with fewer_full_collections():
        thread.start()
        assert inside.wait(5)
        with fewer_full_collections():
            assert gc.get_threshold()[2] == RUN_GEN2_THRESHOLD
    # the first run ended; the other is still going: its setting stays
    assert gc.get_threshold()[2] == RUN_GEN2_THRESHOLD
    release.set()
    thread.join(5)
    assert seen == [(700, 10, RUN_GEN2_THRESHOLD)]
    assert gc.get_threshold() == (700, 10, 10)
    assert collecting._active == 0


def test_a_setting_changed_during_the_run_is_left_alone() -> None:
    with fewer_full_collections():
        gc.set_threshold(500, 5, 5)  # somebody else's choice, made meanwhile
    assert gc.get_threshold() == (500, 5, 5)


def test_a_higher_threshold_is_kept() -> None:
    gc.set_threshold(700, 10, RUN_GEN2_THRESHOLD * 2)
    with fewer_full_collections():
        assert gc.get_threshold()[2] == RUN_GEN2_THRESHOLD * 2
    assert gc.get_threshold() == (700, 10, RUN_GEN2_THRESHOLD * 2)


def test_a_run_reads_and_writes_under_the_raised_setting(harness: Harness) -> None:
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    cal_a.user_create(Event(title="planning", start=start, end=start + timedelta(hours=1)))
    during: list[tuple[int, int, int]] = []
    cal_a.on_read = lambda: during.append(gc.get_threshold())
    run = harness.sync(a)
    assert run.status == "ok" and run.counts["hub_created"] == 1
    assert during == [(700, 10, RUN_GEN2_THRESHOLD)]
    assert gc.get_threshold() == (700, 10, 10)
