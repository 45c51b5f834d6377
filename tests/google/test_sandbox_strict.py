"""The local Calendar server refuses what Google refuses: requests are held to
the discovery document google-api-python-client ships, plus the documented
constraints, and errors come back in Google's error body shape. Driven with
the real client (and raw HTTP where the client itself would refuse first)."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import replace

import pytest
from googleapiclient.errors import HttpError

from spokesync.connectors.google.client import GoogleClient
from spokesync.sandbox.google_calendar import GoogleCalendarSandbox, Running, serve
from spokesync.sandbox.google_calendar.discovery import validator
from tests.google.conftest import USER

CAL = "strict@group.calendar.google.com"


@pytest.fixture
def api(gserver: Running, gconfig):
    from google.oauth2.credentials import Credentials

    gserver.sandbox.add_calendar(CAL, USER, "Strict", "Europe/Berlin")
    return GoogleClient(Credentials(token=gserver.sandbox.issue_access_token(USER)), gconfig).service


def event(**extra) -> dict:
    return {"summary": "S", "start": {"dateTime": "2026-03-02T09:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-03-02T10:00:00+01:00", "timeZone": "Europe/Berlin"}, **extra}


def refused(call) -> dict:
    with pytest.raises(HttpError) as err:
        call.execute()
    body = json.loads(err.value.content)
    assert body["error"]["code"] == err.value.resp.status
    assert body["error"]["message"] == body["error"]["errors"][0]["message"]
    return body["error"]


def raw(gserver: Running, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    token = gserver.sandbox.issue_access_token(USER)
    req = urllib.request.Request(gserver.url.rstrip("/") + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - 127.0.0.1 only
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_an_unknown_body_field_is_refused_with_its_location(api) -> None:
    error = refused(api.events().insert(calendarId=CAL, body=event(summry="typo")))
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert error["errors"][0] == {"domain": "global", "reason": "invalid", "message": "Invalid field: summry",
                                  "location": "summry", "locationType": "other"}


def test_a_body_field_of_the_wrong_type_is_refused(api) -> None:
    assert refused(api.events().insert(calendarId=CAL, body=event(guestsCanModify="yes")))["errors"][0][
        "location"] == "guestsCanModify"
    bad_minutes = event(reminders={"useDefault": False, "overrides": [{"method": "popup", "minutes": "10"}]})
    assert refused(api.events().insert(calendarId=CAL, body=bad_minutes))["errors"][0][
        "location"] == "reminders.overrides[0].minutes"
    assert refused(api.events().insert(calendarId=CAL, body=event(attendees={"email": "a@x"})))["code"] == 400


def test_query_parameters_are_checked_for_type_enum_and_repetition(gserver: Running, api) -> None:
    path = f"/calendar/v3/calendars/{CAL}/events"
    status, body = raw(gserver, "GET", path + "?showDeleted=yes")
    assert status == 400 and body["error"]["errors"][0]["location"] == "showDeleted"
    status, body = raw(gserver, "GET", path + "?maxResults=0")
    assert status == 400 and body["error"]["errors"][0]["locationType"] == "parameter"
    status, body = raw(gserver, "GET", path + "?orderBy=summary")
    assert status == 400 and body["error"]["errors"][0]["location"] == "orderBy"
    status, body = raw(gserver, "GET", path + "?q=a&q=b")  # q is not repeated
    assert status == 400 and body["error"]["errors"][0]["location"] == "q"
    status, _ = raw(gserver, "GET", path + "?privateExtendedProperty=a%3D1&privateExtendedProperty=b%3D2")
    assert status == 200  # privateExtendedProperty is repeated
    status, body = raw(gserver, "GET", path + "?timeMin=2026-03-01T00:00:00")  # no offset
    assert status == 400 and body["error"]["errors"][0]["location"] == "timeMin"
    status, body = raw(gserver, "GET", path + "?colour=red")
    assert status == 400 and body["error"]["errors"][0]["location"] == "colour"


def test_a_required_query_parameter_is_required(gserver: Running, api) -> None:
    status, body = raw(gserver, "POST", f"/calendar/v3/calendars/{CAL}/events/quickAdd")
    assert status == 400 and body["error"]["errors"][0]["reason"] == "required"
    assert body["error"]["errors"][0]["location"] == "text"


def test_reminder_minutes_outside_0_to_40320_are_refused(api) -> None:
    def with_minutes(minutes: int) -> dict:
        return event(reminders={"useDefault": False, "overrides": [{"method": "popup", "minutes": minutes}]})

    assert refused(api.events().insert(calendarId=CAL, body=with_minutes(40321)))["code"] == 400
    assert refused(api.events().insert(calendarId=CAL, body=with_minutes(-1)))["code"] == 400
    assert api.events().insert(calendarId=CAL, body=with_minutes(40320)).execute()["reminders"]["overrides"][0][
        "minutes"] == 40320
    sms = event(reminders={"useDefault": False, "overrides": [{"method": "sms", "minutes": 5}]})
    assert refused(api.events().insert(calendarId=CAL, body=sms))["code"] == 400


def test_default_reminders_together_with_overrides_are_refused(api) -> None:
    both = event(reminders={"useDefault": True, "overrides": [{"method": "popup", "minutes": 5}]})
    error = refused(api.events().insert(calendarId=CAL, body=both))
    assert error["errors"][0]["reason"] == "cannotUseDefaultRemindersAndSpecifyOverride"
    assert error["errors"][0]["domain"] == "calendar"


def test_order_by_start_time_needs_single_events(api) -> None:
    error = refused(api.events().list(calendarId=CAL, orderBy="startTime"))
    assert error["errors"][0]["reason"] == "badRequest" and error["errors"][0]["location"] == "orderBy"
    assert "items" in api.events().list(calendarId=CAL, orderBy="startTime", singleEvents=True).execute()


def test_a_sync_token_refuses_the_parameters_google_rejects(api) -> None:
    token = api.events().list(calendarId=CAL).execute()["nextSyncToken"]
    for extra in ({"showDeleted": False}, {"q": "x"}, {"timeMin": "2026-01-01T00:00:00Z"},
                  {"privateExtendedProperty": "a=b"}, {"iCalUID": "x@google.com"}, {"updatedMin": "2026-01-01T00:00:00Z"}):
        error = refused(api.events().list(calendarId=CAL, syncToken=token, **extra))
        assert error["code"] == 400 and error["errors"][0]["location"] == next(iter(extra)), extra
    assert "items" in api.events().list(calendarId=CAL, syncToken=token, showDeleted=True).execute()


def test_source_url_must_be_http_or_https(api) -> None:
    error = refused(api.events().insert(calendarId=CAL, body=event(source={"url": "javascript:alert(1)"})))
    assert error["errors"][0]["location"] == "source.url"
    ok = api.events().insert(calendarId=CAL, body=event(source={"url": "https://example.com/a", "title": "A"}))
    assert ok.execute()["source"]["url"] == "https://example.com/a"


def test_push_channels_need_an_https_address_unless_switched_on_explicitly(gconfig) -> None:
    from google.oauth2.credentials import Credentials

    running = serve(0, GoogleCalendarSandbox())  # the default: as Google
    try:
        running.sandbox.add_calendar(CAL, USER)
        service = GoogleClient(Credentials(token=running.sandbox.issue_access_token(USER)),
                               replace(gconfig, google_api_root=running.url)).service
        body = {"id": "chan-1", "type": "web_hook", "address": "http://127.0.0.1:9/hook"}
        error = refused(service.events().watch(calendarId=CAL, body=body))
        assert error["errors"][0]["reason"] == "push.webhookUrlNotHttps"
    finally:
        running.close()


def test_responses_match_the_discovery_documents_response_schemas(api) -> None:
    checker = validator()
    created = api.events().insert(calendarId=CAL, body=event(recurrence=["RRULE:FREQ=DAILY;COUNT=3"],
                                                             attendees=[{"email": "guest@example.com"}])).execute()
    listed = api.events().list(calendarId=CAL, showDeleted=True).execute()
    instances = api.events().instances(calendarId=CAL, eventId=created["id"]).execute()
    cal_list = api.calendarList().list().execute()
    for method, payload in (("calendar.events.insert", created), ("calendar.events.list", listed),
                            ("calendar.events.instances", instances), ("calendar.calendarList.list", cal_list)):
        spec = next(m for m in checker.methods if m.id == method)
        checker.check_response(spec, payload)  # raises on an unknown property or a wrong type
