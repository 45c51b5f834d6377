"""Two Google calendars in one two-way hub, through the real engine, the
SQLite store, the local queue and the local Calendar API server; push
notifications delivered over HTTP to the served webhook function."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spokesync.bootstrap import Context, build_context, set_context
from spokesync.config import Config
from spokesync.connectors.google.auth import save_oauth_credential
from spokesync.connectors.google.mapping import FIELDS, Series, fold_series
from spokesync.model.event import content_hash
from spokesync.model.hub import Spoke
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.google_calendar import Running
from spokesync.secrets.local import LocalSecretStore
from spokesync.service import hubs, push
from spokesync.stores.sqlite import SqliteHubStore
from tests.google.conftest import USER

WRITES = ("events.insert", "events.patch", "events.update", "events.delete")
BERLIN = "Europe/Berlin"


def timed(day: int, hour: int = 9, minutes: int = 60, tz: str = BERLIN) -> tuple[dict[str, Any], dict[str, Any]]:
    from zoneinfo import ZoneInfo

    start = datetime(2026, 3, day, hour, tzinfo=ZoneInfo(tz))
    return ({"dateTime": start.isoformat(), "timeZone": tz},
            {"dateTime": (start + timedelta(minutes=minutes)).isoformat(), "timeZone": tz})


class GoogleHarness:
    def __init__(self, ctx: Context, server: Running, queue: LocalTaskQueue) -> None:
        self.ctx = ctx
        self.server = server
        self.sandbox = server.sandbox
        self.queue = queue
        self.hub = hubs.create_hub(ctx, "Team")
        self.spokes: dict[str, Spoke] = {}

    def add(self, calendar_id: str, **options: Any) -> Spoke:
        self.sandbox.add_calendar(calendar_id, USER, calendar_id, BERLIN)
        options.setdefault("direction", "two_way")
        spoke = hubs.add_spoke(self.ctx, self.hub.id, calendar_id, "google", {"calendar_id": calendar_id},
                               credential_id="cred", options=options)
        self.spokes[calendar_id] = spoke
        return spoke

    def settle(self) -> None:
        from spokesync.engine.runner import Runner

        for spoke in self.ctx.store.list_spokes(self.hub.id):
            Runner(self.ctx).sync(spoke.id)
        self.queue.drain()

    def writes(self) -> int:
        return sum(self.sandbox.stats.by_method.get(m, 0) for m in WRITES)

    def content(self, calendar_id: str) -> dict[str, str]:
        """Folded series of a calendar, keyed by title: content hashes over the mapped fields."""
        raws = [self.sandbox.event(calendar_id, e["id"]) for e in self.sandbox.live_events(calendar_id)]
        cal = self.sandbox.calendars[calendar_id]
        masters = [r for r in raws if r and "recurringEventId" not in r]
        out = {}
        for m in masters:
            excs = tuple(self.sandbox._public(e) for e in cal.events.values() if e.get("recurringEventId") == m["id"])
            event = fold_series(Series(m, excs))
            assert event.title not in out, f"duplicate {event.title!r} in {calendar_id}"
            out[event.title] = content_hash(event, FIELDS - {"timezone"})
        return out


@pytest.fixture
def harness(gserver: Running, gconfig: Config, tmp_path) -> Iterator[GoogleHarness]:
    from dataclasses import replace

    config = replace(gconfig, run_budget_s=60, lease_ttl_s=120)
    queue = LocalTaskQueue()
    secrets = LocalSecretStore.open(str(tmp_path / "s.enc"), key_file=str(tmp_path / "s.key"))
    ctx = build_context(config, clock=FakeClock(datetime(2026, 3, 1, 8, 0, tzinfo=UTC)),
                        store=SqliteHubStore(":memory:"), secrets=secrets, queue=queue)
    queue.handler = ctx.run_task
    token = gserver.sandbox.issue_refresh_token(USER, config.google_client_id)
    save_oauth_credential(ctx.store, secrets, "cred", "Owner", token, account=USER)
    yield GoogleHarness(ctx, gserver, queue)


def seed_series(sandbox, cal: str) -> str:
    start, end = timed(2, 9, 30)
    master = sandbox.user_insert(cal, {"summary": "Weekly sync", "start": start, "end": end,
                                       "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=8"],
                                       "attendees": [{"email": "b@example.com", "responseStatus": "accepted"}]})
    # 9 March moved to 10:00 and renamed; 16 March cancelled.
    s2, e2 = timed(9, 10, 30)
    sandbox.user_patch(cal, f"{master['id']}_20260309T080000Z", {"summary": "Weekly sync (moved)", "start": s2,
                                                                  "end": e2})
    sandbox.user_delete(cal, f"{master['id']}_20260316T080000Z")
    return str(master["id"])


def test_two_calendars_converge_with_series_and_all_day_events_then_stay_quiet(harness: GoogleHarness) -> None:
    sb = harness.sandbox
    harness.add("a@group.calendar.google.com")
    harness.add("b@group.calendar.google.com")
    seed_series(sb, "a@group.calendar.google.com")
    sb.user_insert("a@group.calendar.google.com", {"summary": "Offsite", "start": {"date": "2026-03-10"},
                                                   "end": {"date": "2026-03-12"}, "transparency": "transparent"})
    s, e = timed(4, 14)
    sb.user_insert("b@group.calendar.google.com", {"summary": "Review", "start": s, "end": e, "location": "R1",
                                                   "reminders": {"useDefault": False,
                                                                 "overrides": [{"method": "popup", "minutes": 5}]}})
    harness.settle()
    a, b = harness.content("a@group.calendar.google.com"), harness.content("b@group.calendar.google.com")
    assert set(a) == {"Weekly sync", "Offsite", "Review"}
    assert a == b
    # The copy in B carries the exceptions as Google instance events.
    copy = next(e for e in sb.live_events("b@group.calendar.google.com") if e.get("summary") == "Weekly sync"
                and "recurrence" in e)
    assert sb.event("b@group.calendar.google.com", copy["id"] + "_20260316T080000Z")["status"] == "cancelled"
    assert sb.event("b@group.calendar.google.com", copy["id"] + "_20260309T080000Z")["summary"] == "Weekly sync (moved)"
    writes = harness.writes()
    harness.settle()
    assert harness.writes() == writes, "a second round must write nothing"


def test_a_change_announced_by_push_reaches_the_other_calendar(harness: GoogleHarness, gserver: Running) -> None:
    import functions_framework
    from werkzeug.serving import make_server

    app = functions_framework.create_app(target="push_webhook", source="functions/push_webhook/main.py")
    web = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    from dataclasses import replace

    harness.ctx.config = replace(harness.ctx.config, webhook_url=f"http://127.0.0.1:{web.server_port}/")
    set_context(harness.ctx)
    try:
        a = harness.add("a@group.calendar.google.com")
        harness.add("b@group.calendar.google.com")
        for spoke in harness.spokes.values():
            push.on_spoke_added(harness.ctx, spoke)
        harness.settle()
        gserver.sandbox.wait_notifications()
        assert all(n["status"] == 200 for n in gserver.sandbox.notifications if not n["dropped"])
        harness.queue.drain()
        s, e = timed(5, 11)
        gserver.sandbox.user_insert("a@group.calendar.google.com", {"summary": "Pushed", "start": s, "end": e})
        gserver.sandbox.user_insert("a@group.calendar.google.com", {"summary": "Pushed 2", "start": s, "end": e})
        gserver.sandbox.wait_notifications()
        assert [t.reason for t in harness.queue.pending()] == ["push"]  # two notifications, one task
        assert harness.queue.pending()[0].spoke_id == a.id
        harness.queue.drain()
        assert set(harness.content("b@group.calendar.google.com")) == {"Pushed", "Pushed 2"}
    finally:
        set_context(None)
        web.shutdown()


def test_forced_410_recovers_without_duplicates(harness: GoogleHarness) -> None:
    sb = harness.sandbox
    harness.add("a@group.calendar.google.com")
    harness.add("b@group.calendar.google.com")
    seed_series(sb, "a@group.calendar.google.com")
    for day in (3, 4, 5):
        s, e = timed(day)
        sb.user_insert("a@group.calendar.google.com", {"summary": f"Day {day}", "start": s, "end": e})
    harness.settle()
    sb.expire_sync_tokens("a@group.calendar.google.com")
    sb.expire_sync_tokens("b@group.calendar.google.com")
    s, e = timed(6)
    sb.user_insert("a@group.calendar.google.com", {"summary": "After 410", "start": s, "end": e})
    inserts = sb.stats.by_method.get("events.insert", 0)
    deletes = sb.stats.by_method.get("events.delete", 0)
    harness.settle()
    assert sb.stats.by_method.get("events.insert", 0) == inserts + 1  # only the new event is created
    assert sb.stats.by_method.get("events.delete", 0) == deletes  # nothing deleted and recreated
    a, b = harness.content("a@group.calendar.google.com"), harness.content("b@group.calendar.google.com")
    assert a == b and "After 410" in b and len(b) == 5


def test_rate_limits_in_the_middle_of_a_batch_converge_on_the_next_run(harness: GoogleHarness) -> None:
    sb = harness.sandbox
    harness.add("a@group.calendar.google.com")
    harness.add("b@group.calendar.google.com")
    for i in range(60):
        s, e = timed(2 + i % 20, 8 + i % 8)
        sb.user_insert("a@group.calendar.google.com", {"summary": f"Item {i}", "start": s, "end": e})
    # Past the retry budget: 30 inserts into B answer 403 rateLimitExceeded, then 429s.
    sb.inject(403, "rateLimitExceeded", count=10_000, skip=20, method="POST", path_contains="b%40group")
    from spokesync.engine.runner import Runner

    Runner(harness.ctx).sync(harness.spokes["a@group.calendar.google.com"].id)
    run = Runner(harness.ctx).sync(harness.spokes["b@group.calendar.google.com"].id)
    assert 20 <= len(sb.live_events("b@group.calendar.google.com")) < 60
    assert run.status in ("ok", "continued")
    assert [t.spoke_id for t in harness.queue.pending()].count(run.spoke_id) == 1  # a later run is queued
    sb.faults.clear()
    harness.settle()
    b = harness.content("b@group.calendar.google.com")
    assert len(b) == 60 and len(sb.live_events("b@group.calendar.google.com")) == 60
    assert harness.content("a@group.calendar.google.com") == b


def test_an_edited_copy_of_an_invitation_is_not_written_into_it_and_the_run_says_so(harness: GoogleHarness) -> None:
    """Invitations are read into the hub but never written: the edit made in the other calendar stays
    there, the invitation stays as it is (no refused write), and the run names it in words."""
    sb = harness.sandbox
    a, b = "a@group.calendar.google.com", "b@group.calendar.google.com"
    spoke_a = harness.add(a)
    harness.add(b)
    start, end = timed(5, 11)
    invite = sb.user_invite(a, {"summary": "Board meeting", "start": start, "end": end}, organizer="boss@example.org")
    harness.settle()
    copy = next(e for e in sb.live_events(b) if e.get("summary") == "Board meeting")
    sb.user_patch(b, copy["id"], {"summary": "Board meeting (moved room)"})
    patches = sb.stats.by_method.get("events.patch", 0)
    harness.settle()
    assert sb.event(a, invite["id"])["summary"] == "Board meeting"  # type: ignore[index]
    assert sb.stats.by_method.get("events.patch", 0) == patches  # nothing was sent to the invitation
    runs = harness.ctx.store.list_runs(spoke_a.id, limit=10)
    said = [r for r in runs if any("Board meeting (moved room)" in e and "invitation from another organiser" in e
                                   and "stays as it is" in e for e in r.errors)]
    assert said, [(r.status, r.errors) for r in runs]
    assert all(r.status == "ok" for r in runs), [(r.status, r.reason) for r in runs]
    writes = harness.writes()
    harness.settle()
    assert harness.writes() == writes, "the refused item is not retried unchanged"
