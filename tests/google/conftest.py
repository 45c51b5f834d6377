"""Fixtures: a local Calendar API server on a free 127.0.0.1 port, an OAuth
client and a user with calendars, and connectors built the way the runner
builds them (registry → credential → SecretStore)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from spokesync.config import Config
from spokesync.model.hub import CredentialRef, Spoke
from spokesync.ports import SystemClock
from spokesync.sandbox.google_calendar import GoogleCalendarSandbox, Running, serve
from spokesync.secrets.local import LocalSecretStore

USER = "owner@example.com"
CLIENT_ID = "spokesync-test"
CLIENT_SECRET = "test-secret"  # noqa: S105 - sandbox only

_cal_ids = itertools.count(1)


@pytest.fixture
def gserver() -> Iterator[Running]:
    # The tests' webhook receivers are plain http on 127.0.0.1: the explicit switch.
    running = serve(0, GoogleCalendarSandbox(allow_http_webhooks=True))
    running.sandbox.add_client(CLIENT_ID, CLIENT_SECRET)
    running.sandbox.add_user(USER)
    yield running
    running.close()


@pytest.fixture
def gconfig(gserver: Running, tmp_path) -> Config:
    return Config(data_dir=str(tmp_path), google_api_root=gserver.url, google_oauth_auth_uri=gserver.auth_uri,
                  google_oauth_token_uri=gserver.token_uri, google_client_id=CLIENT_ID,
                  google_client_secret=CLIENT_SECRET, google_backoff_s=0.01, google_retry_budget_s=2.0,
                  webhook_url="http://127.0.0.1:9/unused")


@pytest.fixture
def secret_store(tmp_path) -> LocalSecretStore:
    return LocalSecretStore.open(str(tmp_path / "secrets.enc"), key_file=str(tmp_path / "secret.key"))


@pytest.fixture
def oauth_credential(gserver: Running, secret_store: LocalSecretStore) -> CredentialRef:
    import json

    token = gserver.sandbox.issue_refresh_token(USER, CLIENT_ID)
    name = secret_store.put("google-credential-c1", json.dumps({"refresh_token": token}))
    return CredentialRef(id="c1", kind="google_oauth", label="Owner", secret_name=name)


@pytest.fixture
def new_calendar(gserver: Running) -> Callable[[], str]:
    def make() -> str:
        cal_id = f"cal{next(_cal_ids)}@group.calendar.google.com"
        gserver.sandbox.add_calendar(cal_id, USER, cal_id, "Europe/Berlin")
        return cal_id

    return make


@pytest.fixture
def make_connector(gconfig: Config, oauth_credential: CredentialRef, secret_store: LocalSecretStore):
    from spokesync.connectors.registry import connector_for

    def make(calendar_id: str, config: Config | None = None):
        spoke = Spoke(id=f"s-{calendar_id}", hub_id="h", name=calendar_id, kind="google",
                      credential_id="c1", address={"calendar_id": calendar_id})
        return connector_for(spoke, oauth_credential, secret_store, config or gconfig, SystemClock())

    return make
