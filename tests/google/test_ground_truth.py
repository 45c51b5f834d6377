"""The connector against the strict Calendar server: what real Google refuses
or rewrites (service accounts and attendees, user-deleted ids, invitations,
reminder limits, HTML and attendee rewrites) no longer breaks a sync."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from spokesync.connectors.google import auth
from spokesync.connectors.google.mapping import HUB_ID_KEY, event_id_for
from spokesync.connectors.registry import connector_for
from spokesync.model.event import Attendee, Event
from spokesync.model.hub import Spoke
from spokesync.ports import ItemDelete, ItemUpdate, NewItem, SystemClock
from spokesync.sandbox.google_calendar import Running
from spokesync.stores.sqlite import SqliteHubStore
from tests.google.conftest import USER

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 3, 2, 9, 0, tzinfo=BERLIN)
SA = "shared-only@project.iam.gserviceaccount.com"
HUB_ID = "0123456789abcdef0123456789abcdef"


def meeting(**kw) -> Event:
    base = dict(title="Planning", start=START, end=START + timedelta(hours=1), timezone="Europe/Berlin")
    return Event(**{**base, **kw})  # type: ignore[arg-type]


def sa_connector(gserver: Running, gconfig, secret_store, calendar_id: str):
    key = gserver.sandbox.new_service_account_key(SA, domain_wide=False)
    ref = auth.save_service_account_credential(SqliteHubStore(":memory:"), secret_store, "sa", "SA", key)
    spoke = Spoke(id="s-sa", hub_id="h", name="sa", kind="google", credential_id="sa",
                  address={"calendar_id": calendar_id})
    return connector_for(spoke, ref, secret_store, gconfig, SystemClock())


def test_a_service_account_without_delegation_keeps_attendees_in_a_private_property(
        gserver: Running, gconfig, secret_store) -> None:
    cal = "sa-shared@group.calendar.google.com"
    gserver.sandbox.add_calendar(cal, USER, acl={SA: "writer"})
    conn = sa_connector(gserver, gconfig, secret_store, cal)
    people = tuple(Attendee(f"person{i}@example.com", f"Person {i}", "required", "accepted") for i in range(40))
    event = meeting(attendees=(Attendee("chair@example.com", "Chair", "chair", "organizer"), *people))
    [result] = conn.create([NewItem(HUB_ID, event)])
    assert result.status == "ok", result.message
    stored = gserver.sandbox.event(cal, result.spoke_item_id)
    assert stored is not None and "attendees" not in stored  # nothing Google would refuse was sent
    [item] = conn.changes(None).items
    assert item.event.attendees == event.attendees  # nothing lost
    fewer = meeting(attendees=people[:2], title="Planning (2)")
    [updated] = conn.update([ItemUpdate(item.id, item.version, fewer, HUB_ID)])
    assert updated.status == "ok", updated.message
    assert conn.read([item.id])[item.id].event.attendees == people[:2]


def test_a_recreate_refused_after_the_user_deleted_the_event_uses_a_fresh_id_without_duplicates(
        gserver: Running, new_calendar, make_connector) -> None:
    cal = new_calendar()
    conn = make_connector(cal)
    [first] = conn.create([NewItem(HUB_ID, meeting())])
    assert first.spoke_item_id == event_id_for(HUB_ID)
    gserver.sandbox.user_delete(cal, first.spoke_item_id)
    [again] = conn.create([NewItem(HUB_ID, meeting(title="Planning again"))])
    assert again.status == "ok" and again.spoke_item_id != first.spoke_item_id
    [retried] = conn.create([NewItem(HUB_ID, meeting(title="Planning again"))])  # a crash before the commit
    assert retried.status == "exists" and retried.spoke_item_id == again.spoke_item_id
    live = gserver.sandbox.live_events(cal)
    assert [e["summary"] for e in live] == ["Planning again"]
    assert live[0]["extendedProperties"]["private"][HUB_ID_KEY] == HUB_ID


def test_a_recreate_after_the_tombstone_was_purged_uses_a_fresh_id(gserver: Running, new_calendar,
                                                                   make_connector) -> None:
    cal = new_calendar()
    conn = make_connector(cal)
    [first] = conn.create([NewItem(HUB_ID, meeting())])
    [gone] = conn.delete([ItemDelete(first.spoke_item_id, first.version)])
    assert gone.status == "ok"
    gserver.sandbox.purge_deleted(cal)
    [again] = conn.create([NewItem(HUB_ID, meeting())])
    assert again.status == "ok" and again.spoke_item_id != first.spoke_item_id
    assert len(gserver.sandbox.live_events(cal)) == 1


def test_reminders_beyond_four_weeks_are_clamped_not_refused(gserver: Running, new_calendar, make_connector) -> None:
    cal = new_calendar()
    [result] = make_connector(cal).create([NewItem(HUB_ID, meeting(reminders=(15, 60 * 24 * 60)))])
    assert result.status == "ok", result.message
    stored = gserver.sandbox.event(cal, result.spoke_item_id)
    assert stored is not None
    assert sorted(r["minutes"] for r in stored["reminders"]["overrides"]) == [15, 40320]


def _timed(summary: str) -> dict:
    return {"summary": summary, "start": {"dateTime": START.isoformat(), "timeZone": "Europe/Berlin"},
            "end": {"dateTime": (START + timedelta(hours=1)).isoformat(), "timeZone": "Europe/Berlin"}}


def test_an_invitation_is_read_but_never_written_and_the_run_says_so(gserver: Running, make_connector) -> None:
    gserver.sandbox.add_calendar(USER, USER)
    invite = gserver.sandbox.user_invite(USER, _timed("Their meeting"), organizer="boss@example.org")
    conn = make_connector(USER)
    [item] = conn.changes(None).items
    assert item.event.title == "Their meeting"
    # what Google does with an edit of it (the connector must not depend on this refusal)
    raw = conn.client.service.events().patch(calendarId=USER, eventId=invite["id"], body={"summary": "X"})
    try:
        raw.execute()
        raise AssertionError("the strict server accepted an edit of an invitation")
    except Exception as exc:  # googleapiclient HttpError
        assert "forbiddenForNonOrganizer" in str(getattr(exc, "content", b"")), exc
    calls = gserver.sandbox.stats.api_calls
    [result] = conn.update([ItemUpdate(item.id, item.version, meeting(title="Renamed"), HUB_ID)])
    assert gserver.sandbox.stats.api_calls == calls  # nothing was sent
    assert result.status == "error" and result.message.startswith("not changed in Google: this is an invitation")
    assert "stays as it is" in result.message and "403" not in result.message
    assert gserver.sandbox.event(USER, invite["id"])["summary"] == "Their meeting"  # type: ignore[index]
    assert conn.read([item.id])[item.id].version == item.version  # the marker survives a read
    # removing the copy from this calendar is allowed, and passed through
    [gone] = conn.delete([ItemDelete(item.id, item.version)])
    assert gone.status == "ok", gone.message


def test_an_invitation_whose_organiser_lets_guests_modify_is_written(gserver: Running, make_connector) -> None:
    gserver.sandbox.add_calendar(USER, USER)
    invite = gserver.sandbox.user_invite(USER, {**_timed("Open meeting"), "guestsCanModify": True},
                                         organizer="boss@example.org")
    conn = make_connector(USER)
    [item] = conn.changes(None).items
    [result] = conn.update([ItemUpdate(item.id, item.version, meeting(title="Renamed"), HUB_ID)])
    assert result.status == "ok", result.message
    assert gserver.sandbox.event(USER, invite["id"])["summary"] == "Renamed"  # type: ignore[index]


def test_special_event_types_are_read_but_never_written(gserver: Running, make_connector) -> None:
    gserver.sandbox.add_calendar(USER, USER)
    gmail = gserver.sandbox.user_insert(USER, {**_timed("Flight"), "eventType": "fromGmail"})
    conn = make_connector(USER)
    [item] = conn.changes(None).items
    assert item.event.title == "Flight"
    calls = gserver.sandbox.stats.api_calls
    [result] = conn.update([ItemUpdate(item.id, item.version, meeting(title="Not a flight"), HUB_ID)])
    assert gserver.sandbox.stats.api_calls == calls
    assert result.status == "error" and "kind of event" in result.message and "stays as it is" in result.message
    assert gserver.sandbox.event(USER, gmail["id"])["summary"] == "Flight"  # type: ignore[index]


def test_google_rewrites_of_attendees_and_html_do_not_read_as_changes(gserver: Running, new_calendar,
                                                                       make_connector) -> None:
    cal = new_calendar()
    conn = make_connector(cal)
    event = meeting(attendees=(Attendee(cal, "", "required", "accepted"),
                               Attendee("guest@example.com", "Guest", "optional", "tentative")),
                    description_html='<p onclick="x()">Agenda <b>first</b><script>bad()</script></p>')
    [result] = conn.create([NewItem(HUB_ID, event)])
    stored = gserver.sandbox.event(cal, result.spoke_item_id)
    assert stored is not None and stored["description"] == "<p>Agenda <b>first</b></p>"
    assert next(a for a in stored["attendees"] if a["email"] == cal).get("self") is True
    [item] = conn.changes(None).items
    assert item.version == result.version  # what the write returned: the engine's echo check holds
    assert item.event.attendees == event.attendees
