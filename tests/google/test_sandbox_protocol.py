"""The local Calendar API server speaks the protocol the real client expects:
driven here with google-api-python-client itself (discovery document with
rootUrl rewritten), checking status codes, error reasons and bodies."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from googleapiclient.errors import HttpError

from spokesync.connectors.google.client import GoogleClient, error_reasons
from spokesync.sandbox.google_calendar import Running

CAL = "proto@group.calendar.google.com"


@pytest.fixture
def api(gserver: Running, gconfig):
    from google.oauth2.credentials import Credentials

    from tests.google.conftest import USER

    gserver.sandbox.add_calendar(CAL, USER, "Proto", "Europe/Berlin")
    creds = Credentials(token=gserver.sandbox.issue_access_token(USER))
    return GoogleClient(creds, gconfig).service


def body(summary: str, event_id: str | None = None, day: int = 2) -> dict:
    out = {"summary": summary, "start": {"dateTime": f"2026-03-{day:02d}T09:00:00+01:00", "timeZone": "Europe/Berlin"},
           "end": {"dateTime": f"2026-03-{day:02d}T10:00:00+01:00", "timeZone": "Europe/Berlin"}}
    if event_id:
        out["id"] = event_id
    return out


def status_and_reason(call) -> tuple[int, list[str]]:
    with pytest.raises(HttpError) as err:
        call.execute()
    return err.value.resp.status, error_reasons(err.value)


def test_requests_without_a_valid_bearer_token_get_401(gserver: Running, gconfig) -> None:
    anonymous = GoogleClient(None, gconfig).service
    assert status_and_reason(anonymous.calendarList().list())[0] == 401


def test_insert_get_patch_delete_with_etags(api) -> None:
    events = api.events()
    created = events.insert(calendarId=CAL, body=body("One", "abc12345"), sendUpdates="none").execute()
    assert created["id"] == "abc12345" and created["etag"] and created["kind"] == "calendar#event"
    assert created["iCalUID"] == "abc12345@google.com" and created["status"] == "confirmed"
    assert status_and_reason(events.insert(calendarId=CAL, body=body("Two", "abc12345"))) == (409, ["duplicate"])
    assert status_and_reason(events.insert(calendarId=CAL, body=body("Bad", "UPPER_case!")))[0] == 400
    patch = events.patch(calendarId=CAL, eventId="abc12345", body={"location": "Room"})
    patch.headers["If-Match"] = created["etag"]
    patched = patch.execute()
    assert patched["etag"] != created["etag"] and patched["summary"] == "One" and patched["location"] == "Room"
    stale = events.patch(calendarId=CAL, eventId="abc12345", body={"location": "Other"})
    stale.headers["If-Match"] = created["etag"]
    assert status_and_reason(stale) == (412, ["conditionNotMet"])
    cleared = events.patch(calendarId=CAL, eventId="abc12345", body={"location": None}).execute()
    assert "location" not in cleared
    events.delete(calendarId=CAL, eventId="abc12345", sendUpdates="none").execute()
    assert status_and_reason(events.delete(calendarId=CAL, eventId="abc12345")) == (410, ["deleted"])
    assert events.get(calendarId=CAL, eventId="abc12345").execute()["status"] == "cancelled"
    assert status_and_reason(events.get(calendarId=CAL, eventId="nosuchevent"))[0] == 404


def test_full_then_incremental_listing_with_paging_and_tombstones(api, gserver: Running) -> None:
    events = api.events()
    for i in range(5):
        events.insert(calendarId=CAL, body=body(f"E{i}", f"evt{i:05d}", day=2 + i)).execute()
    first = events.list(calendarId=CAL, maxResults=2).execute()
    assert len(first["items"]) == 2 and "nextPageToken" in first and "nextSyncToken" not in first
    seen, page = list(first["items"]), first["nextPageToken"]
    while page:
        resp = events.list(calendarId=CAL, maxResults=2, pageToken=page).execute()
        seen += resp["items"]
        page = resp.get("nextPageToken")
    assert len(seen) == 5 and resp["nextSyncToken"]
    token = resp["nextSyncToken"]
    events.delete(calendarId=CAL, eventId="evt00001").execute()
    events.patch(calendarId=CAL, eventId="evt00002", body={"summary": "E2 renamed"}).execute()
    inc = events.list(calendarId=CAL, syncToken=token).execute()
    assert [(e["id"], e["status"]) for e in inc["items"]] == [("evt00001", "cancelled"), ("evt00002", "confirmed")]
    assert set(inc["items"][0]) <= {"kind", "etag", "id", "status", "updated"}  # a tombstone
    assert events.list(calendarId=CAL, syncToken=inc["nextSyncToken"]).execute()["items"] == []
    for bad in ({"timeMin": "2026-01-01T00:00:00Z"}, {"q": "x"}, {"orderBy": "updated"}, {"updatedMin": "2026-01-01T00:00:00Z"},
                {"privateExtendedProperty": "a=b"}, {"iCalUID": "x"}):
        assert status_and_reason(events.list(calendarId=CAL, syncToken=token, **bad))[0] == 400
    gserver.sandbox.expire_sync_tokens(CAL)
    assert status_and_reason(events.list(calendarId=CAL, syncToken=token)) == (410, ["fullSyncRequired"])
    assert len(events.list(calendarId=CAL, privateExtendedProperty="k=v").execute()["items"]) == 0


def test_instances_and_virtual_instance_ids(api) -> None:
    events = api.events()
    master = events.insert(calendarId=CAL, body={**body("Weekly", "series001"),
                                                 "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"]}).execute()
    instances = events.instances(calendarId=CAL, eventId=master["id"]).execute()["items"]
    assert [i["id"] for i in instances] == [f"series001_202603{d:02d}T080000Z" for d in (2, 9, 16, 23)]
    assert instances[1]["recurringEventId"] == "series001"
    assert instances[1]["originalStartTime"]["timeZone"] == "Europe/Berlin"
    events.patch(calendarId=CAL, eventId="series001_20260309T080000Z", body={"summary": "Moved"}).execute()
    events.delete(calendarId=CAL, eventId="series001_20260316T080000Z").execute()
    instances = events.instances(calendarId=CAL, eventId=master["id"]).execute()["items"]
    assert [i["summary"] for i in instances] == ["Weekly", "Moved", "Weekly"]
    assert status_and_reason(events.patch(calendarId=CAL, eventId="series001_20260310T080000Z",
                                          body={"summary": "x"}))[0] == 404
    # Full listing: master plus its exceptions; the cancelled one even without showDeleted.
    listed = {e["id"]: e.get("status") for e in events.list(calendarId=CAL).execute()["items"]}
    assert listed == {"series001": "confirmed", "series001_20260309T080000Z": "confirmed",
                      "series001_20260316T080000Z": "cancelled"}
    # Recurring events need a time zone.
    no_zone = {**body("Zone"), "recurrence": ["RRULE:FREQ=DAILY"]}
    no_zone["start"] = {"dateTime": "2026-03-02T09:00:00+01:00"}
    assert status_and_reason(events.insert(calendarId=CAL, body=no_zone))[0] == 400


def test_batch_returns_one_response_per_call_with_faults_per_part(api, gserver: Running) -> None:
    results: dict[str, tuple[dict | None, Exception | None]] = {}

    def callback(request_id, response, exception):
        results[request_id] = (response, exception)

    gserver.sandbox.inject(403, "rateLimitExceeded", count=1, skip=2)
    batch = api.new_batch_http_request(callback=callback)
    for i in range(5):
        batch.add(api.events().insert(calendarId=CAL, body=body(f"B{i}", f"batch{i:04d}")), request_id=str(i))
    batch.add(api.events().insert(calendarId=CAL, body=body("dup", "batch0000")), request_id="dup")
    before = gserver.sandbox.stats.http_requests
    batch.execute()
    assert gserver.sandbox.stats.http_requests == before + 1
    assert results["0"][0]["id"] == "batch0000"
    assert isinstance(results["2"][1], HttpError) and error_reasons(results["2"][1]) == ["rateLimitExceeded"]
    assert error_reasons(results["dup"][1]) == ["duplicate"]
    assert {k for k, (r, e) in results.items() if e is None} == {"0", "1", "3", "4"}


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802
        _Receiver.received.append({k: v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_watch_sends_sync_then_change_notifications_with_googles_headers(api, gserver: Running) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    _Receiver.received = []
    try:
        address = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        channel = api.events().watch(calendarId=CAL, body={"id": "chan-abc", "type": "web_hook", "address": address,
                                                           "token": "tok", "params": {"ttl": "99999999"}}).execute()
        assert channel["resourceId"] and int(channel["expiration"]) > 0
        api.events().insert(calendarId=CAL, body=body("Watched")).execute()
        gserver.sandbox.drop_notifications = 1
        api.events().insert(calendarId=CAL, body=body("Dropped")).execute()
        gserver.sandbox.duplicate_notifications = True
        api.events().insert(calendarId=CAL, body=body("Twice")).execute()
        gserver.sandbox.wait_notifications()
        got = [(h["X-Goog-Resource-State"], h["X-Goog-Message-Number"]) for h in _Receiver.received]
        assert got == [("sync", "1"), ("exists", "2"), ("exists", "4"), ("exists", "4")]
        first = _Receiver.received[0]
        assert first["X-Goog-Channel-ID"] == "chan-abc" and first["X-Goog-Channel-Token"] == "tok"
        assert first["X-Goog-Resource-ID"] == channel["resourceId"] and "X-Goog-Channel-Expiration" in first
        assert first["X-Goog-Resource-URI"].endswith("/events?alt=json")
        # The TTL is capped at the configured maximum (30 days by default).
        assert int(channel["expiration"]) / 1000 - __import__("time").time() <= 30 * 86400 + 5
        api.channels().stop(body={"id": "chan-abc", "resourceId": channel["resourceId"]}).execute()
        assert status_and_reason(api.channels().stop(body={"id": "chan-abc",
                                                           "resourceId": channel["resourceId"]}))[0] == 404
        assert gserver.sandbox.live_channels() == []
        bad = {"id": "c2", "type": "web_hook", "address": "ftp://example.com/x"}
        assert status_and_reason(api.events().watch(calendarId=CAL, body=bad))[0] == 400
    finally:
        receiver.shutdown()
