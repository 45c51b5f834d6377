"""setup: the private HTTP function behind the setup wizard.

Thin: `/api/...` is the JSON API (authenticate the administrator, hand
method/path/body to `spokesync.service.setup_api`, answer JSON); every other
path is the browser UI (`spokesync.web.app`: the wizard and the dashboard
under /setup/, which authenticates and CSRF-checks on its own). Heavy SDKs
load only in the code paths that need them; the Context is built on the
first request.
"""

from __future__ import annotations

import json
from typing import Any

_JSON = {"Content-Type": "application/json", "Cache-Control": "no-store"}


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def setup(request: Any) -> Any:
    from spokesync import logs
    from spokesync.bootstrap import get_context
    from spokesync.service import auth, setup_api

    ctx = get_context()
    with logs.request("setup", request.headers, ctx.config.gcp_project):
        if not _is_api(request.path):
            from spokesync.web.app import dispatch

            return dispatch(request)
        try:
            auth.check_admin(ctx.config, request.headers)
        except auth.Unauthorized as err:
            return json.dumps({"error": str(err)}), 401, {**_JSON, "WWW-Authenticate": "Bearer"}
        except auth.Forbidden as err:
            return json.dumps({"error": str(err)}), 403, _JSON
        body = request.get_json(silent=True) if request.data else None
        if request.data and body is None:
            return json.dumps({"error": "the request body is not valid JSON"}), 400, _JSON
        status, payload = setup_api.handle(ctx, request.method, request.path, body, request.args)
        return json.dumps(payload, default=str), status, _JSON
