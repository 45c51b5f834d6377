"""Broken credentials and their repair (issue 3).

A run that meets a refused credential (EWS 401, Google `invalid_grant`)
calls `mark_broken`: the shared `CredentialRef` gets a plain, secret-free
`broken_reason`, and every other spoke that uses it says so too. The Exchange
connector then refuses to connect while the reason is set, so a wrong
password is not tried again until the account locks.

Repair, per kind:

- Exchange: `repair_exchange(ctx, credential_id, password, settings=None)`
  validates the new password (and optionally a changed URL, user, version or
  auth type) against the server first; when validation fails nothing changes
  and the `ConnectorError` says why. Then a new version of the same secret,
  the settings, `broken_reason` cleared, and the credential's spokes resumed.
- Google OAuth: `reauth_start(ctx, credential_id, redirect_uri)` gives the
  consent URL whose `state` carries the credential id, signed (HMAC) and
  valid for ten minutes; `reauth_finish(ctx, state, code, redirect_uri)`
  checks it, trades the code and replaces the stored refresh token.

Resuming: spokes of the credential whose state is `credential_broken` go back
to `ok` and a sync is queued for each.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets as pysecrets
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from spokesync.model.hub import CredentialRef
from spokesync.ports import SyncTask
from spokesync.service.hubs import InvalidRequest, NotFound

if TYPE_CHECKING:
    from spokesync.bootstrap import Context

log = logging.getLogger("spokesync.credentials")

REAUTH_PREFIX = "reauth"
REAUTH_TTL_S = 600
_SEP = "~"
# The states a spoke may be in when its credential breaks: others (paused for a
# mass deletion, quota) keep theirs, the run that meets the credential sets it.
_MARKABLE = ("ok", "failed")
_EXCHANGE_SETTINGS = ("ews_url", "username", "version", "auth_type", "mailbox")


def _get(ctx: Context, credential_id: str) -> CredentialRef:
    credential = ctx.store.get_credential(credential_id)
    if credential is None:
        raise NotFound(f"no credential with id {credential_id}")
    return credential


def mark_broken(ctx: Context, credential_id: str, reason: str) -> CredentialRef | None:
    """Record why a credential stopped working (the reason must carry no secret).

    Other spokes using it that are `ok` or `failed` show `credential_broken`
    with the same reason. Returns None when the credential no longer exists."""
    credential = ctx.store.get_credential(credential_id)
    if credential is None:
        return None
    reason = reason.strip() or "the credential was refused"
    if credential.broken_reason != reason:
        credential = replace(credential, broken_reason=reason)
        ctx.store.put_credential(credential)
        log.warning("credential marked broken", extra={"credential_id": credential_id})
    for spoke in ctx.store.list_spokes():
        if spoke.credential_id == credential_id and spoke.state in _MARKABLE and spoke.lease_owner is None:
            ctx.store.update_spoke(spoke.id, state="credential_broken", state_reason=reason)
    return credential


def _repaired(ctx: Context, credential: CredentialRef) -> list[str]:
    """Clear the reason, resume the spokes that stopped because of it; returns their ids."""
    ctx.store.put_credential(replace(credential, broken_reason=""))
    resumed = []
    for spoke in ctx.store.list_spokes():
        if spoke.credential_id == credential.id and spoke.state == "credential_broken":
            ctx.store.update_spoke(spoke.id, state="ok", state_reason="")
            ctx.queue.enqueue(SyncTask(spoke.id, reason="credential_repaired"))
            resumed.append(spoke.id)
    log.info("credential repaired", extra={"credential_id": credential.id, "resumed": len(resumed)})
    return resumed


# ------------------------------------------------------------------ Exchange


def repair_exchange(ctx: Context, credential_id: str, password: str,
                    settings: Mapping[str, Any] | None = None) -> tuple[CredentialRef, list[str]]:
    """Validate a new password (and optional setting changes), then store it and resume the spokes.

    Raises `ConnectorError` (nothing changed) when the server refuses it."""
    from spokesync.connectors import exchange
    from spokesync.connectors.exchange.access import ExchangeSettings

    credential = _get(ctx, credential_id)
    if credential.kind != "exchange":
        raise InvalidRequest("only Exchange credentials take a new password")
    if not password:
        raise InvalidRequest("'password' is required")
    changes = {k: v for k, v in (settings or {}).items() if k in _EXCHANGE_SETTINGS and isinstance(v, str) and v}
    unknown = sorted(set(settings or {}) - set(_EXCHANGE_SETTINGS))
    if unknown:
        raise InvalidRequest(f"unknown settings: {', '.join(unknown)}")
    parsed = ExchangeSettings.from_dict({**credential.settings, **changes})
    public = any(s.credential_id == credential_id and s.address.get("public") for s in ctx.store.list_spokes())
    result = exchange.validate(parsed, password, ctx.config, require_public_folders=public)
    if result.mailbox and result.mailbox != parsed.smtp_address:  # the directory's primary address
        from dataclasses import replace as _replace

        parsed = _replace(parsed, mailbox=result.mailbox)
    # Validation passed: a new version of the same secret, then the reference.
    secret_name = ctx.secrets.put(credential.secret_name or f"exchange-{credential_id}", password)
    stored = {**credential.settings, **parsed.to_dict(), "server_version": result.server_version,
              "public_folders": result.public_folders}
    updated = replace(credential, secret_name=secret_name, settings=stored)
    resumed = _repaired(ctx, updated)
    return _get(ctx, credential_id), resumed


# ------------------------------------------------------------ Microsoft 365


def repair_graph(ctx: Context, credential_id: str, secret: str) -> tuple[CredentialRef, list[str]]:
    """Validate a new client secret (or certificate) against a mailbox the credential's spokes use,
    then store it as a new version of the same secret and resume the spokes.

    Raises `ConnectorError` (nothing changed) when Microsoft Entra or Graph refuses it."""
    from spokesync.connectors import graph

    credential = _get(ctx, credential_id)
    if credential.kind != "graph":
        raise InvalidRequest("only Microsoft 365 credentials take a new client secret")
    spokes = [s for s in ctx.store.list_spokes() if s.credential_id == credential_id]
    target = graph.target_of(spokes[0].address) if spokes else None
    if target is not None:
        contacts = spokes[0].kind == "graph_contacts"  # checked against what the spoke reads
        graph.validate(credential.settings, secret, ctx.config, target.mailbox, "user" if contacts else target.kind,
                       "contacts" if contacts else "calendar")
    else:  # no spoke yet: signing in is all there is to check
        graph.credential_for(graph.GraphSettings.from_dict(credential.settings), secret)
        from spokesync.connectors.graph.client import GraphClient

        GraphClient(graph.credential_for(graph.GraphSettings.from_dict(credential.settings), secret), ctx.config,
                    "").token()
    secret_name = ctx.secrets.put(credential.secret_name or f"graph-{credential_id}", secret)
    resumed = _repaired(ctx, replace(credential, secret_name=secret_name))
    return _get(ctx, credential_id), resumed


# -------------------------------------------------------------- Google OAuth


def _state_key(ctx: Context) -> bytes:
    secret = ctx.config.google_client_secret or ctx.config.admin_token
    if not secret:
        raise InvalidRequest("Google sign-in is not configured (no OAuth client secret)")
    return hashlib.sha256(b"spokesync-oauth-reauth\0" + secret.encode()).digest()


def _sign(ctx: Context, payload: str) -> str:
    return hmac.new(_state_key(ctx), payload.encode(), hashlib.sha256).hexdigest()


def reauth_state(ctx: Context, credential_id: str, now: float | None = None) -> str:
    """`reauth~<credential id>~<expiry>~<nonce>~<HMAC>`: no dots (the web keeps it in a dotted cookie)."""
    if not credential_id or _SEP in credential_id:
        raise InvalidRequest("this credential id cannot be signed in again")
    payload = _SEP.join((REAUTH_PREFIX, credential_id, str(int((now or time.time()) + REAUTH_TTL_S)),
                         pysecrets.token_hex(12)))
    return f"{payload}{_SEP}{_sign(ctx, payload)}"


def is_reauth_state(state: str) -> bool:
    return state.startswith(REAUTH_PREFIX + _SEP)


def credential_of_state(ctx: Context, state: str, now: float | None = None) -> str:
    """The credential id a re-sign-in `state` was issued for; InvalidRequest when forged or expired."""
    parts = state.split(_SEP)
    if len(parts) != 5 or parts[0] != REAUTH_PREFIX:
        raise InvalidRequest("this sign-in was not started for a saved credential")
    payload, signature = _SEP.join(parts[:4]), parts[4]
    if not hmac.compare_digest(signature, _sign(ctx, payload)):
        raise InvalidRequest("the sign-in state does not match one started here")
    try:
        expired = int(parts[2]) < (now or time.time())
    except ValueError:
        expired = True
    if expired:
        raise InvalidRequest("the sign-in took more than ten minutes: start it again")
    return parts[1]


def reauth_start(ctx: Context, credential_id: str, redirect_uri: str) -> tuple[str, str]:
    """The consent URL for signing in again to an existing credential, and its state."""
    from spokesync.connectors.google import auth as google_auth

    credential = _get(ctx, credential_id)
    if credential.kind != google_auth.KIND_OAUTH:
        raise InvalidRequest("only Google sign-in (OAuth) credentials can sign in again")
    return google_auth.authorization_url(ctx.config, redirect_uri, state=reauth_state(ctx, credential_id),
                                         login_hint=credential.settings.get("account") or None)


def reauth_finish(ctx: Context, state: str, code: str, redirect_uri: str) -> tuple[CredentialRef, list[str]]:
    """Trade the code, replace the refresh token of the credential named by `state`, resume its spokes."""
    import json

    from spokesync.connectors.google import auth as google_auth

    credential = _get(ctx, credential_of_state(ctx, state))
    if credential.kind != google_auth.KIND_OAUTH:
        raise InvalidRequest("only Google sign-in (OAuth) credentials can sign in again")
    grant = google_auth.exchange_code(ctx.config, code, redirect_uri)  # CredentialBroken: nothing changes
    name = ctx.secrets.put(credential.secret_name or google_auth.secret_name_for(credential.id),
                           json.dumps({"refresh_token": grant.refresh_token}))
    resumed = _repaired(ctx, replace(credential, secret_name=name))
    return _get(ctx, credential.id), resumed
