"""Documented Google behaviours the local Calendar server shows (sources in
spokesync/sandbox/google_calendar/rules.py), driven with the real client."""

from __future__ import annotations

import json

import pytest
from googleapiclient.errors import HttpError

from spokesync.config import Config
from spokesync.connectors.google.client import GoogleClient, error_reasons
from spokesync.sandbox.google_calendar import Running
from tests.google.conftest import USER

SA = "plain@project.iam.gserviceaccount.com"
CAL = "team@group.calendar.google.com"


def user_api(gserver: Running, gconfig: Config):
    from google.oauth2.credentials import Credentials

    return GoogleClient(Credentials(token=gserver.sandbox.issue_access_token(USER)), gconfig).service


def sa_api(gserver: Running, gconfig: Config):
    from google.oauth2 import service_account

    key = gserver.sandbox.new_service_account_key(SA, domain_wide=False)
    creds = service_account.Credentials.from_service_account_info(
        {**key, "token_uri": gserver.token_uri}, scopes=["https://www.googleapis.com/auth/calendar"])
    return GoogleClient(creds, gconfig).service


def event(**extra) -> dict:
    return {"summary": "S", "start": {"dateTime": "2026-03-02T09:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-03-02T10:00:00+01:00", "timeZone": "Europe/Berlin"}, **extra}


def refused(call) -> tuple[int, list[str], str]:
    with pytest.raises(HttpError) as err:
        call.execute()
    return err.value.resp.status, error_reasons(err.value), json.loads(err.value.content)["error"]["message"]


def test_a_service_account_without_delegation_cannot_set_attendees(gserver: Running, gconfig: Config) -> None:
    gserver.sandbox.add_calendar(CAL, USER, acl={SA: "writer"})
    api = sa_api(gserver, gconfig)
    status, reasons, message = refused(api.events().insert(calendarId=CAL, body=event(
        attendees=[{"email": "guest@example.com"}])))
    assert (status, reasons) == (403, ["forbiddenForServiceAccounts"]) and "Domain-Wide Delegation" in message
    created = api.events().insert(calendarId=CAL, body=event()).execute()
    status, reasons, _ = refused(api.events().patch(calendarId=CAL, eventId=created["id"], body={
        "attendees": [{"email": "guest@example.com"}]}))
    assert (status, reasons) == (403, ["forbiddenForServiceAccounts"])


def test_a_calendar_shared_with_a_service_account_is_listed_only_after_calendar_list_insert(
        gserver: Running, gconfig: Config) -> None:
    gserver.sandbox.add_calendar(CAL, USER, acl={SA: "writer"})
    api = sa_api(gserver, gconfig)
    assert api.calendarList().list().execute()["items"] == []
    assert api.events().list(calendarId=CAL).execute()["items"] == []  # reachable by id all along
    entry = api.calendarList().insert(body={"id": CAL}).execute()
    assert entry["id"] == CAL and entry["accessRole"] == "writer"
    assert [c["id"] for c in api.calendarList().list().execute()["items"]] == [CAL]
    status, _, _ = refused(api.calendarList().insert(body={"id": "not-shared@group.calendar.google.com"}))
    assert status == 404


def test_an_event_the_user_deleted_cannot_be_reinserted_or_updated_back(gserver: Running, gconfig: Config) -> None:
    gserver.sandbox.add_calendar(CAL, USER)
    api = user_api(gserver, gconfig)
    api.events().insert(calendarId=CAL, body=event(id="userdeleted1")).execute()
    api.events().insert(calendarId=CAL, body=event(id="apideleted01")).execute()
    gserver.sandbox.user_delete(CAL, "userdeleted1")
    api.events().delete(calendarId=CAL, eventId="apideleted01").execute()
    assert refused(api.events().insert(calendarId=CAL, body=event(id="userdeleted1")))[:2] == (409, ["duplicate"])
    assert refused(api.events().update(calendarId=CAL, eventId="userdeleted1",
                                       body={**event(), "status": "confirmed"}))[:2] == (403, ["forbidden"])
    # deleted through the API: updating it back works (the connector's undelete path)
    back = api.events().update(calendarId=CAL, eventId="apideleted01", body={**event(), "status": "confirmed"})
    assert back.execute()["status"] == "confirmed"
    api.events().delete(calendarId=CAL, eventId="apideleted01").execute()
    assert sorted(gserver.sandbox.purge_deleted(CAL)) == ["apideleted01", "userdeleted1"]
    assert refused(api.events().get(calendarId=CAL, eventId="userdeleted1"))[0] == 404
    for event_id in ("userdeleted1", "apideleted01"):  # ids stay reserved after the purge
        assert refused(api.events().insert(calendarId=CAL, body=event(id=event_id)))[:2] == (409, ["duplicate"])


def test_an_invitation_refuses_shared_field_edits_but_takes_the_attendees_own(gserver: Running,
                                                                             gconfig: Config) -> None:
    gserver.sandbox.add_calendar(USER, USER)
    invite = gserver.sandbox.user_invite(USER, event(summary="Their meeting"), organizer="boss@example.org")
    api = user_api(gserver, gconfig)
    assert invite["organizer"] == {"email": "boss@example.org"}
    status, reasons, message = refused(api.events().patch(calendarId=USER, eventId=invite["id"],
                                                          body={"summary": "Renamed"}))
    assert (status, reasons) == (403, ["forbiddenForNonOrganizer"]) and "organizer" in message
    attendees = [dict(a, responseStatus="accepted") if a.get("self") else a for a in invite["attendees"]]
    own = api.events().patch(calendarId=USER, eventId=invite["id"], body={
        "attendees": attendees, "reminders": {"useDefault": False, "overrides": [{"method": "popup", "minutes": 5}]},
        "extendedProperties": {"private": {"mine": "1"}}}).execute()
    assert next(a for a in own["attendees"] if a.get("self"))["responseStatus"] == "accepted"
    api.events().delete(calendarId=USER, eventId=invite["id"]).execute()  # removing one's copy is allowed


@pytest.mark.parametrize(("event_type", "extra", "primary"), [
    ("fromGmail", {}, True),
    ("birthday", {"birthdayProperties": {"type": "birthday"}}, True),  # timed, no yearly rule
    ("outOfOffice", {}, False),
    ("focusTime", {"start": {"date": "2026-03-02"}, "end": {"date": "2026-03-03"}}, True),
])
def test_special_event_types_keep_their_creation_rules(gserver: Running, gconfig: Config, event_type: str,
                                                      extra: dict, primary: bool) -> None:
    cal = USER if primary else CAL
    gserver.sandbox.add_calendar(cal, USER)
    api = user_api(gserver, gconfig)
    status, reasons, _ = refused(api.events().insert(calendarId=cal, body=event(eventType=event_type, **extra)))
    assert (status, reasons) == (400, ["eventTypeRestriction"])


def test_special_event_types_limit_edits_and_no_event_changes_its_type(gserver: Running, gconfig: Config) -> None:
    gserver.sandbox.add_calendar(USER, USER)
    api = user_api(gserver, gconfig)
    gmail = gserver.sandbox.user_insert(USER, event(eventType="fromGmail", summary="Flight"))
    status, reasons, _ = refused(api.events().patch(calendarId=USER, eventId=gmail["id"], body={"summary": "X"}))
    assert (status, reasons) == (400, ["eventTypeRestriction"])
    assert api.events().patch(calendarId=USER, eventId=gmail["id"], body={"colorId": "3"}).execute()["colorId"] == "3"
    focus = api.events().insert(calendarId=USER, body=event(eventType="focusTime")).execute()
    status, reasons, _ = refused(api.events().patch(calendarId=USER, eventId=focus["id"],
                                                    body={"eventType": "default"}))
    assert (status, reasons) == (400, ["eventTypeRestriction"])
    birthday = api.events().insert(calendarId=USER, body={
        "summary": "Ann", "eventType": "birthday", "birthdayProperties": {"type": "birthday"},
        "start": {"date": "2026-05-04"}, "end": {"date": "2026-05-05"},
        "recurrence": ["RRULE:FREQ=YEARLY"], "transparency": "transparent", "visibility": "private"}).execute()
    assert birthday["eventType"] == "birthday"
    status, reasons, _ = refused(api.events().patch(calendarId=USER, eventId=birthday["id"],
                                                    body={"location": "Home"}))
    assert (status, reasons) == (400, ["eventTypeRestriction"])


def test_google_rewrites_attendee_flags_and_sanitises_html(gserver: Running, gconfig: Config) -> None:
    gserver.sandbox.add_calendar(CAL, USER)
    api = user_api(gserver, gconfig)
    created = api.events().insert(calendarId=CAL, body=event(
        attendees=[{"email": CAL}, {"email": "guest@example.com", "responseStatus": "tentative"}],
        description='<p onclick="x()">Hi <b>all</b><script>alert(1)</script> '
                    '<a href="javascript:bad()">no</a> <a href="https://example.com/">yes</a></p>')).execute()
    me = next(a for a in created["attendees"] if a["email"] == CAL)
    guest = next(a for a in created["attendees"] if a["email"] == "guest@example.com")
    assert me == {"email": CAL, "responseStatus": "needsAction", "self": True, "organizer": True}
    assert guest == {"email": "guest@example.com", "responseStatus": "tentative"}
    assert created["description"] == '<p>Hi <b>all</b> <a>no</a> <a href="https://example.com/">yes</a></p>'
    again = api.events().patch(calendarId=CAL, eventId=created["id"],
                               body={"description": created["description"]}).execute()
    assert again["description"] == created["description"]  # sanitising is stable
