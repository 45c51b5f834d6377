"""The sandbox's companions to EWS: an OAuth 2 token endpoint shaped like Microsoft identity
platform's client-credentials grant, and a SOAP Autodiscover responder (GetUserSettings).

Token endpoint: `POST /<tenant>/oauth2/v2.0/token` with a form body `grant_type=client_credentials`,
`client_id`, `client_secret` (or HTTP Basic client authentication), `scope` (must end in
`/.default`). Answers JSON `{"token_type": "Bearer", "expires_in": ..., "access_token": ...}`; the
errors carry Microsoft's error codes and AADSTS numbers:

- unknown tenant: 400 `invalid_request` (AADSTS90002),
- unknown client id: 400 `unauthorized_client` (AADSTS700016),
- wrong secret: 401 `invalid_client` (AADSTS7000215),
- other grant types: 400 `unsupported_grant_type` (AADSTS70003),
- a scope without `/.default`: 400 `invalid_scope` (AADSTS1002012).

The EWS endpoint accepts `Authorization: Bearer <token>` for tokens issued here and not expired.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

ANS = "http://schemas.microsoft.com/exchange/2010/Autodiscover"


@dataclass
class TokenIssuer:
    tenant: str = "contoso-tenant"
    apps: dict[str, str] = field(default_factory=dict)  # client id -> client secret
    lifetime_s: int = 3599
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (client id, expiry)
    # applications that get tokens but lack the EWS permission (full_access_as_app): EWS answers 401
    without_ews_permission: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def valid(self, token: str) -> bool:
        with self._lock:
            entry = self.tokens.get(token)
        return entry is not None and entry[1] > time.time() and entry[0] not in self.without_ews_permission

    def expire_all(self) -> None:
        with self._lock:
            self.tokens = {t: (c, 0.0) for t, (c, _) in self.tokens.items()}

    def handle(self, path: str, body: bytes, authorization: str) -> tuple[int, bytes]:
        tenant = unquote(path.strip("/").split("/")[0])
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":  # client_secret_basic
            try:
                basic_id, _, basic_secret = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return _error(401, "invalid_client", "AADSTS7000216: Malformed client authentication header.")
            client_id, client_secret = unquote(basic_id), unquote(basic_secret)
        if tenant != self.tenant:
            return _error(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure "
                          "you have the correct tenant ID and are signing into the correct cloud.")
        if form.get("grant_type") != "client_credentials":
            return _error(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant "
                          f"type '{form.get('grant_type', '')}'.")
        if client_id not in self.apps:
            return _error(400, "unauthorized_client", f"AADSTS700016: Application with identifier '{client_id}' was "
                          f"not found in the directory '{tenant}'.")
        if client_secret != self.apps[client_id]:
            return _error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret "
                          "being sent in the request is the client secret value, not the client secret ID, for a "
                          f"secret added to app '{client_id}'.")
        scopes = form.get("scope", "").split()
        if not scopes or not all(s.endswith("/.default") for s in scopes):
            return _error(400, "invalid_scope", "AADSTS1002012: The provided value for scope "
                          f"{form.get('scope', '')} is not valid. Client credential flows must have a scope value "
                          "with /.default suffixed to the resource identifier (application ID URI).")
        token = secrets.token_urlsafe(32)
        with self._lock:
            self.tokens[token] = (client_id, time.time() + self.lifetime_s)
        return 200, json.dumps({"token_type": "Bearer", "expires_in": self.lifetime_s,
                                "ext_expires_in": self.lifetime_s, "access_token": token}).encode()


def _error(status: int, code: str, description: str) -> tuple[int, bytes]:
    return status, json.dumps({"error": code, "error_description": description, "error_codes": [
        int(description.split(":")[0].removeprefix("AADSTS"))], "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": secrets.token_hex(8), "correlation_id": secrets.token_hex(8)}).encode()


def user_settings_response(users: list[str], requested: list[str], settings: dict[str, str],
                           known: dict[str, str]) -> bytes:
    """A SOAP Autodiscover GetUserSettings response (Exchange 2010 schema)."""
    responses = []
    for user in users:
        if user.lower() not in known:
            responses.append("<UserResponse><ErrorCode>InvalidUser</ErrorCode>"
                             f"<ErrorMessage>Invalid user: '{escape(user)}'</ErrorMessage><RedirectTarget/>"
                             "<UserSettingErrors/><UserSettings/></UserResponse>")
            continue
        # a public-folder mailbox's GUID address answers with the mailbox's SMTP address
        values = dict(settings, AutoDiscoverSMTPAddress=known[user.lower()])
        found, errors = [], []
        for name in requested:
            if name in values:
                found.append(f'<UserSetting i:type="StringSetting"><Name>{name}</Name>'
                             f"<Value>{escape(values[name])}</Value></UserSetting>")
            else:
                errors.append(f"<UserSettingError><ErrorCode>SettingIsNotAvailable</ErrorCode><ErrorMessage>"
                              f"User setting '{name}' is not available.</ErrorMessage><SettingName>{name}"
                              "</SettingName></UserSettingError>")
        responses.append("<UserResponse><ErrorCode>NoError</ErrorCode><ErrorMessage>No error.</ErrorMessage>"
                         f"<RedirectTarget i:nil=\"true\"/><UserSettingErrors>{''.join(errors)}</UserSettingErrors>"
                         f"<UserSettings>{''.join(found)}</UserSettings></UserResponse>")
    return ('<?xml version="1.0" encoding="utf-8"?>'
            '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header>'
            '<a:Action s:mustUnderstand="1">http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/'
            "GetUserSettingsResponse</a:Action>"
            f'<h:ServerVersionInfo xmlns:h="{ANS}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
            "<h:MajorVersion>15</h:MajorVersion><h:MinorVersion>1</h:MinorVersion>"
            "<h:MajorBuildNumber>2507</h:MajorBuildNumber><h:MinorBuildNumber>6</h:MinorBuildNumber>"
            "<h:Version>Exchange2015</h:Version></h:ServerVersionInfo></s:Header><s:Body>"
            f'<GetUserSettingsResponseMessage xmlns="{ANS}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
            "<Response><ErrorCode>NoError</ErrorCode><ErrorMessage/>"
            f"<UserResponses>{''.join(responses)}</UserResponses></Response>"
            "</GetUserSettingsResponseMessage></s:Body></s:Envelope>").encode()
