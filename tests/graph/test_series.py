"""Recurring series through Graph: the master with its recurrence, exceptions and cancelled
occurrences is one item, written and read back faithfully; edits made in Outlook to single
occurrences arrive as a change of the series; Windows and IANA zone names; all-day series."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from spokesync.connectors.graph import mapping
from spokesync.connectors.graph.connector import GraphConnector
from spokesync.model.event import Event, Override, content_hash
from spokesync.ports import NewItem
from spokesync.sandbox.graph import GraphServer

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2027, 1, 4, 9, 0, tzinfo=BERLIN)  # a Monday


def weekly(**kw) -> Event:
    base = Event(title="Weekly sync", start=START, end=START + timedelta(hours=1), timezone="Europe/Berlin",
                 recurrence=("RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=8",), location="Room 3")
    return replace(base, **kw)


def _only(connector: GraphConnector):
    items = connector.changes(None).items
    assert len(items) == 1, [i.event.title for i in items]
    return items[0]


def test_series_with_exception_and_cancellation_round_trips(connector: GraphConnector, graph: GraphServer,
                                                             new_calendar) -> None:
    moved = Override(START + timedelta(weeks=2), Event(title="Moved sync", start=START + timedelta(weeks=2, hours=3),
                                                       end=START + timedelta(weeks=2, hours=4),
                                                       timezone="Europe/Berlin", location="Room 9"))
    event = weekly(overrides=(moved,), cancelled=(START + timedelta(weeks=5),))
    result = connector.create([NewItem("hub-series", event)])[0]
    assert result.status == "ok"
    item = _only(connector)
    assert item.id == result.spoke_item_id and item.version == result.version and item.hub_id == "hub-series"
    assert content_hash(item.event, mapping.FIELDS) == content_hash(event, mapping.FIELDS), item.event
    stored = graph.events_in(new_calendar)[0]
    assert len(stored.exceptions) == 1 and len(stored.cancelled) == 1


def test_outlook_edits_of_occurrences_arrive_as_a_change_of_the_series(connector: GraphConnector,
                                                                       graph: GraphServer) -> None:
    created = connector.create([NewItem("hub-s2", weekly())])[0]
    cursor = connector.changes(None).cursor
    third = f"{created.spoke_item_id}_OID_{(START + timedelta(weeks=3)).astimezone(ZoneInfo('UTC')):%Y%m%dT%H%M%SZ}"
    fourth = f"{created.spoke_item_id}_OID_{(START + timedelta(weeks=4)).astimezone(ZoneInfo('UTC')):%Y%m%dT%H%M%SZ}"
    graph.user_edit(third, subject="Special edition")
    graph.user_delete(fourth)
    feed = connector.changes(cursor)
    assert [i.id for i in feed.items] == [created.spoke_item_id]  # occurrences never become items
    series = feed.items[0].event
    assert [(o.original_start, o.event.title) for o in series.overrides] == [(START + timedelta(weeks=3),
                                                                             "Special edition")]
    assert series.cancelled == (START + timedelta(weeks=4),)
    assert feed.items[0].version != created.version
    # The occurrence ids of the @removed entries are not linked to anything: reporting them deletes nothing.
    assert created.spoke_item_id not in feed.deleted


def test_windows_and_iana_zone_names_are_both_read(connector: GraphConnector, graph: GraphServer,
                                                   new_calendar) -> None:
    graph.user_create(new_calendar, {"subject": "Pacific", "start": {"dateTime": "2027-02-01T09:00:00",
                                                                      "timeZone": "Pacific Standard Time"},
                                     "end": {"dateTime": "2027-02-01T10:00:00", "timeZone": "Pacific Standard Time"}})
    graph.user_create(new_calendar, {"subject": "Tokyo", "start": {"dateTime": "2027-02-01T09:00:00",
                                                                    "timeZone": "Asia/Tokyo"},
                                     "end": {"dateTime": "2027-02-01T10:00:00", "timeZone": "Asia/Tokyo"}})
    events = {i.event.title: i.event for i in connector.changes(None).items}
    assert events["Pacific"].timezone == "America/Los_Angeles"
    assert events["Pacific"].start == datetime(2027, 2, 1, 9, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert events["Tokyo"].timezone == "Asia/Tokyo"
    assert events["Tokyo"].start == datetime(2027, 2, 1, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))


def test_all_day_series_are_dates(connector: GraphConnector) -> None:
    event = Event(title="Holiday week", start=date(2027, 3, 1), end=date(2027, 3, 2),
                  recurrence=("RRULE:FREQ=DAILY;COUNT=5",), cancelled=(date(2027, 3, 3),),
                  overrides=(Override(date(2027, 3, 4), Event(title="Half day", start=date(2027, 3, 4),
                                                              end=date(2027, 3, 5))),))
    assert connector.create([NewItem("hub-allday", event)])[0].status == "ok"
    item = _only(connector)
    assert item.event.all_day and item.event.start == date(2027, 3, 1) and item.event.end == date(2027, 3, 2)
    assert item.event.cancelled == (date(2027, 3, 3),)
    assert [o.original_start for o in item.event.overrides] == [date(2027, 3, 4)]
    assert content_hash(item.event, mapping.FIELDS) == content_hash(event, mapping.FIELDS)


def test_monthly_and_yearly_patterns_round_trip(connector: GraphConnector) -> None:
    rules = ["RRULE:FREQ=MONTHLY;BYDAY=2TU;COUNT=6", "RRULE:FREQ=MONTHLY;BYMONTHDAY=15;UNTIL=20271231T225959Z",
             "RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=1", "RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"]
    events = [weekly(title=f"rule {n}", recurrence=(rule,)) for n, rule in enumerate(rules)]
    results = connector.create([NewItem(f"hub-rule{n}", e) for n, e in enumerate(events)])
    assert [r.status for r in results] == ["ok"] * len(rules)
    read = {i.event.title: i.event for i in connector.changes(None).items}
    for event in events:
        assert content_hash(read[event.title], {"recurrence"}) == content_hash(event, {"recurrence"}), (
            read[event.title].recurrence, event.recurrence)


def test_a_rule_graph_cannot_hold_is_refused_with_a_reason(connector: GraphConnector) -> None:
    result = connector.create([NewItem("hub-hourly", weekly(recurrence=("RRULE:FREQ=HOURLY;COUNT=3",)))])[0]
    assert result.status == "error" and "Microsoft 365 cannot hold" in result.message
    assert connector.changes(None).items == []


def test_an_override_removed_in_the_hub_reads_back_as_none(connector: GraphConnector) -> None:
    from spokesync.ports import ItemUpdate

    moved = Override(START + timedelta(weeks=1), Event(title="Special", start=START + timedelta(weeks=1),
                                                       end=START + timedelta(weeks=1, hours=1),
                                                       timezone="Europe/Berlin", location="Room 3"))
    created = connector.create([NewItem("hub-revert", weekly(overrides=(moved,)))])[0]
    updated = connector.update([ItemUpdate(created.spoke_item_id, created.version, weekly(), "hub-revert")])[0]
    assert updated.status == "ok"
    item = _only(connector)
    assert item.event.overrides == () and item.version == updated.version
    assert content_hash(item.event, mapping.FIELDS) == content_hash(weekly(), mapping.FIELDS)


def test_the_written_rule_is_read_back_until_outlook_changes_the_pattern(connector: GraphConnector,
                                                                         graph: GraphServer) -> None:
    rule = "RRULE:FREQ=MONTHLY;BYMONTHDAY=15;UNTIL=20271231T225959Z"  # Graph keeps an end date, not an instant
    created = connector.create([NewItem("hub-rule", weekly(recurrence=(rule,)))])[0]
    assert _only(connector).event.recurrence == (rule,)
    graph.user_edit(created.spoke_item_id, recurrence={
        "pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15},
        "range": {"type": "numbered", "startDate": "2027-01-15", "numberOfOccurrences": 3}})
    assert _only(connector).event.recurrence == ("RRULE:FREQ=MONTHLY;BYMONTHDAY=15;COUNT=3",)
