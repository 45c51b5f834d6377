"""A run recognises its own writes in the spoke's feed (issue 17): its next run does not read them
back. Anything else in the feed — a user's edit, even of an item the run just wrote — keeps the
cursor where it was, and the next run reads it all."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from spokesync.connectors.memory import MemoryCalendar
from spokesync.engine import runner as runner_module
from spokesync.engine.runner import Runner
from spokesync.model.event import Event
from spokesync.model.hub import Spoke
from tests.engine.conftest import Harness

START = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _events(n: int) -> list[Event]:
    return [Event(title=f"Item {i}", start=START + timedelta(days=i), end=START + timedelta(days=i, hours=1))
            for i in range(n)]


def _two_spokes(harness: Harness, n: int) -> tuple[Spoke, MemoryCalendar, Spoke, MemoryCalendar]:
    """Two two-way spokes; `n` items made in `a` and taken into the hub."""
    hub = harness.hub()
    a, cal_a = harness.spoke(hub, "a")
    b, cal_b = harness.spoke(hub, "b")
    for event in _events(n):
        cal_a.user_create(event)
    Runner(harness.ctx).sync(a.id)
    return a, cal_a, b, cal_b


def test_the_next_run_of_a_spoke_does_not_read_back_what_its_run_wrote(harness: Harness) -> None:
    _, _, b, cal_b = _two_spokes(harness, 50)
    Runner(harness.ctx).sync(b.id)  # writes the 50 into b
    assert len(cal_b.items) == 50
    store = harness.ctx.store
    store.stats.clear()  # type: ignore[attr-defined]
    again = Runner(harness.ctx).sync(b.id, reason="poll")
    assert again.reason == "nothing changed"  # its feed from the stored cursor is empty: the idle path
    assert store.stats["reads"] < 10  # type: ignore[attr-defined]  # (it read no link of the 50)


def test_a_user_edit_made_while_the_run_looks_at_its_own_writes_is_not_skipped(harness: Harness) -> None:
    _, cal_a, b, cal_b = _two_spokes(harness, 5)

    edited: list[str] = []

    def edit_one_of_the_new_copies() -> None:  # at the start of the run's second read of b's feed
        item_id = sorted(cal_b.items)[0]
        edited.append(cal_b.items[item_id].event.title)  # type: ignore[union-attr]
        cal_b.user_update(item_id, replace(cal_b.items[item_id].event, title="Edited in b"))  # type: ignore[type-var]

    def first_read() -> None:
        cal_b.on_read = edit_one_of_the_new_copies

    cal_b.on_read = first_read
    Runner(harness.ctx).sync(b.id)
    assert cal_b.on_read is None  # both reads happened
    harness.settle()
    expected = sorted({f"Item {i}" for i in range(5)} - set(edited) | {"Edited in b"})
    assert sorted(e.title for e in cal_a.events()) == expected  # type: ignore[union-attr]


def test_too_many_writes_to_remember_are_read_back_as_before(harness: Harness, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(runner_module, "OWN_WRITES_MAX", 3)
    _, _, b, _ = _two_spokes(harness, 5)
    Runner(harness.ctx).sync(b.id)
    again = Runner(harness.ctx).sync(b.id, reason="poll")
    assert again.reason != "nothing changed"  # it read its 5 writes back (and found nothing to do)
    assert again.status == "ok" and sum(again.counts.values()) == 0
