"""The contacts part of `spokesync selftest` against the strict local People API server:
plain-words checks in a scratch contact group it removes, touching nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

from spokesync.bootstrap import build_context
from spokesync.connectors.google.auth import save_oauth_credential, save_service_account_credential
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.google_people import Running
from spokesync.service import selftest
from spokesync.stores.sqlite import SqliteHubStore
from tests.google_contacts.conftest import USER


def test_contacts_self_test_passes_and_leaves_no_trace(pserver: Running, pconfig, secret_store) -> None:
    ctx = build_context(pconfig, clock=FakeClock(datetime(2026, 3, 1, 8, 0, tzinfo=UTC)),
                        store=SqliteHubStore(":memory:"), secrets=secret_store, queue=LocalTaskQueue())
    keep = pserver.sandbox.user_create(USER, {"names": [{"givenName": "Keep me"}]})
    groups_before = {rn for rn, g in pserver.sandbox.books[USER].groups.items() if not g.deleted}
    token = pserver.sandbox.issue_refresh_token(USER, pconfig.google_client_id)
    save_oauth_credential(ctx.store, ctx.secrets, "owner", "Owner", token, account=USER)
    report = selftest.run(ctx, "owner", object_type="contacts")
    outcomes = {c.name: c.outcome for c in report.checks}
    assert report.ok, report.text()
    assert outcomes == {"contact fields accepted": "passed",
                        "contact create / update / delete with preconditions": "passed",
                        "contacts incremental feed": "passed", "contacts sync-token expiry": "not_checked"}
    assert [p["resourceName"] for p in pserver.sandbox.live_people(USER)] == [keep["resourceName"]]
    assert {rn for rn, g in pserver.sandbox.books[USER].groups.items() if not g.deleted} == groups_before
    text = report.text()
    assert "scratch contact group was removed" in text and "HttpError" not in text


def test_contacts_self_test_explains_a_service_account_without_delegation(pserver: Running, pconfig,
                                                                           secret_store) -> None:
    ctx = build_context(pconfig, store=SqliteHubStore(":memory:"), secrets=secret_store, queue=LocalTaskQueue())
    key = pserver.sandbox.new_service_account_key("sync@project.iam.gserviceaccount.com")
    save_service_account_credential(ctx.store, ctx.secrets, "sa", "SA", key)
    report = selftest.run(ctx, "sa", object_type="contacts")
    assert not report.ok
    assert report.checks[0].name == "scratch contact group"
    assert "domain-wide delegation" in report.checks[0].detail
