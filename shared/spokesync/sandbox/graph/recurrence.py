"""Occurrence dates of a Graph `patternedRecurrence` (pattern + range), as Exchange computes them.

Source: Graph's "patternedRecurrence resource type", "recurrencePattern resource type" and
"recurrenceRange resource type" (learn.microsoft.com/graph/api/resources/...): pattern types
daily, weekly (daysOfWeek, firstDayOfWeek), absoluteMonthly (dayOfMonth), relativeMonthly
(daysOfWeek + index), absoluteYearly (dayOfMonth + month), relativeYearly (daysOfWeek + index +
month); range types endDate (inclusive), noEnd, numbered. Exchange places a dayOfMonth the month
does not have on the month's last day (FACTS.md, "Checked in 2026-12").
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
INDEX = {"first": 0, "second": 1, "third": 2, "fourth": 3, "last": -1}
MAX_OCCURRENCES = 999  # Outlook's limit for a numbered range; also bounds noEnd expansions here


class RecurrenceError(ValueError):
    pass


def _relative_day(year: int, month: int, days: list[str], index: str) -> date:
    wanted = {DAYS.index(d) for d in days}
    last = _calendar.monthrange(year, month)[1]
    matches = [date(year, month, d) for d in range(1, last + 1) if date(year, month, d).weekday() in wanted]
    return matches[INDEX[index]]


def _candidates(pattern: dict[str, Any], start: date) -> Iterator[date]:
    kind = pattern.get("type")
    interval = int(pattern.get("interval") or 0)
    if interval < 1:
        raise RecurrenceError("interval must be at least 1")
    days = [d.lower() for d in pattern.get("daysOfWeek") or []]
    if kind == "daily":
        current = start
        while True:
            yield current
            current += timedelta(days=interval)
    elif kind == "weekly":
        if not days:
            raise RecurrenceError("a weekly pattern needs daysOfWeek")
        first = DAYS.index((pattern.get("firstDayOfWeek") or "sunday").lower())
        week = start - timedelta(days=(start.weekday() - first) % 7)
        while True:
            for offset in range(7):
                day = week + timedelta(days=offset)
                if DAYS[day.weekday()] in days:
                    yield day
            week += timedelta(weeks=interval)
    elif kind in ("absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"):
        yearly = kind.endswith("Yearly")
        step = 12 * interval if yearly else interval
        month_index = start.year * 12 + ((int(pattern.get("month") or 0) or start.month) if yearly else start.month) - 1
        if kind.startswith("relative") and not days:
            raise RecurrenceError("a relative pattern needs daysOfWeek")
        while True:
            year, month = divmod(month_index, 12)
            month += 1
            if kind.startswith("absolute"):
                day_of_month = int(pattern.get("dayOfMonth") or 0)
                if not 1 <= day_of_month <= 31:
                    raise RecurrenceError("dayOfMonth must be 1 to 31")
                yield date(year, month, min(day_of_month, _calendar.monthrange(year, month)[1]))
            else:
                yield _relative_day(year, month, days, (pattern.get("index") or "first"))
            month_index += step
    else:
        raise RecurrenceError(f"unknown recurrence pattern type {kind!r}")


def occurrence_dates(recurrence: dict[str, Any], until: date | None = None) -> list[date]:
    """Dates of the series' occurrences (first on or after range.startDate), up to `until` for noEnd."""
    pattern, rng = recurrence.get("pattern") or {}, recurrence.get("range") or {}
    if not rng.get("startDate"):
        raise RecurrenceError("range.startDate is required")
    start = date.fromisoformat(rng["startDate"])
    kind = rng.get("type")
    end = date.fromisoformat(rng["endDate"]) if kind == "endDate" and rng.get("endDate") else None
    if kind == "endDate" and end is None:
        raise RecurrenceError("range.endDate is required for an endDate range")
    count = int(rng.get("numberOfOccurrences") or 0) if kind == "numbered" else None
    if kind == "numbered" and not count:
        raise RecurrenceError("range.numberOfOccurrences must be at least 1")
    if kind not in ("endDate", "noEnd", "numbered"):
        raise RecurrenceError(f"unknown recurrence range type {kind!r}")
    limit = until or start + timedelta(days=3 * 366)
    out: list[date] = []
    for day in _candidates(pattern, start):
        if day < start:
            continue
        if (end is not None and day > end) or (count is not None and len(out) >= count) or day > limit \
                or len(out) >= MAX_OCCURRENCES:
            break
        out.append(day)
    return out
