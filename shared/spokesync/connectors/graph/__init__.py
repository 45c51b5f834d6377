"""The Microsoft 365 (Exchange Online) spoke kind ("graph"), through Microsoft Graph.

A credential (kind "graph") is an Entra app registration with application permissions:
settings `{"tenant": ..., "client_id": ..., "auth": "secret" | "certificate"}`; the secret
store holds the client secret, or a JSON object `{"private_key": PEM, "certificate": PEM}`.
A spoke's address: `{"kind": "user" | "group", "mailbox": <UPN, SMTP address or object id>,
"calendar_id": <id, or absent for the default calendar>}` (a shared mailbox is a "user").

What setup calls:
- `validate(settings, secret, config, mailbox=..., kind=...)`: signs in and reads the
  mailbox's calendars once; says precisely what is wrong (wrong tenant, wrong secret, admin
  consent missing, mailbox outside the app's scope, no such mailbox);
- `list_calendars(...)`: the calendar picker; `list_contact_folders(...)`: the contacts folder
  browser (spoke kind "graph_contacts", connectors/graph/contacts.py);
- `save_credential(ctx, label, settings, secret, ...)`: validate, then store;
- `from_spoke(spoke, credential, secrets, config, clock)`: the registry's factory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spokesync.ports import ConnectorError, CredentialBroken

if TYPE_CHECKING:
    from spokesync.config import Config
    from spokesync.connectors.graph.client import GraphClient, GraphCredential, Response
    from spokesync.connectors.graph.connector import GraphConnector, Target
    from spokesync.connectors.graph.contacts import FolderInfo
    from spokesync.model.hub import CredentialRef, Spoke
    from spokesync.ports import Clock, SecretStore

__all__ = ["CalendarInfo", "GraphSettings", "client_for_spoke", "describe_response", "from_spoke", "list_calendars",
           "list_contact_folders", "save_credential", "validate"]

CALENDARS_ROLE = "Calendars.ReadWrite"
CONTACTS_ROLE = "Contacts.ReadWrite"
GROUPS_ROLE = "Group.ReadWrite.All"


@dataclass(frozen=True)
class GraphSettings:
    tenant: str
    client_id: str
    auth: str = "secret"  # "secret" | "certificate"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GraphSettings:
        tenant = str(raw.get("tenant") or "").strip()
        client_id = str(raw.get("client_id") or "").strip()
        auth = str(raw.get("auth") or "secret")
        if not tenant:
            raise ConnectorError("the Directory (tenant) ID is missing: copy it from the app registration's "
                                 "Overview page")
        if not client_id:
            raise ConnectorError("the Application (client) ID is missing: copy it from the app registration's "
                                 "Overview page")
        if auth not in ("secret", "certificate"):
            raise ConnectorError("choose a client secret or a certificate")
        return cls(tenant, client_id, auth)

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "client_id": self.client_id, "auth": self.auth}


def credential_for(settings: GraphSettings, secret: str) -> GraphCredential:
    from spokesync.connectors.graph.client import GraphCredential

    if settings.auth == "certificate":
        try:
            raw = json.loads(secret)
            key, cert = str(raw["private_key"]), str(raw["certificate"])
        except (ValueError, KeyError, TypeError):
            raise CredentialBroken("the certificate credential needs the PEM private key and the PEM "
                                   "certificate") from None
        return GraphCredential(settings.tenant, settings.client_id, private_key_pem=key, certificate_pem=cert)
    if not secret:
        raise CredentialBroken("the client secret is missing")
    return GraphCredential(settings.tenant, settings.client_id, secret=secret)


def describe_response(resp: Response, target: Target | Any | None, doing: str, *, role: str = CALENDARS_ROLE,
                      container: str = "calendar") -> ConnectorError:
    """An administrator's message for a Graph error answer (never the raw error text alone).

    `target` has `kind` ("user" | "group") and `mailbox`; `role` is the application permission the
    request needs, `container` what the spoke points at ("calendar", "contacts folder")."""
    who = f"mailbox {target.mailbox}" if target is not None and target.kind == "user" else (
        f"group {target.mailbox}" if target is not None else "this mailbox")
    if resp.status == 403 and ("ApplicationAccessPolicy" in resp.message or "RAOP" in resp.message):
        return CredentialBroken(f"{who} is outside the app's scope: an application access policy (or RBAC for "
                                "Applications) in Exchange Online limits the app to other mailboxes. Add this mailbox "
                                "to the policy's group, or choose a mailbox the app may use.")
    if resp.status == 403:
        needed = GROUPS_ROLE if target is not None and target.kind == "group" else role
        return CredentialBroken(f"admin consent missing: the app may not {doing} for {who}. In the app registration, "
                                f"add the application permission {needed} and select 'Grant admin consent'.")
    if resp.status == 401:
        return CredentialBroken("Microsoft Graph refused the app's token: check the tenant and the app registration")
    if resp.status == 404 and resp.code in ("ErrorInvalidUser", "Request_ResourceNotFound", "ResourceNotFound",
                                            "MailboxNotEnabledForRESTAPI"):
        return ConnectorError(f"{who} does not exist in this tenant (or has no Exchange Online mailbox): check the "
                              "address")
    if resp.status == 404:
        return ConnectorError(f"the {container} was not found in {who}: it may have been deleted; choose it again")
    return ConnectorError(f"Microsoft Graph could not {doing} ({resp.status} {resp.code or 'error'})")


def _client(settings: GraphSettings, secret: str, config: Config, mailbox: str) -> GraphClient:
    from spokesync.connectors.graph.client import GraphClient

    return GraphClient(credential_for(settings, secret), config, mailbox)


def target_of(address: dict[str, Any]) -> Target:
    from spokesync.connectors.graph.connector import Target

    kind = str(address.get("kind") or "user")
    mailbox = str(address.get("mailbox") or "").strip()
    if kind not in ("user", "group") or not mailbox:
        raise ConnectorError("the Microsoft 365 spoke needs a mailbox (user or shared mailbox address) or a group id")
    calendar = address.get("calendar_id")
    return Target(kind, mailbox, str(calendar) if calendar else None)


def client_for_spoke(spoke: Spoke, credential: CredentialRef | None, secrets: SecretStore, config: Config,
                     mailbox: str) -> GraphClient:
    """The Graph client of a spoke's saved credential (kind "graph", shared by calendars and contacts)."""
    if credential is None or credential.kind != "graph":
        raise ConnectorError(f"spoke {spoke.name!r} has no Microsoft 365 credential")
    if credential.broken_reason:
        raise CredentialBroken(credential.broken_reason)
    settings = GraphSettings.from_dict(credential.settings)
    if not credential.secret_name:
        raise CredentialBroken("the Microsoft 365 credential has no saved secret")
    try:
        secret = secrets.get(credential.secret_name)
    except KeyError as exc:
        raise CredentialBroken("the Microsoft 365 secret is missing from the secret store") from exc
    return _client(settings, secret, config, mailbox)


def from_spoke(spoke: Spoke, credential: CredentialRef | None, secrets: SecretStore,
               config: Config, clock: Clock) -> GraphConnector:
    from spokesync.connectors.graph.connector import GraphConnector

    target = target_of(spoke.address)
    return GraphConnector(client_for_spoke(spoke, credential, secrets, config, target.mailbox), target,
                          days_past=spoke.options.days_past, days_future=spoke.options.days_future,
                          now=clock.now)


@dataclass(frozen=True)
class CalendarInfo:
    id: str
    name: str
    is_default: bool
    can_edit: bool


def _require_role(client: GraphClient, needed: str) -> None:
    """Refuse, saying what to grant, when the app's token lacks an application permission."""
    roles = client.token_roles()
    if roles is not None and needed not in roles:
        raise CredentialBroken(f"admin consent missing: the app has no {needed} application permission"
                               f"{' (it has ' + ', '.join(sorted(roles)) + ')' if roles else ''}. In the app "
                               f"registration, add {needed} under API permissions (Microsoft Graph, Application "
                               "permissions) and select 'Grant admin consent'.")


def list_calendars(settings: GraphSettings | dict[str, Any], secret: str, config: Config, mailbox: str,
                   kind: str = "user") -> list[CalendarInfo]:
    """The calendar picker: a mailbox's calendars, or a group's one calendar."""
    from spokesync.connectors.graph.connector import Target

    if isinstance(settings, dict):
        settings = GraphSettings.from_dict(settings)
    target = Target(kind, mailbox)
    client = _client(settings, secret, config, mailbox)
    _require_role(client, GROUPS_ROLE if kind == "group" else CALENDARS_ROLE)
    path = f"{target.root}/calendar" if kind == "group" else f"{target.root}/calendars"
    resp = client.get(path)
    if not resp.ok:
        raise describe_response(resp, target, "read calendars")
    raws = [resp.body] if kind == "group" else list(resp.body.get("value") or [])
    return [CalendarInfo(str(r["id"]), str(r.get("name") or ""), bool(r.get("isDefaultCalendar")),
                         bool(r.get("canEdit", True))) for r in raws]


def list_contact_folders(settings: GraphSettings | dict[str, Any], secret: str, config: Config,
                         mailbox: str) -> list[FolderInfo]:
    """The contacts folder browser: a mailbox's contact folders ("Customers", "Customers / EU", ...),
    after checking that the app holds the Contacts.ReadWrite application permission."""
    from spokesync.connectors.graph.contacts import list_folders

    if isinstance(settings, dict):
        settings = GraphSettings.from_dict(settings)
    client = _client(settings, secret, config, mailbox)
    _require_role(client, CONTACTS_ROLE)
    return list_folders(client, mailbox)


def validate(settings: GraphSettings | dict[str, Any], secret: str, config: Config, mailbox: str,
             kind: str = "user", object_type: str = "calendar") -> list[CalendarInfo] | list[FolderInfo]:
    """Sign in and read the mailbox's calendars (or, for contacts, its contact folders) once: the
    ConnectorError says what is wrong."""
    if object_type == "contacts":
        return list_contact_folders(settings, secret, config, mailbox)
    return list_calendars(settings, secret, config, mailbox, kind)


def save_credential(ctx: Any, label: str, settings: dict[str, Any], secret: str, *, mailbox: str,
                    kind: str = "user", object_type: str = "calendar") -> CredentialRef:
    """Validate against one mailbox, then store the secret in the SecretStore and the reference in the hub store."""
    import uuid

    from spokesync.model.hub import CredentialRef

    parsed = GraphSettings.from_dict(settings)
    validate(parsed, secret, ctx.config, mailbox, kind, object_type)
    credential_id = "cred-" + uuid.uuid4().hex[:12]
    secret_name = ctx.secrets.put(f"graph-{credential_id}", secret)
    credential = CredentialRef(id=credential_id, kind="graph", label=label or f"Microsoft 365 ({parsed.tenant})",
                               secret_name=secret_name, settings=parsed.to_dict())
    ctx.store.put_credential(credential)
    return credential
