"""Expansion of an EWS `t:Recurrence` element into occurrence start times.

The server needs it for CalendarView, for resolving `OccurrenceItemId`
(master + 1-based instance index) and for FirstOccurrence/LastOccurrence.
It reads the XML directly and is deliberately independent of the connector's
RRULE mapping, so that tests comparing the two are not comparing code with
itself.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from dateutil import rrule
from lxml import etree

T = "http://schemas.microsoft.com/exchange/services/2006/types"
_DAYS = {"Monday": rrule.MO, "Tuesday": rrule.TU, "Wednesday": rrule.WE, "Thursday": rrule.TH,
         "Friday": rrule.FR, "Saturday": rrule.SA, "Sunday": rrule.SU}
_DAY_GROUPS = {"Day": list(_DAYS.values()), "Weekday": [rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR],
               "WeekendDay": [rrule.SA, rrule.SU]}
_INDEX = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
# Expansion of never-ending series stops here: enough for any CalendarView a test asks for.
HORIZON_YEARS = 30


def _text(elem: etree._Element, name: str) -> str | None:
    child = elem.find(f"{{{T}}}{name}")
    return None if child is None or child.text is None else child.text.strip()


def _parse_date(value: str) -> date:
    # xs:date may carry a zone suffix ("2026-03-03Z", "2026-03-03+01:00"): the date part is what counts.
    return date.fromisoformat(value[:10])


def expand(recurrence: etree._Element, first_start_utc: datetime, tz: tzinfo,
           until_utc: datetime | None = None) -> list[datetime]:
    """UTC start times of every occurrence (deleted ones included), in order."""
    local_start = first_start_utc.astimezone(tz)
    pattern = boundary = None
    for child in recurrence:
        local = etree.QName(child).localname
        if local.endswith("Recurrence") and local not in ("NoEndRecurrence", "EndDateRecurrence", "NumberedRecurrence"):
            pattern = child
        elif local in ("NoEndRecurrence", "EndDateRecurrence", "NumberedRecurrence"):
            boundary = child
    if pattern is None or boundary is None:
        raise ValueError("Recurrence needs a pattern and a range")
    kind = etree.QName(pattern).localname
    kwargs: dict[str, Any] = {}
    interval = int(_text(pattern, "Interval") or 1)
    days = (_text(pattern, "DaysOfWeek") or "").split()
    if kind == "DailyRecurrence":
        freq = rrule.DAILY
    elif kind == "WeeklyRecurrence":
        freq = rrule.WEEKLY
        kwargs["byweekday"] = [_DAYS[d] for d in days]
        kwargs["wkst"] = _DAYS[_text(pattern, "FirstDayOfWeek") or "Monday"]
    elif kind == "AbsoluteMonthlyRecurrence":
        freq = rrule.MONTHLY
        _day_of_month(kwargs, int(_text(pattern, "DayOfMonth") or 1))
    elif kind == "RelativeMonthlyRecurrence":
        freq = rrule.MONTHLY
        _relative(kwargs, days, _text(pattern, "DayOfWeekIndex") or "First")
    elif kind == "AbsoluteYearlyRecurrence":
        freq = rrule.YEARLY
        interval = 1
        kwargs["bymonth"] = _MONTHS.index(_text(pattern, "Month") or "January") + 1
        _day_of_month(kwargs, int(_text(pattern, "DayOfMonth") or 1))
    elif kind == "RelativeYearlyRecurrence":
        freq = rrule.YEARLY
        interval = 1
        kwargs["bymonth"] = _MONTHS.index(_text(pattern, "Month") or "January") + 1
        _relative(kwargs, days, _text(pattern, "DayOfWeekIndex") or "First")
    else:
        raise ValueError(f"unsupported recurrence pattern {kind}")
    range_kind = etree.QName(boundary).localname
    start_date = _parse_date(_text(boundary, "StartDate") or local_start.date().isoformat())
    dtstart = datetime.combine(start_date, local_start.time()).replace(tzinfo=None)
    if range_kind == "NumberedRecurrence":
        kwargs["count"] = int(_text(boundary, "NumberOfOccurrences") or 1)
    elif range_kind == "EndDateRecurrence":
        kwargs["until"] = datetime.combine(_parse_date(_text(boundary, "EndDate") or ""), time(23, 59, 59))
    else:
        kwargs["until"] = dtstart + timedelta(days=366 * HORIZON_YEARS)
    if until_utc is not None and "count" not in kwargs:
        limit = until_utc.astimezone(tz).replace(tzinfo=None)
        kwargs["until"] = min(kwargs["until"], limit)
    rule = rrule.rrule(freq, dtstart=dtstart, interval=interval, **kwargs)  # type: ignore[arg-type]
    out = []
    for naive in rule:
        out.append(naive.replace(tzinfo=tz).astimezone(UTC))
        if until_utc is not None and out[-1] > until_utc:
            break
    return out


def _day_of_month(kwargs: dict[str, Any], day: int) -> None:
    """Microsoft's DayOfMonth reference (docs/web-service-reference/dayofmonth.md): "If for a particular
    month this value is larger than the number of days in the month, the last day of the month is
    assumed" — day 31 falls on 30 April and 28/29 February, a yearly 29 February on 28 February in
    other years (RFC 5545 skips those months instead). The last of the days 28..day in each month."""
    if day <= 28:
        kwargs["bymonthday"] = day
    else:
        kwargs["bymonthday"] = list(range(28, day + 1))
        kwargs["bysetpos"] = -1


def _relative(kwargs: dict[str, Any], days: list[str], index_name: str) -> None:
    index = _INDEX[index_name]
    if len(days) == 1 and days[0] in _DAYS:
        kwargs["byweekday"] = [_DAYS[days[0]](index)]
    else:
        group: list[Any] = []
        for d in days:
            group.extend(_DAY_GROUPS.get(d, [_DAYS.get(d)]))
        kwargs["byweekday"] = group
        kwargs["bysetpos"] = index
