"""Microsoft 365 through the setup API and the CLI: validated credentials (specific messages,
nothing saved on failure, no secret in any answer), the calendar picker, a Graph spoke, repair."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from spokesync import cli
from spokesync.bootstrap import Context, build_context
from spokesync.queue.local import LocalTaskQueue
from spokesync.secrets.local import LocalSecretStore
from spokesync.service import setup_api
from spokesync.stores.sqlite import SqliteHubStore
from tests.graph.conftest import SECRET, SHARED, graph_config


@pytest.fixture
def ctx(graph, shared_mailbox, tmp_path) -> Iterator[Context]:
    secrets = LocalSecretStore.open(str(tmp_path / "s.enc"), key_file=str(tmp_path / "s.key"))
    yield build_context(replace(graph_config(graph)), store=SqliteHubStore(":memory:"), secrets=secrets,
                        queue=LocalTaskQueue())


def body(settings, **kw):
    return {"label": "M365", "settings": settings.to_dict(), "secret": SECRET, "mailbox": SHARED, **kw}


def test_credential_picker_and_spoke_through_the_api(ctx: Context, settings, graph) -> None:
    status, cred = setup_api.handle(ctx, "POST", "/credentials/graph", body(settings))
    assert status == 201 and cred["kind"] == "graph"
    assert SECRET not in json.dumps(cred) and SECRET not in json.dumps([c.to_dict() for c in ctx.store.list_credentials()])
    status, picked = setup_api.handle(ctx, "POST", f"/credentials/{cred['id']}/graph-calendars", {"mailbox": SHARED})
    assert status == 200 and any(c["is_default"] for c in picked["calendars"])
    calendar = picked["calendars"][0]
    _, hub = setup_api.handle(ctx, "POST", "/hubs", {"name": "Team"})
    status, spoke = setup_api.handle(ctx, "POST", f"/hubs/{hub['id']}/spokes", {
        "name": "Shared", "kind": "graph", "credential_id": cred["id"],
        "address": {"kind": "user", "mailbox": SHARED, "calendar_id": calendar["id"]}})
    assert status == 201 and spoke["kind"] == "graph"
    status, _ = setup_api.handle(ctx, "POST", f"/spokes/{spoke['id']}/sync", {})
    assert status in (200, 202)


@pytest.mark.parametrize(("change", "message"), [
    ({"secret": "wrong"}, "wrong client secret"),
    ({"settings": {"tenant": "fabrikam.onmicrosoft.com", "client_id": "x"}}, "wrong tenant"),
    ({"mailbox": "nobody@contoso.com"}, "does not exist"),
    ({"settings": {"client_id": "x"}}, "Directory \\(tenant\\) ID is missing"),
])
def test_refused_credentials_say_why_and_save_nothing(ctx: Context, settings, change, message) -> None:
    import re

    status, answer = setup_api.handle(ctx, "POST", "/credentials/graph", {**body(settings), **change})
    assert status == 422 and re.search(message, answer["error"]), answer
    assert ctx.store.list_credentials() == []
    assert "wrong" not in answer["error"].replace("wrong client secret", "").replace("wrong tenant", "")


def test_repair_validates_the_new_secret(ctx: Context, settings, graph, tenant, shared_mailbox) -> None:
    app = graph.add_app(tenant, secret="Old-Secret-1")
    _, cred = setup_api.handle(ctx, "POST", "/credentials/graph", {**body(settings), "secret": "Old-Secret-1",
                                                                   "settings": {"tenant": tenant.id,
                                                                                "client_id": app.client_id}})
    app.secrets.clear()
    app.secrets.add("New-Secret-2")
    status, answer = setup_api.handle(ctx, "POST", f"/credentials/{cred['id']}/graph-secret", {"secret": "Nope"})
    assert status == 422 and "wrong client secret" in answer["error"]
    status, answer = setup_api.handle(ctx, "POST", f"/credentials/{cred['id']}/graph-secret",
                                      {"secret": "New-Secret-2"})
    assert status == 200 and answer["repaired"] is True
    stored = ctx.store.get_credential(cred["id"])
    assert stored is not None and ctx.secrets.get(stored.secret_name or "") == "New-Secret-2"


def test_the_openapi_description_lists_the_graph_routes() -> None:
    paths = setup_api.openapi()["paths"]
    assert {"/api/credentials/graph", "/api/credentials/{id}/graph-calendars",
            "/api/credentials/{id}/graph-secret"} <= set(paths)
    kinds = paths["/api/hubs/{id}/spokes"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "graph" in kinds["properties"]["kind"]["enum"]


def test_cli_saves_a_credential_and_lists_calendars(ctx: Context, settings, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SPOKESYNC_GRAPH_SECRET", SECRET)
    args = cli.build_parser().parse_args(["credential", "graph", "--tenant", settings.tenant, "--client-id",
                                          settings.client_id, "--mailbox", SHARED])
    assert cli.run(args, ctx) == 0
    [cred] = ctx.store.list_credentials()
    out = capsys.readouterr().out
    assert SECRET not in out and out.startswith("saved Microsoft 365 credential")
    args = cli.build_parser().parse_args(["credential", "graph-calendars", cred.id, "--mailbox", SHARED, "--json"])
    assert cli.run(args, ctx) == 0
    assert '"default": true' in capsys.readouterr().out
    args = cli.build_parser().parse_args(["credential", "graph-calendars", cred.label, "--mailbox", SHARED])
    assert cli.run(args, ctx) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["CALENDAR", "ID"] and any("(default)" in line for line in table[2:])
