"""Time zones given by definition (`t:StartTimeZone` with Periods / TransitionsGroups / Transitions).

Real servers return items whose zone Id is not a Windows id — "Customized Time Zone", a display name,
a localized name, an empty Id (exchangelib issues #310, #314, #255) — with the full definition; Exchange
expands such items by the definition. This tzinfo does the same for the sandbox (CalendarView, occurrence
indices). It is written from the schema's elements (types.xsd: PeriodType, RecurringDayTransitionType,
AbsoluteDateTransitionType, TransitionType) and shares no code with the connector's resolution.

Semantics (Microsoft's "Time zones and EWS" pages): a Period's Bias is UTC minus local time
(Bias="-PT1H" is UTC+01:00); a RecurringDayTransition switches to its period at TimeOffset local time
(the time before the change) on the Occurrence-th (-1: last) DayOfWeek of Month; the top-level
Transitions pick the group in force (a Transition first, then AbsoluteDateTransitions from a date on).
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, tzinfo

from lxml import etree

T = "http://schemas.microsoft.com/exchange/services/2006/types"
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _duration(value: str) -> timedelta:
    """xs:duration as Exchange writes it: [-]PT[nH][nM][nS] (also P0DT...)."""
    match = re.fullmatch(r"(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", value.strip())
    if not match:
        raise ValueError(f"unsupported duration {value!r}")
    sign, days, hours, minutes, seconds = match.groups()
    delta = timedelta(days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0), seconds=int(seconds or 0))
    return -delta if sign else delta


def _q(name: str) -> str:
    return f"{{{T}}}{name}"


class DefinitionZone(tzinfo):
    def __init__(self, elem: etree._Element) -> None:
        self.name = elem.get("Name") or elem.get("Id") or "custom"
        self.offsets: dict[str, timedelta] = {}
        self.standard: timedelta | None = None
        for period in elem.iterfind(f"{_q('Periods')}/{_q('Period')}"):
            offset = -_duration(period.get("Bias") or "PT0H")
            self.offsets[period.get("Id") or ""] = offset
            if (period.get("Name") or "").lower() == "standard" and self.standard is None:
                self.standard = offset
        if not self.offsets:
            raise ValueError("a time-zone definition needs Periods")
        self.groups: dict[str, list[etree._Element]] = {
            g.get("Id") or "": [c for c in g if isinstance(c.tag, str)]
            for g in elem.iterfind(f"{_q('TransitionsGroups')}/{_q('TransitionsGroup')}")}
        # (from when, group id); the first applies from the beginning of time
        self.schedule: list[tuple[datetime | None, str]] = []
        for transition in elem.iterfind(f"{_q('Transitions')}/*"):
            to = transition.findtext(_q("To")) or ""
            when = transition.findtext(_q("DateTime"))
            self.schedule.append((datetime.fromisoformat(when.rstrip("Z")) if when else None, to))
        if not self.schedule and self.groups:
            self.schedule.append((None, next(iter(self.groups))))
        if self.standard is None:
            self.standard = min(self.offsets.values())

    def _group(self, local: datetime) -> list[etree._Element]:
        group = self.schedule[0][1] if self.schedule else ""
        for when, gid in self.schedule:
            if when is None or local >= when:
                group = gid
        return self.groups.get(group, [])

    def _switches(self, year: int, rules: list[etree._Element]) -> list[tuple[datetime, timedelta]]:
        out = []
        for rule in rules:
            local = etree.QName(rule).localname
            offset = self.offsets.get(rule.findtext(_q("To")) or "", self.standard or timedelta(0))
            if local == "RecurringDayTransition":
                month = int(rule.findtext(_q("Month")) or 1)
                weekday = _DAYS.index(rule.findtext(_q("DayOfWeek")) or "Sunday")
                occurrence = int(rule.findtext(_q("Occurrence")) or 1)
                days = [d for d in range(1, calendar.monthrange(year, month)[1] + 1)
                        if calendar.weekday(year, month, d) == weekday]
                day = days[-1] if occurrence == -1 else days[min(occurrence, len(days)) - 1]
                at = datetime(year, month, day) + _duration(rule.findtext(_q("TimeOffset")) or "PT0H")
                out.append((at, offset))
            elif local == "RecurringDateTransition":
                month = int(rule.findtext(_q("Month")) or 1)
                day = min(int(rule.findtext(_q("Day")) or 1), calendar.monthrange(year, month)[1])
                out.append((datetime(year, month, day) + _duration(rule.findtext(_q("TimeOffset")) or "PT0H"), offset))
            elif local == "AbsoluteDateTransition":
                at = datetime.fromisoformat((rule.findtext(_q("DateTime")) or "").rstrip("Z"))
                if at.year == year:
                    out.append((at, offset))
        return sorted(out)

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if dt is None:
            return self.standard or timedelta(0)
        local = dt.replace(tzinfo=None)
        rules = self._group(local)
        plain = [r for r in rules if etree.QName(r).localname == "Transition"]
        dated = [r for r in rules if etree.QName(r).localname != "Transition"]
        if not dated:
            to = plain[0].findtext(_q("To")) if plain else None
            return self.offsets.get(to or "", self.standard or timedelta(0))
        switches = self._switches(local.year, dated)
        current = self._switches(local.year - 1, dated)[-1][1] if self._switches(local.year - 1, dated) \
            else (self.standard or timedelta(0))
        for at, offset in switches:
            if local >= at:
                current = offset
            elif offset < current and dt.fold and local >= at - (current - offset):
                current = offset  # the second pass through the repeated hour of a fall-back night
        return current

    def dst(self, dt: datetime | None) -> timedelta:
        return self.utcoffset(dt) - (self.standard or timedelta(0))

    def tzname(self, dt: datetime | None) -> str:
        return self.name

    def fromutc(self, dt: datetime) -> datetime:
        """The local time of a UTC instant: each switch happens at its local time in the offset before it."""
        utc = dt.replace(tzinfo=None)
        offset = self.utcoffset(utc + (self.standard or timedelta(0)) - timedelta(days=2))
        for year in (utc.year - 1, utc.year, utc.year + 1):
            rules = [r for r in self._group(datetime(year, 7, 1)) if etree.QName(r).localname != "Transition"]
            for at, new in self._switches(year, rules):
                if at - offset <= utc:
                    offset = new
        if not any(etree.QName(r).localname != "Transition" for r in self._group(utc)):
            offset = self.utcoffset(utc)
        local = (utc + offset).replace(tzinfo=self)
        return local if self.utcoffset(local) == offset else local.replace(fold=1)

