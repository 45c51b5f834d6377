"""The setup JSON API: credentials, hubs, spokes, options, sync now, status, runs.

`handle(ctx, method, path, body, query)` -> `(status, payload)`, free of any
web framework: `functions/setup/main.py` and the local server map HTTP onto it.
It calls `service.hubs` for hubs and spokes, the connectors' validation and
picker functions for credentials, and `service.push` to open a push channel
for a new Google spoke. Secrets go to the SecretStore and never come back
out: credential payloads show id, kind, label and non-secret settings only.

Routes (all under /api):

    GET    /status                              every hub with its spokes' status
    GET    /hubs                 POST /hubs {name}
    GET    /hubs/{id}            DELETE /hubs/{id}
    POST   /hubs/{id}/sync                      sync every spoke now
    GET    /hubs/{id}/runs?limit=
    POST   /hubs/{id}/spokes {name, kind, address, credential_id, options}
    GET    /spokes/{id}          DELETE /spokes/{id}
    PATCH  /spokes/{id}/options {...}           e.g. {"direction": "two_way"}
    POST   /spokes/{id}/sync | /dry-run | /confirm-deletions | /cancel-deletions | /resume
    GET    /spokes/{id}/matches                 items matched ambiguously while joining, with their candidates
    POST   /spokes/{id}/matches {spoke_item_id, hub_item_id | null}   decide one: the same as that hub item,
                                                 or (null) a different item, copied as a new one
    GET    /spokes/{id}/runs?limit=
    GET    /runs/{id}
    GET    /credentials
    POST   /credentials/exchange {label, settings, password, require_public_folders}
    POST   /credentials/graph {label, settings, secret | private_key + certificate, mailbox, mailbox_kind}
    POST   /credentials/google/service-account {label, key, subject}
    POST   /credentials/google/oauth/start {redirect_uri}
    POST   /credentials/google/oauth/finish {code, redirect_uri, label, account, state}
                                                 (a `state` from reauth/start: signs in again, 200)
    POST   /credentials/{id}/exchange-password {password, settings}   repair: validate, store, resume
    POST   /credentials/{id}/google/reauth/start {redirect_uri}       repair: sign in again
    DELETE /credentials/{id}
    GET    /credentials/{id}/calendars           Google calendar picker
    POST   /credentials/{id}/calendars {calendar_id}   add a shared calendar to the list (calendarList.insert)
    POST   /credentials/{id}/selftest            check the credential in a scratch calendar (spokesync selftest)
    POST   /credentials/{id}/folders {parent, public}   Exchange folder browser
    POST   /credentials/{id}/graph-calendars {mailbox, mailbox_kind}   Microsoft 365 calendar picker
    POST   /credentials/{id}/graph-contact-folders {mailbox}   Microsoft 365 contacts folder picker
    POST   /credentials/{id}/graph-secret {secret | private_key + certificate}   repair: validate, store, resume
    GET    /openapi.json                         this API's OpenAPI 3.0 description
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from spokesync.model.hub import CredentialRef
from spokesync.ports import ConnectorError
from spokesync.service import credentials as credential_repair
from spokesync.service import hubs

if TYPE_CHECKING:
    from spokesync.bootstrap import Context


Payload = Any
Handler = Callable[..., tuple[int, Payload]]


class ApiError(Exception):
    """An error for the API's caller: `detail` in plain words, a stable `code`, and the `field`
    of the request it is about (the web form highlights that field)."""

    def __init__(self, status: int, message: str, code: str = "invalid_request", field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.field = field


def error_body(message: str, code: str, field: str = "") -> dict[str, Any]:
    """Every API error's shape: `detail` and `code` (`error` repeats `detail` for older clients)."""
    body: dict[str, Any] = {"error": message, "detail": message, "code": code}
    if field:
        body["field"] = field
    return body


# What a missing or wrong field is, in the words of the form that sends it.
FIELD_WORDS = {
    "name": "a name", "label": "a label", "password": "the password", "ews_url": "the EWS address",
    "username": "the user name", "kind": "the kind of spoke", "code": "the sign-in code",
    "state": "the sign-in state", "key": "the service account key", "redirect_uri": "the return address",
}


def _body_str(body: Mapping[str, Any], name: str, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        what = FIELD_WORDS.get(name, f"'{name}'")
        if value is not None and not isinstance(value, str):
            raise ApiError(400, f"{what[0].upper()}{what[1:]} must be text.", "invalid_field", name)
        raise ApiError(400, f"Enter {what}.", "missing_field", name)
    return value


def _label(body: Mapping[str, Any], default: str) -> str:
    """A credential's label: a string, bounded, printable (hubs.check_name)."""
    value = body.get("label")
    if value is not None and not isinstance(value, str):
        raise ApiError(400, "A label must be text.", "invalid_field", "label")
    return hubs.check_name((value or "").strip() or default, "credential label")


def credential_view(credential: CredentialRef, in_use: int = 0) -> dict[str, Any]:
    return {"id": credential.id, "kind": credential.kind, "label": credential.label,
            "settings": credential.settings, "broken_reason": credential.broken_reason, "spokes": in_use}


def _limit(query: Mapping[str, str]) -> int:
    try:
        return max(1, min(200, int(query.get("limit", "20"))))
    except ValueError:
        raise ApiError(400, "The limit must be a whole number, e.g. 20.", "invalid_field", "limit") from None


# ------------------------------------------------------------------ handlers


def status(ctx: Context, body: Any, query: Mapping[str, str]) -> tuple[int, Payload]:
    return 200, {"hubs": hubs.status(ctx)}


def list_hubs(ctx: Context, body: Any, query: Mapping[str, str]) -> tuple[int, Payload]:
    return 200, {"hubs": [h.to_dict() for h in hubs.list_hubs(ctx)]}


def create_hub(ctx: Context, body: Any, query: Mapping[str, str]) -> tuple[int, Payload]:
    hub = hubs.create_hub(ctx, _body_str(body, "name"), body.get("object_type", "calendar"))
    return 201, hub.to_dict()


def get_hub(ctx: Context, body: Any, query: Mapping[str, str], hub_id: str) -> tuple[int, Payload]:
    return 200, hubs.hub_status(ctx, hubs.get_hub(ctx, hub_id))


def delete_hub(ctx: Context, body: Any, query: Mapping[str, str], hub_id: str) -> tuple[int, Payload]:
    hubs.delete_hub(ctx, hub_id)
    return 200, {"deleted": hub_id}


def sync_hub(ctx: Context, body: Any, query: Mapping[str, str], hub_id: str) -> tuple[int, Payload]:
    return 202, {"enqueued": hubs.sync_hub_now(ctx, hub_id)}


def hub_runs(ctx: Context, body: Any, query: Mapping[str, str], hub_id: str) -> tuple[int, Payload]:
    hubs.get_hub(ctx, hub_id)
    return 200, {"runs": hubs.run_history(ctx, hub_id=hub_id, limit=_limit(query))}


def add_spoke(ctx: Context, body: Any, query: Mapping[str, str], hub_id: str) -> tuple[int, Payload]:
    address = body.get("address") or {}
    if not isinstance(address, dict):
        raise ApiError(400, "The address must be an object, e.g. {\"calendar_id\": \"...\"}.", "invalid_field", "address")
    options = body.get("options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "The options must be an object of option names and values.", "invalid_field", "options")
    credential_id = body.get("credential_id")
    spoke = hubs.add_spoke(ctx, hub_id, _body_str(body, "name"), _body_str(body, "kind"), address,
                           credential_id=credential_id if isinstance(credential_id, str) else None, options=options,
                           check=True)
    push_note = hubs.start_push(ctx, spoke)
    out = hubs.spoke_status(ctx, spoke)
    if push_note:
        out["note"] = push_note
    return 201, out


def get_spoke(ctx: Context, body: Any, query: Mapping[str, str], spoke_id: str) -> tuple[int, Payload]:
    return 200, hubs.spoke_status(ctx, hubs.get_spoke(ctx, spoke_id))


def delete_spoke(ctx: Context, body: Any, query: Mapping[str, str], spoke_id: str) -> tuple[int, Payload]:
    hubs.remove_spoke(ctx, spoke_id)
    return 200, {"deleted": spoke_id}


def set_options(ctx: Context, body: Any, query: Mapping[str, str], spoke_id: str) -> tuple[int, Payload]:
    spoke = hubs.set_options(ctx, spoke_id, dict(body))
    return 200, hubs.spoke_status(ctx, spoke)


def sync_spoke(ctx: Context, body: Any, query: Mapping[str, str], spoke_id: str) -> tuple[int, Payload]:
    return 202, {"enqueued": hubs.sync_now(ctx, spoke_id)}


def dry_run(ctx: Context, body: Any, query: Mapping[str, str], spoke_id: str) -> tuple[int, Payload]:
    run = hubs.dry_run(ctx, spoke_id)
    out = hubs.run_summary(run)
    out["plan"] = run.plan
    return 200, out


def spoke_action(action: Callable[[Context, str], Any]) -> Handler:
    def handler(ctx: Context, body: Any, query: Mapping[str, str], spoke_id: str) -> tuple[int, Payload]:
        return 200, hubs.spoke_status(ctx, action(ctx, spoke_id))

    return handler


def list_matches(ctx: Context, body: Any, query: Mapping[str, str], spoke_id: str) -> tuple[int, Payload]:
    status = hubs.spoke_status(ctx, hubs.get_spoke(ctx, spoke_id))
    return 200, {"spoke_id": status["id"], "ambiguous_matches": status["ambiguous_matches"]}


def decide_match(ctx: Context, body: Any, query: Mapping[str, str], spoke_id: str) -> tuple[int, Payload]:
    """An administrator's decision on an ambiguous match (docs/decisions/2026-12-01-matching.md):
    `hub_item_id` one of the listed candidates (the same item: linked), or null (a different item:
    copied as a new one). The spoke's next run, queued now, applies it."""
    spoke_item_id = body.get("spoke_item_id")
    if not isinstance(spoke_item_id, str) or not spoke_item_id.strip():
        raise ApiError(400, "Say which of the spoke's items you decide about (spoke_item_id, from the list of "
                            "undecided matches).", "missing_field", "spoke_item_id")
    if "hub_item_id" not in body:
        raise ApiError(400, "Say which hub item it is the same as (hub_item_id, one of its candidates), or null "
                            "if they are different and it should be copied as a new item.", "missing_field",
                       "hub_item_id")
    hub_item_id = body["hub_item_id"]
    if hub_item_id is not None and (not isinstance(hub_item_id, str) or not hub_item_id.strip()):
        raise ApiError(400, "The hub item must be the id of one of the listed candidates, or null to keep the "
                            "two apart.", "invalid_field", "hub_item_id")
    spoke = hubs.get_spoke(ctx, spoke_id)
    if not any(str(a.get("spoke_item_id")) == spoke_item_id for a in spoke.ambiguous):
        raise ApiError(404, f"Spoke '{spoke.name}' has no undecided match for that item: it may have been decided "
                            "already. Reload the list of undecided matches.", "no_such_match", "spoke_item_id")
    spoke = hubs.decide_match(ctx, spoke.id, spoke_item_id, hub_item_id or "")
    return 200, hubs.spoke_status(ctx, spoke)


def spoke_runs(ctx: Context, body: Any, query: Mapping[str, str], spoke_id: str) -> tuple[int, Payload]:
    hubs.get_spoke(ctx, spoke_id)
    return 200, {"runs": hubs.run_history(ctx, spoke_id=spoke_id, limit=_limit(query))}


def get_run(ctx: Context, body: Any, query: Mapping[str, str], run_id: str) -> tuple[int, Payload]:
    run = ctx.store.get_run(run_id)
    if run is None:
        raise ApiError(404, f"No run with id {run_id}.", "not_found")
    return 200, hubs.run_summary(run)


# --------------------------------------------------------------- credentials


def _credential(ctx: Context, credential_id: str) -> CredentialRef:
    credential = ctx.store.get_credential(credential_id)
    if credential is None:
        raise ApiError(404, f"No saved credential with id {credential_id}.", "not_found")
    return credential


def list_credentials(ctx: Context, body: Any, query: Mapping[str, str]) -> tuple[int, Payload]:
    uses: dict[str, int] = {}
    for spoke in ctx.store.list_spokes():
        if spoke.credential_id:
            uses[spoke.credential_id] = uses.get(spoke.credential_id, 0) + 1
    return 200, {"credentials": [credential_view(c, uses.get(c.id, 0)) for c in ctx.store.list_credentials()]}


def add_exchange_credential(ctx: Context, body: Any, query: Mapping[str, str]) -> tuple[int, Payload]:
    from spokesync.connectors import exchange

    settings = body.get("settings")
    if not isinstance(settings, dict):
        raise ApiError(400, "The settings must be an object (ews_url, username, version, auth_type).", "invalid_field",
                       "settings")
    password = _body_str(body, "password")
    try:
        credential = exchange.save_credential(ctx, _label(body, ""), settings, password,
                                              require_public_folders=bool(body.get("require_public_folders")))
    except ConnectorError as err:
        raise ApiError(422, str(err), err.code, CREDENTIAL_FIELDS.get(err.code, "")) from None
    return 201, credential_view(credential)


def _graph_secret(body: Mapping[str, Any], auth: str) -> str:
    """The secret store's value for a Microsoft 365 credential: the client secret, or key and certificate."""
    import json

    if auth == "certificate":
        return json.dumps({"private_key": _body_str(body, "private_key"), "certificate": _body_str(body, "certificate")})
    return _body_str(body, "secret")


def _mailbox_kind(body: Mapping[str, Any]) -> str:
    kind = body.get("mailbox_kind", "user")
    if kind not in ("user", "group"):
        raise ApiError(400, "'mailbox_kind' must be 'user' (a user's or a shared mailbox) or 'group'")
    return str(kind)


def add_graph_credential(ctx: Context, body: Any, query: Mapping[str, str]) -> tuple[int, Payload]:
    from spokesync.connectors import graph

    settings = body.get("settings")
    if not isinstance(settings, dict):
        raise ApiError(400, "'settings' must be an object (tenant, client_id, auth)")
    object_type = body.get("object_type") or "calendar"
    if object_type not in ("calendar", "contacts"):
        raise ApiError(400, "Validate for 'calendar' or 'contacts'.", "invalid_field", "object_type")
    # contacts: validated against the mailbox's contact folders (Contacts.ReadWrite), not its calendars
    extra = {"object_type": object_type} if object_type == "contacts" else {}
    try:
        parsed = graph.GraphSettings.from_dict(settings)
        credential = graph.save_credential(ctx, str(body.get("label") or ""), parsed.to_dict(),
                                           _graph_secret(body, parsed.auth), mailbox=_body_str(body, "mailbox"),
                                           kind=_mailbox_kind(body), **extra)
    except ConnectorError as err:
        raise ApiError(422, str(err), err.code, graph_field(str(err), str(settings.get("auth") or "secret"))) from None
    return 201, credential_view(credential)


# Which field of the Microsoft 365 credential form a validation failure is about (by Entra's AADSTS
# code or the connector's words), most specific first.
GRAPH_FIELDS = (
    ("AADSTS7000215", "secret"), ("AADSTS700027", "certificate"), ("AADSTS700016", "client_id"),
    ("AADSTS90002", "tenant"), ("tenant) ID is missing", "tenant"), ("client) ID is missing", "client_id"),
    ("does not exist in this tenant", "mailbox"), ("needs a mailbox", "mailbox"), ("consent", "client_id"),
    ("access policy", "mailbox"), ("secret or a certificate", "auth"),
)


def graph_field(message: str, auth: str) -> str:
    field = next((f for words, f in GRAPH_FIELDS if words in message), "")
    if field == "secret" and auth == "certificate":
        return "certificate"
    return field


def graph_calendars(ctx: Context, body: Any, query: Mapping[str, str], credential_id: str) -> tuple[int, Payload]:
    from spokesync.connectors import graph

    credential = _credential(ctx, credential_id)
    if credential.kind != "graph" or not credential.secret_name:
        raise ApiError(400, "Microsoft 365 calendars can be listed for Microsoft 365 credentials only")
    calendars = graph.list_calendars(credential.settings, ctx.secrets.get(credential.secret_name), ctx.config,
                                     _body_str(body, "mailbox"), _mailbox_kind(body))
    return 200, {"calendars": [{"id": c.id, "name": c.name, "is_default": c.is_default, "can_edit": c.can_edit}
                               for c in calendars]}


def graph_contact_folders(ctx: Context, body: Any, query: Mapping[str, str], credential_id: str) -> tuple[int, Payload]:
    from spokesync.connectors import graph

    credential = _credential(ctx, credential_id)
    if credential.kind != "graph" or not credential.secret_name:
        raise ApiError(400, "Microsoft 365 contact folders can be listed for Microsoft 365 credentials only.",
                       "wrong_credential_kind")
    folders = graph.list_contact_folders(credential.settings, ctx.secrets.get(credential.secret_name), ctx.config,
                      _body_str(body, "mailbox"))
    return 200, {"folders": [{"id": f.id, "name": f.name, "path": f.path} for f in folders]}


def repair_graph_secret(ctx: Context, body: Any, query: Mapping[str, str], credential_id: str) -> tuple[int, Payload]:
    credential = _credential(ctx, credential_id)
    if credential.kind != "graph":
        raise ApiError(400, "only Microsoft 365 credentials take a new client secret or certificate")
    secret = _graph_secret(body, str(credential.settings.get("auth") or "secret"))
    credential, resumed = credential_repair.repair_graph(ctx, credential_id, secret)
    return 200, {**_view(ctx, credential), "repaired": True, "resumed": resumed}


# Which field of the Exchange credential form a validation failure is about (by its code).
CREDENTIAL_FIELDS = {
    "tls_failure": "ews_url", "host_unreachable": "ews_url", "not_ews": "ews_url", "connection_dropped": "ews_url",
    "url_refused": "ews_url", "autodiscover_failed": "ews_url", "wrong_password": "password",
    "credential_refused": "password", "wrong_version": "version",
}


def add_google_service_account(ctx: Context, body: Any, query: Mapping[str, str]) -> tuple[int, Payload]:
    from spokesync.connectors.google import auth as google_auth

    key = body.get("key")
    if not isinstance(key, (str, dict)) or (isinstance(key, str) and not key.strip()):
        raise ApiError(400, "Paste the service account's JSON key (the file Google Cloud downloads).", "missing_field",
                       "key")
    subject = body.get("subject") or ""
    if not isinstance(subject, str) or (subject and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", subject.strip())):
        raise ApiError(400, "“Act as” must be the e-mail address of a Workspace user (or left empty).",
                       "invalid_field", "subject")
    label = _label(body, "Google service account")
    try:
        credential = google_auth.save_service_account_credential(
            ctx.store, ctx.secrets, "cred-" + uuid.uuid4().hex[:12], label, key, subject=subject.strip())
    except ValueError:  # not JSON, or not a service account's key
        raise ApiError(400, "This is not a service account's JSON key. In Google Cloud: IAM & Admin → Service "
                            "accounts → the account → Keys → Add key → JSON; paste the whole downloaded file.",
                       "invalid_key", "key") from None
    return 201, credential_view(credential)


def google_oauth_start(ctx: Context, body: Any, query: Mapping[str, str]) -> tuple[int, Payload]:
    from spokesync.connectors.google import auth as google_auth

    object_type = body.get("object_type") or "calendar"
    if object_type not in ("calendar", "contacts"):
        raise ApiError(400, "Sign in for 'calendar' or 'contacts'.", "invalid_field", "object_type")
    contacts_scopes = getattr(google_auth, "CONTACTS_SCOPES", GOOGLE_CONTACTS_SCOPES)  # the connector's, once it has one
    scopes = tuple(contacts_scopes) if object_type == "contacts" else google_auth.SCOPES
    if not ctx.config.google_client_id:
        raise ApiError(400, "Google sign-in is not set up here: set SPOKESYNC_GOOGLE_CLIENT_ID and "
                            "SPOKESYNC_GOOGLE_CLIENT_SECRET (an OAuth client of your Google Cloud project, see the "
                            "README) and restart spokesync, or use a service account.", "oauth_not_configured")
    url, state = google_auth.authorization_url(ctx.config, _body_str(body, "redirect_uri"),
                                               login_hint=body.get("login_hint"), scopes=scopes)
    return 200, {"url": url, "state": state}


# Google Contacts (People API) read and write: what a contacts hub's sign-in asks for.
GOOGLE_CONTACTS_SCOPES = ("https://www.googleapis.com/auth/contacts",)


def google_oauth_finish(ctx: Context, body: Any, query: Mapping[str, str]) -> tuple[int, Payload]:
    from spokesync.connectors.google import auth as google_auth

    state = body.get("state")
    if isinstance(state, str) and credential_repair.is_reauth_state(state):
        credential, resumed = credential_repair.reauth_finish(ctx, state, _body_str(body, "code"),
                                                              _body_str(body, "redirect_uri"))
        return 200, {**_view(ctx, credential), "repaired": True, "resumed": resumed}
    grant = google_auth.exchange_code(ctx.config, _body_str(body, "code"), _body_str(body, "redirect_uri"))
    credential = google_auth.save_oauth_credential(
        ctx.store, ctx.secrets, "cred-" + uuid.uuid4().hex[:12], _label(body, "Google account"),
        grant.refresh_token, account=body.get("account") or "")
    return 201, credential_view(credential)


def _view(ctx: Context, credential: CredentialRef) -> dict[str, Any]:
    return credential_view(credential, sum(1 for s in ctx.store.list_spokes() if s.credential_id == credential.id))


def repair_exchange_password(ctx: Context, body: Any, query: Mapping[str, str],
                             credential_id: str) -> tuple[int, Payload]:
    settings = body.get("settings")
    if settings is not None and not isinstance(settings, dict):
        raise ApiError(400, "The settings must be an object (ews_url, username, version, auth_type, mailbox).",
                       "invalid_field", "settings")
    credential, resumed = credential_repair.repair_exchange(ctx, credential_id, _body_str(body, "password"),
                                                            settings)
    return 200, {**_view(ctx, credential), "repaired": True, "resumed": resumed}


def google_reauth_start(ctx: Context, body: Any, query: Mapping[str, str], credential_id: str) -> tuple[int, Payload]:
    url, state = credential_repair.reauth_start(ctx, credential_id, _body_str(body, "redirect_uri"))
    return 200, {"url": url, "state": state}


def delete_credential(ctx: Context, body: Any, query: Mapping[str, str], credential_id: str) -> tuple[int, Payload]:
    credential = _credential(ctx, credential_id)
    users = [s.name for s in ctx.store.list_spokes() if s.credential_id == credential_id]
    if users:
        raise ApiError(409, f"Credential '{credential.label}' is still used by spokes: {', '.join(users)}. Remove "
                       "those spokes first.", "credential_in_use")
    if credential.secret_name:
        ctx.secrets.delete(credential.secret_name)
    ctx.store.delete_credential(credential_id)
    return 200, {"deleted": credential_id}


def google_calendars(ctx: Context, body: Any, query: Mapping[str, str], credential_id: str) -> tuple[int, Payload]:
    from spokesync.connectors.google import auth as google_auth

    credential = _credential(ctx, credential_id)
    if not credential.kind.startswith("google"):
        raise ApiError(400, "Calendars can be listed for Google credentials only.", "wrong_credential_kind")
    return 200, {"calendars": google_auth.list_calendars(credential, ctx.secrets, ctx.config)}


def add_google_calendar(ctx: Context, body: Any, query: Mapping[str, str], credential_id: str) -> tuple[int, Payload]:
    from spokesync.connectors.google import auth as google_auth

    credential = _credential(ctx, credential_id)
    if not credential.kind.startswith("google"):
        raise ApiError(400, "calendars can be added for Google credentials only")
    calendar_id = _body_str(body, "calendar_id")
    return 200, {"calendar": google_auth.add_calendar(credential, ctx.secrets, ctx.config, calendar_id)}


def credential_selftest(ctx: Context, body: Any, query: Mapping[str, str], credential_id: str) -> tuple[int, Payload]:
    from spokesync.service import selftest

    credential = _credential(ctx, credential_id)
    if not (credential.kind.startswith("google") or credential.kind == "exchange"):
        raise ApiError(400, "the self-test covers Google and Exchange credentials so far")
    return 200, selftest.run(ctx, credential_id).to_dict()


def exchange_folders(ctx: Context, body: Any, query: Mapping[str, str], credential_id: str) -> tuple[int, Payload]:
    from spokesync.connectors import exchange

    credential = _credential(ctx, credential_id)
    if credential.kind != "exchange" or not credential.secret_name:
        raise ApiError(400, "Folders can be browsed for Exchange credentials only.", "wrong_credential_kind")
    parent = body.get("parent") if isinstance(body.get("parent"), str) else None
    folders = exchange.browse(credential.settings, ctx.secrets.get(credential.secret_name), ctx.config,
                              parent=parent, public=bool(body.get("public", True)))
    return 200, {"folders": [{"id": f.id, "name": f.name, "kind": f.kind, "folder_class": f.folder_class,
                              "child_count": f.child_count, "public": f.public} for f in folders]}


def openapi_document(ctx: Context, body: Any, query: Mapping[str, str]) -> tuple[int, Payload]:
    return 200, openapi()


# ------------------------------------------------------------------- OpenAPI

_OBJ: dict[str, Any] = {"type": "object"}
_STR: dict[str, Any] = {"type": "string"}
# username for NTLM and Basic; tenant_id, client_id (and token_url) for OAuth 2.0, whose secret is the password;
# mailbox: the primary SMTP address (needed unless the username is one); public_folder_mailboxes: route
# public-folder requests to their public-folder mailboxes (X-AnchorMailbox / X-PublicFolderMailbox)
_EXCHANGE_SETTINGS: dict[str, Any] = {"type": "object", "properties": {
    "ews_url": _STR, "username": _STR, "version": {"enum": ["2010", "2013", "2016"]},
    "auth_type": {"enum": ["NTLM", "basic", "OAuth 2.0"]}, "mailbox": _STR,
    "tenant_id": _STR, "client_id": _STR, "token_url": _STR, "public_folder_mailboxes": {"type": "boolean"}}}
# Microsoft 365: an Entra app registration (Directory (tenant) ID, Application (client) ID, secret or certificate)
_GRAPH_SETTINGS: dict[str, Any] = {"type": "object", "required": ["tenant", "client_id"], "properties": {
    "tenant": _STR, "client_id": _STR, "auth": {"enum": ["secret", "certificate"]}}}
_ERROR = {"type": "object", "properties": {
    "detail": {**_STR, "description": "what is wrong and what to do, in plain words"},
    "code": {**_STR, "description": "a stable code for scripts (e.g. missing_field, not_found, tls_failure)"},
    "field": {**_STR, "description": "the request field the error is about, when there is one"},
    "error": {**_STR, "description": "the same text as detail (kept for older clients)"}},
    "required": ["error", "detail", "code"]}
_FILTERS = {"type": "object", "properties": {
    "categories": {"type": "array", "items": _STR}, "subject_contains": _STR,
    "show_as": {"type": "array", "items": {"enum": ["busy", "free", "tentative", "oof", "working_elsewhere"]}},
    "exclude_all_day": {"type": "boolean"}, "exclude_private": {"type": "boolean"}}}
# Contacts spokes: the fields that travel (notes, birthday, photo) and the filters ("conditions").
_CONTACT_FILTERS = {"type": "object", "description": "contacts hubs", "properties": {
    "categories": {"type": "array", "items": _STR, "description": "categories (Exchange) or contact groups (Google)"},
    "has_email": {"type": "boolean", "description": "only contacts with an e-mail address"},
    "companies": {"type": "array", "items": _STR}, "email_domains": {"type": "array", "items": _STR}}}
_CONTACT_OPTIONS = {"sync_notes": {"type": "boolean"}, "sync_birthday": {"type": "boolean"},
                    "sync_photo": {"type": "boolean"},
                    "match_existing": {"type": "boolean", "nullable": True,
                                       "description": "link items already in the hub instead of copying them "
                                                      "(null: on for contacts, off for calendars)"}}
_OPTIONS = {"type": "object", "description": "Calendar spokes take the calendar options, contacts spokes the "
                                             "contact options; both take direction, deletions, conflict_policy, "
                                             "the deletion budget and poll_interval_s.", "properties": {
    **_CONTACT_OPTIONS,
    "direction": {"enum": ["to_hub", "two_way"]},
    "days_past": {"type": "integer", "minimum": 0, "nullable": True},
    "days_future": {"type": "integer", "minimum": 0, "nullable": True},
    "filters": {"oneOf": [_FILTERS, _CONTACT_FILTERS]},
    "spoke_category": _STR, "meetings_as_appointments": {"type": "boolean"},
    "sync_description": {"type": "boolean"}, "sync_location": {"type": "boolean"},
    "sync_attendees": {"type": "boolean"}, "sync_reminders": {"type": "boolean"},
    "privacy_mode": {"enum": ["as_is", "private", "busy_only"]}, "placeholder_title": _STR,
    "deletions": {"enum": ["propagate", "keep"]}, "conflict_policy": _STR,
    "max_delete_share": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 1},
    "max_delete_count": {"type": "integer", "minimum": 0},
    "deletion_window_h": {"type": "integer", "minimum": 1, "maximum": 2160},
    "poll_interval_s": {"type": "integer", "minimum": 30}}}
# Request bodies per (method, path template); the rest take no body.
_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/hubs"): {"type": "object", "required": ["name"], "properties": {
        "name": _STR, "object_type": {"enum": ["calendar", "contacts"]}}},
    ("POST", "/hubs/{id}/spokes"): {"type": "object", "required": ["name", "kind"], "properties": {
        "name": _STR, "kind": {"enum": ["google", "exchange", "graph", "google_contacts", "exchange_contacts",
                                        "graph_contacts", "memory", "memory_contacts"],
                               "description": "calendar kinds for a calendar hub, *_contacts kinds for a contacts hub"},
        "address": {**_OBJ, "description": "google: calendar_id; exchange, exchange_contacts: folder_id, public; "
                                           "graph: mailbox, kind, calendar_id; google_contacts: group (the "
                                           "contact group's name); graph_contacts: mailbox, folder"},
        "credential_id": _STR, "options": _OPTIONS}},
    ("PATCH", "/spokes/{id}/options"): _OPTIONS,
    ("POST", "/spokes/{id}/matches"): {"type": "object", "required": ["spoke_item_id", "hub_item_id"], "properties": {
        "spoke_item_id": {**_STR, "description": "an item of `ambiguous_matches` (GET /spokes/{id}/matches)"},
        "hub_item_id": {**_STR, "nullable": True,
                        "description": "one of its candidates: the same item (linked, not copied); null: "
                                       "different items (the spoke's is copied as a new one)"}}},
    ("POST", "/credentials/exchange"): {"type": "object", "required": ["settings", "password"], "properties": {
        "label": _STR, "password": _STR, "require_public_folders": {"type": "boolean"},
        "settings": _EXCHANGE_SETTINGS | {"required": ["ews_url"]}}},
    ("POST", "/credentials/graph"): {"type": "object", "required": ["settings", "mailbox"], "properties": {
        "label": _STR, "settings": _GRAPH_SETTINGS, "secret": _STR, "private_key": _STR, "certificate": _STR,
        "mailbox": _STR, "mailbox_kind": {"enum": ["user", "group"]},
        "object_type": {"enum": ["calendar", "contacts"],
                        "description": "contacts: validated against the mailbox's contact folders"}}},
    ("POST", "/credentials/{id}/graph-calendars"): {"type": "object", "required": ["mailbox"], "properties": {
        "mailbox": _STR, "mailbox_kind": {"enum": ["user", "group"]}}},
    ("POST", "/credentials/{id}/graph-contact-folders"): {"type": "object", "required": ["mailbox"], "properties": {
        "mailbox": _STR}},
    ("POST", "/credentials/{id}/graph-secret"): {"type": "object", "properties": {
        "secret": _STR, "private_key": _STR, "certificate": _STR}},
    ("POST", "/credentials/google/service-account"): {"type": "object", "required": ["key"], "properties": {
        "label": _STR, "key": {"oneOf": [_STR, _OBJ]}, "subject": _STR}},
    ("POST", "/credentials/google/oauth/start"): {"type": "object", "required": ["redirect_uri"], "properties": {
        "redirect_uri": _STR, "login_hint": _STR,
        "object_type": {"enum": ["calendar", "contacts"], "description": "what the credential is for (its scopes)"}}},
    ("POST", "/credentials/google/oauth/finish"): {"type": "object", "required": ["code", "redirect_uri"],
                                                   "properties": {"code": _STR, "redirect_uri": _STR,
                                                                  "label": _STR, "account": _STR, "state": _STR}},
    ("POST", "/credentials/{id}/exchange-password"): {"type": "object", "required": ["password"], "properties": {
        "password": _STR, "settings": _EXCHANGE_SETTINGS}},
    ("POST", "/credentials/{id}/google/reauth/start"): {"type": "object", "required": ["redirect_uri"],
                                                        "properties": {"redirect_uri": _STR}},
    ("POST", "/credentials/{id}/calendars"): {"type": "object", "required": ["calendar_id"], "properties": {
        "calendar_id": _STR}},
    ("POST", "/credentials/{id}/folders"): {"type": "object", "properties": {
        "parent": _STR, "public": {"type": "boolean"}}},
}
_SUMMARIES = {
    "status": "Every hub with its spokes' status", "list_hubs": "List hubs", "create_hub": "Create a hub",
    "get_hub": "A hub and its spokes' status", "delete_hub": "Remove a hub and its spokes",
    "sync_hub": "Sync every spoke of a hub now", "hub_runs": "Run history of a hub",
    "add_spoke": "Add a spoke to a hub", "get_spoke": "A spoke's status", "delete_spoke": "Remove a spoke",
    "set_options": "Change a spoke's sync options", "sync_spoke": "Sync a spoke now",
    "dry_run": "Preview what a sync would change (writes nothing)", "spoke_runs": "Run history of a spoke",
    "get_run": "One run", "list_credentials": "Saved credentials (no secrets)",
    "add_exchange_credential": "Validate and save Exchange credentials",
    "add_google_service_account": "Save a Google service-account key",
    "google_oauth_start": "Start Google sign-in: the consent URL and its state",
    "google_oauth_finish": "Finish Google sign-in with the authorization code (a reauth state: sign in again)",
    "repair_exchange_password": "Repair Exchange credentials: validate a new password, store it, resume the spokes",
    "google_reauth_start": "Repair Google credentials: start signing in again",
    "delete_credential": "Remove saved credentials", "google_calendars": "Calendars a Google credential can write",
    "add_google_calendar": "Add a calendar shared with a Google credential to its calendar list",
    "credential_selftest": "Check a credential against the real service in a scratch calendar it removes",
    "exchange_folders": "One level of an Exchange folder tree", "openapi_document": "This description",
    "add_graph_credential": "Validate and save Microsoft 365 (Graph) app credentials against one mailbox",
    "graph_calendars": "Calendars of a Microsoft 365 mailbox or group (calendar picker)",
    "graph_contact_folders": "Contact folders of a Microsoft 365 mailbox (contacts folder picker)",
    "repair_graph_secret": "Repair Microsoft 365 credentials: validate a new secret or certificate, store it, resume",
    "confirm_deletions": "Confirm a paused mass deletion", "cancel_deletions": "Refuse a paused mass deletion",
    "resume": "Resume a paused or failed spoke (409 while a run is marked as in progress)",
    "clear_run": "Resume a spoke and clear a run still marked as in progress (its process stopped or crashed)",
    "retry_refused": "Try the writes the spoke refused (listed as needing attention) again",
    "list_matches": "Items matched ambiguously while the spoke joined, with their candidates (left unlinked)",
    "decide_match": "Decide an ambiguous match: the same as one candidate, or a different item (copied as new)",
}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.0 description of this API (served at /api/openapi.json)."""
    paths: dict[str, dict[str, Any]] = {}
    for method, template, handler in _TABLE:
        path = template.replace(_ID, "{id}")
        name = getattr(handler, "__name__", "handler")
        if name == "handler":  # spoke_action(...)
            name = path.rsplit("/", 1)[-1].replace("-", "_")
        op: dict[str, Any] = {
            "operationId": f"{method.lower()}_{path.strip('/').replace('/', '_').replace('{id}', 'id').replace('-', '_').replace('.', '_')}",
            "summary": _SUMMARIES.get(name, name.replace("_", " ")),
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": _OBJ}}},
                "default": {"description": "An error an administrator can act on",
                            "content": {"application/json": {"schema": _ERROR}}},
            },
        }
        if "{id}" in path:
            op["parameters"] = [{"name": "id", "in": "path", "required": True, "schema": _STR}]
        if path.endswith("/runs"):
            op.setdefault("parameters", []).append(
                {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1,
                                                                               "maximum": 200}})
        schema = _BODIES.get((method, path))
        if schema is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        paths.setdefault("/api" + path, {})[method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "spokesync setup API", "version": "1",
                 "description": "Hubs, spokes, credentials, sync options, Sync now, status and run history. "
                                "Secrets go in, never come out."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }


# -------------------------------------------------------------------- router

_ID = "([^/]+)"
_TABLE: list[tuple[str, str, Handler]] = [
    ("GET", "/status", status),
    ("GET", "/hubs", list_hubs),
    ("POST", "/hubs", create_hub),
    ("GET", f"/hubs/{_ID}", get_hub),
    ("DELETE", f"/hubs/{_ID}", delete_hub),
    ("POST", f"/hubs/{_ID}/sync", sync_hub),
    ("GET", f"/hubs/{_ID}/runs", hub_runs),
    ("POST", f"/hubs/{_ID}/spokes", add_spoke),
    ("GET", f"/spokes/{_ID}", get_spoke),
    ("DELETE", f"/spokes/{_ID}", delete_spoke),
    ("PATCH", f"/spokes/{_ID}/options", set_options),
    ("POST", f"/spokes/{_ID}/sync", sync_spoke),
    ("POST", f"/spokes/{_ID}/dry-run", dry_run),
    ("POST", f"/spokes/{_ID}/confirm-deletions", spoke_action(hubs.confirm_deletions)),
    ("POST", f"/spokes/{_ID}/cancel-deletions", spoke_action(hubs.cancel_deletions)),
    ("POST", f"/spokes/{_ID}/resume", spoke_action(hubs.resume)),
    ("POST", f"/spokes/{_ID}/clear-run", spoke_action(lambda ctx, spoke_id: hubs.resume(ctx, spoke_id, True))),
    ("POST", f"/spokes/{_ID}/retry-refused", spoke_action(hubs.retry_refused_writes)),
    ("GET", f"/spokes/{_ID}/matches", list_matches),
    ("POST", f"/spokes/{_ID}/matches", decide_match),
    ("GET", f"/spokes/{_ID}/runs", spoke_runs),
    ("GET", f"/runs/{_ID}", get_run),
    ("GET", "/credentials", list_credentials),
    ("POST", "/credentials/exchange", add_exchange_credential),
    ("POST", "/credentials/graph", add_graph_credential),
    ("POST", "/credentials/google/service-account", add_google_service_account),
    ("POST", "/credentials/google/oauth/start", google_oauth_start),
    ("POST", "/credentials/google/oauth/finish", google_oauth_finish),
    ("DELETE", f"/credentials/{_ID}", delete_credential),
    ("GET", f"/credentials/{_ID}/calendars", google_calendars),
    ("POST", f"/credentials/{_ID}/calendars", add_google_calendar),
    ("POST", f"/credentials/{_ID}/selftest", credential_selftest),
    ("POST", f"/credentials/{_ID}/folders", exchange_folders),
    ("POST", f"/credentials/{_ID}/exchange-password", repair_exchange_password),
    ("POST", f"/credentials/{_ID}/graph-calendars", graph_calendars),
    ("POST", f"/credentials/{_ID}/graph-contact-folders", graph_contact_folders),
    ("POST", f"/credentials/{_ID}/graph-secret", repair_graph_secret),
    ("POST", f"/credentials/{_ID}/google/reauth/start", google_reauth_start),
    ("GET", "/openapi.json", openapi_document),
]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [(m, re.compile(f"^/api{p}$"), h) for m, p, h in _TABLE]


def handle(ctx: Context, method: str, path: str, body: Any = None,
           query: Mapping[str, str] | None = None) -> tuple[int, Payload]:
    """Route one request; every error becomes JSON `{"detail", "code", "error"[, "field"]}` with its status."""
    path = "/" + path.strip("/")
    if not path.startswith("/api"):
        path = "/api" + path
    allowed: list[str] = []
    for route_method, pattern, handler in ROUTES:
        match = pattern.match(path)
        if not match:
            continue
        if route_method != method.upper():
            allowed.append(route_method)
            continue
        if method.upper() in ("POST", "PATCH") and body is not None and not isinstance(body, dict):
            return 400, error_body("The request body must be a JSON object.", "invalid_body")
        try:
            return handler(ctx, body or {}, query or {}, *match.groups())
        except ApiError as err:
            return err.status, error_body(err.message, err.code, err.field)
        except hubs.NotFound as err:
            return 404, error_body(str(err), "not_found")
        except hubs.LeaseHeld as err:
            return 409, error_body(str(err), "run_in_progress")
        except hubs.InvalidRequest as err:
            return 400, error_body(str(err), getattr(err, "code", "invalid_request"), getattr(err, "field", ""))
        except ConnectorError as err:  # validation / picker failures the admin can act on
            return 422, error_body(str(err), err.code)
        except ValueError as err:
            return 400, error_body(str(err), "invalid_request")
    if allowed:
        return 405, error_body(f"Method not allowed here; use {', '.join(sorted(set(allowed)))}.", "method_not_allowed")
    return 404, error_body(f"No such endpoint: {method.upper()} {path}.", "no_such_endpoint")
