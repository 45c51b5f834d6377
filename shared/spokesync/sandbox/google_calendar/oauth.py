"""Minimal OAuth 2.0: consent redirect, token endpoint (authorization code,
refresh token, service-account JWT bearer) and bearer-token checks."""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
from typing import Any

from spokesync.sandbox.google_calendar.common import (
    _JWT_BEARER,
    ApiError,
    _unb64,
)
from spokesync.sandbox.google_calendar.state import SandboxState


class OAuthMixin(SandboxState):
    def issue_refresh_token(self, user: str, client_id: str = "") -> str:
        """A refresh token for `user`, as the consent flow would produce."""
        with self.lock:
            self.users.add(user)
            token = "1//" + secrets.token_urlsafe(32)
            self._refresh[token] = {"user": user, "client_id": client_id, "revoked": False}
            return token

    def issue_access_token(self, user: str) -> str:
        with self.lock:
            token = "ya29." + secrets.token_urlsafe(32)
            self._access[token] = (user, time.time() + self.access_token_ttl_s)
            return token

    def revoke_refresh_token(self, token: str) -> None:
        with self.lock:
            if token in self._refresh:
                self._refresh[token]["revoked"] = True
            for access, (user, _) in list(self._access.items()):
                if user == self._refresh.get(token, {}).get("user"):
                    del self._access[access]

    def expire_access_tokens(self) -> None:
        with self.lock:
            self._access.clear()

    # ---------------------------------------------------------------- OAuth

    def _token_response(self, user: str, refresh: str | None = None, scope: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"access_token": self.issue_access_token(user), "expires_in": self.access_token_ttl_s,
                               "token_type": "Bearer",
                               "scope": scope or "https://www.googleapis.com/auth/calendar"}
        if refresh:
            out["refresh_token"] = refresh
        return out

    def authorize(self, params: dict[str, str]) -> str:
        """The consent page, auto-approved: the redirect URL with `code` and `state`."""
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        if client_id not in self.clients or not redirect_uri:
            raise ApiError(400, "invalid_request", "unknown client or missing redirect_uri")
        user = params.get("login_hint") or next(iter(sorted(self.users)), "user@example.com")
        code = "4/" + secrets.token_urlsafe(24)
        with self.lock:
            self._codes[code] = {"user": user, "client_id": client_id, "redirect_uri": redirect_uri,
                                 "scope": params.get("scope", ""),
                                 "offline": params.get("access_type") == "offline"}
        query = {"code": code, "scope": params.get("scope", "")}
        if "state" in params:
            query["state"] = params["state"]
        sep = "&" if "?" in redirect_uri else "?"
        return redirect_uri + sep + urllib.parse.urlencode(query)

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")

        def bad(error: str, description: str, status: int = 400) -> tuple[int, dict[str, Any]]:
            return status, {"error": error, "error_description": description}

        with self.lock:
            if grant in ("authorization_code", "refresh_token"):
                client_id = form.get("client_id", "")
                if self.clients.get(client_id) is None or not secrets.compare_digest(
                        self.clients[client_id], form.get("client_secret", "")):
                    return bad("invalid_client", "The OAuth client was not found.", 401)
            if grant == "authorization_code":
                code = self._codes.pop(form.get("code", ""), None)
                if code is None or code["client_id"] != form.get("client_id") or \
                        code["redirect_uri"] != form.get("redirect_uri"):
                    return bad("invalid_grant", "Malformed auth code.")
                refresh = self.issue_refresh_token(code["user"], code["client_id"]) if code["offline"] else None
                return 200, self._token_response(code["user"], refresh, code["scope"])
            if grant == "refresh_token":
                entry = self._refresh.get(form.get("refresh_token", ""))
                if entry is None or entry["revoked"]:
                    return bad("invalid_grant", "Token has been expired or revoked.")
                return 200, self._token_response(entry["user"], None, form.get("scope", ""))
            if grant == _JWT_BEARER:
                try:
                    user, scope = self._verify_jwt(form.get("assertion", ""))
                except ValueError as exc:
                    return bad("invalid_grant", str(exc))
                return 200, self._token_response(user, None, scope)
        return bad("unsupported_grant_type", f"Invalid grant_type: {grant}")

    def _verify_jwt(self, assertion: str) -> tuple[str, str]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            header = json.loads(_unb64(head_b64))
            claims = json.loads(_unb64(claims_b64))
            signature = _unb64(sig_b64)
        except ValueError as exc:
            raise ValueError("Invalid JWT: malformed") from exc
        if header.get("alg") != "RS256":
            raise ValueError("Invalid JWT: unsupported algorithm")
        issuer = claims.get("iss", "")
        known = self.service_accounts.get(issuer)
        if known is None:
            raise ValueError("Invalid JWT Signature.")
        public_key, domain_wide = known
        try:
            public_key.verify(signature, f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise ValueError("Invalid JWT Signature.") from exc
        now = time.time()
        if not (claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0) + 300):
            raise ValueError("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.")
        # google-auth always addresses Google's endpoint, whatever token_uri it posts to.
        if claims.get("aud") not in (self.base_url + "token", "https://oauth2.googleapis.com/token"):
            raise ValueError("Invalid JWT: audience does not match the token endpoint")
        subject = claims.get("sub")
        if subject and subject != issuer and not domain_wide:
            raise ValueError("Client is unauthorized to retrieve access tokens using this method.")
        return subject or issuer, claims.get("scope", "")

    def user_for(self, authorization: str | None) -> str:
        if not self.require_auth:
            return next(iter(sorted(self.users)), "user@example.com")
        if not authorization or not authorization.startswith("Bearer "):
            raise ApiError(401, "required", "Login Required.")
        entry = self._access.get(authorization[7:].strip())
        if entry is None or entry[1] < time.time():
            raise ApiError(401, "authError", "Invalid Credentials")
        return entry[0]

