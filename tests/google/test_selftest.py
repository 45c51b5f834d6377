"""`spokesync selftest` against the strict local Calendar server: it reports
each behaviour in plain words, works in a scratch calendar it removes, and
touches nothing it did not create."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from spokesync.bootstrap import Context, build_context
from spokesync.cli import build_parser
from spokesync.cli import run as cli_run
from spokesync.connectors.google.auth import save_oauth_credential, save_service_account_credential
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.google_calendar import Running
from spokesync.service import selftest
from spokesync.stores.sqlite import SqliteHubStore
from tests.google.conftest import USER

OTHER = "precious@group.calendar.google.com"


@pytest.fixture
def ctx(gserver: Running, gconfig, secret_store) -> Context:
    context = build_context(gconfig, clock=FakeClock(datetime(2026, 3, 1, 8, 0, tzinfo=UTC)),
                            store=SqliteHubStore(":memory:"), secrets=secret_store, queue=LocalTaskQueue())
    gserver.sandbox.add_calendar(OTHER, USER, "Precious", "Europe/Berlin")
    gserver.sandbox.user_insert(OTHER, {"summary": "Keep me", "start": {"date": "2026-03-10"},
                                        "end": {"date": "2026-03-11"}})
    return context


def snapshot(gserver: Running) -> dict:
    return {cid: copy.deepcopy(cal.events) for cid, cal in gserver.sandbox.calendars.items()}


def test_the_self_test_passes_for_a_user_credential_and_leaves_no_trace(ctx: Context, gserver: Running) -> None:
    token = gserver.sandbox.issue_refresh_token(USER, ctx.config.google_client_id)
    save_oauth_credential(ctx.store, ctx.secrets, "owner", "Owner", token, account=USER)
    before = snapshot(gserver)
    report = selftest.run(ctx, "owner")
    outcomes = {c.name: c.outcome for c in report.checks}
    assert report.ok, report.text()
    assert outcomes["schema accepted"] == "passed"
    assert outcomes["create / update / delete with preconditions"] == "passed"
    assert outcomes["incremental feed"] == "passed" and outcomes["sync-token expiry"] == "not_checked"
    assert outcomes["exceptions returned by iCalUID"] == "passed"
    assert outcomes["re-set recurrence keeps its exceptions"] == "passed"
    assert outcomes["reminder limit"] == "passed" and outcomes["push channel"] == "not_checked"
    assert report.scratch.endswith("@group.calendar.google.com") and report.scratch not in gserver.sandbox.calendars
    assert snapshot(gserver) == before  # nothing it did not create was touched
    text = report.text()
    assert "Traceback" not in text and "HttpError" not in text and "scratch calendar was removed" in text


def test_a_service_account_without_delegation_is_told_where_its_attendees_go(ctx: Context, gserver: Running) -> None:
    key = gserver.sandbox.new_service_account_key("robot@project.iam.gserviceaccount.com", domain_wide=False)
    save_service_account_credential(ctx.store, ctx.secrets, "robot", "Robot", key)
    report = selftest.run(ctx, "robot")
    attendees = next(c for c in report.checks if c.name == "attendee handling")
    assert report.ok, report.text()
    assert attendees.outcome == "passed" and "domain-wide delegation" in attendees.detail


def test_a_failing_check_is_reported_and_the_scratch_calendar_still_goes(ctx: Context, gserver: Running) -> None:
    token = gserver.sandbox.issue_refresh_token(USER, ctx.config.google_client_id)
    save_oauth_credential(ctx.store, ctx.secrets, "owner", "Owner", token, account=USER)
    gserver.sandbox.inject(400, "invalid", count=1, method="POST", path_contains="/events/watch")
    ctx = build_context(replace(ctx.config, webhook_url="https://hooks.example.com/push"), clock=ctx.clock,
                        store=ctx.store, secrets=ctx.secrets, queue=ctx.queue)
    report = selftest.run(ctx, "owner")
    push = next(c for c in report.checks if c.name.startswith("push"))
    assert push.outcome == "failed" and "unexpected answer" in push.detail
    assert not report.ok and report.cleaned_up and report.scratch not in gserver.sandbox.calendars


def test_the_cli_runs_the_self_test_by_label(ctx: Context, gserver: Running, capsys) -> None:
    token = gserver.sandbox.issue_refresh_token(USER, ctx.config.google_client_id)
    save_oauth_credential(ctx.store, ctx.secrets, "owner", "Team owner", token, account=USER)
    assert cli_run(build_parser().parse_args(["selftest", "Team owner"]), ctx) == 0
    out = capsys.readouterr().out
    assert "ok   schema accepted" in out and "All checks passed." in out
