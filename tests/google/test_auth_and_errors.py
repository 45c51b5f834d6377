"""OAuth (authorization code, refresh, revocation), service accounts with
domain-wide delegation, the calendar picker, and how Google's errors reach
the engine — all against the local server's OAuth and API endpoints."""

from __future__ import annotations

import urllib.parse

import pytest
import requests

from spokesync.config import Config
from spokesync.connectors.google import auth
from spokesync.model.hub import Spoke
from spokesync.ports import CredentialBroken, QuotaExceeded, SystemClock, Throttled
from spokesync.sandbox.google_calendar import Running
from spokesync.stores.sqlite import SqliteHubStore
from tests.google.conftest import USER


def connector_for(config: Config, credential, secret_store, calendar_id: str):
    from spokesync.connectors.registry import connector_for as build

    spoke = Spoke(id="s1", hub_id="h", name="x", kind="google", credential_id=credential.id,
                  address={"calendar_id": calendar_id})
    return build(spoke, credential, secret_store, config, SystemClock())


def test_authorization_code_flow_stores_the_refresh_token_only_as_a_secret(gserver: Running, gconfig: Config,
                                                                          secret_store) -> None:
    redirect = "http://127.0.0.1:8080/oauth/callback"
    url, state = auth.authorization_url(gconfig, redirect, login_hint=USER)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["access_type"] == ["offline"] and query["state"] == [state]
    resp = requests.get(url, allow_redirects=False, timeout=10)
    assert resp.status_code == 302
    back = urllib.parse.urlsplit(resp.headers["Location"])
    params = urllib.parse.parse_qs(back.query)
    assert back.path == "/oauth/callback" and params["state"] == [state]
    grant = auth.exchange_code(gconfig, params["code"][0], redirect)
    store = SqliteHubStore(":memory:")
    ref = auth.save_oauth_credential(store, secret_store, "c9", "Owner", grant.refresh_token, account=USER)
    assert grant.refresh_token not in repr(store.get_credential("c9").to_dict())
    assert grant.refresh_token in secret_store.get(ref.secret_name)
    # The code is single-use.
    with pytest.raises(CredentialBroken):
        auth.exchange_code(gconfig, params["code"][0], redirect)
    # The calendar picker lists what the credential can write to.
    gserver.sandbox.add_calendar("mine@group.calendar.google.com", USER, "Mine")
    gserver.sandbox.add_calendar("shared@group.calendar.google.com", "other@example.com", "Shared",
                                 acl={USER: "reader"})
    picked = auth.list_calendars(ref, secret_store, gconfig)
    assert [c["id"] for c in picked] == ["mine@group.calendar.google.com"]


def test_service_account_with_domain_wide_delegation_acts_as_the_user(gserver: Running, gconfig: Config,
                                                                      secret_store, new_calendar) -> None:
    key = gserver.sandbox.new_service_account_key("sync@project.iam.gserviceaccount.com", domain_wide=True)
    key["token_uri"] = "https://oauth2.googleapis.com/token"  # config decides, not the key file
    store = SqliteHubStore(":memory:")
    ref = auth.save_service_account_credential(store, secret_store, "sa", "Workspace", key, subject=USER)
    assert "private_key" not in repr(store.get_credential("sa").to_dict())
    cal = new_calendar()
    conn = connector_for(gconfig, ref, secret_store, cal)
    assert conn.changes(None).items == []


def test_service_account_without_delegation_cannot_impersonate(gserver: Running, gconfig: Config, secret_store,
                                                               new_calendar) -> None:
    key = gserver.sandbox.new_service_account_key("plain@project.iam.gserviceaccount.com", domain_wide=False)
    ref = auth.save_service_account_credential(SqliteHubStore(":memory:"), secret_store, "sa2", "SA", key,
                                               subject=USER)
    with pytest.raises(CredentialBroken):
        connector_for(gconfig, ref, secret_store, new_calendar()).changes(None)


def test_a_revoked_refresh_token_marks_the_credential_broken(gserver: Running, gconfig: Config, secret_store,
                                                             oauth_credential, new_calendar) -> None:
    import json

    conn = connector_for(gconfig, oauth_credential, secret_store, new_calendar())
    conn.changes(None)
    gserver.sandbox.revoke_refresh_token(json.loads(secret_store.get(oauth_credential.secret_name))["refresh_token"])
    with pytest.raises(CredentialBroken) as err:
        conn.changes(None)
    assert "1//" not in str(err.value)  # the token never shows in the message


def test_an_expired_access_token_is_refreshed_transparently(gserver: Running, make_connector, new_calendar) -> None:
    conn = make_connector(new_calendar())
    conn.changes(None)
    gserver.sandbox.expire_access_tokens()
    assert conn.changes(None).full


def test_quota_exceeded_pauses_rather_than_retries(gserver: Running, make_connector, new_calendar) -> None:
    conn = make_connector(new_calendar())
    gserver.sandbox.inject(403, "quotaExceeded", message="Calendar usage limits exceeded.")
    with pytest.raises(QuotaExceeded):
        conn.changes(None)


def test_rate_limits_are_retried_within_the_budget_then_throttled(gserver: Running, make_connector,
                                                                  new_calendar) -> None:
    conn = make_connector(new_calendar())
    gserver.sandbox.inject(429, "rateLimitExceeded", count=2)
    gserver.sandbox.inject(500, "backendError", count=1)
    assert conn.changes(None).full  # two 429s and a 500 absorbed by backoff
    gserver.sandbox.inject(403, "userRateLimitExceeded", count=10_000)
    with pytest.raises(Throttled):
        conn.changes(None)


def test_a_forced_410_asks_for_a_full_resync(gserver: Running, make_connector, new_calendar) -> None:
    from spokesync.ports import FullResyncRequired

    cal = new_calendar()
    conn = make_connector(cal)
    cursor = conn.changes(None).cursor
    gserver.sandbox.expire_sync_tokens(cal)
    with pytest.raises(FullResyncRequired):
        conn.changes(cursor)


@pytest.mark.parametrize("key", ["0", "[]", '"text"', "{}", '{"type": "authorized_user"}', "not json"])
def test_a_key_that_is_not_a_service_account_key_is_refused_plainly(secret_store, key: str) -> None:  # type: ignore[no-untyped-def]
    store = SqliteHubStore(":memory:")
    with pytest.raises(ValueError):
        auth.save_service_account_credential(store, secret_store, "bad", "Bad", key)
    assert store.list_credentials() == []


def test_runs_in_one_process_reuse_the_access_token_until_it_expires(gserver: Running, gconfig: Config,
                                                                     secret_store, oauth_credential,
                                                                     new_calendar) -> None:
    import json

    auth.forget_cached_credentials()
    cal = new_calendar()
    stats = gserver.sandbox.stats
    first = connector_for(gconfig, oauth_credential, secret_store, cal)  # a run: a new connector
    first.changes(None)
    asked = stats.token_requests
    assert asked >= 1
    second = connector_for(gconfig, oauth_credential, secret_store, cal)  # the next run, same process
    second.changes(None)
    assert stats.token_requests == asked, "a second run asked for a new access token"
    gserver.sandbox.expire_access_tokens()  # expired (or revoked) at Google: refreshed on the 401
    third = connector_for(gconfig, oauth_credential, secret_store, cal)
    assert third.changes(None).full and stats.token_requests == asked + 1
    # a revoked refresh token still breaks the credential (Google revokes its access tokens too)
    gserver.sandbox.revoke_refresh_token(json.loads(secret_store.get(oauth_credential.secret_name))["refresh_token"])
    with pytest.raises(CredentialBroken):
        connector_for(gconfig, oauth_credential, secret_store, cal).changes(None)
