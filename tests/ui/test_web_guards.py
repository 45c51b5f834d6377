"""The web UI's guards and the paused-deletion controls, over HTTP without a browser.

Sign-in (wrong token, forged session, open redirect), CSRF on every form
(missing token, another site's Origin), the OAuth `state` check, and a mass
deletion paused by the engine that the dashboard shows and an administrator
cancels then confirms.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from spokesync.connectors import memory_registry
from spokesync.model.event import Event
from spokesync.model.hub import Spoke
from spokesync.web import security
from tests.helpers import wait_for
from tests.ui.conftest import ADMIN_TOKEN, LocalSpokesync, start_local

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}




@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSpokesync]:
    running = start_local(Path(tmp_path_factory.mktemp("spokesync-guards")))
    yield running
    running.close()


def spoke(server: LocalSpokesync, spoke_id: str) -> Spoke:
    found = server.ctx.store.get_spoke(spoke_id)
    assert found is not None
    return found


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the form"
    return match.group(1)


def signed_in(server: LocalSpokesync) -> tuple[requests.Session, str]:
    s = requests.Session()
    token = csrf_of(s.get(server.url + "/setup/login").text)
    resp = s.post(server.url + "/setup/login", data={"csrf_token": token, "token": ADMIN_TOKEN,
                                                     "next": "//evil.example/"})
    assert resp.status_code == 200 and resp.url == server.url + "/setup/"  # no open redirect
    return s, token


def test_pages_need_an_administrator(server: LocalSpokesync) -> None:
    for path in ("/setup/", "/setup/new/credentials?source=google", "/setup/credentials"):
        resp = requests.get(server.url + path, allow_redirects=False, timeout=10)
        assert resp.status_code == 303 and resp.headers["Location"].startswith("/setup/login?next=")
    s = requests.Session()
    token = csrf_of(s.get(server.url + "/setup/login").text)
    wrong = s.post(server.url + "/setup/login", data={"csrf_token": token, "token": "guess"})
    assert wrong.status_code == 401 and security.SESSION_COOKIE not in s.cookies
    forged = security.new_session("some-other-token")
    resp = requests.get(server.url + "/setup/", cookies={security.SESSION_COOKIE: forged}, allow_redirects=False,
                        timeout=10)
    assert resp.status_code == 303
    expired = security.new_session(ADMIN_TOKEN, now=time.time() - 2 * security.SESSION_TTL_S)
    assert not security.valid_session(ADMIN_TOKEN, expired)
    assert requests.get(server.url + "/setup/", headers=AUTH, timeout=10).status_code == 200  # header works too
    s, _ = signed_in(server)
    page = s.get(server.url + "/setup/")
    assert page.status_code == 200 and "Hubs and spokes" in page.text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_every_form_needs_its_csrf_token_and_this_site(server: LocalSpokesync) -> None:
    s, token = signed_in(server)
    before = len(server.ctx.store.list_hubs())
    form = {"source": "google", "calendar_id": "x", "hub_id": "__new__", "hub_name": "Forged", "name": "F"}
    missing = s.post(server.url + "/setup/new/create", data=form)
    assert missing.status_code == 403 and "security token" in missing.text
    wrong = s.post(server.url + "/setup/new/create", data={**form, "csrf_token": "x" * 43})
    assert wrong.status_code == 403
    other_site = s.post(server.url + "/setup/new/create", data={**form, "csrf_token": token},
                        headers={"Origin": "https://evil.example"})
    assert other_site.status_code == 403
    assert len(server.ctx.store.list_hubs()) == before
    # the cookie is HttpOnly and SameSite=Strict
    resp = requests.get(server.url + "/setup/login", timeout=10)
    cookie = resp.headers["Set-Cookie"]
    assert security.CSRF_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_the_oauth_callback_checks_state(server: LocalSpokesync) -> None:
    s, token = signed_in(server)
    start = s.post(server.url + "/setup/oauth/start", data={"csrf_token": token, "source": "google"},
                   allow_redirects=False)
    assert start.status_code == 303 and start.headers["Location"].startswith(server.demo.google.auth_uri)
    consent = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    callback = consent.headers["Location"]
    tampered = re.sub(r"state=[^&]+", "state=forged", callback)
    resp = s.get(tampered)
    assert resp.status_code == 400 and "state mismatch" in resp.text
    no_cookie = requests.get(callback, headers=AUTH, timeout=10)
    assert no_cookie.status_code == 400
    assert server.ctx.store.list_credentials() == []
    done = s.get(callback)  # the real answer, from this browser
    assert "/setup/new/target" in done.url and [c.kind for c in server.ctx.store.list_credentials()] == ["google_oauth"]
    assert "1//" not in done.text  # the refresh token never reaches the page


def test_a_paused_mass_deletion_is_shown_then_cancelled_and_confirmed(server: LocalSpokesync) -> None:
    api = server.url + "/api"
    memory_registry.calendar("guard-a").items.clear()
    memory_registry.calendar("guard-b").items.clear()
    hub = requests.post(api + "/hubs", json={"name": "Guarded"}, headers=AUTH, timeout=10).json()
    a = requests.post(api + f"/hubs/{hub['id']}/spokes", headers=AUTH, timeout=10, json={
        "name": "Source", "kind": "memory", "address": {"calendar": "guard-a"},
        "options": {"direction": "two_way", "max_delete_count": 1}}).json()
    requests.post(api + f"/hubs/{hub['id']}/spokes", headers=AUTH, timeout=10, json={
        "name": "Copy", "kind": "memory", "address": {"calendar": "guard-b"}, "options": {"direction": "two_way"}})
    cal = memory_registry.calendar("guard-a")
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    ids = [cal.user_create(Event(title=f"E{n}", start=start + timedelta(days=n),
                                 end=start + timedelta(days=n, hours=1))).id for n in range(4)]
    s, token = signed_in(server)
    s.post(server.url + f"/setup/hubs/{hub['id']}/sync", data={"csrf_token": token})
    wait_for(lambda: len(memory_registry.calendar("guard-b").items) == 4, what="the copy")
    for item_id in ids[:3]:
        cal.user_delete(item_id)
    s.post(server.url + f"/setup/spokes/{a['id']}/sync", data={"csrf_token": token})
    wait_for(lambda: spoke(server, a["id"]).state == "needs_confirmation", what="the pause")
    page = s.get(server.url + "/setup/").text
    assert "waiting for your confirmation" in page and "3 deletions waiting" in page
    assert "Confirm deletions" in page and "Refuse (keep everything)" in page
    assert all(f"E{n}" in page for n in range(3)) and "deleted in this spoke" in page  # what the pause is about
    assert len(memory_registry.calendar("guard-b").items) == 4  # nothing deleted yet
    resp = s.post(server.url + f"/setup/spokes/{a['id']}/cancel-deletions", data={"csrf_token": token})
    assert "Deletions refused" in resp.text
    # refused: the hub writes the three items back into the spoke that lost them
    wait_for(lambda: len(cal.items) == 4 and spoke(server, a["id"]).lease_owner is None,
             what="the restore")
    for item_id in list(cal.items)[:3]:
        cal.user_delete(item_id)
    s.post(server.url + f"/setup/spokes/{a['id']}/sync", data={"csrf_token": token})
    wait_for(lambda: spoke(server, a["id"]).state == "needs_confirmation", what="the second pause")
    resp = s.post(server.url + f"/setup/spokes/{a['id']}/confirm-deletions", data={"csrf_token": token})
    assert "Deletions confirmed" in resp.text
    wait_for(lambda: len(memory_registry.calendar("guard-b").items) == 1, what="the confirmed deletions")
    runs = s.get(server.url + f"/setup/spokes/{a['id']}/runs").text
    assert "paused" in runs
