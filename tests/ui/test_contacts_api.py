"""The setup API covers contacts: contacts hubs, contacts spokes, their options (refusing the
calendar-only ones in words, with the field), status and history, and the OpenAPI description
names all of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from spokesync.connectors import memory_registry
from spokesync.model.contact import Contact, Email
from spokesync.service import setup_api
from tests.helpers import wait_for
from tests.ui.conftest import ADMIN_TOKEN, LocalSpokesync, start_local

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Spokesync-Client": "tests"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSpokesync]:
    running = start_local(Path(tmp_path_factory.mktemp("spokesync-contacts-api")))
    yield running
    running.close()


def call(server: LocalSpokesync, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    resp = requests.request(method, server.url + "/api" + path, json=body, headers=AUTH, timeout=30)
    return resp.status_code, resp.json()


def test_a_contacts_hub_through_the_api(server: LocalSpokesync) -> None:
    status, hub = call(server, "POST", "/hubs", {"name": "People", "object_type": "contacts"})
    assert status == 201 and hub["object_type"] == "contacts"
    status, body = call(server, "POST", "/hubs", {"name": "Odd", "object_type": "notes"})
    assert status == 400 and body["field"] == "object_type" and "'calendar' or 'contacts'" in body["detail"]

    status, body = call(server, "POST", f"/hubs/{hub['id']}/spokes",
                        {"name": "Cal", "kind": "memory", "address": {"calendar": "c"}})
    assert status == 400 and body["code"] == "object_type_mismatch" and body["field"] == "kind"
    assert "Hub 'People' syncs contacts" in body["detail"]

    folder = memory_registry.folder("api-people")
    folder.user_create(Contact(display_name="Ada Lovelace", emails=(Email("ada@example.com"),)))
    folder.user_create(Contact(display_name="No Mail"))  # left out: the spoke asks for an e-mail address
    status, spoke = call(server, "POST", f"/hubs/{hub['id']}/spokes", {
        "name": "Office", "kind": "memory_contacts", "address": {"folder": "api-people"},
        "options": {"direction": "two_way", "sync_photo": False, "filters": {"has_email": True}}})
    assert status == 201, spoke
    assert spoke["options"]["sync_photo"] is False and spoke["options"]["filters"]["has_email"] is True

    # options of the other object type do nothing here: refused, in words, with the field
    status, body = call(server, "PATCH", f"/spokes/{spoke['id']}/options", {"days_past": 30})
    assert status == 400 and body["code"] == "option_not_for_object_type" and body["field"] == "days_past"
    assert body["detail"] == ("The option days_past is for calendar spokes only: a contacts spoke has no use for "
                              "it; leave it out.")
    status, body = call(server, "PATCH", f"/spokes/{spoke['id']}/options", {"filters": {"show_as": ["busy"]}})
    assert status == 400 and body["field"] == "filters.show_as"
    status, body = call(server, "PATCH", f"/spokes/{spoke['id']}/options", {"filters": {"email_domains": ["x@y"]}})
    assert status == 400 and body["field"] == "filters.email_domains" and "such as example.com" in body["detail"]
    status, body = call(server, "PATCH", f"/spokes/{spoke['id']}/options", {"sync_notes": "no"})
    assert status == 400 and body["field"] == "sync_notes" and "'Notes' is on or off" in body["detail"]
    status, body = call(server, "PATCH", f"/spokes/{spoke['id']}/options",
                        {"sync_notes": False, "filters": {"companies": ["Example Ltd"], "email_domains": ["example.com"]}})
    assert status == 200 and body["options"]["sync_notes"] is False
    assert body["options"]["filters"]["companies"] == ["Example Ltd"]

    # a sync: the contact's name in the history and the status (not an event title or a start time)
    status, body = call(server, "POST", f"/spokes/{spoke['id']}/sync")
    assert status == 202
    # a running sync's record is in the history already (its progress): wait for the finished one
    wait_for(lambda: [r for r in call(server, "GET", f"/spokes/{spoke['id']}/runs")[1]["runs"]
                      if r["status"] != "running"], timeout=30)
    runs = call(server, "GET", f"/spokes/{spoke['id']}/runs")[1]["runs"]
    assert runs[0]["status"] == "ok" and runs[0]["into_hub"] == 1
    assert [(i["action"], i["title"]) for i in runs[0]["items"]] == [("hub_created", "Ada Lovelace")]
    status, hub_status = call(server, "GET", f"/hubs/{hub['id']}")
    assert status == 200 and hub_status["object_type"] == "contacts" and hub_status["items"] == 1


def test_the_openapi_description_covers_contacts() -> None:
    doc = setup_api.openapi()
    create = doc["paths"]["/api/hubs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create["properties"]["object_type"]["enum"] == ["calendar", "contacts"]
    spoke = doc["paths"]["/api/hubs/{id}/spokes"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"google_contacts", "exchange_contacts", "graph_contacts"} <= set(spoke["properties"]["kind"]["enum"])
    assert "google_contacts: group" in spoke["properties"]["address"]["description"]
    options = doc["paths"]["/api/spokes/{id}/options"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"sync_notes", "sync_birthday", "sync_photo", "match_existing"} <= set(options["properties"])
    contact_filters = options["properties"]["filters"]["oneOf"][1]["properties"]
    assert set(contact_filters) == {"categories", "has_email", "companies", "email_domains"}


def test_google_sign_in_for_contacts_asks_for_the_contacts_scope(server: LocalSpokesync) -> None:
    from urllib.parse import parse_qs, urlsplit

    for object_type, scope in (("contacts", "https://www.googleapis.com/auth/contacts"),
                               ("calendar", "https://www.googleapis.com/auth/calendar")):
        status, body = call(server, "POST", "/credentials/google/oauth/start",
                            {"redirect_uri": server.url + "/setup/oauth/callback", "object_type": object_type})
        assert status == 200
        assert parse_qs(urlsplit(body["url"]).query)["scope"] == [scope]
    status, body = call(server, "POST", "/credentials/google/oauth/start",
                        {"redirect_uri": server.url + "/setup/oauth/callback", "object_type": "notes"})
    assert status == 400 and body["field"] == "object_type"
