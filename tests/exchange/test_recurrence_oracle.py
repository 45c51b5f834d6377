"""Recurrence on Exchange's semantics, both directions, public folder and mailbox folder.

The oracle below expands an EWS pattern the way Microsoft documents it (DayOfMonth past a month's end
is its last day; DayOfWeekIndex Last; EndDate includes its whole day; NumberOfOccurrences counts
occurrences), by walking the calendar day by day: it shares no code with the sandbox (dateutil) or the
connector. Each case is checked three ways: the server's CalendarView, the oracle, and the RFC 5545
expansion (dateutil) of the RRULE on the hub side must give the same instants.

- hub → Exchange: an RRULE written through the connector;
- Exchange → hub: a series made in Outlook (the sandbox's user API), read by the connector.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule
from exchangelib import EWSDateTime
from exchangelib.folders import FolderCollection

from spokesync.connectors.exchange.connector import ExchangeConnector
from spokesync.model.event import Event, Override
from spokesync.ports import NewItem
from spokesync.sandbox.ews import EwsServer

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
GROUPS = {"Day": DAYS, "Weekday": DAYS[:5], "WeekendDay": DAYS[5:]}
INDEX = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
MONTHS = list(calendar.month_name)[1:]


@dataclass(frozen=True)
class Pattern:
    kind: str  # Daily, Weekly, AbsoluteMonthly, RelativeMonthly, AbsoluteYearly, RelativeYearly
    interval: int = 1
    days: tuple[str, ...] = ()
    day: int = 0
    index: str = "First"
    month: int = 0
    first_day_of_week: str = "Monday"
    count: int = 0  # NumberedRecurrence
    end: date | None = None  # EndDateRecurrence
    extra: dict[str, str] = field(default_factory=dict)

    def xml(self, start: date) -> str:
        inner = {"Daily": f"<t:Interval>{self.interval}</t:Interval>",
                 "Weekly": f"<t:Interval>{self.interval}</t:Interval><t:DaysOfWeek>{' '.join(self.days)}"
                           f"</t:DaysOfWeek><t:FirstDayOfWeek>{self.first_day_of_week}</t:FirstDayOfWeek>",
                 "AbsoluteMonthly": f"<t:Interval>{self.interval}</t:Interval><t:DayOfMonth>{self.day}</t:DayOfMonth>",
                 "RelativeMonthly": f"<t:Interval>{self.interval}</t:Interval><t:DaysOfWeek>{' '.join(self.days)}"
                                    f"</t:DaysOfWeek><t:DayOfWeekIndex>{self.index}</t:DayOfWeekIndex>",
                 "AbsoluteYearly": f"<t:DayOfMonth>{self.day}</t:DayOfMonth><t:Month>{MONTHS[self.month - 1]}</t:Month>",
                 "RelativeYearly": f"<t:DaysOfWeek>{' '.join(self.days)}</t:DaysOfWeek><t:DayOfWeekIndex>"
                                   f"{self.index}</t:DayOfWeekIndex><t:Month>{MONTHS[self.month - 1]}</t:Month>"}[self.kind]
        if self.count:
            boundary = (f"<t:NumberedRecurrence><t:StartDate>{start}</t:StartDate><t:NumberOfOccurrences>"
                        f"{self.count}</t:NumberOfOccurrences></t:NumberedRecurrence>")
        elif self.end:
            boundary = (f"<t:EndDateRecurrence><t:StartDate>{start}</t:StartDate><t:EndDate>{self.end}</t:EndDate>"
                        "</t:EndDateRecurrence>")
        else:
            boundary = f"<t:NoEndRecurrence><t:StartDate>{start}</t:StartDate></t:NoEndRecurrence>"
        return f"<t:Recurrence><t:{self.kind}Recurrence>{inner}</t:{self.kind}Recurrence>{boundary}</t:Recurrence>"


def _nth(year: int, month: int, names: tuple[str, ...], index: str) -> date:
    wanted = {d for n in names for d in GROUPS.get(n, [n])}
    matches = [date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)
               if DAYS[date(year, month, d).weekday()] in wanted]
    return matches[-1] if INDEX[index] == -1 else matches[INDEX[index] - 1]


def oracle(p: Pattern, first: date, horizon: date) -> list[date]:
    """Occurrence dates on Exchange's semantics, from `first` (the series' first day) to `horizon`."""
    out: list[date] = []
    months_between = lambda d: (d.year - first.year) * 12 + d.month - first.month  # noqa: E731
    day = first
    week_start = first - timedelta(days=(first.weekday() - DAYS.index(p.first_day_of_week)) % 7)
    while day <= horizon and (not p.count or len(out) < p.count) and (p.end is None or day <= p.end):
        last = calendar.monthrange(day.year, day.month)[1]
        if p.kind == "Daily":
            hit = (day - first).days % p.interval == 0
        elif p.kind == "Weekly":
            hit = DAYS[day.weekday()] in p.days and ((day - week_start).days // 7) % p.interval == 0
        elif p.kind == "AbsoluteMonthly":
            hit = months_between(day) % p.interval == 0 and day.day == min(p.day, last)
        elif p.kind == "RelativeMonthly":
            hit = months_between(day) % p.interval == 0 and day == _nth(day.year, day.month, p.days, p.index)
        elif p.kind == "AbsoluteYearly":
            hit = day.month == p.month and day.day == min(p.day, last)
        else:
            hit = day.month == p.month and day == _nth(day.year, day.month, p.days, p.index)
        if hit:
            out.append(day)
        day += timedelta(days=1)
    return out


def rfc(line: str, start: datetime, horizon: datetime, exdates: tuple[datetime, ...] = ()) -> list[datetime]:
    """RFC 5545 (dateutil) in the zone's wall-clock time, UNTIL compared as an instant."""
    tz = start.tzinfo
    assert tz is not None
    body, until = [], None
    for part in line.partition(":")[2].split(";"):
        if part.startswith("UNTIL=") and part.endswith("Z"):
            until = datetime.strptime(part[6:], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        else:
            body.append(part)
    out = []
    for naive in rrule.rrulestr(";".join(body), dtstart=start.replace(tzinfo=None)):
        instant = naive.replace(tzinfo=tz).astimezone(UTC)
        if instant > horizon or (until is not None and instant > until):
            break
        if naive.replace(tzinfo=tz) not in exdates:
            out.append(instant)
    return out


def view(connector: ExchangeConnector, lo: datetime, hi: datetime) -> list[datetime]:
    found = FolderCollection(account=connector.account, folders=[connector.folder]).view(
        start=EWSDateTime.from_datetime(lo), end=EWSDateTime.from_datetime(hi))
    return sorted(datetime.fromtimestamp(o.start.timestamp(), UTC) for o in found)


@pytest.fixture(params=["public", "mailbox"])
def connector(request: pytest.FixtureRequest) -> ExchangeConnector:
    return request.getfixturevalue(f"{request.param}_connector")


# (zone, first local start, RRULE as the hub holds it, the EWS pattern it must become)
HUB_CASES = [
    ("Europe/Berlin", datetime(2027, 1, 31, 9, 0), "RRULE:FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=14",
     Pattern("AbsoluteMonthly", day=31, count=14)),
    ("America/New_York", datetime(2027, 1, 30, 18, 0), "RRULE:FREQ=MONTHLY;BYMONTHDAY=28,29,30;BYSETPOS=-1;COUNT=13",
     Pattern("AbsoluteMonthly", day=30, count=13)),
    ("Australia/Sydney", datetime(2027, 1, 29, 7, 30), "RRULE:FREQ=MONTHLY;INTERVAL=2;BYMONTHDAY=28,29;BYSETPOS=-1",
     Pattern("AbsoluteMonthly", interval=2, day=29)),
    ("Europe/Berlin", datetime(2028, 2, 29, 12, 0), "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1;COUNT=5",
     Pattern("AbsoluteYearly", month=2, day=29, count=5)),
    # UNTIL at several times of day and zones: before, at and after the day's occurrence
    ("Europe/Berlin", datetime(2027, 3, 22, 9, 0), "RRULE:FREQ=DAILY;UNTIL=20270401T065959Z",
     Pattern("Daily", end=date(2027, 3, 31))),
    ("Europe/Berlin", datetime(2027, 3, 22, 9, 0), "RRULE:FREQ=DAILY;UNTIL=20270401T070000Z",
     Pattern("Daily", end=date(2027, 4, 1))),
    ("America/New_York", datetime(2027, 3, 8, 23, 30), "RRULE:FREQ=WEEKLY;BYDAY=TH,MO;UNTIL=20270326T033000Z",
     Pattern("Weekly", days=("Monday", "Thursday"), end=date(2027, 3, 25))),
    ("Australia/Sydney", datetime(2027, 3, 29, 8, 0), "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;UNTIL=20270524T000000Z",
     Pattern("Weekly", interval=2, days=("Monday",), end=date(2027, 5, 24))),
    # DST changes in three zones inside the series
    ("America/New_York", datetime(2027, 2, 27, 1, 30), "RRULE:FREQ=MONTHLY;BYDAY=-1SA;COUNT=12",
     Pattern("RelativeMonthly", days=("Saturday",), index="Last", count=12)),
    ("Australia/Sydney", datetime(2027, 3, 1, 10, 0), "RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1;COUNT=12",
     Pattern("RelativeMonthly", days=("Weekday",), index="First", count=12)),
    ("Europe/Berlin", datetime(2027, 3, 28, 11, 0), "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;COUNT=4",
     Pattern("RelativeYearly", days=("Sunday",), index="Last", month=3, count=4)),
]


@pytest.mark.parametrize(("zone", "local", "line", "pattern"), HUB_CASES, ids=[c[2] for c in HUB_CASES])
def test_hub_rule_becomes_the_exchange_series_with_the_same_occurrences(
        connector: ExchangeConnector, zone: str, local: datetime, line: str, pattern: Pattern) -> None:
    tz = ZoneInfo(zone)
    start = local.replace(tzinfo=tz)
    horizon = start + timedelta(days=800)
    event = Event(title="Oracle", start=start, end=start + timedelta(minutes=45), timezone=zone, recurrence=(line,))
    created = connector.create([NewItem(f"o-{line}", event)])[0]
    assert created.status == "ok", created
    days = oracle(pattern, start.date(), horizon.date())
    expected = [datetime.combine(d, start.timetz().replace(tzinfo=None)).replace(tzinfo=tz).astimezone(UTC)
                for d in days]
    assert rfc(line, start, horizon) == expected  # the hub's rule means what Exchange will do
    assert view(connector, start - timedelta(days=1), horizon) == expected
    read = connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert read.event.recurrence == (line,)  # the same spelling back: nothing to write into the user's event


# (zone, first local start, the series as made in Outlook)
OUTLOOK_CASES = [
    ("Europe/Berlin", datetime(2027, 1, 31, 9, 0), Pattern("AbsoluteMonthly", day=31, count=14)),
    ("America/New_York", datetime(2027, 1, 30, 14, 0), Pattern("AbsoluteMonthly", day=30, end=date(2028, 3, 30))),
    ("Australia/Sydney", datetime(2027, 1, 29, 8, 0), Pattern("AbsoluteMonthly", interval=3, day=29, count=9)),
    ("Europe/Berlin", datetime(2028, 2, 29, 10, 0), Pattern("AbsoluteYearly", month=2, day=29, count=6)),
    ("America/New_York", datetime(2027, 3, 1, 8, 15), Pattern("Weekly", days=("Monday", "Wednesday", "Friday"),
                                                             end=date(2027, 11, 12))),
    ("Australia/Sydney", datetime(2027, 2, 1, 9, 0), Pattern("RelativeMonthly", days=("WeekendDay",), index="Last",
                                                            count=12)),
    ("Europe/Berlin", datetime(2027, 10, 4, 7, 0), Pattern("RelativeYearly", days=("Monday",), index="First",
                                                          month=10, count=3)),
]


@pytest.mark.parametrize(("zone", "local", "pattern"), OUTLOOK_CASES, ids=[f"{c[2].kind}-{c[2].day}" for c in
                                                                         OUTLOOK_CASES])
def test_an_outlook_series_reads_as_a_rule_with_exchanges_occurrences(
        ews: EwsServer, connector: ExchangeConnector, zone: str, local: datetime, pattern: Pattern) -> None:
    from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP

    tz = ZoneInfo(zone)
    start = local.replace(tzinfo=tz)
    horizon = start + timedelta(days=800)
    item = ews.user_create(connector.folder_id, "Outlook series", start, start + timedelta(hours=1),
                           tz=IANA_TO_MS_TIMEZONE_MAP[zone][0], recurrence_xml=pattern.xml(start.date()))
    days = oracle(pattern, start.date(), horizon.date())
    expected = [datetime.combine(d, time(local.hour, local.minute)).replace(tzinfo=tz).astimezone(UTC) for d in days]
    assert view(connector, start - timedelta(days=1), horizon) == expected
    read = connector.read([item.id])[item.id]
    assert read.event.start == start
    assert rfc(read.event.recurrence[0], read.event.start, horizon) == expected, read.event.recurrence  # type: ignore[arg-type]


def test_modified_and_deleted_occurrences_across_dst_and_exdates_both_ways(connector: ExchangeConnector) -> None:
    tz = ZoneInfo("America/New_York")
    start = datetime(2027, 3, 1, 9, 0, tzinfo=tz)  # weekly Mondays across the 14 March change
    moved_from = datetime(2027, 3, 15, 9, 0, tzinfo=tz)  # first Monday after the change: moved to Tuesday
    moved = Event(title="moved", start=moved_from + timedelta(days=1, hours=2),
                  end=moved_from + timedelta(days=1, hours=3), timezone="America/New_York")
    exdate = datetime(2027, 3, 22, 9, 0, tzinfo=tz)
    cancelled = datetime(2027, 3, 8, 9, 0, tzinfo=tz)
    line = "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6"
    event = Event(title="DST", start=start, end=start + timedelta(hours=1), timezone="America/New_York",
                  recurrence=(line, "EXDATE;TZID=America/New_York:20270322T090000"),
                  overrides=(Override(moved_from, moved),), cancelled=(cancelled,))
    created = connector.create([NewItem("dst-both", event)])[0]
    assert created.status == "ok", created
    plain = rfc(line, start, start + timedelta(days=60), exdates=(exdate, cancelled, moved_from))
    expected = sorted([*plain, moved.start.astimezone(UTC)])  # type: ignore[union-attr]
    assert view(connector, start - timedelta(days=1), start + timedelta(days=60)) == expected
    read = connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert sorted(read.event.cancelled) == sorted([cancelled, exdate])  # type: ignore[type-var]
    assert [(o.original_start, o.event.start) for o in read.event.overrides] == [(moved_from, moved.start)]


def test_all_day_multi_day_series_both_ways(ews: EwsServer, connector: ExchangeConnector) -> None:
    event = Event(title="Fair", start=date(2027, 1, 29), end=date(2027, 2, 1),
                  recurrence=("RRULE:FREQ=MONTHLY;BYMONTHDAY=28,29;BYSETPOS=-1;COUNT=6",))
    created = connector.create([NewItem("allday-29", event)])[0]
    assert created.status == "ok", created
    read = connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert (read.event.start, read.event.end, read.event.recurrence) == (event.start, event.end, event.recurrence)
    days = oracle(Pattern("AbsoluteMonthly", day=29, count=6), date(2027, 1, 29), date(2027, 12, 31))
    assert days[1] == date(2027, 2, 28)  # February 2027 has no 29th: Exchange's last day
    first = datetime.combine(date(2027, 1, 29), time(0), UTC)
    rule = rrule.rrulestr(event.recurrence[0].partition(":")[2], dtstart=first.replace(tzinfo=None))
    assert [d.date() for d in rule] == days


def test_a_pattern_changed_in_outlook_wins_over_the_spelling_we_wrote(ews: EwsServer,
                                                                      connector: ExchangeConnector) -> None:
    from lxml import etree

    tz = ZoneInfo("Europe/Berlin")
    start = datetime(2027, 5, 4, 9, 0, tzinfo=tz)  # a Tuesday
    line = "RRULE:FREQ=WEEKLY;BYDAY=TH,TU;COUNT=6"
    created = connector.create([NewItem("changed-in-outlook", Event(
        title="Weekly", start=start, end=start + timedelta(hours=1), timezone="Europe/Berlin", recurrence=(line,)))])[0]
    assert connector.read([created.spoke_item_id])[created.spoke_item_id].event.recurrence == (line,)
    with ews.store.lock:  # the user makes it Tuesdays only, in Outlook (our property stays on the item)
        item = ews.item(created.spoke_item_id)
        item.fields["Recurrence"] = etree.fromstring(
            Pattern("Weekly", days=("Tuesday",), count=6).xml(start.date()).replace(
                "<t:Recurrence>", '<t:Recurrence xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'))
        ews.store.touch(item)
    read = connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert read.event.recurrence == ("RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=6",)


# (zone, the Monday of the week of the zone's 2027 change, the change's date): weekly Mondays; the
# Monday after the change is moved back to the Saturday before it (across the change), and the next
# Monday is deleted.
DST_CASES = [("America/New_York", date(2027, 3, 8), date(2027, 3, 14)),
             ("Europe/Berlin", date(2027, 3, 22), date(2027, 3, 28)),
             ("Australia/Sydney", date(2027, 3, 29), date(2027, 4, 4))]


def _dst_series(zone: str, monday: date) -> tuple[datetime, datetime, datetime, datetime]:
    tz = ZoneInfo(zone)
    start = datetime.combine(monday - timedelta(days=7), time(9, 0), tz)
    moved_from = datetime.combine(monday + timedelta(days=7), time(9, 0), tz)  # after the change
    moved_to = datetime.combine(monday + timedelta(days=5), time(11, 30), tz)  # the Saturday before it
    deleted = datetime.combine(monday + timedelta(days=14), time(9, 0), tz)
    return start, moved_from, moved_to, deleted


@pytest.mark.parametrize(("zone", "monday", "change"), DST_CASES, ids=[c[0] for c in DST_CASES])
def test_occurrences_moved_across_dst_in_three_zones_from_the_hub(connector: ExchangeConnector, zone: str,
                                                                  monday: date, change: date) -> None:
    start, moved_from, moved_to, deleted = _dst_series(zone, monday)
    assert moved_to.date() < change < moved_from.date() and moved_to.utcoffset() != moved_from.utcoffset()
    line = "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6"
    moved = Event(title="moved", start=moved_to, end=moved_to + timedelta(hours=1), timezone=zone)
    event = Event(title="Across", start=start, end=start + timedelta(hours=1), timezone=zone, recurrence=(line,),
                  overrides=(Override(moved_from, moved),), cancelled=(deleted,))
    created = connector.create([NewItem(f"dst3-{zone}", event)])[0]
    assert created.status == "ok", created
    horizon = start + timedelta(days=60)
    expected = sorted([*rfc(line, start, horizon, exdates=(moved_from, deleted)), moved_to.astimezone(UTC)])
    days = oracle(Pattern("Weekly", days=("Monday",), count=6), start.date(), horizon.date())
    assert len(days) == 6 and moved_from.date() in days and deleted.date() in days
    assert view(connector, start - timedelta(days=1), horizon) == expected
    read = connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert read.event.cancelled == (deleted,)
    assert [(o.original_start, o.event.start) for o in read.event.overrides] == [(moved_from, moved_to)]


@pytest.mark.parametrize(("zone", "monday", "change"), DST_CASES, ids=[c[0] for c in DST_CASES])
def test_occurrences_moved_across_dst_in_three_zones_in_outlook(ews: EwsServer, connector: ExchangeConnector,
                                                                zone: str, monday: date, change: date) -> None:
    from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP

    start, moved_from, moved_to, deleted = _dst_series(zone, monday)
    pattern = Pattern("Weekly", days=("Monday",), count=6)
    item = ews.user_create(connector.folder_id, "Outlook across", start, start + timedelta(hours=1),
                           tz=IANA_TO_MS_TIMEZONE_MAP[zone][0], recurrence_xml=pattern.xml(start.date()))
    days = oracle(pattern, start.date(), start.date() + timedelta(days=60))
    ews.user_change_occurrence(item.id, days.index(moved_from.date()) + 1, start=moved_to.astimezone(UTC),
                               end=(moved_to + timedelta(hours=1)).astimezone(UTC))
    ews.user_change_occurrence(item.id, days.index(deleted.date()) + 1, cancel=True)
    read = connector.read([item.id])[item.id]
    assert read.event.cancelled == (deleted,)
    [override] = read.event.overrides
    assert override.original_start == moved_from
    assert override.event.start.astimezone(UTC) == moved_to.astimezone(UTC)  # type: ignore[union-attr]
    plain = rfc(read.event.recurrence[0], read.event.start, start + timedelta(days=60),  # type: ignore[arg-type]
                exdates=(moved_from, deleted))
    assert sorted([*plain, moved_to.astimezone(UTC)]) == view(connector, start - timedelta(days=1),
                                                              start + timedelta(days=60))


def test_an_outlook_all_day_multi_day_series_reads_with_exchanges_occurrences(ews: EwsServer,
                                                                              connector: ExchangeConnector) -> None:
    pattern = Pattern("AbsoluteMonthly", day=30, count=5)  # two days each, from 30 January: 28 February
    item = ews.user_create(connector.folder_id, "Outlook fair", date(2027, 1, 30), date(2027, 2, 1),
                           recurrence_xml=pattern.xml(date(2027, 1, 30)))
    read = connector.read([item.id])[item.id]
    assert (read.event.start, read.event.end) == (date(2027, 1, 30), date(2027, 2, 1))
    days = oracle(pattern, date(2027, 1, 30), date(2027, 12, 31))
    assert days[1] == date(2027, 2, 28)
    first = datetime.combine(date(2027, 1, 30), time(0))
    rule = rrule.rrulestr(read.event.recurrence[0].partition(":")[2], dtstart=first)
    assert [d.date() for d in rule] == days, read.event.recurrence
