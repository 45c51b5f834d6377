"""Who may call the private functions: OIDC identity tokens (Tasks, Scheduler),
IAP assertions and identity tokens (setup), shared tokens locally.

Tokens are signed with keys made here and verified by google-auth against a
local certificate endpoint, exactly as it verifies Google's."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from spokesync.config import Config
from spokesync.service import auth

SA = "tasks@proj.iam.gserviceaccount.com"
SYNC_URL = "https://sync-123.a.run.app"
SCHED_URL = "https://sched-123.a.run.app"
SETUP_URL = "https://setup-123.a.run.app"
IAP_AUD = "/projects/123/global/backendServices/456"


class KeyServer:
    """Serves {kid: PEM} like Google's certificate endpoints."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, str]] = {}
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.hits += 1
                body = json.dumps(server.documents.get(self.path, {})).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def rsa_signer(kid: str) -> tuple[crypt.Signer, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return crypt.RSASigner.from_string(pem, key_id=kid), cert.public_bytes(serialization.Encoding.PEM).decode()


def es_signer(kid: str) -> tuple[Any, str]:
    from google.auth.crypt import es256

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return es256.ES256Signer.from_string(pem, key_id=kid), public


@pytest.fixture(scope="module")
def keys() -> Iterator[dict[str, Any]]:
    server = KeyServer()
    google, google_cert = rsa_signer("g1")
    iap, iap_public = es_signer("i1")
    server.documents["/oauth2/v1/certs"] = {"g1": google_cert}
    server.documents["/iap/verify/public_key"] = {"i1": iap_public}
    yield {"server": server, "google": google, "iap": iap}
    server.httpd.shutdown()


@pytest.fixture(autouse=True)
def fresh_certs() -> Iterator[None]:
    auth.forget_certs()
    yield
    auth.forget_certs()


def cloud_config(keys: dict[str, Any], **changes: Any) -> Config:
    settings: dict[str, Any] = dict(
        backend="cloud", tasks_service_account=SA, oidc_audience=SYNC_URL, scheduler_audience=SCHED_URL,
        sync_url=SYNC_URL, public_url=SETUP_URL, iap_audience=IAP_AUD, admin_emails=("boss@example.com",),
        oidc_certs_url=keys["server"].base + "/oauth2/v1/certs",
        iap_certs_url=keys["server"].base + "/iap/verify/public_key")
    settings.update(changes)
    return Config(**settings)


def google_token(keys: dict[str, Any], **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": "https://accounts.google.com", "aud": SYNC_URL, "email": SA, "email_verified": True,
               "sub": "1", "iat": now, "exp": now + 3600}
    payload.update(claims)
    return jwt.encode(keys["google"], payload).decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_cloud_tasks_token_for_the_sync_function_is_accepted(keys: dict[str, Any]) -> None:
    config = cloud_config(keys)
    assert auth.check_task_caller(config, bearer(google_token(keys))).identity == SA
    # Cloud Scheduler calls the scheduler function: its URL is the audience
    assert auth.check_task_caller(config, bearer(google_token(keys, aud=SCHED_URL))).identity == SA


@pytest.mark.parametrize("claims, error", [
    ({"aud": "https://elsewhere.example"}, auth.Unauthorized),
    ({"exp": int(time.time()) - 600, "iat": int(time.time()) - 4000}, auth.Unauthorized),
    ({"iss": "https://evil.example"}, auth.Unauthorized),
    ({"email": "someone@proj.iam.gserviceaccount.com"}, auth.Forbidden),
    ({"email_verified": False}, auth.Forbidden),
])
def test_other_tokens_are_refused(keys: dict[str, Any], claims: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        auth.check_task_caller(cloud_config(keys), bearer(google_token(keys, **claims)))


def test_a_token_signed_by_an_unknown_key_or_missing_is_refused(keys: dict[str, Any]) -> None:
    other, _ = rsa_signer("g1")  # same key id, different key
    now = int(time.time())
    forged = jwt.encode(other, {"iss": "accounts.google.com", "aud": SYNC_URL, "email": SA, "email_verified": True,
                                "iat": now, "exp": now + 600}).decode()
    with pytest.raises(auth.Unauthorized):
        auth.check_task_caller(cloud_config(keys), bearer(forged))
    with pytest.raises(auth.Unauthorized):
        auth.check_task_caller(cloud_config(keys), {})


def test_signing_keys_are_fetched_once_and_cached(keys: dict[str, Any]) -> None:
    server = keys["server"]
    before = server.hits
    for _ in range(5):
        auth.check_task_caller(cloud_config(keys), bearer(google_token(keys)))
    assert server.hits - before == 1


def test_setup_accepts_an_iap_assertion_of_an_administrator(keys: dict[str, Any]) -> None:
    now = int(time.time())
    claims = {"iss": "https://cloud.google.com/iap", "aud": IAP_AUD, "email": "boss@example.com", "sub": "accounts:1",
              "iat": now, "exp": now + 600}
    assertion = jwt.encode(keys["iap"], claims).decode()
    caller = auth.check_admin(cloud_config(keys), {"X-Goog-IAP-JWT-Assertion": assertion})
    assert caller.identity == "boss@example.com"
    intruder = jwt.encode(keys["iap"], {**claims, "email": "intern@example.com"}).decode()
    with pytest.raises(auth.Forbidden):
        auth.check_admin(cloud_config(keys), {"X-Goog-IAP-JWT-Assertion": intruder})
    with pytest.raises(auth.Unauthorized):
        auth.check_admin(cloud_config(keys), {"X-Goog-IAP-JWT-Assertion": jwt.encode(
            keys["iap"], {**claims, "aud": "/projects/9/global/backendServices/9"}).decode()})


def test_setup_accepts_an_identity_token_of_an_administrator(keys: dict[str, Any]) -> None:
    token = google_token(keys, aud=SETUP_URL, email="Boss@Example.com")
    assert auth.check_admin(cloud_config(keys), bearer(token)).identity == "boss@example.com"
    with pytest.raises(auth.Forbidden):
        auth.check_admin(cloud_config(keys), bearer(google_token(keys, aud=SETUP_URL)))  # the tasks SA


def test_local_mode_uses_shared_tokens() -> None:
    config = Config(backend="local", admin_token="adm", task_token="tsk")
    assert auth.check_admin(config, {"X-Spokesync-Admin-Token": "adm"}).kind == "admin"
    assert auth.check_task_caller(config, bearer("tsk")).kind == "task"
    for headers in ({}, bearer("adm"), bearer("tsk2")):
        with pytest.raises(auth.Unauthorized):
            auth.check_task_caller(config, headers)
    with pytest.raises(auth.Unauthorized):
        auth.check_admin(Config(backend="local"), bearer(""))  # no token configured: nobody


def test_the_sync_function_maps_auth_failures_to_401_and_403(keys: dict[str, Any], tmp_path: Any) -> None:
    import functions_framework

    from spokesync.bootstrap import build_context, set_context
    from spokesync.queue.local import LocalTaskQueue
    from spokesync.stores.sqlite import SqliteHubStore

    ctx = build_context(cloud_config(keys), store=SqliteHubStore(str(tmp_path / "h.db")), secrets=object(),  # type: ignore[arg-type]
                        queue=LocalTaskQueue())
    set_context(ctx)
    try:
        client = functions_framework.create_app(target="sync_spoke", source="functions/sync_spoke/main.py").test_client()
        assert client.post("/", json={"spoke_id": "s"}).status_code == 401
        wrong = google_token(keys, email="x@proj.iam.gserviceaccount.com")
        assert client.post("/", json={"spoke_id": "s"}, headers=bearer(wrong)).status_code == 403
        resp = client.post("/", json={"spoke_id": "gone"}, headers=bearer(google_token(keys)))
        assert resp.status_code == 200 and resp.get_json() == {"status": "gone"}
        assert client.post("/", json={"nope": 1}, headers=bearer(google_token(keys))).status_code == 400
    finally:
        set_context(None)


def test_setup_refuses_everyone_when_no_administrator_is_configured(keys: dict[str, Any]) -> None:
    config = replace(cloud_config(keys), admin_emails=())
    token = google_token(keys, aud=SETUP_URL, email="anyone@example.com")
    with pytest.raises(auth.Forbidden) as refused:
        auth.check_admin(config, bearer(token))
    assert "SPOKESYNC_ADMIN_EMAILS" in str(refused.value) and "setup_admin_emails" in str(refused.value)


def test_a_cloud_tasks_token_is_never_an_administrator(keys: dict[str, Any]) -> None:
    # the token Cloud Tasks mints for sync_spoke (audience: the sync URL), even if the SA were listed
    config = replace(cloud_config(keys), admin_emails=("boss@example.com", SA))
    with pytest.raises(auth.Unauthorized):
        auth.check_admin(config, bearer(google_token(keys)))  # aud = SYNC_URL
    with pytest.raises(auth.Forbidden):
        auth.check_admin(config, bearer(google_token(keys, aud=SETUP_URL)))  # the tasks SA, setup's audience
