"""The setup function's JSON API in process (functions-framework's test client),
on the Firestore store, with in-memory spokes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from spokesync.bootstrap import build_context, set_context
from spokesync.config import Config
from spokesync.connectors import memory_registry
from spokesync.model.hub import CredentialRef
from spokesync.queue.local import LocalTaskQueue
from spokesync.stores.firestore import FirestoreHubStore
from tests.cloud.conftest import PROJECT, FirestoreEmulator
from tests.cloud.test_firestore_store import make_store

ADMIN = {"Authorization": "Bearer adm", "X-Spokesync-Client": "tests"}  # bodyless writes: the API client header


class MemorySecrets:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def put(self, name: str, value: str) -> str:
        self.values[name] = value
        return name

    def get(self, name: str) -> str:
        return self.values[name]

    def delete(self, name: str) -> None:
        self.values.pop(name, None)


@pytest.fixture
def env(firestore: FirestoreEmulator) -> Iterator[dict[str, Any]]:
    import functions_framework

    store = make_store()
    queue = LocalTaskQueue()
    secrets = MemorySecrets()
    ctx = build_context(Config(backend="cloud", gcp_project=PROJECT, auth_mode="token", admin_token="adm"),
                        store=store, secrets=secrets, queue=queue)  # type: ignore[arg-type]
    queue.handler = ctx.run_task
    set_context(ctx)
    memory_registry.CALENDARS.clear()
    app = functions_framework.create_app(target="setup", source="functions/setup/main.py")
    try:
        yield {"client": app.test_client(), "ctx": ctx, "store": store, "queue": queue, "secrets": secrets}
    finally:
        set_context(None)


def test_hub_with_two_memory_spokes_syncs_and_reports(env: dict[str, Any]) -> None:
    client, queue = env["client"], env["queue"]
    assert client.get("/api/status").status_code == 401
    hub = client.post("/api/hubs", json={"name": "Team"}, headers=ADMIN).get_json()
    assert client.post("/api/hubs", json={"name": "Team"}, headers=ADMIN).status_code == 400
    a = client.post(f"/api/hubs/{hub['id']}/spokes", headers=ADMIN, json={
        "name": "A", "kind": "memory", "address": {"calendar": "a"}, "options": {"direction": "two_way"}}).get_json()
    b = client.post(f"/api/hubs/{hub['id']}/spokes", headers=ADMIN, json={
        "name": "B", "kind": "memory", "address": {"calendar": "b"}}).get_json()
    resp = client.patch(f"/api/spokes/{b['id']}/options", json={"direction": "two_way"}, headers=ADMIN)
    assert resp.status_code == 200 and resp.get_json()["two_way"]
    assert client.patch(f"/api/spokes/{b['id']}/options", json={"direction": "sideways"},
                        headers=ADMIN).status_code == 400
    from datetime import UTC, datetime, timedelta

    from spokesync.model.event import Event

    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    memory_registry.calendar("a").user_create(Event(title="Standup", start=start, end=start + timedelta(minutes=15)))
    preview = client.post(f"/api/spokes/{a['id']}/dry-run", headers=ADMIN).get_json()
    assert preview["status"] == "dry_run" and preview["plan"]
    assert client.post(f"/api/spokes/{a['id']}/sync", headers=ADMIN).get_json() == {"enqueued": True}
    queue.drain(max_tasks=20)
    assert [e.title for e in memory_registry.calendar("b").events()] == ["Standup"]
    status = client.get(f"/api/hubs/{hub['id']}", headers=ADMIN).get_json()
    assert status["items"] == 1 and {s["linked_items"] for s in status["spokes"]} == {1}
    runs = client.get(f"/api/spokes/{a['id']}/runs?limit=5", headers=ADMIN).get_json()["runs"]
    assert runs and runs[0]["status"] == "ok" and runs[0]["into_hub"] == 1
    assert client.get(f"/api/runs/{runs[0]['id']}", headers=ADMIN).get_json()["id"] == runs[0]["id"]
    # an idle poll becomes the last run; the status still shows the run that moved something
    assert client.post(f"/api/spokes/{a['id']}/sync", headers=ADMIN).get_json() == {"enqueued": True}
    queue.drain(max_tasks=20)
    [spoke_a] = [s for s in client.get(f"/api/hubs/{hub['id']}", headers=ADMIN).get_json()["spokes"]
                 if s["id"] == a["id"]]
    assert (spoke_a["last_run"]["into_hub"], spoke_a["last_run"]["into_spoke"]) == (0, 0)
    assert spoke_a["last_run"]["id"] != runs[0]["id"]
    assert spoke_a["last_change"]["id"] == runs[0]["id"] and spoke_a["last_change"]["into_hub"] == 1
    assert client.get("/api/hubs/nope", headers=ADMIN).status_code == 404
    assert client.put("/api/hubs", headers=ADMIN).status_code == 405
    assert client.get("/api/nothing", headers=ADMIN).status_code == 404
    assert client.post("/api/hubs", data="{not json", headers={**ADMIN, "Content-Type": "application/json"}
                       ).status_code == 400
    assert client.delete(f"/api/spokes/{b['id']}", headers=ADMIN).status_code == 200
    assert client.delete(f"/api/hubs/{hub['id']}", headers=ADMIN).status_code == 200
    assert env["store"].list_hub_items(hub["id"], include_deleted=True) == []
    assert env["store"].list_runs(hub_id=hub["id"]) == []


def test_a_credential_in_use_cannot_be_deleted_and_its_secret_never_shows(env: dict[str, Any]) -> None:
    client, store, secrets = env["client"], env["store"], env["secrets"]
    secrets.put("exchange-c1", "pw-123")
    store.put_credential(CredentialRef(id="c1", kind="exchange", label="PF", secret_name="exchange-c1",
                                       settings={"ews_url": "https://mail.example.com/EWS/Exchange.asmx"}))
    hub = client.post("/api/hubs", json={"name": "H"}, headers=ADMIN).get_json()
    spoke = client.post(f"/api/hubs/{hub['id']}/spokes", headers=ADMIN, json={
        "name": "A", "kind": "memory", "address": {"calendar": "x"}, "credential_id": "c1"}).get_json()
    listed = client.get("/api/credentials", headers=ADMIN)
    assert "pw-123" not in listed.get_data(as_text=True)
    assert listed.get_json()["credentials"][0]["spokes"] == 1
    assert client.delete("/api/credentials/c1", headers=ADMIN).status_code == 409
    client.delete(f"/api/spokes/{spoke['id']}", headers=ADMIN)
    assert client.delete("/api/credentials/c1", headers=ADMIN).status_code == 200
    assert secrets.values == {} and store.get_credential("c1") is None


def test_every_composite_query_has_its_index() -> None:
    from spokesync.stores import firestore_indexes as ix

    composite = {(i["collection"], tuple((f["field_path"], f["order"]) for f in i["fields"]))
                 for i in ix.COMPOSITE_INDEXES}
    assert ("runs", (("spoke_id", "ASCENDING"), ("started_at", "DESCENDING"))) in composite
    assert ("runs", (("hub_id", "ASCENDING"), ("started_at", "DESCENDING"))) in composite
    for query in ix.QUERIES:
        # a query filtering on one field and ordering by another needs a composite index
        fields = {w.split()[0] for w in query["where"]} | {o.split()[0] for o in query["order"]}
        if len(fields) > 1 and query["order"]:
            assert query["index"].startswith("composite:"), query
    # the store's source names no query field the list does not know
    import inspect
    import re

    from spokesync.stores import firestore

    source = inspect.getsource(firestore)
    used = set(re.findall(r'_(?:eq|op)\("(\w+)"', source)) | set(re.findall(r'order_by\("(\w+)"', source))
    listed = {w.split()[0] for q in ix.QUERIES for w in q["where"] + q["order"]}
    assert used <= listed, used - listed
    assert isinstance(FirestoreHubStore, type)
