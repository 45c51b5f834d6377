"""setup: the private HTTP function behind the setup wizard.

Thin: the front door (`spokesync.web.gate`: Host, declared body size) for
every request; `/api/...` is the JSON API (origin, administrator, JSON-only
writes, bounded body, then `spokesync.service.setup_api`); every other path
is the browser UI (`spokesync.web.app`: the wizard and the dashboard under
/setup/, which authenticates and CSRF-checks on its own). Heavy SDKs load
only in the code paths that need them; the Context is built on the first
request.
"""

from __future__ import annotations

from typing import Any


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def setup(request: Any) -> Any:
    from spokesync import logs
    from spokesync.bootstrap import get_context
    from spokesync.web import gate

    ctx = get_context()
    try:
        with logs.request("setup", request.headers, ctx.config.gcp_project):
            refused = gate.refuse(ctx.config, request)
            if refused is not None:
                return refused
            if not _is_api(request.path):
                from spokesync.web.app import dispatch

                return dispatch(request)
            return gate.api(ctx, request)
    finally:
        gate.finish(request)
