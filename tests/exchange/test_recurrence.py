"""Recurrence round trips checked against an independent oracle: dateutil expands the original
RRULE and the RRULE read back from Exchange over two years; the occurrence sets must be equal.
Series run through the real client and the local server, across daylight-saving changes in
three zones, with all-day multi-day series and modified/cancelled occurrences."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule

from spokesync.connectors.exchange import recurrence as rec
from spokesync.connectors.exchange.connector import ExchangeConnector
from spokesync.model.event import Event, Override, content_hash
from spokesync.ports import ItemUpdate, NewItem

WINDOW_DAYS = 730

# (zone, first local start, RRULE): DST changes fall inside every series.
CASES = [
    ("Europe/Berlin", datetime(2026, 3, 2, 9, 0), "RRULE:FREQ=DAILY;INTERVAL=3;COUNT=40"),
    ("Europe/Berlin", datetime(2026, 3, 24, 18, 30), "RRULE:FREQ=WEEKLY;BYDAY=TU,TH;UNTIL=20261105T235959Z"),
    ("America/New_York", datetime(2026, 1, 5, 8, 0), "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR"),
    ("America/New_York", datetime(2026, 1, 15, 14, 0), "RRULE:FREQ=MONTHLY;BYMONTHDAY=15;COUNT=20"),
    ("Australia/Sydney", datetime(2026, 1, 13, 7, 45), "RRULE:FREQ=MONTHLY;BYDAY=2TU"),
    ("Australia/Sydney", datetime(2026, 1, 30, 10, 0), "RRULE:FREQ=MONTHLY;BYDAY=-1FR;COUNT=18"),
    ("Europe/Berlin", datetime(2026, 4, 1, 12, 0), "RRULE:FREQ=MONTHLY;INTERVAL=2;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1"),
    ("America/New_York", datetime(2026, 7, 4, 10, 0), "RRULE:FREQ=YEARLY;BYMONTH=7;BYMONTHDAY=4"),
    ("Europe/Berlin", datetime(2026, 11, 26, 11, 0), "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH;COUNT=3"),
    ("Australia/Sydney", datetime(2026, 2, 10, 9, 0), "RRULE:FREQ=YEARLY;INTERVAL=2"),
    ("Europe/Berlin", datetime(2026, 3, 23, 9, 0), "RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=30"),
]


def expand(line: str, start: datetime | date, tz: ZoneInfo | None) -> set[datetime | date]:
    """The oracle: dateutil, in wall-clock time of the zone, converted to instants."""
    if isinstance(start, datetime):
        assert tz is not None
        body = line.partition(":")[2]
        until = None
        parts = []
        for part in body.split(";"):
            if part.startswith("UNTIL=") and part.endswith("Z"):
                until = datetime.strptime(part[6:], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            else:
                parts.append(part)
        naive = start.astimezone(tz).replace(tzinfo=None)
        rule = rrule.rrulestr(";".join(parts), dtstart=naive)
        end = naive + timedelta(days=WINDOW_DAYS)
        out: set[datetime | date] = set()
        for occ in rule:
            if occ > end:
                break
            instant = occ.replace(tzinfo=tz).astimezone(UTC)
            if until is not None and instant > until:
                break
            out.add(instant)
        return out
    first = datetime.combine(start, datetime.min.time())
    return {o.date() for o in rrule.rrulestr(line.partition(":")[2], dtstart=first)
            .between(first, first + timedelta(days=WINDOW_DAYS), inc=True)}


@pytest.mark.parametrize(("zone", "local_start", "line"), CASES)
def test_pattern_mapping_keeps_every_occurrence(zone: str, local_start: datetime, line: str) -> None:
    tz = ZoneInfo(zone)
    start = local_start.replace(tzinfo=tz)
    back = rec.from_ews(rec.to_ews(line, start, tz), start, tz)
    assert expand(back, start, tz) == expand(line, start, tz), back


@pytest.mark.parametrize(("zone", "local_start", "line"), CASES)
def test_series_round_trip_through_exchange(public_connector: ExchangeConnector, zone: str, local_start: datetime,
                                            line: str) -> None:
    tz = ZoneInfo(zone)
    start = local_start.replace(tzinfo=tz)
    event = Event(title="Series", start=start, end=start + timedelta(hours=1), timezone=zone, recurrence=(line,))
    created = public_connector.create([NewItem("series", event)])[0]
    assert created.status == "ok", created
    read = public_connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert len(read.event.recurrence) == 1
    assert expand(read.event.recurrence[0], read.event.start, tz) == expand(line, start, tz)  # type: ignore[arg-type]
    # the instant survives even though the zone name is Windows' (W. Europe Standard Time, ...)
    assert read.event.start == start


def test_multi_day_all_day_series_round_trip(public_connector: ExchangeConnector) -> None:
    event = Event(title="Conference", start=date(2026, 3, 27), end=date(2026, 3, 30),
                  recurrence=("RRULE:FREQ=MONTHLY;BYDAY=-1FR;COUNT=12",))
    created = public_connector.create([NewItem("allday", event)])[0]
    read = public_connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert read.event.all_day and (read.event.start, read.event.end) == (event.start, event.end)
    assert expand(read.event.recurrence[0], date(2026, 3, 27), None) == expand(event.recurrence[0], date(2026, 3, 27), None)


def test_modified_and_cancelled_occurrences_round_trip(public_connector: ExchangeConnector) -> None:
    tz = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 16, 9, 0, tzinfo=tz)  # the series crosses the March DST change
    moved_from = datetime(2026, 3, 30, 9, 0, tzinfo=tz)
    moved = Event(title="Standup (moved)", start=moved_from + timedelta(hours=2),
                  end=moved_from + timedelta(hours=2, minutes=30), timezone="Europe/Berlin", location="Room 9")
    event = Event(title="Standup", start=start, end=start + timedelta(minutes=30), timezone="Europe/Berlin",
                  recurrence=("RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=8",),
                  overrides=(Override(moved_from, moved),),
                  cancelled=(datetime(2026, 4, 6, 9, 0, tzinfo=tz),))
    created = public_connector.create([NewItem("exc", event)])[0]
    assert created.status == "ok", created
    item = public_connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert item.version == created.version  # the reported ChangeKey is the final one
    fields = public_connector.capabilities.fields
    assert content_hash(item.event, fields) == content_hash(event, fields), item.event
    # occurrences = oracle expansion minus cancellations, with the override in place of its original
    occurrences = expand(event.recurrence[0], start, tz) - {datetime(2026, 4, 6, 7, 0, tzinfo=UTC)}
    assert len(occurrences) == 7
    # an update that drops the cancellation and the override restores the plain series
    plain = replace(event, overrides=(), cancelled=())
    upd = public_connector.update([ItemUpdate(item.id, item.version, plain, "exc")])[0]
    assert upd.status == "ok"
    again = public_connector.read([item.id])[item.id]
    assert again.event.overrides == () and again.event.cancelled == ()
    assert again.version == upd.version


def test_unsupported_rules_are_refused_not_written_wrong(public_connector: ExchangeConnector) -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    event = Event(title="Hourly", start=start, end=start + timedelta(minutes=5), recurrence=("RRULE:FREQ=HOURLY",))
    result = public_connector.create([NewItem("hourly", event)])[0]
    assert result.status == "error" and "FREQ=HOURLY" in result.message
    assert public_connector.changes(None).items == []
