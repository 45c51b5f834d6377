"""SecretManagerStore against the in-repository Secret Manager gRPC server,
driven through the real google-cloud-secret-manager client."""

from __future__ import annotations

import uuid

import pytest
from google.api_core import exceptions
from google.cloud.secretmanager_v1.types import SecretVersion

from spokesync.config import Config
from spokesync.ports import SecretNotFound
from spokesync.sandbox.secret_manager import SecretManagerServer
from spokesync.secrets.secret_manager import SecretManagerStore, crc32c, from_config, secret_id

PROJECT = "spokesync-test"


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def store(secret_manager_server: SecretManagerServer, prefix: str) -> SecretManagerStore:
    config = Config(backend="cloud", gcp_project=PROJECT, secret_prefix=prefix,
                    secret_manager_endpoint=secret_manager_server.endpoint)
    return from_config(config)


def test_crc32c_matches_the_published_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283


def test_secret_ids_are_safe_stable_and_distinct() -> None:
    assert secret_id("spokesync-", "cred-abc_1") == "spokesync-cred-abc_1"
    odd = secret_id("spokesync-", "user@example.com/exchange")
    assert odd == secret_id("spokesync-", "user@example.com/exchange")
    assert odd.startswith("spokesync-user_example_com_exchange-")
    assert secret_id("spokesync-", "a.b") != secret_id("spokesync-", "a_b")
    assert len(secret_id("p-", "x" * 400)) <= 255


def test_put_get_round_trip_and_new_version_only_on_change(
        store: SecretManagerStore, secret_manager_server: SecretManagerServer) -> None:
    assert store.put("cred-1", "hunter2") == "cred-1"
    assert store.get("cred-1") == "hunter2"
    versions = list(store.client.list_secret_versions(request={"parent": store.path("cred-1")}))
    assert len(versions) == 1
    store.put("cred-1", "hunter2")  # unchanged: no new version
    assert len(list(store.client.list_secret_versions(request={"parent": store.path("cred-1")}))) == 1
    store.put("cred-1", "correct horse")
    assert store.get("cred-1") == "correct horse"
    versions = list(store.client.list_secret_versions(request={"parent": store.path("cred-1")}))
    states = {v.name.rsplit("/", 1)[1]: v.state for v in versions}
    # the old password is destroyed, not left enabled
    assert states == {"2": SecretVersion.State.ENABLED, "1": SecretVersion.State.DESTROYED}
    assert b"hunter2" not in secret_manager_server.all_payloads()


def test_unicode_and_unsafe_names(store: SecretManagerStore) -> None:
    store.put("exchange/ops@example.com", "pässwörd ✓")
    assert store.get("exchange/ops@example.com") == "pässwörd ✓"


def test_missing_secret_is_secret_not_found(store: SecretManagerStore) -> None:
    with pytest.raises(SecretNotFound):
        store.get("never-stored")


def test_delete_removes_the_secret_and_is_idempotent(store: SecretManagerStore) -> None:
    store.put("cred-2", "token")
    store.delete("cred-2")
    with pytest.raises(SecretNotFound):
        store.get("cred-2")
    store.delete("cred-2")


def test_disabled_latest_version_reads_as_not_found(store: SecretManagerStore) -> None:
    store.put("cred-3", "v1")
    store.client.disable_secret_version(request={"name": store.path("cred-3") + "/versions/1"})
    with pytest.raises(SecretNotFound):
        store.get("cred-3")
    store.client.enable_secret_version(request={"name": store.path("cred-3") + "/versions/1"})
    assert store.get("cred-3") == "v1"


def test_the_server_speaks_the_service_contract(secret_manager_server: SecretManagerServer, prefix: str) -> None:
    client = secret_manager_server.client()
    parent = f"projects/{PROJECT}"
    secret = client.create_secret(request={"parent": parent, "secret_id": prefix + "raw",
                                           "secret": {"replication": {"automatic": {}}}})
    with pytest.raises(exceptions.AlreadyExists):
        client.create_secret(request={"parent": parent, "secret_id": prefix + "raw", "secret": {}})
    with pytest.raises(exceptions.InvalidArgument):
        client.create_secret(request={"parent": parent, "secret_id": "bad id!", "secret": {}})
    with pytest.raises(exceptions.InvalidArgument):
        client.add_secret_version(request={"parent": secret.name, "payload": {"data": b"x", "data_crc32c": 1}})
    v1 = client.add_secret_version(request={"parent": secret.name, "payload": {"data": b"one"}})
    client.add_secret_version(request={"parent": secret.name, "payload": {"data": b"two"}})
    assert client.access_secret_version(request={"name": secret.name + "/versions/latest"}).payload.data == b"two"
    assert client.access_secret_version(request={"name": v1.name}).payload.data == b"one"
    names = [s.name for s in client.list_secrets(request={"parent": parent})]
    assert secret.name in names
    destroyed = client.destroy_secret_version(request={"name": v1.name})
    assert destroyed.state == SecretVersion.State.DESTROYED
    with pytest.raises(exceptions.FailedPrecondition):
        client.access_secret_version(request={"name": v1.name})
    with pytest.raises(exceptions.NotFound):
        client.get_secret_version(request={"name": secret.name + "/versions/9"})
    client.delete_secret(request={"name": secret.name})
    with pytest.raises(exceptions.NotFound):
        client.get_secret(request={"name": secret.name})
