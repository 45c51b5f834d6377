"""Google credentials: OAuth 2.0 for a user and service accounts with
domain-wide delegation, stored as secrets; the calendar picker.

A saved credential is a `CredentialRef` in the hub store (kind
"google_oauth" or "google_service_account", the secret's *name*, and
non-secret settings such as the account e-mail); the refresh token or the
service-account key live only in the SecretStore. Several spokes can use one
credential. Every endpoint comes from `Config`, so the same code runs against
Google and against the local sandbox.
"""

from __future__ import annotations

import hashlib
import json
import secrets as pysecrets
import threading
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spokesync.ports import CredentialBroken

if TYPE_CHECKING:
    from spokesync.config import Config
    from spokesync.model.hub import CredentialRef
    from spokesync.ports import SecretStore

SCOPES = ("https://www.googleapis.com/auth/calendar",)
CONTACTS_SCOPES = ("https://www.googleapis.com/auth/contacts",)  # People API read/write
KIND_OAUTH = "google_oauth"
KIND_SERVICE_ACCOUNT = "google_service_account"


def authorization_url(config: Config, redirect_uri: str, state: str | None = None,
                      login_hint: str | None = None, scopes: tuple[str, ...] = SCOPES) -> tuple[str, str]:
    """Where to send the administrator's browser; returns (url, state).

    Offline access with `prompt=consent` so that Google returns a refresh
    token even when the user consented before. The caller keeps `state`
    (e.g. in a signed cookie) and compares it on the callback.
    """
    if not config.google_client_id:
        raise ValueError("SPOKESYNC_GOOGLE_CLIENT_ID is not configured")
    state = state or pysecrets.token_urlsafe(24)
    params = {"client_id": config.google_client_id, "redirect_uri": redirect_uri, "response_type": "code",
              "scope": " ".join(scopes), "access_type": "offline", "prompt": "consent",
              "include_granted_scopes": "true", "state": state}
    if login_hint:
        params["login_hint"] = login_hint
    return config.google_oauth_auth_uri + "?" + urllib.parse.urlencode(params), state


@dataclass(frozen=True)
class TokenGrant:
    refresh_token: str
    access_token: str
    scope: str


def exchange_code(config: Config, code: str, redirect_uri: str) -> TokenGrant:
    """Trade an authorization code for tokens (the callback of the consent flow)."""
    import requests

    resp = requests.post(config.google_oauth_token_uri, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": config.google_client_id, "client_secret": config.google_client_secret,
    }, timeout=30)
    try:
        payload = resp.json()
    except ValueError:
        payload = {}
    if resp.status_code != 200:
        # Never echo the code or the client secret; Google's error code is enough.
        raise CredentialBroken(f"Google refused the authorization code: {payload.get('error', resp.status_code)}")
    if not payload.get("refresh_token"):
        raise CredentialBroken("Google returned no refresh token: grant offline access (consent again)")
    return TokenGrant(payload["refresh_token"], payload.get("access_token", ""), payload.get("scope", ""))


def secret_name_for(credential_id: str) -> str:
    return f"google-credential-{credential_id}"


def save_oauth_credential(store: Any, secret_store: SecretStore, credential_id: str, label: str,
                          refresh_token: str, account: str = "") -> CredentialRef:
    """Store the refresh token as a secret and the reference in the hub store."""
    from spokesync.model.hub import CredentialRef

    name = secret_store.put(secret_name_for(credential_id), json.dumps({"refresh_token": refresh_token}))
    ref = CredentialRef(id=credential_id, kind=KIND_OAUTH, label=label, secret_name=name,
                        settings={"account": account} if account else {})
    store.put_credential(ref)
    return ref


def save_service_account_credential(store: Any, secret_store: SecretStore, credential_id: str, label: str,
                                    key_json: str | dict[str, Any], subject: str = "") -> CredentialRef:
    """Store a service-account key; `subject` is the Workspace user to act as
    (domain-wide delegation), empty for calendars shared with the account itself."""
    from spokesync.model.hub import CredentialRef

    info = json.loads(key_json) if isinstance(key_json, str) else key_json
    if (not isinstance(info, dict) or info.get("type") != "service_account" or not info.get("private_key")
            or not info.get("client_email")):
        raise ValueError("not a service-account JSON key (type, private_key and client_email are required)")
    name = secret_store.put(secret_name_for(credential_id), json.dumps(info))
    settings = {"service_account": info["client_email"]}
    if subject:
        settings["subject"] = subject
    ref = CredentialRef(id=credential_id, kind=KIND_SERVICE_ACCOUNT, label=label, secret_name=name,
                        settings=settings)
    store.put_credential(ref)
    return ref


# google-auth credentials by (credential, secret digest, token endpoint, client): runs in one process
# share one object, so an access token is asked for once and reused until it expires (google-auth
# refreshes it then, and on a 401). A new secret (a new sign-in, a new key) is a new entry. The
# tokens stay in this process's memory only.
_CREDENTIALS: dict[tuple[str, ...], Any] = {}
_CREDENTIALS_LOCK = threading.Lock()
_CREDENTIALS_MAX = 256


def credentials_for(credential: CredentialRef | None, secret_store: SecretStore, config: Config,
                    scopes: tuple[str, ...] = SCOPES) -> Any:
    """google-auth credentials for a saved credential (refreshed lazily on first use, then cached).
    `scopes` matter for service accounts (the JWT asks for them); a user's refresh
    token carries the scopes granted at consent."""
    if credential is None or not credential.secret_name:
        raise CredentialBroken("the Google spoke has no credential")
    from spokesync.ports import SecretNotFound

    try:
        text = secret_store.get(credential.secret_name)
        raw = json.loads(text)
    except (SecretNotFound, KeyError) as exc:
        raise CredentialBroken(f"the secret of credential {credential.label!r} is missing") from exc
    key = (credential.id, credential.kind, hashlib.sha256(text.encode()).hexdigest(), config.google_oauth_token_uri,
           config.google_client_id, credential.settings.get("subject", ""), " ".join(scopes))
    with _CREDENTIALS_LOCK:
        cached = _CREDENTIALS.get(key)
    if cached is not None:
        return cached
    made = _make_credentials(credential, raw, config, scopes)
    with _CREDENTIALS_LOCK:
        if len(_CREDENTIALS) >= _CREDENTIALS_MAX:
            _CREDENTIALS.clear()
        return _CREDENTIALS.setdefault(key, made)


def _make_credentials(credential: CredentialRef, raw: dict[str, Any], config: Config,
                      scopes: tuple[str, ...] = SCOPES) -> Any:
    if credential.kind == KIND_OAUTH:
        from google.oauth2.credentials import Credentials

        return Credentials(token=None, refresh_token=raw["refresh_token"], token_uri=config.google_oauth_token_uri,
                           client_id=config.google_client_id, client_secret=config.google_client_secret)
    if credential.kind == KIND_SERVICE_ACCOUNT:
        from google.oauth2 import service_account

        info = {**raw, "token_uri": config.google_oauth_token_uri}
        sa = service_account.Credentials.from_service_account_info(info, scopes=list(scopes))
        subject = credential.settings.get("subject")
        return sa.with_subject(subject) if subject else sa
    raise CredentialBroken(f"credential kind {credential.kind!r} cannot be used for Google Calendar")


def can_set_attendees(credential: CredentialRef | None) -> bool:
    """False for a service account acting as itself (no Workspace user to act as):
    Google refuses attendees from it without domain-wide delegation."""
    return not (credential is not None and credential.kind == KIND_SERVICE_ACCOUNT
                and not credential.settings.get("subject"))


def forget_cached_credentials() -> None:
    """Drop every cached access token (tests; a process that must sign in afresh)."""
    with _CREDENTIALS_LOCK:
        _CREDENTIALS.clear()


def delete_credential_secret(credential: CredentialRef, secret_store: SecretStore) -> None:
    if credential.secret_name:
        secret_store.delete(credential.secret_name)


def list_calendars(credential: CredentialRef, secret_store: SecretStore, config: Config) -> list[dict[str, Any]]:
    """The setup wizard's calendar picker: calendars this credential can write to."""
    from spokesync.connectors.google.client import GoogleClient

    client = GoogleClient(credentials_for(credential, secret_store, config), config)
    out: list[dict[str, Any]] = []
    page: str | None = None
    while True:
        resp = client.execute(client.service.calendarList().list(minAccessRole="writer", pageToken=page,
                                                                  maxResults=250))
        for item in resp.get("items", []):
            out.append({"id": item["id"], "summary": item.get("summaryOverride") or item.get("summary", item["id"]),
                        "time_zone": item.get("timeZone", ""), "access_role": item.get("accessRole", ""),
                        "primary": bool(item.get("primary"))})
        page = resp.get("nextPageToken")
        if not page:
            return out


def add_calendar(credential: CredentialRef, secret_store: SecretStore, config: Config,
                 calendar_id: str) -> dict[str, Any]:
    """Add a calendar shared with this credential to its calendar list
    (`calendarList.insert`): a calendar shared with a service account is not in
    its list until then, so the picker cannot offer it."""
    from googleapiclient.errors import HttpError

    from spokesync.connectors.google.client import GoogleClient, error_status
    from spokesync.ports import ConnectorError

    calendar_id = calendar_id.strip()
    if not calendar_id or len(calendar_id) > 1024 or any(c.isspace() for c in calendar_id):
        raise ConnectorError("Enter the calendar's id as Google shows it (Settings → Integrate calendar → "
                             "Calendar ID), e.g. team@group.calendar.google.com.")
    client = GoogleClient(credentials_for(credential, secret_store, config), config)
    who = credential.settings.get("subject") or credential.settings.get("service_account") or \
        credential.settings.get("account") or "this account"
    try:
        item = client.execute(client.service.calendarList().insert(body={"id": calendar_id}), "calendarList.insert")
    except HttpError as exc:
        if error_status(exc) in (403, 404):
            raise ConnectorError(f"Google does not share the calendar {calendar_id} with {who}: in Google Calendar "
                                 f"open its settings, share it with {who} with \"Make changes to events\", "
                                 "then add it again.") from exc
        raise ConnectorError(f"Google could not add the calendar {calendar_id} (error {error_status(exc)}); "
                             "try again later.") from exc
    return {"id": item["id"], "summary": item.get("summaryOverride") or item.get("summary", item["id"]),
            "time_zone": item.get("timeZone", ""), "access_role": item.get("accessRole", ""),
            "primary": bool(item.get("primary"))}
