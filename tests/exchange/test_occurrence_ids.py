"""Occurrences are addressed by their real ItemIds.

The connector looks an occurrence up once (GetItem of an OccurrenceItemId whose InstanceIndex comes
from the master's pattern as the server holds it, counted on Exchange's semantics), checks the
returned occurrence's own OriginalStart, and writes (UpdateItem) or deletes (DeleteItem) it by its
ItemId. Day 31 and 29 February are where RFC 5545 counting and Exchange's part ways: RFC 5545 skips
the months without the day, Exchange puts the occurrence on the month's last day.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule
from exchangelib.recurrence import AbsoluteMonthlyPattern, AbsoluteYearlyPattern, NumberedPattern, Recurrence

from spokesync.connectors.exchange.connector import ExchangeConnector
from spokesync.connectors.exchange.recurrence import exchange_dates
from spokesync.model.event import Event, Override
from spokesync.ports import ItemUpdate, NewItem
from spokesync.sandbox.ews import EwsServer
from tests.exchange.test_recurrence_oracle import Pattern, oracle, view

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(params=["public", "mailbox"])
def connector(request: pytest.FixtureRequest) -> ExchangeConnector:
    return request.getfixturevalue(f"{request.param}_connector")


@pytest.mark.parametrize(("pattern", "first", "kind"), [
    (AbsoluteMonthlyPattern(interval=1, day_of_month=31), date(2027, 1, 31), Pattern("AbsoluteMonthly", day=31)),
    (AbsoluteMonthlyPattern(interval=1, day_of_month=30), date(2027, 1, 30), Pattern("AbsoluteMonthly", day=30)),
    (AbsoluteMonthlyPattern(interval=2, day_of_month=29), date(2026, 12, 29),
     Pattern("AbsoluteMonthly", interval=2, day=29)),
    (AbsoluteYearlyPattern(day_of_month=29, month=2), date(2028, 2, 29), Pattern("AbsoluteYearly", day=29, month=2)),
])
def test_instance_indices_are_counted_on_exchanges_semantics_not_rfc_5545s(pattern, first: date, kind: Pattern) -> None:
    days = exchange_dates(Recurrence(pattern=pattern, boundary=NumberedPattern(start=first, number=12)),
                          until=first + timedelta(days=366 * 12))
    assert days == oracle(replace(kind, count=12), first, first + timedelta(days=366 * 12))  # the tests' own oracle
    # the plain RFC 5545 reading of "day N" skips months: its indices would address other occurrences
    plain = [d.date() for d in rrule.rrulestr(
        f"FREQ={'YEARLY' if 'Yearly' in kind.kind else 'MONTHLY'};INTERVAL={kind.interval};BYMONTHDAY={first.day}"
        + (";BYMONTH=2" if "Yearly" in kind.kind else "") + ";COUNT=12", dtstart=datetime.combine(first, datetime.min.time()))]
    assert plain != days
    assert any(d.day < first.day for d in days)  # at least one month's last day


def test_an_outlook_day_31_series_gets_its_exceptions_written_by_real_ids(ews: EwsServer,
                                                                          connector: ExchangeConnector) -> None:
    """An Outlook series on day 31; the hub moves the 30 April occurrence and cancels 28 February
    (indices 4 and 2 on Exchange's count; RFC 5545's "day 31" has neither)."""
    from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP

    start = datetime(2027, 1, 31, 9, 0, tzinfo=BERLIN)
    item = ews.user_create(connector.folder_id, "Month end", start, start + timedelta(hours=1),
                           tz=IANA_TO_MS_TIMEZONE_MAP["Europe/Berlin"][0],
                           recurrence_xml=Pattern("AbsoluteMonthly", day=31, count=8).xml(start.date()))
    read = connector.read([item.id])[item.id]
    april = datetime(2027, 4, 30, 9, 0, tzinfo=BERLIN)
    moved = Event(title="Month end (early)", start=april - timedelta(days=1, hours=1),
                  end=april - timedelta(days=1), timezone="Europe/Berlin")
    february = datetime(2027, 2, 28, 9, 0, tzinfo=BERLIN)
    event = replace(read.event, overrides=(Override(april, moved),), cancelled=(february,))
    ews.reset_counts()
    [result] = connector.update([ItemUpdate(item.id, read.version, event, "hub-month-end")])
    assert result.status == "ok", result
    # looked up once by index (GetItem); written and deleted by the occurrences' own ids
    assert set(ews.occurrence_index_requests) == {"GetItem"}, ews.occurrence_index_requests
    assert ews.calls("UpdateItem") >= 2 and ews.calls("DeleteItem") == 1
    back = connector.read([item.id])[item.id].event
    assert back.cancelled == (february,)
    assert [(o.original_start, o.event.start) for o in back.overrides] == [(april, moved.start)]
    starts = view(connector, start - timedelta(days=1), start + timedelta(days=250))
    assert february.astimezone(UTC) not in starts and moved.start.astimezone(UTC) in starts  # type: ignore[union-attr]
    assert april.astimezone(UTC) not in starts


def test_a_hub_29_february_series_writes_its_exceptions_on_the_28th_in_other_years(ews: EwsServer,
                                                                                  connector: ExchangeConnector) -> None:
    start = datetime(2028, 2, 29, 12, 0, tzinfo=BERLIN)
    line = "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1;COUNT=5"
    cancelled = datetime(2030, 2, 28, 12, 0, tzinfo=BERLIN)
    original = datetime(2029, 2, 28, 12, 0, tzinfo=BERLIN)
    moved = Event(title="Leap (moved)", start=original + timedelta(hours=3), end=original + timedelta(hours=4),
                  timezone="Europe/Berlin")
    event = Event(title="Leap", start=start, end=start + timedelta(hours=1), timezone="Europe/Berlin",
                  recurrence=(line,), overrides=(Override(original, moved),), cancelled=(cancelled,))
    ews.reset_counts()
    [created] = connector.create([NewItem("leap-ids", event)])
    assert created.status == "ok", created
    assert set(ews.occurrence_index_requests) == {"GetItem"}, ews.occurrence_index_requests
    back = connector.read([created.spoke_item_id])[created.spoke_item_id].event
    assert back.cancelled == (cancelled,)
    assert [(o.original_start, o.event.title) for o in back.overrides] == [(original, "Leap (moved)")]
    assert back.recurrence == (line,)


def test_an_override_that_is_no_occurrence_is_an_error_of_that_item_and_nothing_is_written(
        ews: EwsServer, connector: ExchangeConnector) -> None:
    start = datetime(2027, 1, 31, 9, 0, tzinfo=BERLIN)
    wrong = datetime(2027, 2, 27, 9, 0, tzinfo=BERLIN)  # day 31 falls on the 28th in February 2027
    event = Event(title="Wrong", start=start, end=start + timedelta(hours=1), timezone="Europe/Berlin",
                  recurrence=("RRULE:FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=4",),
                  overrides=(Override(wrong, Event(title="x", start=wrong, end=wrong + timedelta(hours=1))),))
    ews.reset_counts()
    [created] = connector.create([NewItem("wrong-ids", event)])
    assert created.status == "error" and "not an occurrence" in created.message
    assert ews.calls("UpdateItem") == 0


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", None])
def test_an_all_day_series_gets_its_cancelled_and_moved_days_by_real_ids(ews: EwsServer, connector: ExchangeConnector,
                                                                         zone: str | None) -> None:
    line = "RRULE:FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=4"
    moved = Event(title="Closing (late)", start=date(2027, 3, 30), end=date(2027, 3, 31))
    event = Event(title="Closing", start=date(2027, 1, 31), end=date(2027, 2, 1), timezone=zone,
                  recurrence=(line,), cancelled=(date(2027, 2, 28),), overrides=(Override(date(2027, 3, 31), moved),))
    ews.reset_counts()
    [created] = connector.create([NewItem(f"allday-ids-{zone}", event)])
    assert created.status == "ok", created
    assert set(ews.occurrence_index_requests) == {"GetItem"}
    back = connector.read([created.spoke_item_id])[created.spoke_item_id].event
    assert back.cancelled == (date(2027, 2, 28),)
    assert [(o.original_start, o.event.start) for o in back.overrides] == [(date(2027, 3, 31), date(2027, 3, 30))]
