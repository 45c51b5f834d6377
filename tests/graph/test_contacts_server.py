"""The local Graph server's contacts, driven through GraphClient (msal token, requests over https,
`$batch`): what Graph refuses (schema, permissions, stale etags, dead delta tokens), delta paging,
folders and photos. Every answer is also checked against the published schema (conftest)."""

from __future__ import annotations

import urllib.parse

import pytest

from spokesync.connectors.graph.client import GraphClient
from spokesync.sandbox.graph import GraphServer
from spokesync.sandbox.graph import contacts as sandbox_contacts
from spokesync.sandbox.graph.contacts import ContactFolder
from tests.graph.conftest import SHARED

ROOT = f"users/{SHARED}"


@pytest.fixture
def client(contacts_connector) -> GraphClient:
    return contacts_connector.client


def folder_url(folder: ContactFolder) -> str:
    return f"{ROOT}/contactFolders/{folder.id}"


def post(client: GraphClient, folder: ContactFolder, body: dict) -> dict:
    resp = client.request("POST", f"{folder_url(folder)}/contacts", body)
    assert resp.status == 201, resp.body
    return resp.body


# ------------------------------------------------------------------ schema


@pytest.mark.parametrize(("body", "message"), [
    ({"displayName": "A", "nickname": "lower-case n"}, "The property 'nickname' does not exist on type "
                                                       "'microsoft.graph.contact'"),
    ({"displayName": "A", "businessPhones": "+1 555 0100"}, "A collection was expected."),
    ({"displayName": "A", "birthday": "12/10/1815"}, "Cannot convert the literal '12/10/1815' to the expected type "
                                                     "'Edm.DateTimeOffset'."),
    ({"displayName": "A", "homeAddress": {"zip": "10115"}}, "The property 'zip' does not exist on type "
                                                            "'microsoft.graph.physicalAddress'"),
    ({"displayName": "A", "emailAddresses": [{"address": "a@example.com", "type": "work"}]},
     "The property 'type' does not exist on type 'microsoft.graph.emailAddress'"),
    ({"displayName": "A", "categories": [1]}, "Cannot convert a int to the expected type 'Edm.String'."),
])
def test_bodies_outside_the_contact_schema_are_refused(client: GraphClient, contact_folder: ContactFolder,
                                                       graph: GraphServer, body: dict, message: str) -> None:
    resp = client.request("POST", f"{folder_url(contact_folder)}/contacts", body)
    assert resp.status == 400 and resp.code == "RequestBodyRead"
    assert message in resp.message
    assert graph.contacts_in(contact_folder) == []


def test_a_contact_with_every_mapped_property_is_accepted_and_read_back(client: GraphClient,
                                                                       contact_folder: ContactFolder) -> None:
    body = {"displayName": "Ada Lovelace", "givenName": "Ada", "surname": "Lovelace", "middleName": "King",
            "title": "Countess", "generation": "I", "nickName": "Ada", "fileAs": "Lovelace, Ada",
            "emailAddresses": [{"address": "ada@example.com", "name": "Ada"}],
            "businessPhones": ["+44 20 7946 0018"], "homePhones": [], "mobilePhone": "+44 7700 900123",
            "businessAddress": {"street": "12 St James's Square", "city": "London", "postalCode": "SW1Y 4LB",
                                "countryOrRegion": "United Kingdom"},
            "companyName": "Analytical Engines", "department": "Research", "jobTitle": "Analyst",
            "manager": "Babbage", "assistantName": "Mary", "businessHomePage": "https://example.com",
            "birthday": "1815-12-10T00:00:00Z", "personalNotes": "First programmer.", "categories": ["Research"]}
    created = post(client, contact_folder, body)
    got = client.get(f"{folder_url(contact_folder)}/contacts/{created['id']}").body
    for key, value in body.items():
        assert got[key] == value, key
    assert got["homeAddress"] == {} and got["parentFolderId"] == contact_folder.id


def test_contacts_need_the_contacts_permission(make_connector, graph: GraphServer,
                                              contact_folder: ContactFolder) -> None:
    from spokesync.connectors.graph.connector import Target

    calendar_only = make_connector(Target("user", SHARED)).client  # Calendars.ReadWrite, Group.ReadWrite.All
    resp = calendar_only.get(f"{folder_url(contact_folder)}/contacts")
    assert resp.status == 403 and resp.code == "ErrorAccessDenied"


# ------------------------------------------------------------------ etags


def test_a_stale_etag_is_refused_with_412(client: GraphClient, contact_folder: ContactFolder,
                                          graph: GraphServer) -> None:
    created = post(client, contact_folder, {"displayName": "One"})
    url = f"{folder_url(contact_folder)}/contacts/{created['id']}"
    fresh = client.request("PATCH", url, {"displayName": "Two"}, headers={"If-Match": created["@odata.etag"]})
    assert fresh.status == 200 and fresh.body["@odata.etag"] != created["@odata.etag"]
    stale = client.request("PATCH", url, {"displayName": "Three"}, headers={"If-Match": created["@odata.etag"]})
    assert stale.status == 412 and stale.code == "ErrorIrresolvableConflict"
    gone = client.request("DELETE", url, headers={"If-Match": created["@odata.etag"]})
    assert gone.status == 412
    assert client.get(url).body["displayName"] == "Two"
    assert client.request("DELETE", url, headers={"If-Match": fresh.body["@odata.etag"]}).status == 204
    assert client.get(url).status == 404


# ------------------------------------------------------------------ delta


def _round(client: GraphClient, url: str, page: int) -> tuple[list[list[dict]], str, list[dict]]:
    pages: list[list[dict]] = []
    headers_seen = []
    while True:
        resp = client.get(url, headers={"Prefer": f"odata.maxpagesize={page}"})
        assert resp.status == 200, resp.body
        headers_seen.append(resp.headers)
        pages.append(resp.body["value"])
        if "@odata.nextLink" in resp.body:
            assert "@odata.deltaLink" not in resp.body
            url = resp.body["@odata.nextLink"]
            continue
        return pages, resp.body["@odata.deltaLink"], headers_seen


def test_delta_pages_then_reports_changes_and_removals(client: GraphClient, contact_folder: ContactFolder,
                                                       graph: GraphServer) -> None:
    ids = [post(client, contact_folder, {"displayName": f"C{i}"})["id"] for i in range(5)]
    pages, link, headers = _round(client, f"{folder_url(contact_folder)}/contacts/delta?$select=displayName", 2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert all(h.get("Preference-Applied") == "odata.maxpagesize=2" for h in headers)
    assert [c["id"] for p in pages for c in p] == ids
    assert set(pages[0][0]) == {"@odata.etag", "id", "displayName"}  # $select carried in the tokens
    idle, link2, _ = _round(client, link, 2)
    assert idle == [[]]
    graph.user_edit_contact(ids[1], displayName="Edited in Outlook")
    graph.user_delete_contact(ids[3])
    changed, _, _ = _round(client, link2, 2)
    flat = [c for p in changed for c in p]
    assert flat == [{"@odata.etag": flat[0]["@odata.etag"], "id": ids[1], "displayName": "Edited in Outlook"},
                    {"@odata.type": "#microsoft.graph.contact", "id": ids[3], "@removed": {"reason": "deleted"}}]


def test_an_expired_delta_token_is_410_sync_state_not_found(client: GraphClient, contact_folder: ContactFolder,
                                                            graph: GraphServer) -> None:
    post(client, contact_folder, {"displayName": "A"})
    _, link, _ = _round(client, f"{folder_url(contact_folder)}/contacts/delta", 10)
    graph.expire_delta_tokens()
    resp = client.get(link)
    assert resp.status == 410 and resp.code == "syncStateNotFound"


def test_old_tokens_fall_out_of_the_token_cache(client: GraphClient, contact_folder: ContactFolder,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_contacts, "DELTA_TOKEN_CACHE", 3)
    _, first, _ = _round(client, f"{folder_url(contact_folder)}/contacts/delta", 10)
    for _ in range(3):
        _round(client, f"{folder_url(contact_folder)}/contacts/delta", 10)
    resp = client.get(first)
    assert resp.status == 410 and resp.code == "syncStateNotFound"


def test_a_token_not_of_this_folder_is_410_resync_required(client: GraphClient, contact_folder: ContactFolder,
                                                           graph: GraphServer, shared_mailbox) -> None:
    other = graph.add_contact_folder(shared_mailbox, f"other-{contact_folder.id[-6:]}")
    _, link, _ = _round(client, f"{folder_url(other)}/contacts/delta", 10)
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["$deltatoken"][0]
    for bad in (token, "not-a-token"):
        resp = client.get(f"{folder_url(contact_folder)}/contacts/delta?$deltatoken={bad}")
        assert resp.status == 410 and resp.code == "resyncRequired"
        location = next(v for k, v in resp.headers.items() if k.lower() == "location")
        assert location.endswith(f"/contactFolders/{contact_folder.id}/contacts/delta")


# ------------------------------------------------------------------ batch, filter, folders, photo


def test_a_batch_of_more_than_twenty_is_refused(client: GraphClient, contact_folder: ContactFolder) -> None:
    requests_ = [{"id": str(i), "method": "GET", "url": f"/{folder_url(contact_folder)}/contacts"} for i in range(21)]
    resp = client.request("POST", "$batch", {"requests": requests_})
    assert resp.status == 400 and "exceeds the limit of 20" in resp.message


def test_contacts_are_found_by_a_single_value_extended_property(client: GraphClient,
                                                               contact_folder: ContactFolder) -> None:
    prop = "String {00020329-0000-0000-C000-000000000046} Name spokesync-hub-id"
    mine = post(client, contact_folder, {"displayName": "Mine",
                                         "singleValueExtendedProperties": [{"id": prop, "value": "hub-1"}]})
    post(client, contact_folder, {"displayName": "Other",
                                  "singleValueExtendedProperties": [{"id": prop, "value": "hub-2"}]})
    flt = urllib.parse.quote(f"singleValueExtendedProperties/Any(ep: ep/id eq '{prop}' and ep/value eq 'hub-1')")
    resp = client.get(f"{folder_url(contact_folder)}/contacts?$filter={flt}"
                      f"&$expand=singleValueExtendedProperties($filter=id eq '{prop}')")
    assert [c["id"] for c in resp.body["value"]] == [mine["id"]]
    [found] = resp.body["value"][0]["singleValueExtendedProperties"]
    assert found["id"].lower() == prop.lower() and found["value"] == "hub-1"  # Graph answers the GUID lower-case
    bad = client.get(f"{folder_url(contact_folder)}/contacts?$filter=startswith(displayName,'M')")
    assert bad.status == 400 and bad.code == "ErrorInvalidUrlQueryFilter"


def test_contact_folders_list_create_and_nest(client: GraphClient, graph: GraphServer, shared_mailbox) -> None:
    made = client.request("POST", f"{ROOT}/contactFolders", {"displayName": "Customers-nest"})
    assert made.status == 201
    child = client.request("POST", f"{ROOT}/contactFolders/{made.body['id']}/childFolders", {"displayName": "EU"})
    assert child.status == 201 and child.body["parentFolderId"] == made.body["id"]
    top = client.get(f"{ROOT}/contactFolders").body["value"]
    assert made.body in top and child.body not in top
    assert client.get(f"{ROOT}/contactFolders/{made.body['id']}/childFolders").body["value"] == [child.body]
    again = client.request("POST", f"{ROOT}/contactFolders", {"displayName": "customers-NEST"})
    assert again.status == 409 and again.code == "ErrorFolderExists"
    nameless = client.request("POST", f"{ROOT}/contactFolders", {"displayName": ""})
    assert nameless.status == 400
    wrong = client.request("POST", f"{ROOT}/contactFolders", {"name": "x"})
    assert wrong.status == 400 and wrong.code == "RequestBodyRead"


def test_a_contact_photo_is_put_and_read_as_bytes(client: GraphClient, contact_folder: ContactFolder,
                                                 graph: GraphServer) -> None:
    created = post(client, contact_folder, {"displayName": "Face"})
    url = f"{client.api}/{folder_url(contact_folder)}/contacts/{created['id']}/photo/$value"
    token = client.token()
    none = client.http.get(url, headers={"Authorization": f"Bearer {token}"})
    assert none.status_code == 404
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
    put = client.http.request("PUT", url, data=jpeg, headers={"Authorization": f"Bearer {token}",
                                                              "Content-Type": "image/jpeg"})
    assert put.status_code == 200
    got = client.http.get(url, headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200 and got.content == jpeg and got.headers["Content-Type"] == "image/jpeg"
    after = client.get(f"{folder_url(contact_folder)}/contacts/{created['id']}").body
    assert after["@odata.etag"] != created["@odata.etag"]  # the photo is part of the Outlook item
    text = client.http.request("PUT", url, data=b"hello", headers={"Authorization": f"Bearer {token}",
                                                                   "Content-Type": "text/plain"})
    assert text.status_code == 400
