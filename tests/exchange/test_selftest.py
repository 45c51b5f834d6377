"""The Exchange self-test against the strict local EWS server: it works in a calendar folder it creates
in the mailbox and deletes, touches nothing else, and reports each check in plain words."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from spokesync.bootstrap import build_context
from spokesync.connectors import exchange
from spokesync.sandbox.ews import EwsServer
from spokesync.service import selftest
from tests.exchange.conftest import PASSWORD, local_config

KEY = "a2V5LWZvci10ZXN0cy1vbmx5LTMyLWJ5dGVzLWxvbmc="


def _snapshot(ews: EwsServer) -> dict[str, tuple[str, str]]:
    with ews.store.lock:
        return {i.id: (i.folder_id, i.changekey) for i in ews.store.items.values()}


@pytest.fixture
def ctx(tmp_path: Path):
    return build_context(local_config(data_dir=str(tmp_path), secret_key=KEY))


def test_the_exchange_self_test_passes_in_a_scratch_folder_it_removes(ews: EwsServer, ctx) -> None:
    cred = exchange.save_credential(ctx, "Shared calendar", {"ews_url": ews.url, "username": "EXAMPLE\\sync",
                                                             "mailbox": "shared@example.com"}, PASSWORD)
    ews.user_create(ews.store.distinguished["calendar"], "Someone's own meeting",
                    datetime(2027, 5, 3, 9, tzinfo=ZoneInfo("UTC")), datetime(2027, 5, 3, 10, tzinfo=ZoneInfo("UTC")))
    folders_before = set(ews.store.folders)
    items_before = _snapshot(ews)
    ews.reset_counts()
    report = selftest.run(ctx, cred.id)
    text = report.text()
    print(text)  # the record of what the strict server answered
    assert report.ok, text
    names = [c.name for c in report.checks]
    assert names == ["mailbox routed", "schema accepted", "create / update / delete with ChangeKey preconditions",
                     "incremental feed (SyncFolderItems)", "listing diff (public folders)",
                     "recurrence round trip (day 31, deleted and moved occurrences, DST)", "throttling behaviour"]
    assert [c.outcome for c in report.checks].count("not_checked") == 1  # throttling, with the reason
    assert ews.calls("CreateFolder") == 1 and ews.calls("DeleteFolder") == 1 and ews.calls("SyncFolderItems") >= 2
    assert set(ews.store.folders) == folders_before  # the scratch folder is gone
    assert _snapshot(ews) == items_before  # nothing it did not create was touched
    assert not ews.response_violations
    assert "The scratch calendar was removed." in text and "All checks passed." in text
    assert "Traceback" not in text and "Error" not in text.replace("ErrorServerBusy", "")


def test_a_refused_scratch_folder_is_said_in_words_and_leaves_nothing_behind(ews: EwsServer, ctx) -> None:
    cred = exchange.save_credential(ctx, "Shared calendar", {"ews_url": ews.url, "username": "EXAMPLE\\sync",
                                                             "mailbox": "shared@example.com"}, PASSWORD)
    folders_before = set(ews.store.folders)
    ews.inject("access_denied", "CreateFolder")
    report = selftest.run(ctx, cred.id)
    assert not report.ok and report.cleaned_up
    [scratch] = [c for c in report.checks if c.name == "scratch folder"]
    assert scratch.outcome == "failed" and "refused to create a scratch calendar folder" in scratch.detail
    assert "access denied" in scratch.detail
    # (an injected refusal of a folder the server did create: the sandbox's fault runs the operation)
    leftover = set(ews.store.folders) - folders_before
    with ews.store.lock:
        for folder_id in leftover:
            ews.store.remove_folder(folder_id)


def test_a_wrong_mailbox_fails_the_routing_check_in_words(ews: EwsServer, ctx) -> None:
    from spokesync.model.hub import CredentialRef

    ctx.secrets.put("exchange-wrong", PASSWORD)
    ctx.store.put_credential(CredentialRef(id="wrong", kind="exchange", label="Wrong", secret_name="exchange-wrong",
                                           settings={"ews_url": ews.url, "username": "EXAMPLE\\sync",
                                                     "mailbox": "nobody@example.com"}))
    report = selftest.run(ctx, "wrong")
    [routed] = report.checks
    assert routed.outcome == "failed" and "no such mailbox" in routed.detail and report.cleaned_up


def test_the_cli_runs_the_exchange_self_test_by_label(ews: EwsServer, ctx, capsys) -> None:
    from spokesync.cli import build_parser
    from spokesync.cli import run as cli_run

    exchange.save_credential(ctx, "Team Exchange", {"ews_url": ews.url, "username": "EXAMPLE\\sync",
                                                    "mailbox": "shared@example.com"}, PASSWORD)
    assert cli_run(build_parser().parse_args(["selftest", "Team Exchange"]), ctx) == 0
    out = capsys.readouterr().out
    assert "ok   incremental feed (SyncFolderItems)" in out and "All checks passed." in out
