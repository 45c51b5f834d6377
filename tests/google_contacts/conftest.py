"""Fixtures: a local People API server on a free 127.0.0.1 port, an OAuth
client and a user, and contacts connectors built the way the runner builds
them (registry → credential → SecretStore → google-api-python-client)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator

import pytest

from spokesync.config import Config
from spokesync.model.hub import CredentialRef, Spoke
from spokesync.ports import SystemClock
from spokesync.sandbox.google_people import GooglePeopleSandbox, Running, serve
from spokesync.secrets.local import LocalSecretStore

USER = "owner@example.com"
CLIENT_ID = "spokesync-test"
CLIENT_SECRET = "test-secret"  # noqa: S105 - sandbox only

_groups = itertools.count(1)


@pytest.fixture
def pserver() -> Iterator[Running]:
    running = serve(0, GooglePeopleSandbox(check_responses=True))
    running.sandbox.add_client(CLIENT_ID, CLIENT_SECRET)
    running.sandbox.add_user(USER)
    yield running
    running.close()


@pytest.fixture
def pconfig(pserver: Running, tmp_path) -> Config:
    return Config(data_dir=str(tmp_path), google_people_api_root=pserver.url, google_oauth_token_uri=pserver.token_uri,
                  google_client_id=CLIENT_ID, google_client_secret=CLIENT_SECRET, google_backoff_s=0.01,
                  google_retry_budget_s=1.0)


@pytest.fixture
def secret_store(tmp_path) -> LocalSecretStore:
    return LocalSecretStore.open(str(tmp_path / "secrets.enc"), key_file=str(tmp_path / "secret.key"))


@pytest.fixture
def oauth_credential(pserver: Running, secret_store: LocalSecretStore) -> CredentialRef:
    from spokesync.connectors.google.auth import forget_cached_credentials

    forget_cached_credentials()
    token = pserver.sandbox.issue_refresh_token(USER, CLIENT_ID)
    name = secret_store.put("google-credential-p1", json.dumps({"refresh_token": token}))
    return CredentialRef(id="p1", kind="google_oauth", label="Owner", secret_name=name)


@pytest.fixture
def make_connector(pconfig: Config, oauth_credential: CredentialRef, secret_store: LocalSecretStore):
    from spokesync.connectors.registry import connector_for

    def make(group: str | None = None, credential: CredentialRef | None = None, **address: str):
        spoke = Spoke(id=f"s-{next(_groups)}", hub_id="h", name="contacts", kind="google_contacts",
                      credential_id="p1", address=address or {"group": group or f"Shared {next(_groups)}"})
        return connector_for(spoke, credential or oauth_credential, secret_store, pconfig, SystemClock())

    return make


@pytest.fixture
def people_service(pserver: Running, pconfig: Config, oauth_credential: CredentialRef,
                   secret_store: LocalSecretStore) -> Callable[[], object]:
    """A raw google-api-python-client `people` v1 service on the sandbox (server-side tests)."""
    from spokesync.connectors.google.auth import CONTACTS_SCOPES, credentials_for
    from spokesync.connectors.google.client import GoogleClient
    from spokesync.connectors.google.contacts import discovery_document

    def make() -> object:
        creds = credentials_for(oauth_credential, secret_store, pconfig, CONTACTS_SCOPES)
        return GoogleClient(creds, pconfig, document=discovery_document(), api_root=pserver.url).service

    return make
