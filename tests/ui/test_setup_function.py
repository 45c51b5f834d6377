"""The UI is served by the setup function itself (functions-framework), not only by the local server."""

from __future__ import annotations

import re
from pathlib import Path

from spokesync.bootstrap import build_context, set_context
from spokesync.config import Config


def test_functions_framework_serves_sign_in_dashboard_and_forms(tmp_path: Path) -> None:
    import functions_framework

    set_context(build_context(Config(data_dir=str(tmp_path), admin_token="adm-ff", task_token="t")))
    try:
        client = functions_framework.create_app(target="setup", source="functions/setup/main.py").test_client()
        assert client.get("/").headers["Location"] == "/setup/"
        assert client.get("/setup/").headers["Location"].startswith("/setup/login")
        login = client.get("/setup/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
        # a form POST: functions-framework reads the body again after the UI parsed it
        assert client.post("/setup/login", data={"csrf_token": token, "token": "adm-ff"}).status_code == 303
        assert "Hubs and spokes" in client.get("/setup/").get_data(as_text=True)
        created = client.post("/setup/new/create", data={"csrf_token": token, "source": "exchange_public",
                                                        "folder_id": "f1", "hub_id": "__new__", "hub_name": "",
                                                        "name": "X"})
        assert created.status_code == 400 and "hub could not be created" in created.get_data(as_text=True)
        assert client.get("/setup/static/style.css").status_code == 200
        assert client.get("/api/status").status_code == 401  # the JSON API keeps its own auth
        assert client.get("/api/status", headers={"Authorization": "Bearer adm-ff"}).get_json() == {"hubs": []}
    finally:
        set_context(None)
