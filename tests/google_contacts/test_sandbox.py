"""The local People API server, driven by the real google-api-python-client:
each modelled rule and its error body (sources in the server's docstring)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from spokesync.sandbox.google_people import Running
from spokesync.sandbox.google_people.discovery import validator
from tests.google_contacts.conftest import USER

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def error_of(exc: HttpError) -> dict[str, Any]:
    return json.loads(exc.content)["error"]


def fails(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(HttpError) as info:
        call.execute(num_retries=0)
    return info.value.resp.status, error_of(info.value)


@pytest.fixture
def svc(people_service) -> Any:
    return people_service()


def create(svc: Any, given: str = "Ada", **extra: Any) -> dict[str, Any]:
    body = {"names": [{"givenName": given}], **extra}
    return svc.people().createContact(body=body, personFields="names,memberships,metadata").execute()


def full_sync(svc: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], str]:
    people: list[dict[str, Any]] = []
    page = None
    while True:
        resp = svc.people().connections().list(resourceName="people/me", personFields="names,metadata",
                                                requestSyncToken=True, pageToken=page, **kwargs).execute()
        people += resp.get("connections", [])
        page = resp.get("nextPageToken")
        if not page:
            return people, resp["nextSyncToken"]


def test_error_body_has_googles_shape(svc) -> None:
    status, error = fails(svc.people().get(resourceName="people/c404"))
    assert status == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"].startswith("personFields mask is required.")
    assert error["errors"][0]["reason"] == "badRequest"
    status, error = fails(svc.people().get(resourceName="people/c404", personFields="names"))
    assert (status, error["status"], error["message"]) == (404, "NOT_FOUND", "Requested entity was not found.")


def test_field_masks_are_checked_against_the_documents_valid_values(svc) -> None:
    status, error = fails(svc.people().connections().list(resourceName="people/me", personFields="names,fileAses"))
    assert status == 400 and "fileAses" in error["message"]
    person = create(svc)
    status, error = fails(svc.people().updateContact(resourceName=person["resourceName"], updatePersonFields="photos",
                                                     body={"etag": person["etag"]}))
    assert status == 400 and "photos" in error["message"]  # photos change only through updateContactPhoto


def test_unknown_body_properties_are_refused(svc) -> None:
    status, error = fails(svc.people().createContact(body={"names": [{"givenName": "A", "nickName": "x"}]}))
    assert status == 400 and error["status"] == "INVALID_ARGUMENT" and "names[0].nickName" in error["message"]


def test_connections_only_for_people_me_and_page_size_bounds(svc) -> None:
    status, error = fails(svc.people().connections().list(resourceName="people/c1", personFields="names"))
    assert status == 400 and "people/me" in error["message"]
    status, error = fails(svc.people().connections().list(resourceName="people/me", personFields="names",
                                                          pageSize=1001))
    assert status == 400 and "1000" in error["message"]


def test_paging_and_sync_token_on_the_last_page_only(svc) -> None:
    for i in range(5):
        create(svc, f"P{i}")
    first = svc.people().connections().list(resourceName="people/me", personFields="names", pageSize=2,
                                            requestSyncToken=True).execute()
    assert len(first["connections"]) == 2 and "nextSyncToken" not in first and first["totalItems"] == 5
    # "all other request parameters must match the first call"
    status, error = fails(svc.people().connections().list(resourceName="people/me", personFields="names,urls",
                                                          pageSize=2, requestSyncToken=True,
                                                          pageToken=first["nextPageToken"]))
    assert status == 400 and error["status"] == "INVALID_ARGUMENT"
    people, token = full_sync(svc, pageSize=2)
    assert len(people) == 5 and token


def test_incremental_sync_returns_changes_and_deleted_people(svc) -> None:
    keep, gone = create(svc, "Keep"), create(svc, "Gone")
    _, token = full_sync(svc)
    svc.people().updateContact(resourceName=keep["resourceName"], updatePersonFields="names",
                               body={"etag": keep["etag"], "names": [{"givenName": "Kept"}]}).execute()
    svc.people().deleteContact(resourceName=gone["resourceName"]).execute()
    resp = svc.people().connections().list(resourceName="people/me", personFields="names,metadata",
                                           requestSyncToken=True, syncToken=token).execute()
    by_name = {p["resourceName"]: p for p in resp["connections"]}
    assert by_name[gone["resourceName"]]["metadata"] == {"deleted": True}
    assert by_name[keep["resourceName"]]["names"][0]["givenName"] == "Kept"
    idle = svc.people().connections().list(resourceName="people/me", personFields="names,metadata",
                                           requestSyncToken=True, syncToken=resp["nextSyncToken"]).execute()
    assert "connections" not in idle and idle["nextSyncToken"]


def test_sync_tokens_expire_seven_days_after_the_full_sync(svc, pserver: Running) -> None:
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    pserver.sandbox.clock = lambda: start
    create(svc)
    _, token = full_sync(svc)
    # an incremental sync on day 6 gives a new token, still counted from the full sync
    pserver.sandbox.clock = lambda: start + timedelta(days=6)
    token = svc.people().connections().list(resourceName="people/me", personFields="names,metadata",
                                            requestSyncToken=True, syncToken=token).execute()["nextSyncToken"]
    pserver.sandbox.clock = lambda: start + timedelta(days=7, seconds=1)
    status, error = fails(svc.people().connections().list(resourceName="people/me", personFields="names,metadata",
                                                          requestSyncToken=True, syncToken=token))
    assert status == 400 and error["status"] == "FAILED_PRECONDITION"
    assert error["message"] == "Sync token is expired. Clear local cache and retry call without the sync token."
    assert error["details"] == [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "EXPIRED_SYNC_TOKEN",
                                 "domain": "people.googleapis.com"}]
    people, _ = full_sync(svc)  # the documented remedy works
    assert len(people) == 1


def test_batch_limits(svc) -> None:
    status, error = fails(svc.people().batchCreateContacts(body={
        "contacts": [{"contactPerson": {"names": [{"givenName": f"N{i}"}]}} for i in range(201)],
        "readMask": "names"}))
    assert status == 400 and "200" in error["message"]
    people = svc.people().batchCreateContacts(body={
        "contacts": [{"contactPerson": {"names": [{"givenName": f"N{i}"}]}} for i in range(200)],
        "readMask": "names,metadata"}).execute()["createdPeople"]
    assert len(people) == 200
    status, error = fails(svc.people().batchUpdateContacts(body={
        "contacts": {f"people/c{i}": {"etag": "x"} for i in range(201)}, "updateMask": "names", "readMask": "names"}))
    assert status == 400 and "200" in error["message"]
    status, error = fails(svc.people().batchDeleteContacts(body={"resourceNames": [f"people/c{i}" for i in range(501)]}))
    assert status == 400 and "500" in error["message"]
    status, error = fails(svc.people().getBatchGet(resourceNames=[f"people/c{i}" for i in range(201)],
                                                   personFields="names"))
    assert status == 400 and "200" in error["message"]  # (a long query: sent as a POST with a method override)


def test_update_needs_the_current_etag(svc) -> None:
    person = create(svc)
    rn = person["resourceName"]
    status, error = fails(svc.people().updateContact(resourceName=rn, updatePersonFields="names",
                                                     body={"names": [{"givenName": "B"}]}))
    assert status == 400 and "etag" in error["message"]
    fresh = svc.people().updateContact(resourceName=rn, updatePersonFields="names",
                                       body={"etag": person["etag"], "names": [{"givenName": "B"}]}).execute()
    assert fresh["etag"] != person["etag"]
    status, error = fails(svc.people().updateContact(resourceName=rn, updatePersonFields="names",
                                                     body={"etag": person["etag"], "names": [{"givenName": "C"}]}))
    assert status == 400 and error["status"] == "FAILED_PRECONDITION"
    assert error["errors"][0]["reason"] == "failedPrecondition"
    assert error["message"] == ("Request person.etag is different than the current person.etag. Clear local cache "
                                "and get the latest person.")
    # metadata.sources.etag is the other documented place
    ok = svc.people().updateContact(resourceName=rn, updatePersonFields="names", body={
        "metadata": {"sources": [{"type": "CONTACT", "etag": fresh["etag"]}]},
        "names": [{"givenName": "D"}]}).execute()
    assert ok["names"][0]["givenName"] == "D"


def test_batch_update_fails_whole_on_one_stale_etag(svc, pserver: Running) -> None:
    a, b = create(svc, "A"), create(svc, "B")
    status, error = fails(svc.people().batchUpdateContacts(body={
        "contacts": {a["resourceName"]: {"etag": a["etag"], "names": [{"givenName": "A2"}]},
                     b["resourceName"]: {"etag": "%stale", "names": [{"givenName": "B2"}]}},
        "updateMask": "names", "readMask": "names"}))
    assert status == 400 and error["status"] == "FAILED_PRECONDITION"
    assert pserver.sandbox.person(USER, a["resourceName"])["names"][0]["givenName"] == "A"


def test_singletons_and_output_only_fields(svc) -> None:
    status, error = fails(svc.people().createContact(body={"names": [{"givenName": "A"}, {"givenName": "B"}]}))
    assert status == 400 and "singleton" in error["message"]
    person = svc.people().createContact(body={"names": [{"givenName": "A", "displayName": "Ignored"}]},
                                        personFields="names").execute()
    assert person["names"][0]["displayName"] == "A"  # output only: ignored in the request


def test_contact_groups_and_memberships(svc) -> None:
    group = svc.contactGroups().create(body={"contactGroup": {"name": "Shared"}}).execute()
    assert group["groupType"] == "USER_CONTACT_GROUP"
    status, error = fails(svc.contactGroups().create(body={"contactGroup": {"name": "Shared"}}))
    assert status == 409 and error["status"] == "ALREADY_EXISTS"
    person = create(svc)
    assert [m["contactGroupMembership"]["contactGroupResourceName"] for m in person["memberships"]] == [
        "contactGroups/myContacts"]
    rn = person["resourceName"]
    resp = svc.contactGroups().members().modify(resourceName=group["resourceName"], body={
        "resourceNamesToAdd": [rn, "people/c0"]}).execute()
    assert resp == {"notFoundResourceNames": ["people/c0"]}
    got = svc.contactGroups().get(resourceName=group["resourceName"], maxMembers=10).execute()
    assert got["memberResourceNames"] == [rn] and got["memberCount"] == 1
    status, error = fails(svc.contactGroups().members().modify(resourceName="contactGroups/friends",
                                                               body={"resourceNamesToAdd": [rn]}))
    assert status == 400 and "system contact group" in error["message"]
    svc.contactGroups().members().modify(resourceName="contactGroups/myContacts",
                                         body={"resourceNamesToRemove": [rn]}).execute()
    resp = svc.contactGroups().members().modify(resourceName=group["resourceName"],
                                                body={"resourceNamesToRemove": [rn]}).execute()
    assert resp == {"canNotRemoveLastContactGroupResourceNames": [rn]}
    current = svc.people().get(resourceName=rn, personFields="memberships").execute()
    status, error = fails(svc.people().updateContact(resourceName=rn, updatePersonFields="memberships",
                                                     body={"etag": current["etag"], "memberships": []}))
    assert status == 400 and "membership" in error["message"]
    groups = svc.contactGroups().list(pageSize=1000).execute()["contactGroups"]
    assert {"contactGroups/myContacts", group["resourceName"]} <= {g["resourceName"] for g in groups}


def test_photos(svc, pserver: Running) -> None:
    import urllib.request

    person = create(svc)
    rn = person["resourceName"]
    shown = svc.people().get(resourceName=rn, personFields="photos").execute()["photos"]
    assert shown[0]["default"] is True
    status, error = fails(svc.people().updateContactPhoto(resourceName=rn, body={
        "photoBytes": base64.b64encode(b"GIF89a not allowed").decode()}))
    assert status == 400 and "JPEG or PNG" in error["message"]
    after = svc.people().updateContactPhoto(resourceName=rn, body={
        "photoBytes": base64.b64encode(PNG).decode(), "personFields": "photos"}).execute()["person"]
    url = after["photos"][0]["url"]
    assert "default" not in after["photos"][0]
    with urllib.request.urlopen(url) as resp:  # noqa: S310 - the sandbox's http URL
        assert resp.read() == PNG
    svc.people().deleteContactPhoto(resourceName=rn).execute()
    assert svc.people().get(resourceName=rn, personFields="photos").execute()["photos"][0]["default"] is True


def test_credentials(pserver: Running, pconfig, secret_store) -> None:
    from spokesync.connectors.google.auth import CONTACTS_SCOPES, credentials_for, save_service_account_credential
    from spokesync.connectors.google.client import GoogleClient
    from spokesync.connectors.google.contacts import discovery_document
    from spokesync.stores.sqlite import SqliteHubStore

    bare = GoogleClient(None, pconfig, document=discovery_document(), api_root=pserver.url).service
    status, error = fails(bare.people().connections().list(resourceName="people/me", personFields="names"))
    assert status == 401 and error["status"] == "UNAUTHENTICATED"
    key = pserver.sandbox.new_service_account_key("sync@project.iam.gserviceaccount.com")
    store = SqliteHubStore(":memory:")
    alone = save_service_account_credential(store, secret_store, "sa1", "SA", key)
    svc = GoogleClient(credentials_for(alone, secret_store, pconfig, CONTACTS_SCOPES), pconfig,
                       document=discovery_document(), api_root=pserver.url).service
    status, error = fails(svc.people().connections().list(resourceName="people/me", personFields="names"))
    assert status == 403 and error["status"] == "PERMISSION_DENIED"
    pserver.sandbox.user_create(USER, {"names": [{"givenName": "Seen"}]})
    acting = save_service_account_credential(store, secret_store, "sa2", "SA as user", key, subject=USER)
    svc = GoogleClient(credentials_for(acting, secret_store, pconfig, CONTACTS_SCOPES), pconfig,
                       document=discovery_document(), api_root=pserver.url).service
    listed = svc.people().connections().list(resourceName="people/me", personFields="names").execute()
    assert [p["names"][0]["givenName"] for p in listed["connections"]] == ["Seen"]


def test_responses_fit_the_documents_schemas(svc, pserver: Running) -> None:
    """The server checks its own answers in tests (check_responses): a wrong one is a 500."""
    assert pserver.sandbox.check_responses
    method = next(m for m in validator().methods if m.name == "people.connections.list")
    with pytest.raises(Exception, match="connections"):
        validator().check_response(method, {"connections": [{"names": [{"givenName": 3}]}]})
    create(svc)
    full_sync(svc)
