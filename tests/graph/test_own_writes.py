"""After writing into a Microsoft 365 calendar, a run recognises its own writes by their etags in
the calendar's delta round (`ports.VersionFeed`, `GraphCalendarConnector.change_versions`),
without reading the events again, and its next poll finds nothing to read
(docs/decisions/2026-12-01-own-writes.md). A user's edit of a written event still travels."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench._graph import Setup, build
from spokesync.engine.runner import Runner


@pytest.fixture
def world() -> Iterator[Setup]:
    s = build(6, strict=True)  # (the local Graph server validating every request and answer)
    try:
        yield s
    finally:
        s.close()


def test_own_writes_are_recognised_by_etag_without_reading_them_back(world: Setup) -> None:
    s = world
    Runner(s.ctx).sync(s.b.id)  # B's first listing (empty), before the hub has anything
    Runner(s.ctx).sync(s.a.id)  # A's six events into the hub
    s.reset()
    assert Runner(s.ctx).sync(s.b.id).status == "ok"  # the six into B
    assert len(s.server.events_in(s.cal_b)) == 6
    # one $batch of creates; the delta round after them is read as etags: no batch of reads
    assert s.server.requests["batch"] == 1
    s.reset()
    idle = Runner(s.ctx).sync(s.b.id, reason="poll")
    assert idle.reason == "nothing changed" and s.server.requests["batch"] == 0
    # a user's edit in B of an event the hub wrote there is the user's: it travels to A
    written = next(e for e in s.server.events_in(s.cal_b) if e.props.get("subject") == "Event 2")
    s.server.user_edit(written.id, location={"displayName": "Room 99"})
    Runner(s.ctx).sync(s.b.id, reason="poll")
    Runner(s.ctx).sync(s.a.id, reason="poll")
    in_a = [e for e in s.server.events_in(s.cal_a) if e.props.get("subject") == "Event 2"]
    assert [e.props.get("location", {}).get("displayName") for e in in_a] == ["Room 99"]
