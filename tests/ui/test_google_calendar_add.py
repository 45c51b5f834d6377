"""The wizard lets an administrator add a calendar shared with a service
account by its id (calendarList.insert), since Google does not list it before;
over HTTP against the local server and the demo's Calendar API server."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.ui.conftest import ADMIN_TOKEN, LocalSpokesync, start_local
from tests.ui.test_web_guards import csrf_of

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SA = "wizard@project.iam.gserviceaccount.com"
SHARED = "shared-with-sa@group.calendar.google.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSpokesync]:
    running = start_local(Path(tmp_path_factory.mktemp("spokesync-calendar-add")))
    yield running
    running.close()


def test_a_calendar_shared_with_a_service_account_is_added_by_its_id(server: LocalSpokesync) -> None:
    sandbox = server.demo.google.sandbox
    key = sandbox.new_service_account_key(SA, domain_wide=False)
    sandbox.add_calendar(SHARED, "demo@example.com", "Shared with the robot", acl={SA: "writer"})
    created = requests.post(server.url + "/api/credentials/google/service-account", headers=AUTH,
                            json={"label": "Robot", "key": key}, timeout=30)
    assert created.status_code in (200, 201), created.text
    credential_id = created.json()["id"]
    assert requests.get(server.url + f"/api/credentials/{credential_id}/calendars", headers=AUTH,
                        timeout=30).json()["calendars"] == []

    s = requests.Session()
    token = csrf_of(s.get(server.url + "/setup/login").text)
    s.post(server.url + "/setup/login", data={"csrf_token": token, "token": ADMIN_TOKEN, "next": "/setup/"})
    target = s.get(server.url + "/setup/new/target", params={"source": "google", "credential": credential_id})
    assert "sees no calendar it can write to" in target.text and 'action="/setup/new/target/add"' in target.text
    token = csrf_of(target.text)

    refused = s.post(server.url + "/setup/new/target/add", allow_redirects=False, data={
        "csrf_token": token, "source": "google", "credential": credential_id,
        "calendar_id": "not-shared@group.calendar.google.com"})
    assert refused.status_code == 303 and "/setup/new/target?" in refused.headers["Location"]
    page = s.get(server.url + refused.headers["Location"])
    assert "share it with" in page.text and SA in page.text and "HttpError" not in page.text

    added = s.post(server.url + "/setup/new/target/add", allow_redirects=False, data={
        "csrf_token": token, "source": "google", "credential": credential_id, "calendar_id": SHARED})
    assert added.status_code == 303
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(added.headers["Location"]).query))
    assert query["calendar_id"] == SHARED and query["suggested"] == "Shared with the robot"
    listed = requests.get(server.url + f"/api/credentials/{credential_id}/calendars", headers=AUTH, timeout=30)
    assert [c["id"] for c in listed.json()["calendars"]] == [SHARED]


def test_the_credentials_page_runs_the_self_test_and_shows_each_check(server: LocalSpokesync) -> None:
    sandbox = server.demo.google.sandbox
    key = sandbox.new_service_account_key("selftest-robot@project.iam.gserviceaccount.com", domain_wide=False)
    created = requests.post(server.url + "/api/credentials/google/service-account", headers=AUTH,
                            json={"label": "Self-test robot", "key": key}, timeout=30)
    credential_id = created.json()["id"]
    calendars_before = set(sandbox.calendars)
    s = requests.Session()
    token = csrf_of(s.get(server.url + "/setup/login").text)
    s.post(server.url + "/setup/login", data={"csrf_token": token, "token": ADMIN_TOKEN, "next": "/setup/"})
    listing = s.get(server.url + "/setup/credentials")
    assert f'action="/setup/credentials/{credential_id}/selftest"' in listing.text
    result = s.post(server.url + f"/setup/credentials/{credential_id}/selftest",
                    data={"csrf_token": csrf_of(listing.text)})
    assert result.status_code == 200
    assert "Self-test of “Self-test robot”: all checks passed" in result.text
    assert "Passed</strong>\n      · schema accepted" in result.text
    assert "Not checked</strong>\n      · push channel" in result.text  # the demo's webhook is plain http
    assert "The scratch calendar was removed." in result.text
    assert set(sandbox.calendars) == calendars_before


def test_the_credentials_page_runs_the_exchange_self_test(server: LocalSpokesync) -> None:
    from spokesync.demo import DEMO_EWS_MAILBOX, DEMO_EWS_PASSWORD, DEMO_EWS_USER

    ews = server.demo.ews
    created = requests.post(server.url + "/api/credentials/exchange", headers=AUTH, timeout=30, json={
        "label": "Exchange self-test", "password": DEMO_EWS_PASSWORD,
        "settings": {"ews_url": ews.url, "username": DEMO_EWS_USER, "mailbox": DEMO_EWS_MAILBOX}})
    assert created.status_code == 201, created.text
    credential_id = created.json()["id"]
    folders_before = set(ews.store.folders)
    s = requests.Session()
    token = csrf_of(s.get(server.url + "/setup/login").text)
    s.post(server.url + "/setup/login", data={"csrf_token": token, "token": ADMIN_TOKEN, "next": "/setup/"})
    listing = s.get(server.url + "/setup/credentials")
    assert f'action="/setup/credentials/{credential_id}/selftest"' in listing.text
    result = s.post(server.url + f"/setup/credentials/{credential_id}/selftest",
                    data={"csrf_token": csrf_of(listing.text)})
    assert result.status_code == 200
    assert "Self-test of “Exchange self-test”: all checks passed" in result.text, result.text
    assert "Passed</strong>\n      · create / update / delete with ChangeKey preconditions" in result.text
    assert "Not checked</strong>\n      · throttling behaviour" in result.text
    assert set(ews.store.folders) == folders_before
