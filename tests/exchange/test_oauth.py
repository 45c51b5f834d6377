"""OAuth 2 for Exchange Online (client-credentials grant) against the local server's token
endpoint, over real TLS: validation, a sync through the engine, token expiry, and the
administrator-readable errors (wrong client secret, unknown application or tenant, an
application without the EWS permission). The client secret lives in the SecretStore only."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spokesync.bootstrap import build_context
from spokesync.config import Config
from spokesync.connectors import exchange
from spokesync.connectors.exchange import guard
from spokesync.connectors.exchange.access import ExchangeSettings
from spokesync.engine.runner import Runner
from spokesync.ports import ConnectorError, CredentialBroken, FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.ews import EwsServer
from spokesync.sandbox.ews.tls import Certificates, make_certificates
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore
from tests.exchange.conftest import local_config

KEY = "a2V5LWZvci10ZXN0cy1vbmx5LTMyLWJ5dGVzLWxvbmc="
CLIENT_ID = "3f2a9c1e-app"
CLIENT_SECRET = "Client~Secret.42"
TENANT = "contoso-tenant"
HOST = "ews.example.test"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates((HOST,), directory=str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="module")
def online(certs: Certificates) -> Iterator[EwsServer]:
    """Exchange Online as far as this spoke sees it: https, OAuth 2 only, a token endpoint per tenant."""
    server = EwsServer(auth=(), oauth_apps={CLIENT_ID: CLIENT_SECRET, "no-ews-app": "No-Ews-Secret-9"}, tenant=TENANT,
                       tls=certs, hostname=HOST, mailbox="shared@example.com").start()
    server.issuer.without_ews_permission.add("no-ews-app")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def example_test_dns(monkeypatch: pytest.MonkeyPatch, certs: Certificates) -> None:
    """*.example.test resolves to 127.0.0.1 and the sandbox CA is trusted."""
    real = guard.resolve
    monkeypatch.setattr(guard, "resolve", lambda host, port: ["127.0.0.1"] if host.endswith(".example.test")
                        else real(host, port))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certs.ca_path)


def https_config(**kw) -> Config:  # type: ignore[no-untyped-def]
    """https everywhere; only the loopback range is allow-listed (the sandbox runs there)."""
    return Config(exchange_allowed_cidrs=("127.0.0.0/8",), run_budget_s=20.0, **kw)


def oauth_settings(server: EwsServer, **kw) -> dict:  # type: ignore[no-untyped-def]
    return {"ews_url": server.url, "auth_type": "OAuth 2.0", "mailbox": "shared@example.com", "tenant_id": TENANT,
            "client_id": CLIENT_ID, "token_url": server.token_url, "version": "2016", **kw}


def test_validation_fetches_a_token_and_uses_it_as_bearer(online: EwsServer) -> None:
    online.reset_counts()
    result = exchange.validate(oauth_settings(online), CLIENT_SECRET, https_config())
    assert result.server_version.startswith("15.1") and result.public_folders
    assert online.paths["token"] == 1  # one client-credentials grant, reused for every EWS request
    assert online.paths["ews"] >= 2 and online.last_headers["Authorization"].startswith("Bearer ")
    assert online.last_impersonation == "shared@example.com"  # app tokens act on the mailbox by impersonation


def test_settings_need_tenant_client_and_mailbox() -> None:
    with pytest.raises(ConnectorError, match="missing: tenant_id, client_id, mailbox"):
        ExchangeSettings.from_dict({"ews_url": "https://x.example.test/EWS/Exchange.asmx", "auth_type": "oauth2"})
    parsed = ExchangeSettings.from_dict({"ews_url": "https://outlook.office365.com/EWS/Exchange.asmx",
                                         "auth_type": "oauth", "tenant_id": "t1", "client_id": "c1",
                                         "mailbox": "a@b.example"})
    assert parsed.oauth_token_url == "https://login.microsoftonline.com/t1/oauth2/v2.0/token"  # Microsoft's default


@pytest.mark.parametrize(("change", "secret", "message"), [
    ({}, "wrong-secret", "wrong client secret: the identity provider refused the secret of application 3f2a9c1e-app"),
    ({"client_id": "unknown-app"}, CLIENT_SECRET, "unknown application: .* unknown-app in tenant contoso-tenant"),
    ({"tenant_id": "fabrikam"}, CLIENT_SECRET, "unknown tenant: .* directory fabrikam"),
    ({"client_id": "no-ews-app"}, "No-Ews-Secret-9", r"access token refused: .* \(full_access_as_app\)"),
])
def test_oauth_failures_are_named(online: EwsServer, change: dict, secret: str, message: str) -> None:
    raw = oauth_settings(online, **change)
    if "tenant_id" in change:
        raw["token_url"] = online.token_url.replace(TENANT, change["tenant_id"])
    online.reset_counts()
    with pytest.raises(CredentialBroken, match=message) as err:
        exchange.validate(raw, secret, https_config())
    assert secret not in str(err.value)
    # a refused token is retried once with a fresh one, never in a loop (exchangelib also refills its
    # session pool after the final failure, which fetches one more token)
    assert online.paths["token"] <= 3 and online.paths["ews"] <= 2


def test_wrong_client_secret_saves_nothing(online: EwsServer, tmp_path: Path) -> None:
    ctx = build_context(https_config(data_dir=str(tmp_path), secret_key=KEY))
    with pytest.raises(CredentialBroken, match="wrong client secret"):
        exchange.save_credential(ctx, "Online", oauth_settings(online), "wrong-secret")
    assert ctx.store.list_credentials() == []
    with pytest.raises(KeyError):
        ctx.secrets.get("exchange-anything")


def test_oauth_needs_https(ews: EwsServer) -> None:
    raw = {"ews_url": ews.url, "auth_type": "OAuth 2.0", "mailbox": "shared@example.com", "tenant_id": TENANT,
           "client_id": CLIENT_ID, "token_url": ews.url.replace("/EWS/Exchange.asmx", f"/{TENANT}/oauth2/v2.0/token")}
    ews.reset_counts()
    with pytest.raises(ConnectorError, match="OAuth 2 needs https://"):
        exchange.validate(raw, CLIENT_SECRET, local_config())
    assert ews.http_requests == 0  # refused before the secret travels in clear text


def test_the_token_url_passes_the_ssrf_guard(online: EwsServer) -> None:
    raw = oauth_settings(online, token_url="https://169.254.169.254/metadata/identity/oauth2/token")
    with pytest.raises(exchange.UrlRefused, match="OAuth token URL|link-local"):
        exchange.validate(raw, CLIENT_SECRET, https_config())


@pytest.mark.parametrize("how", ["client clock", "server revoked"])
def test_an_expired_token_is_replaced_without_failing_the_run(certs: Certificates, how: str) -> None:
    lifetime = 3 if how == "client clock" else 3599  # 3 s: the first read fits well inside it
    with EwsServer(auth=(), oauth_apps={CLIENT_ID: CLIENT_SECRET}, tenant=TENANT, tls=certs, hostname=HOST,
                   token_lifetime_s=lifetime) as server:
        folder = server.public_folder("Expiry")
        settings = ExchangeSettings.from_dict(oauth_settings(server))
        connector = exchange.connector_for_folder(settings, CLIENT_SECRET, https_config(), folder.id, public=True)
        connector.changes(None)
        assert server.paths["token"] == 1
        if how == "client clock":
            time.sleep(3.1)  # requests_oauthlib sees the token's expires_in run out
        else:
            server.issuer.expire_all()  # the server drops the token early: a 401
        assert connector.changes(None).items == []
        assert server.paths["token"] == 2


def test_sync_through_the_engine_with_oauth(online: EwsServer, tmp_path: Path) -> None:
    queue = LocalTaskQueue()
    ctx = build_context(https_config(data_dir=str(tmp_path), secret_key=KEY),
                        clock=FakeClock(datetime(2026, 3, 1, 8, tzinfo=UTC)), store=SqliteHubStore(":memory:"),
                        queue=queue)
    queue.handler = ctx.run_task
    cred = exchange.save_credential(ctx, "Exchange Online", oauth_settings(online), CLIENT_SECRET)
    # the client secret is in the SecretStore, never in the hub store
    assert ctx.secrets.get(cred.secret_name or "") == CLIENT_SECRET
    stored = ctx.store.get_credential(cred.id)
    assert stored is not None and CLIENT_SECRET not in json.dumps(stored.to_dict())
    assert stored.settings["client_id"] == CLIENT_ID and stored.settings["token_url"] == online.token_url
    pf = online.public_folder("oauth-pf")
    mb = online.mailbox_folder("oauth-mb")
    hub = hubs.create_hub(ctx, "Online")
    two_way = {"direction": "two_way"}
    hubs.add_spoke(ctx, hub.id, "Public", "exchange", {"folder_id": pf.id, "public": True}, cred.id, two_way)
    hubs.add_spoke(ctx, hub.id, "Mailbox", "exchange", {"folder_id": mb.id, "public": False}, cred.id, two_way)
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    online.user_create(pf, "Board meeting", start, start + timedelta(hours=1))
    online.user_create(mb, "Offsite", start + timedelta(days=3), start + timedelta(days=3, hours=8))
    online.reset_counts()
    for _ in range(2):
        for spoke in ctx.store.list_spokes():
            Runner(ctx).sync(spoke.id)
        queue.drain(max_tasks=50)
    subjects = sorted(i.text("Subject") or "" for i in online.items(pf))
    assert subjects == sorted(i.text("Subject") or "" for i in online.items(mb)) == ["Board meeting", "Offsite"]
    assert online.paths["token"] >= 1 and online.paths["other"] == 0


def test_the_wizard_form_saves_an_exchange_online_credential(online: EwsServer, tmp_path: Path) -> None:
    """Step 3 of the browser wizard with OAuth 2.0: application id, tenant, mailbox and client
    secret; validated against the server before anything is saved; the secret never comes back."""
    from spokesync.bootstrap import set_context
    from spokesync.web.app import create_app

    admin = {"Authorization": "Bearer wizard-admin-token-0123456789"}
    ctx = build_context(https_config(data_dir=str(tmp_path), secret_key=KEY, admin_token=admin["Authorization"][7:]),
                        store=SqliteHubStore(":memory:"), queue=LocalTaskQueue())
    set_context(ctx)
    try:
        client = create_app().test_client()
        step = client.get("/setup/new/credentials?source=exchange_public", headers=admin)
        html = step.get_data(as_text=True)
        assert step.status_code == 200 and 'value="OAuth 2.0"' in html and 'name="tenant_id"' in html
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
        form = {"csrf_token": token, "source": "exchange_public", "label": "Exchange Online", "ews_url": online.url,
                "username": "", "version": "2016", "auth_type": "OAuth 2.0", "tenant_id": TENANT,
                "client_id": CLIENT_ID, "mailbox": "shared@example.com", "token_url": online.token_url}
        pages: list[str] = []

        def post(**changes: str) -> Any:
            resp = client.post("/setup/new/credentials/exchange", headers=admin, data={**form, **changes})
            pages.append(resp.get_data(as_text=True))
            return resp

        wrong = post(password="wrong-secret")
        assert wrong.status_code in (400, 422) and "wrong client secret" in pages[-1]
        assert 'value="Exchange Online"' in pages[-1] and f'value="{CLIENT_ID}"' in pages[-1]  # the form is kept
        assert ctx.store.list_credentials() == []
        missing = post(password=CLIENT_SECRET, tenant_id="")
        assert missing.status_code in (400, 422) and "missing: tenant_id" in pages[-1]
        assert ctx.store.list_credentials() == []
        saved = post(password=CLIENT_SECRET)
        assert saved.status_code == 200, pages[-1]
        [cred] = ctx.store.list_credentials()
        assert cred.settings["auth_type"] == "OAuth 2.0" and cred.settings["client_id"] == CLIENT_ID
        assert cred.settings["tenant_id"] == TENANT and cred.settings["token_url"] == online.token_url
        assert ctx.secrets.get(cred.secret_name or "") == CLIENT_SECRET
        assert not any(CLIENT_SECRET in p or "wrong-secret" in p for p in pages)
    finally:
        set_context(None)
