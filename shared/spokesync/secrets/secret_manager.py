"""SecretStore on Google Secret Manager: one secret per credential.

A spokesync secret name (what the hub store keeps in `CredentialRef.secret_name`)
maps to the Secret Manager secret id `config.secret_prefix + safe(name)`.
`put` adds a new version only when the value changed and then destroys the
older versions, so an old password or refresh token does not linger; `get`
reads `latest`; `delete` removes the secret with all its versions. A missing,
disabled or destroyed secret is `SecretNotFound`. Values never appear in
errors or logs.

The client library is imported lazily (cold start) and the client created once.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from typing import TYPE_CHECKING, Any

from spokesync.ports import SecretNotFound

if TYPE_CHECKING:
    from spokesync.bootstrap import Context
    from spokesync.config import Config

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MAX_ID = 255
_TIMEOUT_S = 30.0


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum Secret Manager uses for payloads."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def secret_id(prefix: str, name: str) -> str:
    """A valid, stable Secret Manager secret id for `name` (1-255 of [A-Za-z0-9_-]).

    Names that are already safe map to prefix+name; any other name gets its
    unsafe characters replaced and a hash of the original appended, so two
    different names never share a secret.
    """
    base = prefix + name
    if _UNSAFE.search(base) is None and 0 < len(base) <= _MAX_ID:
        return base
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    cleaned = _UNSAFE.sub("_", base)[: _MAX_ID - len(digest) - 1]
    return f"{cleaned}-{digest}"


class SecretManagerStore:
    """`SecretStore` backed by Secret Manager in `project`."""

    def __init__(self, project: str, prefix: str = "spokesync-", client: Any = None, endpoint: str = "") -> None:
        if not project:
            raise ValueError("Secret Manager needs a project: set SPOKESYNC_GCP_PROJECT")
        self.project = project
        self.prefix = prefix
        self._endpoint = endpoint
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from google.cloud import secretmanager_v1

                    if self._endpoint:  # a local server (tests, demo): plain gRPC
                        import grpc
                        from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
                            SecretManagerServiceGrpcTransport,
                        )

                        transport = SecretManagerServiceGrpcTransport(channel=grpc.insecure_channel(self._endpoint))
                        self._client = secretmanager_v1.SecretManagerServiceClient(transport=transport)
                    else:
                        self._client = secretmanager_v1.SecretManagerServiceClient()
        return self._client

    def path(self, name: str) -> str:
        return f"projects/{self.project}/secrets/{secret_id(self.prefix, name)}"

    # ------------------------------------------------------------ the port

    def put(self, name: str, value: str) -> str:
        from google.api_core import exceptions

        path = self.path(name)
        data = value.encode()
        try:
            if self._access(path) == data:
                return name  # unchanged: no new version
        except SecretNotFound:
            pass
        try:
            version = self._add_version(path, data)
        except exceptions.NotFound:
            with contextlib.suppress(exceptions.AlreadyExists):  # created concurrently: fine
                self.client.create_secret(
                    request={
                        "parent": f"projects/{self.project}",
                        "secret_id": path.rsplit("/", 1)[1],
                        "secret": {"replication": {"automatic": {}}, "labels": {"app": "spokesync"}},
                    },
                    timeout=_TIMEOUT_S,
                )
            version = self._add_version(path, data)
        self._destroy_older(path, version.name)
        return name

    def get(self, name: str) -> str:
        return self._access(self.path(name)).decode()

    def delete(self, name: str) -> None:
        from google.api_core import exceptions

        with contextlib.suppress(exceptions.NotFound):
            self.client.delete_secret(request={"name": self.path(name)}, timeout=_TIMEOUT_S)

    # ------------------------------------------------------------ helpers

    def _add_version(self, path: str, data: bytes) -> Any:
        return self.client.add_secret_version(
            request={"parent": path, "payload": {"data": data, "data_crc32c": crc32c(data)}}, timeout=_TIMEOUT_S
        )

    def _access(self, path: str) -> bytes:
        from google.api_core import exceptions

        try:
            response = self.client.access_secret_version(request={"name": f"{path}/versions/latest"}, timeout=_TIMEOUT_S)
        except exceptions.NotFound:
            raise SecretNotFound(path.rsplit("/", 1)[1]) from None
        except exceptions.FailedPrecondition:  # latest version disabled or destroyed
            raise SecretNotFound(f"{path.rsplit('/', 1)[1]} (latest version disabled or destroyed)") from None
        data = bytes(response.payload.data)
        if "data_crc32c" in response.payload and response.payload.data_crc32c != crc32c(data):
            raise RuntimeError(f"Secret Manager returned a corrupted payload for {path.rsplit('/', 1)[1]}")
        return data

    def _destroy_older(self, path: str, keep: str) -> None:
        from google.api_core import exceptions
        from google.cloud.secretmanager_v1.types import SecretVersion

        for version in self.client.list_secret_versions(request={"parent": path}, timeout=_TIMEOUT_S):
            if version.name != keep and version.state != SecretVersion.State.DESTROYED:
                with contextlib.suppress(exceptions.NotFound, exceptions.FailedPrecondition):  # destroyed concurrently
                    self.client.destroy_secret_version(request={"name": version.name}, timeout=_TIMEOUT_S)


def from_config(config: Config, ctx: Context | None = None) -> SecretManagerStore:
    return SecretManagerStore(
        project=config.gcp_project, prefix=config.secret_prefix, endpoint=config.secret_manager_endpoint
    )
