"""A local Secret Manager: the real gRPC service, in memory, for tests and demos.

No installable emulator exists, so this answers the
`google.cloud.secretmanager.v1.SecretManagerService` methods spokesync and an
administrator use (create, get, list, delete secrets; add, get, list, access,
enable, disable, destroy versions), (de)serialising the proto-plus message
types that `google-cloud-secret-manager` itself ships. Error codes follow the
service: NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION for a disabled or
destroyed version, INVALID_ARGUMENT for a bad id or checksum.

    server = SecretManagerServer().start()      # 127.0.0.1, a free port
    client = server.client()                    # SecretManagerServiceClient
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from google.cloud.secretmanager_v1.types import resources, service
from google.protobuf import empty_pb2

from spokesync.secrets.secret_manager import crc32c

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_SECRET_NAME = re.compile(r"^projects/([^/]+)/secrets/([^/]+)$")
_VERSION_NAME = re.compile(r"^(projects/[^/]+/secrets/[^/]+)/versions/([^/]+)$")
State = resources.SecretVersion.State


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Version:
    number: int
    data: bytes
    created: datetime
    state: int = State.ENABLED
    destroyed: datetime | None = None


@dataclass
class _Secret:
    name: str
    created: datetime
    labels: dict[str, str]
    versions: list[_Version] = field(default_factory=list)


class SecretManagerServer:
    """An in-memory Secret Manager reachable over gRPC on 127.0.0.1."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self._secrets: dict[str, _Secret] = {}
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.calls: list[str] = []  # method names, in order (tests count them)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> SecretManagerServer:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handlers = {
            "CreateSecret": self._unary(service.CreateSecretRequest, resources.Secret, self.create_secret),
            "GetSecret": self._unary(service.GetSecretRequest, resources.Secret, self.get_secret),
            "ListSecrets": self._unary(service.ListSecretsRequest, service.ListSecretsResponse, self.list_secrets),
            "DeleteSecret": self._unary(service.DeleteSecretRequest, None, self.delete_secret),
            "AddSecretVersion": self._unary(service.AddSecretVersionRequest, resources.SecretVersion, self.add_version),
            "GetSecretVersion": self._unary(service.GetSecretVersionRequest, resources.SecretVersion, self.get_version),
            "ListSecretVersions": self._unary(
                service.ListSecretVersionsRequest, service.ListSecretVersionsResponse, self.list_versions
            ),
            "AccessSecretVersion": self._unary(
                service.AccessSecretVersionRequest, service.AccessSecretVersionResponse, self.access_version
            ),
            "DisableSecretVersion": self._unary(
                service.DisableSecretVersionRequest, resources.SecretVersion, self._set_state(State.DISABLED)
            ),
            "EnableSecretVersion": self._unary(
                service.EnableSecretVersionRequest, resources.SecretVersion, self._set_state(State.ENABLED)
            ),
            "DestroySecretVersion": self._unary(
                service.DestroySecretVersionRequest, resources.SecretVersion, self._set_state(State.DESTROYED)
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.port = server.add_insecure_port(f"{self.host}:{self._requested_port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=0)
            self._server = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def client(self) -> Any:
        from google.cloud import secretmanager_v1
        from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
            SecretManagerServiceGrpcTransport,
        )

        channel = grpc.insecure_channel(self.endpoint)
        return secretmanager_v1.SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(channel=channel)
        )

    def all_payloads(self) -> list[bytes]:
        """Every stored payload, destroyed ones excluded (tests look for leaks)."""
        with self._lock:
            return [v.data for s in self._secrets.values() for v in s.versions if v.state != State.DESTROYED]

    # ------------------------------------------------------------ plumbing

    def _unary(self, request_type: Any, response_type: Any, method: Callable[[Any], Any]) -> grpc.RpcMethodHandler:
        def handler(request: Any, context: grpc.ServicerContext) -> Any:
            self.calls.append(method.__name__)
            try:
                with self._lock:
                    return method(request)
            except _Abort as err:
                context.abort(err.code, err.message)

        serialize = empty_pb2.Empty.SerializeToString if response_type is None else response_type.serialize
        return grpc.unary_unary_rpc_method_handler(
            handler, request_deserializer=request_type.deserialize, response_serializer=serialize
        )

    def _secret(self, name: str) -> _Secret:
        if not _SECRET_NAME.match(name):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret name {name!r}")
        secret = self._secrets.get(name)
        if secret is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{name}] not found or has no versions.")
        return secret

    def _version(self, name: str) -> tuple[_Secret, _Version]:
        match = _VERSION_NAME.match(name)
        if not match:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret version name {name!r}")
        secret = self._secret(match.group(1))
        wanted = match.group(2)
        if wanted == "latest":
            if not secret.versions:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{secret.name}] not found or has no versions.")
            return secret, secret.versions[-1]
        for version in secret.versions:
            if str(version.number) == wanted:
                return secret, version
        raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")

    @staticmethod
    def _secret_msg(secret: _Secret) -> Any:
        return resources.Secret(
            name=secret.name,
            create_time=secret.created,
            labels=secret.labels,
            replication=resources.Replication(automatic=resources.Replication.Automatic()),
            etag=f'"{len(secret.versions)}"',
        )

    @staticmethod
    def _version_msg(secret: _Secret, version: _Version) -> Any:
        msg = resources.SecretVersion(
            name=f"{secret.name}/versions/{version.number}",
            create_time=version.created,
            state=version.state,
            etag=f'"{version.number}-{int(version.state)}"',
        )
        if version.destroyed is not None:
            msg.destroy_time = version.destroyed
        return msg

    # ------------------------------------------------------------ methods

    def create_secret(self, request: Any) -> Any:
        if not _SECRET_ID.match(request.secret_id):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret id {request.secret_id!r}")
        name = f"{request.parent}/secrets/{request.secret_id}"
        if name in self._secrets:
            raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{name}] already exists.")
        secret = _Secret(name=name, created=datetime.now(UTC), labels=dict(request.secret.labels))
        self._secrets[name] = secret
        return self._secret_msg(secret)

    def get_secret(self, request: Any) -> Any:
        return self._secret_msg(self._secret(request.name))

    def list_secrets(self, request: Any) -> Any:
        names = sorted(n for n in self._secrets if n.startswith(f"{request.parent}/secrets/"))
        start = int(request.page_token or 0)
        size = request.page_size or 25000
        page = names[start : start + size]
        next_token = str(start + size) if start + size < len(names) else ""
        return service.ListSecretsResponse(
            secrets=[self._secret_msg(self._secrets[n]) for n in page],
            next_page_token=next_token,
            total_size=len(names),
        )

    def delete_secret(self, request: Any) -> Any:
        self._secret(request.name)
        del self._secrets[request.name]
        return empty_pb2.Empty()

    def add_version(self, request: Any) -> Any:
        secret = self._secret(request.parent)
        data = bytes(request.payload.data)
        if len(data) > 64 * 1024:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Secret payload data cannot be larger than 64KiB.")
        if "data_crc32c" in request.payload and request.payload.data_crc32c != crc32c(data):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Checksum mismatch: data_crc32c does not match the data.")
        version = _Version(number=len(secret.versions) + 1, data=data, created=datetime.now(UTC))
        secret.versions.append(version)
        return self._version_msg(secret, version)

    def get_version(self, request: Any) -> Any:
        return self._version_msg(*self._version(request.name))

    def list_versions(self, request: Any) -> Any:
        secret = self._secret(request.parent)
        versions = [self._version_msg(secret, v) for v in reversed(secret.versions)]
        return service.ListSecretVersionsResponse(versions=versions, total_size=len(versions))

    def access_version(self, request: Any) -> Any:
        secret, version = self._version(request.name)
        if version.state != State.ENABLED:
            state = State(version.state).name
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Secret Version [{secret.name}/versions/{version.number}] is in {state} state.",
            )
        return service.AccessSecretVersionResponse(
            name=f"{secret.name}/versions/{version.number}",
            payload=resources.SecretPayload(data=version.data, data_crc32c=crc32c(version.data)),
        )

    def _set_state(self, state: int) -> Callable[[Any], Any]:
        def change_state(request: Any) -> Any:
            secret, version = self._version(request.name)
            if request.name.endswith("/latest"):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "the 'latest' alias cannot be used here")
            if version.state == State.DESTROYED:
                raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, f"Secret Version [{request.name}] is destroyed.")
            version.state = state
            if state == State.DESTROYED:
                version.data = b""
                version.destroyed = datetime.now(UTC)
            return self._version_msg(secret, version)

        change_state.__name__ = {State.DISABLED: "disable_version", State.ENABLED: "enable_version"}.get(
            state, "destroy_version"
        )
        return change_state


def main() -> None:  # pragma: no cover - manual use
    import argparse
    import time

    parser = argparse.ArgumentParser(description="in-memory Secret Manager gRPC server")
    parser.add_argument("--port", type=int, default=8085)
    args = parser.parse_args()
    server = SecretManagerServer(port=args.port).start()
    print(f"Secret Manager on {server.endpoint}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
