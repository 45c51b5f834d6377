"""EWS recurrence patterns ⇄ RFC 5545 RRULE lines (pure; exchangelib value objects only).

EWS can hold: daily; weekly (several days, a first day of the week);
monthly and yearly, each absolute (day N) or relative (the Nth/last weekday,
day, weekday or weekend day); ending by date, by count or never. Yearly
rules with an interval become monthly rules with 12×interval (same
occurrences). Anything else (hourly rules, several month days, RDATEs) raises
`UnsupportedRecurrence`, and the item is reported as not writable rather than
written wrong.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    EndDatePattern,
    NoEndPattern,
    NumberedPattern,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)
from exchangelib.recurrence import Recurrence as EwsRecurrence

DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]  # exchangelib weekday ints are 1-based in this order
# exchangelib's extra weekday values: 8 Day, 9 Weekday, 10 WeekendDay
_GROUPS = {8: DAYS, 9: DAYS[:5], 10: DAYS[5:]}
_WEEK_NUMBERS = {1: 1, 2: 2, 3: 3, 4: 4, 5: -1}  # First..Fourth, Last


class UnsupportedRecurrence(ValueError):
    """An RRULE Exchange cannot hold."""


def parse_rrule(line: str) -> dict[str, str]:
    name, _, value = line.partition(":")
    if name.strip().upper() != "RRULE":
        raise UnsupportedRecurrence(f"Exchange cannot hold {name.strip()} lines")
    parts = {}
    for part in value.strip().split(";"):
        if part:
            key, _, val = part.partition("=")
            parts[key.upper()] = val.upper()
    return parts


def _local_date(value: date | datetime, tz: Any) -> date:
    if isinstance(value, datetime):
        return value.astimezone(tz).date()
    return value


def _parse_until(value: str, tz: Any) -> date:
    if len(value) == 8:
        return datetime.strptime(value, "%Y%m%d").date()
    if value.endswith("Z"):
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).astimezone(tz).date()
    return datetime.strptime(value, "%Y%m%dT%H%M%S").date()


def _byday(value: str) -> list[tuple[int | None, str]]:
    out = []
    for token in value.split(","):
        token = token.strip()
        day = token[-2:]
        if day not in DAYS:
            raise UnsupportedRecurrence(f"unknown weekday {token!r}")
        num = token[:-2]
        out.append((int(num) if num not in ("", "+") else None, day))
    return out


def _week_number(n: int) -> int:
    if n == -1:
        return 5
    if 1 <= n <= 4:
        return n
    raise UnsupportedRecurrence(f"Exchange can only repeat on the 1st to 4th or the last weekday, not {n}")


def _relative_weekday(days: list[tuple[int | None, str]], setpos: str | None) -> tuple[int, int]:
    """(exchangelib weekday value, week number) for BYDAY=+2TU or BYDAY=MO,..,FR;BYSETPOS=n."""
    if len(days) == 1 and days[0][0] is not None and not setpos:
        return DAYS.index(days[0][1]) + 1, _week_number(days[0][0])
    if setpos and all(n is None for n, _ in days):
        names = [d for _, d in days]
        for value, group in ((8, DAYS), (9, DAYS[:5]), (10, DAYS[5:])):
            if sorted(names, key=DAYS.index) == group:
                return value, _week_number(int(setpos))
        if len(names) == 1:
            return DAYS.index(names[0]) + 1, _week_number(int(setpos))
    raise UnsupportedRecurrence("Exchange cannot hold this combination of BYDAY and BYSETPOS")


def to_ews(rrule_line: str, start: date | datetime, tz: Any) -> EwsRecurrence:
    """The EWS recurrence for an RRULE whose series starts at `start` (local dates in `tz`)."""
    parts = parse_rrule(rrule_line)
    supported = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "COUNT", "UNTIL", "WKST"}
    extra = set(parts) - supported
    if extra:
        raise UnsupportedRecurrence(f"Exchange cannot hold RRULE parts {', '.join(sorted(extra))}")
    freq = parts.get("FREQ")
    interval = int(parts.get("INTERVAL", "1"))
    first = _local_date(start, tz)
    days = _byday(parts["BYDAY"]) if "BYDAY" in parts else []
    setpos = parts.get("BYSETPOS")
    month_day = _exchange_month_day(parts, setpos)
    if month_day is not None:
        setpos = None  # BYMONTHDAY=28,..,d;BYSETPOS=-1 is Exchange's "day d"
    elif "BYMONTHDAY" in parts and "," in parts["BYMONTHDAY"]:
        raise UnsupportedRecurrence("Exchange cannot repeat on several days of the month")
    pattern: Any
    if freq == "DAILY":
        if days:
            if any(n is not None for n, _ in days) or interval != 1:
                raise UnsupportedRecurrence("Exchange cannot hold a daily rule with this BYDAY")
            pattern = WeeklyPattern(interval=1, weekdays=sorted(DAYS.index(d) + 1 for _, d in days),
                                    first_day_of_week=DAYS.index(parts.get("WKST", "MO")) + 1)
        else:
            pattern = DailyPattern(interval=interval)
    elif freq == "WEEKLY":
        weekdays = sorted({DAYS.index(d) + 1 for _, d in days}) if days else [first.isoweekday()]
        if any(n is not None for n, _ in days):
            raise UnsupportedRecurrence("Exchange cannot hold numbered weekdays in a weekly rule")
        pattern = WeeklyPattern(interval=interval, weekdays=weekdays,
                                first_day_of_week=DAYS.index(parts.get("WKST", "MO")) + 1)
    elif freq in ("MONTHLY", "YEARLY"):
        months = interval if freq == "MONTHLY" else 12 * interval
        month = int(parts.get("BYMONTH", str(first.month)))
        if "BYMONTH" in parts and "," in parts["BYMONTH"]:
            raise UnsupportedRecurrence("Exchange cannot repeat in several months")
        if freq == "MONTHLY" and "BYMONTH" in parts:
            raise UnsupportedRecurrence("Exchange cannot restrict a monthly rule to some months")
        if days:
            weekday, week_number = _relative_weekday(days, setpos)
            if freq == "YEARLY" and interval == 1:
                pattern = RelativeYearlyPattern(weekday=weekday, week_number=week_number, month=month)
            else:
                pattern = RelativeMonthlyPattern(interval=months, weekday=weekday, week_number=week_number)
        else:
            yearly = freq == "YEARLY" and interval == 1
            if month_day == -1:  # the last day of the month
                day = _MAX_DAYS[month - 1] if freq == "YEARLY" else 31
            elif month_day is not None:
                day = month_day
            else:
                day = int(parts.get("BYMONTHDAY", str(first.day)))
                if day < 1:
                    raise UnsupportedRecurrence("Exchange cannot count days from the end of the month, except "
                                                "the last day (BYMONTHDAY=-1)")
                shortest = _MIN_DAYS[month - 1] if freq == "YEARLY" else 28
                if day > shortest:
                    # RFC 5545 skips the months without that day; Exchange moves the occurrence to the
                    # month's last day (Microsoft's DayOfMonth reference): the two calendars would differ.
                    raise UnsupportedRecurrence(
                        f"this series repeats on day {day} and skips the months (or years) without that day; Exchange puts "
                        "those occurrences on the last day of the month instead. Repeat on the last day of the "
                        "month, or on a day up to 28, to sync it")
            if yearly:
                pattern = AbsoluteYearlyPattern(day_of_month=day, month=month)
            else:
                pattern = AbsoluteMonthlyPattern(interval=months, day_of_month=day)
    else:
        raise UnsupportedRecurrence(f"Exchange cannot hold FREQ={freq}")
    boundary: Any
    if "COUNT" in parts:
        boundary = NumberedPattern(start=first, number=int(parts["COUNT"]))
    elif "UNTIL" in parts:
        end = _parse_until(parts["UNTIL"], tz)
        if isinstance(start, datetime):
            # Exchange's EndDate is a day and includes every occurrence on it; UNTIL is an instant. The
            # day of the last occurrence at or before UNTIL keeps exactly the same occurrences (an UNTIL
            # earlier in the day than the series' time would otherwise gain one).
            starts = series_starts(rrule_line, start, tz)
            end = starts[-1].astimezone(tz).date() if starts and isinstance(starts[-1], datetime) else first
        boundary = EndDatePattern(start=first, end=end)
    else:
        boundary = NoEndPattern(start=first)
    return EwsRecurrence(pattern=pattern, boundary=boundary)


_MIN_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
_MAX_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def _exchange_month_day(parts: dict[str, str], setpos: str | None) -> int | None:
    """-1 for BYMONTHDAY=-1, d for BYMONTHDAY=28,29,..,d;BYSETPOS=-1 (what `from_ews` writes for
    Exchange's day 29-31), None for anything else."""
    value = parts.get("BYMONTHDAY")
    if value is None:
        return None
    if value == "-1" and not setpos:
        return -1
    if setpos == "-1" and "," in value:
        try:
            days = [int(v) for v in value.split(",")]
        except ValueError:
            return None
        if days == list(range(28, days[-1] + 1)) and 29 <= days[-1] <= 31:
            return days[-1]
    return None


def _month_day_parts(day: int, month: int | None) -> list[str]:
    """RRULE parts with Exchange's DayOfMonth semantics: a day past the end of a month is its last day."""
    shortest, longest = (28, 31) if month is None else (_MIN_DAYS[month - 1], _MAX_DAYS[month - 1])
    if day <= shortest:
        return [f"BYMONTHDAY={day}"]
    if day >= longest:
        return ["BYMONTHDAY=-1"]
    return ["BYMONTHDAY=" + ",".join(str(d) for d in range(28, day + 1)), "BYSETPOS=-1"]


def from_ews(recurrence: EwsRecurrence, start: date | datetime, tz: Any) -> str:
    """The RRULE line for an EWS recurrence (INTERVAL and WKST only when not the default)."""
    pattern, boundary = recurrence.pattern, recurrence.boundary
    parts: list[str] = []
    if isinstance(pattern, DailyPattern):
        parts.append("FREQ=DAILY")
        interval = pattern.interval
    elif isinstance(pattern, WeeklyPattern):
        parts.append("FREQ=WEEKLY")
        interval = pattern.interval
        parts.append("BYDAY=" + ",".join(DAYS[d - 1] for d in sorted(_weekday_ints(pattern.weekdays))))
        if pattern.first_day_of_week and pattern.first_day_of_week != 1 and interval > 1:
            parts.append(f"WKST={DAYS[pattern.first_day_of_week - 1]}")
    elif isinstance(pattern, AbsoluteMonthlyPattern):
        parts.append("FREQ=MONTHLY")
        interval = pattern.interval
        parts.extend(_month_day_parts(pattern.day_of_month, None))
    elif isinstance(pattern, RelativeMonthlyPattern):
        parts.append("FREQ=MONTHLY")
        interval = pattern.interval
        parts.extend(_relative_parts(pattern.weekday, pattern.week_number))
    elif isinstance(pattern, AbsoluteYearlyPattern):
        parts.append("FREQ=YEARLY")
        interval = 1
        parts.append(f"BYMONTH={pattern.month}")
        parts.extend(_month_day_parts(pattern.day_of_month, pattern.month))
    elif isinstance(pattern, RelativeYearlyPattern):
        parts.append("FREQ=YEARLY")
        interval = 1
        parts.append(f"BYMONTH={pattern.month}")
        parts.extend(_relative_parts(pattern.weekday, pattern.week_number))
    else:
        raise UnsupportedRecurrence(f"unsupported EWS pattern {type(pattern).__name__}")
    if interval and interval > 1:
        parts.append(f"INTERVAL={interval}")
    if isinstance(boundary, NumberedPattern):
        parts.append(f"COUNT={boundary.number}")
    elif isinstance(boundary, EndDatePattern):
        end = boundary.end if isinstance(boundary.end, date) and not isinstance(boundary.end, datetime) \
            else boundary.end.date()
        if isinstance(start, datetime):
            last = datetime.combine(end, time(23, 59, 59)).replace(tzinfo=tz).astimezone(UTC)
            parts.append(f"UNTIL={last:%Y%m%dT%H%M%SZ}")
        else:
            parts.append(f"UNTIL={end:%Y%m%d}")
    return "RRULE:" + ";".join(parts)


def _weekday_ints(values: Any) -> list[int]:
    out = []
    for value in values if isinstance(values, (list, tuple)) else [values]:
        out.append(value if isinstance(value, int) else DAYS.index(str(value)[:2].upper()) + 1)
    return out


def _relative_parts(weekday: int, week_number: int) -> list[str]:
    n = _WEEK_NUMBERS[week_number]
    if weekday in _GROUPS:
        return ["BYDAY=" + ",".join(_GROUPS[weekday]), f"BYSETPOS={n}"]
    return [f"BYDAY={n:+d}{DAYS[weekday - 1]}".replace("+", "")]


def series_starts(rrule_line: str, start: date | datetime, tz: Any, limit: int = 5000) -> list[date | datetime]:
    """Occurrence starts of a series (dateutil), in local time for timed series: to find instance indexes."""
    from dateutil import rrule as du

    body = rrule_line.partition(":")[2]
    out: list[date | datetime] = []
    if isinstance(start, datetime):
        local = start.astimezone(tz)
        # dateutil steps in wall-clock time of the zone: DST changes keep the local hour
        until = _until_utc(body)
        if until is not None:  # compared as an instant below, not as naive wall-clock digits
            body = ";".join(p for p in body.split(";") if not p.upper().startswith("UNTIL="))
        rule = du.rrulestr(body, dtstart=local.replace(tzinfo=None), ignoretz=True)
        horizon = local.replace(tzinfo=None) + timedelta(days=366 * 30)
        for naive in rule:
            aware = naive.replace(tzinfo=tz)
            if naive > horizon or len(out) >= limit or (until is not None and aware > until):
                break
            out.append(aware)
        return out
    first = datetime.combine(start, time(0, 0))
    for naive in du.rrulestr(body, dtstart=first, ignoretz=True):
        if naive > first + timedelta(days=366 * 30) or len(out) >= limit:
            break
        out.append(naive.date())
    return out


def _until_utc(body: str) -> datetime | None:
    for part in body.split(";"):
        key, _, value = part.partition("=")
        if key.upper() == "UNTIL" and value.upper().endswith("Z"):
            return datetime.strptime(value.upper(), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return None


def same_series(a: EwsRecurrence, b: EwsRecurrence) -> bool:
    """The same pattern and range (dates compared as days: a read-back StartDate may carry a zone)."""
    def day(value: Any) -> Any:
        return value.date() if isinstance(value, datetime) else value

    if a.pattern != b.pattern or type(a.boundary) is not type(b.boundary):
        return False
    if day(a.boundary.start) != day(b.boundary.start):
        return False
    if isinstance(a.boundary, EndDatePattern):
        return bool(day(a.boundary.end) == day(b.boundary.end))
    if isinstance(a.boundary, NumberedPattern):
        return bool(a.boundary.number == b.boundary.number)
    return True



def exchange_dates(recurrence: EwsRecurrence, until: date, limit: int = 5000) -> list[date]:
    """Occurrence days of an EWS pattern as Exchange counts them (for the 1-based InstanceIndex of an
    `OccurrenceItemId`), from the pattern's StartDate to `until`. Microsoft's pattern reference:
    a DayOfMonth past a month's end falls on its last day (29 February on the 28th in other years);
    DayOfWeekIndex Last is the month's last such day; intervals count from the StartDate's day, week
    (by FirstDayOfWeek) or month; EndDate includes its day; NumberOfOccurrences counts occurrences.
    Written for this, by walking the calendar: not the RRULE mapping, and not dateutil."""
    import calendar as cal

    pattern, boundary = recurrence.pattern, recurrence.boundary
    first = boundary.start.date() if isinstance(boundary.start, datetime) else boundary.start
    end: date | None = None
    count = 0
    if isinstance(boundary, EndDatePattern):
        end = boundary.end.date() if isinstance(boundary.end, datetime) else boundary.end
    elif isinstance(boundary, NumberedPattern):
        count = int(boundary.number)
    interval = int(getattr(pattern, "interval", 1) or 1)

    def nth(day: date, weekday: int, week_number: int) -> date | None:
        wanted = {DAYS.index(d) for d in _GROUPS[weekday]} if weekday in _GROUPS else {weekday - 1}
        last = cal.monthrange(day.year, day.month)[1]
        matches = [date(day.year, day.month, d) for d in range(1, last + 1)
                   if date(day.year, day.month, d).weekday() in wanted]
        if week_number == 5:
            return matches[-1]
        return matches[week_number - 1] if week_number - 1 < len(matches) else None

    week_origin = first
    if isinstance(pattern, WeeklyPattern):
        fdow = (pattern.first_day_of_week or 1) - 1
        week_origin = first - timedelta(days=(first.weekday() - fdow) % 7)
        weekdays = {d - 1 for d in _weekday_ints(pattern.weekdays)}
    out: list[date] = []
    day = first
    while day <= until and len(out) < limit and (not count or len(out) < count) and (end is None or day <= end):
        months = (day.year - first.year) * 12 + day.month - first.month
        last_day = cal.monthrange(day.year, day.month)[1]
        if isinstance(pattern, DailyPattern):
            hit = (day - first).days % interval == 0
        elif isinstance(pattern, WeeklyPattern):
            hit = day.weekday() in weekdays and ((day - week_origin).days // 7) % interval == 0
        elif isinstance(pattern, AbsoluteMonthlyPattern):
            hit = months % interval == 0 and day.day == min(int(pattern.day_of_month), last_day)
        elif isinstance(pattern, RelativeMonthlyPattern):
            hit = months % interval == 0 and day == nth(day, int(pattern.weekday), int(pattern.week_number))
        elif isinstance(pattern, AbsoluteYearlyPattern):
            hit = day.month == int(pattern.month) and day.day == min(int(pattern.day_of_month), last_day)
        elif isinstance(pattern, RelativeYearlyPattern):
            hit = day.month == int(pattern.month) and day == nth(day, int(pattern.weekday), int(pattern.week_number))
        else:
            raise UnsupportedRecurrence(f"unsupported EWS pattern {type(pattern).__name__}")
        if hit:
            out.append(day)
        day += timedelta(days=1)
    return out
