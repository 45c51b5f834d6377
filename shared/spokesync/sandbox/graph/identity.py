"""The Microsoft identity platform as far as an app-only Graph client sees it: tenant discovery
(OpenID configuration) and the v2.0 token endpoint's client-credentials grant, with a client
secret or a certificate (a signed client assertion, RFC 7523, as MSAL sends it).

Refusals carry the real AADSTS codes and texts, from Microsoft's "Microsoft Entra authentication
and authorization error codes" (learn.microsoft.com/entra/identity-platform/reference-error-codes)
and the token endpoint's error format ("Microsoft identity platform and the OAuth 2.0 client
credentials flow", section "Error response"):

- AADSTS90002 unknown tenant (discovery answers 400 `invalid_tenant`);
- AADSTS700016 application not found in the directory (`unauthorized_client`, 400);
- AADSTS7000215 invalid client secret (`invalid_client`, 401);
- AADSTS700027 client assertion signed with a key the app does not have (`invalid_client`, 401);
- AADSTS1002012 scope without `/.default` in a client-credentials request (`invalid_scope`, 400).

Admin consent is not checked at the token endpoint for app-only tokens: the token is issued with
the application permissions (`roles`) an administrator granted, possibly none, and Graph refuses
the calls (see server.py). Tokens are JWTs whose claims (`tid`, `appid`, `roles`, `exp`) look
like Entra's; the signature is the sandbox's own (HS256), checked only by the sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@dataclass
class App:
    client_id: str
    secrets: set[str] = field(default_factory=set)
    certificates: list[str] = field(default_factory=list)  # PEM public certificates
    # Application permissions an administrator consented to (Calendars.ReadWrite, Group.ReadWrite.All, ...)
    roles: set[str] = field(default_factory=set)
    # Mailboxes an application access policy (or RBAC for Applications) restricts the app to; None: all.
    allowed_mailboxes: set[str] | None = None


@dataclass
class Tenant:
    id: str  # a GUID, as Entra tenants are
    domains: tuple[str, ...] = ()
    apps: dict[str, App] = field(default_factory=dict)


class TokenError(Exception):
    def __init__(self, status: int, error: str, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def body(self) -> dict[str, Any]:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        return {"error": self.error,
                "error_description": f"{self.code}: {self.description} Trace ID: {trace} Correlation ID: "
                                     f"{correlation} Timestamp: {now}",
                "error_codes": [int(self.code.removeprefix("AADSTS"))], "timestamp": now, "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": f"https://login.microsoftonline.com/error?code={self.code.removeprefix('AADSTS')}"}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def thumbprints(pem: str) -> tuple[str, str]:
    """(x5t, x5t#S256) of a PEM certificate: base64url SHA-1 and SHA-256 of its DER."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    return _b64url(hashlib.sha1(der).digest()), _b64url(hashlib.sha256(der).digest())  # noqa: S324 - x5t is SHA-1


class Issuer:
    def __init__(self, token_ttl_s: int = 3599) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.key = secrets.token_bytes(32)
        self.token_ttl_s = token_ttl_s
        self.issued = 0
        self.last_assertion_error = ""

    def tenant(self, ref: str) -> Tenant | None:
        ref = ref.lower()
        for tenant in self.tenants.values():
            if tenant.id.lower() == ref or ref in (d.lower() for d in tenant.domains):
                return tenant
        return None

    def openid_configuration(self, ref: str, base: str) -> dict[str, Any]:
        tenant = self.tenant(ref)
        if tenant is None:
            raise TokenError(400, "invalid_tenant", "AADSTS90002",
                             f"Tenant '{ref}' not found. Check to make sure you have the correct tenant ID and are "
                             "signing into the correct cloud. Check with your subscription administrator, this may "
                             "happen if there are no active subscriptions for the tenant.")
        root = f"{base}/{tenant.id}"
        return {"token_endpoint": f"{root}/oauth2/v2.0/token", "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "issuer": f"{base}/{tenant.id}/v2.0", "jwks_uri": f"{base}/{tenant.id}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                          "client_secret_basic"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "tenant_region_scope": "EU", "cloud_instance_name": "microsoftonline.com"}

    def token(self, ref: str, form: dict[str, str], endpoint: str) -> dict[str, Any]:
        tenant = self.tenant(ref)
        if tenant is None:
            raise TokenError(400, "invalid_request", "AADSTS90002",
                             f"Tenant '{ref}' not found. Check to make sure you have the correct tenant ID and are "
                             "signing into the correct cloud.")
        if form.get("grant_type") != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", "AADSTS70003",
                             "The app requested an unsupported grant type.")
        client_id = form.get("client_id", "")
        assertion = form.get("client_assertion")
        if assertion and not client_id:
            client_id = _unverified_claims(assertion).get("sub", "")
        app = tenant.apps.get(client_id)
        if app is None:
            raise TokenError(400, "unauthorized_client", "AADSTS700016",
                             f"Application with identifier '{client_id}' was not found in the directory "
                             f"'{tenant.domains[0] if tenant.domains else tenant.id}'. This can happen if the "
                             "application has not been installed by the administrator of the tenant or consented to "
                             "by any user in the tenant. You may have sent your authentication request to the wrong "
                             "tenant.")
        scope = form.get("scope", "")
        if not any(s.endswith("/.default") for s in scope.split()):
            raise TokenError(400, "invalid_scope", "AADSTS1002012",
                             f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                             "scope value with /.default suffixed to the resource identifier (application ID URI).")
        if assertion:
            self._check_assertion(app, assertion, endpoint)
        else:
            secret = form.get("client_secret", "")
            if not any(secrets.compare_digest(secret.encode(), s.encode()) for s in app.secrets):
                raise TokenError(401, "invalid_client", "AADSTS7000215",
                                 "Invalid client secret provided. Ensure the secret being sent in the request is the "
                                 f"client secret value, not the client secret ID, for a secret added to app "
                                 f"'{client_id}'.")
        import jwt

        now = int(time.time())
        claims = {"aud": GRAPH_AUDIENCE, "iss": f"https://sts.windows.net/{tenant.id}/", "iat": now, "nbf": now,
                  "exp": now + self.token_ttl_s, "appid": client_id, "tid": tenant.id, "idtyp": "app",
                  "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)), "roles": sorted(app.roles),
                  "uti": secrets.token_urlsafe(16), "ver": "1.0"}
        self.issued += 1
        return {"token_type": "Bearer", "expires_in": self.token_ttl_s, "ext_expires_in": self.token_ttl_s,
                "access_token": jwt.encode(claims, self.key, algorithm="HS256")}

    def _check_assertion(self, app: App, assertion: str, endpoint: str) -> None:
        import jwt
        from cryptography import x509

        header = jwt.get_unverified_header(assertion)
        # base64url, padded or not (MSAL pads; RFC 7515 does not): compare without padding
        sent = str(header.get("x5t#S256") or header.get("x5t") or "").rstrip("=")
        for pem in app.certificates:
            sha1, sha256 = thumbprints(pem)
            if sent in (sha1, sha256):
                key = x509.load_pem_x509_certificate(pem.encode()).public_key()
                try:
                    jwt.decode(assertion, key=key, algorithms=["PS256", "RS256"], audience=endpoint,  # type: ignore[arg-type]
                               issuer=app.client_id, options={"require": ["exp", "aud", "iss", "sub"]})
                except jwt.ExpiredSignatureError as exc:
                    raise TokenError(401, "invalid_client", "AADSTS700024",
                                     "Client assertion is not within its valid time range.") from exc
                except jwt.InvalidTokenError as exc:
                    self.last_assertion_error = repr(exc)
                    raise TokenError(401, "invalid_client", "AADSTS700027",
                                     "Client assertion failed signature validation.") from exc
                return
        raise TokenError(401, "invalid_client", "AADSTS700027",
                         "The certificate with identifier used to sign the client assertion is not registered on "
                         f"application. [Reason - The key was not found., Thumbprint of key used by client: "
                         f"'{sent}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see "
                         f"configured keys for app Id '{app.client_id}'.]")

    def claims(self, token: str) -> dict[str, Any] | None:
        import jwt

        try:
            return dict(jwt.decode(token, self.key, algorithms=["HS256"], audience=GRAPH_AUDIENCE))
        except jwt.InvalidTokenError:
            return None


def _unverified_claims(token: str) -> dict[str, Any]:
    import jwt

    try:
        return dict(jwt.decode(token, options={"verify_signature": False}))
    except jwt.InvalidTokenError:
        return {}
