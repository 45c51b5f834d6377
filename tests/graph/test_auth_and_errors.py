"""Signing in through msal against the local identity platform, and the administrator's messages
for what goes wrong: wrong tenant, wrong secret, unknown app, admin consent missing, a mailbox
outside the app's application access policy, a certificate the app does not have."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from spokesync.connectors.graph import GraphSettings, list_calendars
from spokesync.ports import ConnectorError, CredentialBroken
from spokesync.sandbox.graph import GraphServer
from spokesync.sandbox.graph.identity import Tenant
from tests.graph.conftest import SECRET, SHARED, graph_config


def _certificate() -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spokesync")])
    now = datetime.now(UTC) - timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
            cert.public_bytes(serialization.Encoding.PEM).decode())


def test_client_secret_sign_in_lists_the_calendars(graph: GraphServer, settings: GraphSettings, shared_mailbox) -> None:
    calendars = list_calendars(settings, SECRET, graph_config(graph), SHARED)
    assert any(c.is_default and c.name == "Calendar" for c in calendars)


def test_certificate_sign_in(graph: GraphServer, tenant: Tenant, shared_mailbox) -> None:
    key, cert = _certificate()
    app = graph.add_app(tenant, certificate_pem=cert)
    secret = json.dumps({"private_key": key, "certificate": cert})
    calendars = list_calendars(GraphSettings(tenant.id, app.client_id, "certificate"), secret, graph_config(graph),
                               SHARED)
    assert calendars


def test_a_certificate_the_app_does_not_have_is_named(graph: GraphServer, tenant: Tenant, shared_mailbox) -> None:
    _, registered = _certificate()
    key, other = _certificate()
    app = graph.add_app(tenant, certificate_pem=registered)
    with pytest.raises(CredentialBroken, match="AADSTS700027"):
        list_calendars(GraphSettings(tenant.id, app.client_id, "certificate"),
                       json.dumps({"private_key": key, "certificate": other}), graph_config(graph), SHARED)


def test_wrong_secret(graph: GraphServer, settings: GraphSettings, shared_mailbox) -> None:
    with pytest.raises(CredentialBroken, match="wrong client secret") as info:
        list_calendars(settings, "not-the-secret", graph_config(graph), SHARED)
    assert "not-the-secret" not in str(info.value)


def test_wrong_tenant(graph: GraphServer, settings: GraphSettings) -> None:
    wrong = GraphSettings("fabrikam.onmicrosoft.com", settings.client_id)
    with pytest.raises(CredentialBroken, match="wrong tenant.*AADSTS90002"):
        list_calendars(wrong, SECRET, graph_config(graph), SHARED)


def test_unknown_application(graph: GraphServer, settings: GraphSettings) -> None:
    with pytest.raises(CredentialBroken, match="AADSTS700016"):
        list_calendars(GraphSettings(settings.tenant, "00000000-0000-0000-0000-000000000000"), SECRET,
                       graph_config(graph), SHARED)


def test_admin_consent_missing(graph: GraphServer, tenant: Tenant, shared_mailbox) -> None:
    app = graph.add_app(tenant, secret="No-Consent-1", roles=())
    with pytest.raises(CredentialBroken, match="admin consent missing.*Calendars.ReadWrite"):
        list_calendars(GraphSettings(tenant.id, app.client_id), "No-Consent-1", graph_config(graph), SHARED)


def test_group_calendars_need_their_own_permission(graph: GraphServer, tenant: Tenant) -> None:
    group = graph.add_mailbox("team-perm@contoso.com", "Team", kind="group")
    app = graph.add_app(tenant, secret="Cal-Only-1", roles=("Calendars.ReadWrite",))
    with pytest.raises(CredentialBroken, match="Group.ReadWrite.All"):
        list_calendars(GraphSettings(tenant.id, app.client_id), "Cal-Only-1", graph_config(graph), group.id, "group")


def test_mailbox_outside_the_application_access_policy(graph: GraphServer, tenant: Tenant, shared_mailbox) -> None:
    app = graph.add_app(tenant, secret="Scoped-1", allowed_mailboxes=("other@contoso.com",))
    with pytest.raises(CredentialBroken, match="outside the app's scope"):
        list_calendars(GraphSettings(tenant.id, app.client_id), "Scoped-1", graph_config(graph), SHARED)


def test_unknown_mailbox(graph: GraphServer, settings: GraphSettings) -> None:
    with pytest.raises(ConnectorError, match="does not exist in this tenant"):
        list_calendars(settings, SECRET, graph_config(graph), "nobody@contoso.com")


def test_missing_settings_say_which_field() -> None:
    with pytest.raises(ConnectorError, match="Directory \\(tenant\\) ID is missing"):
        GraphSettings.from_dict({"client_id": "x"})


def test_graph_refusing_a_call_names_the_missing_permission(graph: GraphServer, tenant: Tenant) -> None:
    """The same message when the token's roles cannot be read and Graph itself answers 403."""
    from spokesync.connectors.graph import credential_for
    from spokesync.connectors.graph.client import GraphClient
    from spokesync.connectors.graph.connector import GraphConnector, Target

    group = graph.add_mailbox("team-403@contoso.com", "Team", kind="group")
    app = graph.add_app(tenant, secret="Cal-Only-2", roles=("Calendars.ReadWrite",))
    client = GraphClient(credential_for(GraphSettings(tenant.id, app.client_id), "Cal-Only-2"), graph_config(graph),
                         group.id)
    with pytest.raises(CredentialBroken, match="admin consent missing.*Group.ReadWrite.All"):
        GraphConnector(client, Target("group", group.id)).changes(None)
