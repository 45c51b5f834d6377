"""Issue 3: a refused credential is marked broken, says so, and is repaired once for every spoke using it.

Against the local server with the demo's EWS and Google servers: the EWS
server changes the user's password (its Python API) and the Google server
revokes the refresh token. A run then fails, the shared credential shows a
plain reason on the API and the credentials page, every spoke using it shows
`credential_broken`, and (Exchange) no EWS request is made while it is
broken. A repair with a wrong password or code fails with its own error and
changes nothing; the right one clears the reason, resumes the spokes, and the
next sync succeeds. No secret appears in any API answer or page.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

import pytest
import requests

from spokesync.demo import DEMO_CLIENT_SECRET, DEMO_EWS_MAILBOX, DEMO_EWS_PASSWORD, DEMO_EWS_USER
from spokesync.engine.runner import Runner
from spokesync.model.hub import RunRecord
from tests.helpers import wait_for
from tests.ui.conftest import ADMIN_TOKEN, LocalSpokesync

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NEW_EWS_PASSWORD = "Changed-Pass-2"
WRONG_PASSWORD = "Not-The-Password-9"
GOOGLE_CALENDAR = "team@group.calendar.google.com"


class Seen:
    """Every API answer and page body the test receives: none may carry a secret."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def api(self, local: LocalSpokesync, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.request(method, local.url + "/api" + path, json=body, headers=AUTH, timeout=30)
        self.texts.append(resp.text)
        return resp

    def page(self, resp: requests.Response) -> requests.Response:
        self.texts.append(resp.text)
        self.texts.extend(f"{k}: {v}" for k, v in resp.headers.items() if k.lower() != "set-cookie")
        return resp

    def assert_clean(self, *secrets: str) -> None:
        for secret in secrets:
            assert secret and not any(secret in text for text in self.texts), "a secret was shown"


def run(local: LocalSpokesync, spoke_id: str) -> RunRecord:
    """One sync now (a queue worker may hold the lease for a moment: try again)."""
    for _ in range(100):
        record = Runner(local.ctx).sync(spoke_id, reason="test")
        if record.status != "skipped":
            return record
        wait_for(lambda: local.ctx.store.get_spoke(spoke_id).lease_owner is None, 30, "the lease")  # type: ignore[union-attr]
    raise AssertionError("the spoke never became free")


def wait_synced(local: LocalSpokesync, spoke_id: str, after_run: str | None) -> None:
    def done() -> bool:
        spoke = local.ctx.store.get_spoke(spoke_id)
        assert spoke is not None
        if spoke.last_run_id in (None, after_run) or spoke.lease_owner is not None:
            return False
        last = local.ctx.store.get_run(spoke.last_run_id)
        return last is not None and last.status == "ok" and spoke.state == "ok"

    wait_for(done, 60, f"a successful sync of {spoke_id}")


def web_session(local: LocalSpokesync, seen: Seen) -> tuple[requests.Session, str]:
    session = requests.Session()
    login = seen.page(session.get(local.url + "/setup/login", timeout=30))
    token = csrf(login.text)
    resp = session.post(local.url + "/setup/login", data={"token": ADMIN_TOKEN, "csrf_token": token,
                                                         "next": "/setup/"}, timeout=30)
    assert resp.url == local.url + "/setup/", resp.url
    return session, token


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def credential(seen: Seen, local: LocalSpokesync, credential_id: str) -> dict[str, Any]:
    found = seen.api(local, "GET", "/credentials").json()["credentials"]
    return next(c for c in found if c["id"] == credential_id)


def spoke_state(seen: Seen, local: LocalSpokesync, spoke_id: str) -> tuple[str, str]:
    spoke = seen.api(local, "GET", f"/spokes/{spoke_id}").json()
    return spoke["state"], spoke["state_reason"]


def test_a_changed_exchange_password_breaks_the_credential_once_and_one_repair_fixes_every_spoke(
        local: LocalSpokesync) -> None:
    seen, ews = Seen(), local.demo.ews
    created = seen.api(local, "POST", "/credentials/exchange", {
        "label": "Shared Exchange", "password": DEMO_EWS_PASSWORD, "require_public_folders": True,
        "settings": {"ews_url": ews.url, "username": DEMO_EWS_USER, "version": "2016", "auth_type": "NTLM",
                     "mailbox": DEMO_EWS_MAILBOX}})
    assert created.status_code == 201, created.text
    cred = created.json()
    secret_name = local.ctx.store.get_credential(cred["id"]).secret_name  # type: ignore[union-attr]
    holidays = next(f for f in ews.store.folders.values() if f.name == "Holidays")
    second = ews.public_folder("Repair rooms")
    hub = seen.api(local, "POST", "/hubs", {"name": "Exchange repair"}).json()
    spokes = [seen.api(local, "POST", f"/hubs/{hub['id']}/spokes", {
        "name": name, "kind": "exchange", "credential_id": cred["id"], "address": {"folder_id": folder.id,
                                                                                   "public": True}}).json()
        for name, folder in (("Holidays", holidays), ("Rooms", second))]
    for spoke in spokes:
        assert run(local, spoke["id"]).status == "ok"

    # -- the administrator changes the password on the server: the next run fails
    ews.set_password(DEMO_EWS_USER, NEW_EWS_PASSWORD)
    failed = run(local, spokes[0]["id"])
    assert failed.status == "failed" and "wrong user or password" in failed.reason
    broken = credential(seen, local, cred["id"])
    assert "wrong user or password" in broken["broken_reason"]
    for spoke in spokes:  # the one that ran and the one that shares the credential
        state, reason = spoke_state(seen, local, spoke["id"])
        assert state == "credential_broken" and "wrong user or password" in reason

    # -- while broken, the connector does not talk to the server at all (no lockout)
    ews.reset_counts()
    for spoke in spokes:
        again = run(local, spoke["id"])
        assert again.status == "failed" and "wrong user or password" in again.reason
    assert ews.http_requests == 0 and ews.calls() == 0

    # -- the credentials page says so and offers the repair form
    session, _ = web_session(local, seen)
    listing = seen.page(session.get(local.url + "/setup/credentials", timeout=30))
    assert "wrong user or password" in listing.text
    assert f'action="/setup/credentials/{cred["id"]}/repair"' in listing.text

    # -- a wrong password: its own error, nothing changes
    refused = seen.api(local, "POST", f"/credentials/{cred['id']}/exchange-password", {"password": WRONG_PASSWORD})
    assert refused.status_code == 422 and "wrong user or password" in refused.json()["error"]
    form = seen.page(session.post(local.url + f"/setup/credentials/{cred['id']}/repair",
                                  data={"password": WRONG_PASSWORD, "csrf_token": csrf(listing.text)}, timeout=30))
    assert form.url == local.url + "/setup/credentials"
    assert "Repair failed, nothing was changed" in form.text and "wrong user or password" in form.text
    assert local.ctx.secrets.get(secret_name or "") == DEMO_EWS_PASSWORD
    assert credential(seen, local, cred["id"])["broken_reason"] == broken["broken_reason"]
    assert all(spoke_state(seen, local, s["id"])[0] == "credential_broken" for s in spokes)
    # a form without the CSRF token is refused
    forged = session.post(local.url + f"/setup/credentials/{cred['id']}/repair",
                          data={"password": NEW_EWS_PASSWORD}, timeout=30)
    assert forged.status_code == 403

    # -- the right password, through the page: cleared, both spokes resumed and synced
    before = {s["id"]: local.ctx.store.get_spoke(s["id"]).last_run_id for s in spokes}  # type: ignore[union-attr]
    fixed = seen.page(session.post(local.url + f"/setup/credentials/{cred['id']}/repair",
                                   data={"password": NEW_EWS_PASSWORD, "csrf_token": csrf(form.text)}, timeout=30))
    assert "repaired; 2 spoke(s) resumed" in fixed.text, fixed.text
    assert local.ctx.secrets.get(secret_name or "") == NEW_EWS_PASSWORD
    assert credential(seen, local, cred["id"])["broken_reason"] == ""
    for spoke in spokes:
        wait_synced(local, spoke["id"], before[spoke["id"]])
    ews.user_create(second, "After the repair", *_hour())
    assert run(local, spokes[1]["id"]).counts["hub_created"] == 1
    assert "wrong user or password" not in seen.page(session.get(local.url + "/setup/credentials", timeout=30)).text

    seen.assert_clean(DEMO_EWS_PASSWORD, NEW_EWS_PASSWORD, WRONG_PASSWORD)


def _hour() -> tuple[Any, Any]:
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 12, 1, 10, tzinfo=UTC)
    return start, start + timedelta(hours=1)


def _consent(url: str) -> dict[str, str]:
    """The (auto-approving) consent page's redirect: the callback's query."""
    resp = requests.get(url, allow_redirects=False, timeout=30)
    assert resp.status_code == 302, resp.text
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.headers["Location"]).query))


def test_a_revoked_google_token_breaks_the_credential_and_signing_in_again_repairs_it(
        local: LocalSpokesync) -> None:
    seen, sandbox = Seen(), local.demo.google.sandbox
    redirect_uri = local.url + "/setup/oauth/callback"
    start = seen.api(local, "POST", "/credentials/google/oauth/start", {"redirect_uri": redirect_uri}).json()
    answer = _consent(start["url"])
    created = seen.api(local, "POST", "/credentials/google/oauth/finish",
                       {"code": answer["code"], "redirect_uri": redirect_uri, "label": "Team Google"})
    assert created.status_code == 201, created.text
    cred = created.json()
    secret_name = local.ctx.store.get_credential(cred["id"]).secret_name or ""  # type: ignore[union-attr]
    first_token = json.loads(local.ctx.secrets.get(secret_name))["refresh_token"]
    hub = seen.api(local, "POST", "/hubs", {"name": "Google repair"}).json()
    spoke = seen.api(local, "POST", f"/hubs/{hub['id']}/spokes", {
        "name": "Team", "kind": "google", "credential_id": cred["id"],
        "address": {"calendar_id": GOOGLE_CALENDAR}}).json()
    assert run(local, spoke["id"]).status == "ok"

    # -- the user revokes spokesync's access: invalid_grant on the next run
    sandbox.revoke_refresh_token(first_token)
    failed = run(local, spoke["id"])
    assert failed.status == "failed"
    broken = credential(seen, local, cred["id"])["broken_reason"]
    assert "revoked or expired" in broken and "sign in again" in broken, broken
    assert spoke_state(seen, local, spoke["id"])[0] == "credential_broken"

    session, _ = web_session(local, seen)
    listing = seen.page(session.get(local.url + "/setup/credentials", timeout=30))
    assert "revoked or expired" in listing.text
    assert f'action="/setup/credentials/{cred["id"]}/reauth"' in listing.text and "Sign in again" in listing.text

    # -- a re-sign-in whose code Google refuses, and a forged state: their own errors, nothing changes
    reauth = seen.api(local, "POST", f"/credentials/{cred['id']}/google/reauth/start",
                      {"redirect_uri": redirect_uri}).json()
    assert cred["id"] in reauth["state"]
    bad_code = seen.api(local, "POST", "/credentials/google/oauth/finish",
                        {"code": "4/not-a-code", "redirect_uri": redirect_uri, "state": reauth["state"]})
    assert bad_code.status_code == 422 and "refused the authorization code" in bad_code.json()["error"]
    forged_state = reauth["state"][:-4] + ("0000" if not reauth["state"].endswith("0000") else "1111")
    forged = seen.api(local, "POST", "/credentials/google/oauth/finish",
                      {"code": _consent(reauth["url"])["code"], "redirect_uri": redirect_uri, "state": forged_state})
    assert forged.status_code == 400 and "does not match" in forged.json()["error"]
    assert json.loads(local.ctx.secrets.get(secret_name))["refresh_token"] == first_token
    assert credential(seen, local, cred["id"])["broken_reason"] == broken
    not_oauth = seen.api(local, "POST", "/credentials/nope/google/reauth/start", {"redirect_uri": redirect_uri})
    assert not_oauth.status_code == 404

    # -- "Sign in again" in the browser: the consent, the callback (state checked), repaired
    before = local.ctx.store.get_spoke(spoke["id"]).last_run_id  # type: ignore[union-attr]
    to_google = session.post(local.url + f"/setup/credentials/{cred['id']}/reauth",
                             data={"csrf_token": csrf(listing.text)}, allow_redirects=False, timeout=30)
    assert to_google.status_code == 303
    callback = _consent(to_google.headers["Location"])
    wrong_state = session.get(local.url + "/setup/oauth/callback",
                              params={**callback, "state": callback["state"] + "x"}, timeout=30)
    assert wrong_state.status_code == 400  # the state check stays
    # (that refused callback dropped nothing: the cookie is still there for the real one)
    done = seen.page(session.get(local.url + "/setup/oauth/callback", params=callback, timeout=30))
    assert done.url == local.url + "/setup/credentials"
    assert "Signed in again" in done.text and "1 spoke(s) resumed" in done.text, done.text
    new_token = json.loads(local.ctx.secrets.get(secret_name))["refresh_token"]
    assert new_token != first_token
    assert credential(seen, local, cred["id"])["broken_reason"] == ""
    wait_synced(local, spoke["id"], before)
    sandbox.user_insert(GOOGLE_CALENDAR, {"summary": "After signing in again",
                                          "start": {"dateTime": "2026-12-02T10:00:00Z"},
                                          "end": {"dateTime": "2026-12-02T11:00:00Z"}})
    assert run(local, spoke["id"]).status == "ok"
    assert any(i.event is not None and i.event.title == "After signing in again"
               for i in local.ctx.store.hub_items_since(hub["id"], 0))

    seen.assert_clean(first_token, new_token, DEMO_CLIENT_SECRET)


@pytest.mark.parametrize("body", [{}, {"password": ""}, {"password": "x", "settings": "no"},
                                  {"password": "x", "settings": {"colour": "red"}}])
def test_a_repair_request_that_makes_no_sense_is_a_400(local: LocalSpokesync, body: dict[str, Any]) -> None:
    cred = requests.post(local.url + "/api/credentials/exchange", headers=AUTH, timeout=30, json={
        "label": "Spare", "password": DEMO_EWS_PASSWORD,
        "settings": {"ews_url": local.demo.ews.url, "username": DEMO_EWS_USER, "mailbox": DEMO_EWS_MAILBOX}})
    if cred.status_code != 201:  # the first test changed the password
        cred = requests.post(local.url + "/api/credentials/exchange", headers=AUTH, timeout=30, json={
            "label": "Spare", "password": NEW_EWS_PASSWORD,
            "settings": {"ews_url": local.demo.ews.url, "username": DEMO_EWS_USER, "mailbox": DEMO_EWS_MAILBOX}})
    resp = requests.post(local.url + f"/api/credentials/{cred.json()['id']}/exchange-password", json=body,
                         headers=AUTH, timeout=30)
    assert resp.status_code == 400, resp.text


def test_a_reauth_state_is_refused_when_expired_or_for_another_credential(local: LocalSpokesync) -> None:
    import time

    from spokesync.service import credentials

    old = credentials.reauth_state(local.ctx, "cred-abc", now=time.time() - credentials.REAUTH_TTL_S - 5)
    with pytest.raises(ValueError, match="more than ten minutes"):
        credentials.credential_of_state(local.ctx, old)
    fresh = credentials.reauth_state(local.ctx, "cred-abc")
    assert credentials.credential_of_state(local.ctx, fresh) == "cred-abc"
    moved = fresh.replace("cred-abc", "cred-xyz")  # the same signature cannot name another credential
    with pytest.raises(ValueError, match="does not match"):
        credentials.credential_of_state(local.ctx, moved)
