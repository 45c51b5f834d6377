"""Recurring series with modified and cancelled occurrences through the
connector, and the event mapping's round trip of what Google cannot hold
natively."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from spokesync.connectors.google.mapping import (
    FIELDS,
    event_from_google,
    event_id_for,
    event_to_google,
)
from spokesync.model.event import Attendee, Event, Override, content_hash
from spokesync.ports import ItemUpdate, NewItem

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=BERLIN)


def weekly(**kw) -> Event:
    moved = MONDAY + timedelta(days=7, hours=1)
    base = Event(title="Weekly", start=MONDAY, end=MONDAY + timedelta(minutes=30), timezone="Europe/Berlin",
                 recurrence=("RRULE:FREQ=WEEKLY;COUNT=6",),
                 overrides=(Override(MONDAY + timedelta(days=7),
                                     Event(title="Weekly (moved)", start=moved, end=moved + timedelta(minutes=30),
                                           timezone="Europe/Berlin")),),
                 cancelled=(MONDAY + timedelta(days=14),))
    return replace(base, **kw)


def test_event_ids_are_base32hex_and_deterministic() -> None:
    hub_id = "0123456789abcdef0123456789abcdef"
    assert event_id_for(hub_id) == event_id_for(hub_id)
    assert re.fullmatch(r"[a-v0-9]{26}", event_id_for(hub_id))
    assert re.fullmatch(r"[a-v0-9]{5,1024}", event_id_for("not-hex"))
    assert event_id_for(hub_id) != event_id_for("0123456789abcdef0123456789abcdee")


def test_fields_google_lacks_ride_in_private_extended_properties() -> None:
    event = Event(title="T", start=MONDAY, end=MONDAY + timedelta(hours=1), timezone="Europe/Berlin",
                  show_as="tentative", categories=("Blue", "Team"), color="#ff0000", privacy="private",
                  attendees=(Attendee("Chair@Example.com", "C", "chair", "organizer"),
                             Attendee("opt@example.com", "", "optional", "declined")),
                  reminders=(), description_html="<p>Hello <b>there</b></p>", url="https://example.com/x")
    body = event_to_google(event, "hub1")
    assert body["transparency"] == "opaque" and body["colorId"] is None
    assert body["extendedProperties"]["private"]["spokesyncHubId"] == "hub1"
    back = event_from_google({**body, "extendedProperties": {"private": {
        k: v for k, v in body["extendedProperties"]["private"].items() if v is not None}}})
    assert content_hash(back, FIELDS) == content_hash(event, FIELDS)
    # A user making the event "free" in Google wins over the stored show-as.
    assert event_from_google({**body, "transparency": "transparent"}).show_as == "free"
    all_day = Event(title="A", start=date(2026, 3, 10), end=date(2026, 3, 11), color="5")
    assert event_to_google(all_day)["colorId"] == "5"
    assert content_hash(event_from_google(event_to_google(all_day)), FIELDS) == content_hash(all_day, FIELDS)


def test_a_series_round_trips_with_its_exceptions(make_connector, new_calendar, gserver) -> None:
    cal = new_calendar()
    conn = make_connector(cal)
    event = weekly()
    created = conn.create([NewItem("a" * 32, event)])[0]
    assert created.status == "ok"
    listing = conn.changes(None)
    [item] = listing.items
    assert item.id == created.spoke_item_id and item.version == created.version and item.hub_id == "a" * 32
    assert content_hash(item.event, FIELDS) == content_hash(event, FIELDS)
    assert len(item.event.overrides) == 1 and len(item.event.cancelled) == 1
    # Google stores the exceptions as instance events with Google's ids.
    master = created.spoke_item_id
    assert gserver.sandbox.event(cal, f"{master}_20260316T080000Z")["status"] == "cancelled"
    # A user edit of one occurrence changes the series' version, and the feed reports the series.
    gserver.sandbox.user_patch(cal, f"{master}_20260323T080000Z", {"location": "Elsewhere"})
    feed = conn.changes(listing.cursor)
    assert [i.id for i in feed.items] == [master] and feed.deleted == []
    assert feed.items[0].version != item.version
    assert conn.read([master])[master].version == feed.items[0].version
    assert len(feed.items[0].event.overrides) == 2
    # The hub drops an override and a cancellation: both occurrences return to the series' values.
    plain = weekly(overrides=(), cancelled=())
    updated = conn.update([ItemUpdate(master, feed.items[0].version, plain, "a" * 32)])[0]
    assert updated.status == "ok"
    now = conn.read([master])[master]
    assert now.version == updated.version
    assert now.event.overrides == () and now.event.cancelled == ()
    # Stale series versions are conflicts.
    assert conn.update([ItemUpdate(master, feed.items[0].version, event, "a" * 32)])[0].status == "conflict"
    # A retried create of the series reports the existing one.
    again = conn.create([NewItem("a" * 32, event)])[0]
    assert again.status == "exists" and again.spoke_item_id == master and again.version == now.version


def test_deleting_a_series_reports_one_deletion(make_connector, new_calendar) -> None:
    from spokesync.ports import ItemDelete

    conn = make_connector(new_calendar())
    created = conn.create([NewItem("b" * 32, weekly())])[0]
    cursor = conn.changes(None).cursor
    assert conn.delete([ItemDelete(created.spoke_item_id, created.version)])[0].status == "ok"
    feed = conn.changes(cursor)
    assert feed.items == [] and feed.deleted == [created.spoke_item_id]


def test_all_day_series_use_date_instance_ids(make_connector, new_calendar, gserver) -> None:
    cal = new_calendar()
    conn = make_connector(cal)
    event = Event(title="Daily all-day", start=date(2026, 3, 2), end=date(2026, 3, 3),
                  recurrence=("RRULE:FREQ=DAILY;COUNT=5",), cancelled=(date(2026, 3, 4),))
    created = conn.create([NewItem("c" * 32, event)])[0]
    assert gserver.sandbox.event(cal, f"{created.spoke_item_id}_20260304")["status"] == "cancelled"
    [item] = conn.changes(None).items
    assert content_hash(item.event, FIELDS) == content_hash(event, FIELDS)
