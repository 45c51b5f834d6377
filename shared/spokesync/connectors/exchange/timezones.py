"""Items whose time zone is given by definition, not by a Windows id.

Real servers return `StartTimeZone` elements with an Id that is no Windows zone id ("Customized Time
Zone", a display name, a localized name, an empty Id) but a full Periods/Transitions definition
(exchangelib issues #310, #314, #255); exchangelib then has no zone (None), which read as UTC would move
every such event. Here the definition is compared with the IANA zones that Windows zones map to
(CLDR's windowsZones, shipped with exchangelib): the first zone with the same offsets and the same
daylight-saving switches in this year and the next is the item's zone. No match: a fixed-offset zone
with the definition's standard offset (Etc/GMT±N), never UTC unless the definition says so.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from lxml import etree

T = "http://schemas.microsoft.com/exchange/services/2006/types"
_WEEKDAYS = {"Monday": 0, "Tuesday": 1, "Wednesday": 2, "Thursday": 3, "Friday": 4, "Saturday": 5, "Sunday": 6}


def _minutes(duration: str) -> int:
    match = re.fullmatch(r"(-)?P(?:\d+D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:\d+S)?", duration.strip())
    if not match:
        raise ValueError(duration)
    total = int(match.group(2) or 0) * 60 + int(match.group(3) or 0)
    return -total if match.group(1) else total


def _switches(elem: etree._Element, year: int) -> tuple[int, list[tuple[datetime, int]]]:
    """(standard UTC offset in minutes, [(UTC instant of a switch, UTC offset after it)]) for `year`."""
    offsets = {p.get("Id"): -_minutes(p.get("Bias") or "PT0H") for p in elem.iter(f"{{{T}}}Period")}
    standard = next((-_minutes(p.get("Bias") or "PT0H") for p in elem.iter(f"{{{T}}}Period")
                     if (p.get("Name") or "").lower() == "standard"), min(offsets.values(), default=0))
    groups = {g.get("Id"): g for g in elem.iter(f"{{{T}}}TransitionsGroup")}
    in_force = None
    for transition in elem.findall(f"{{{T}}}Transitions/*"):
        when = transition.findtext(f"{{{T}}}DateTime")
        if when is None or datetime.fromisoformat(when.rstrip("Z")).year <= year:
            in_force = groups.get(transition.findtext(f"{{{T}}}To"))
    if in_force is None and groups:
        in_force = next(iter(groups.values()))
    local_switches: list[tuple[datetime, int]] = []
    for rule in in_force.iter(f"{{{T}}}RecurringDayTransition") if in_force is not None else ():
        month = int(rule.findtext(f"{{{T}}}Month") or 1)
        weekday = _WEEKDAYS[rule.findtext(f"{{{T}}}DayOfWeek") or "Sunday"]
        occurrence = int(rule.findtext(f"{{{T}}}Occurrence") or 1)
        days = [d for d in range(1, calendar.monthrange(year, month)[1] + 1) if calendar.weekday(year, month, d) == weekday]
        day = days[-1] if occurrence < 0 or occurrence > len(days) else days[occurrence - 1]
        at = datetime(year, month, day) + timedelta(minutes=_minutes(rule.findtext(f"{{{T}}}TimeOffset") or "PT0H"))
        local_switches.append((at, offsets.get(rule.findtext(f"{{{T}}}To"), standard)))
    local_switches.sort()
    out, before = [], local_switches[-1][1] if local_switches else standard
    for at, after in local_switches:
        out.append(((at - timedelta(minutes=before)).replace(tzinfo=UTC), after))
        before = after
    return standard, out


@cache
def _candidates() -> tuple[str, ...]:
    from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

    return tuple(dict.fromkeys(MS_TIMEZONE_TO_IANA_MAP.values()))


def _offset(zone: ZoneInfo, instant: datetime) -> int:
    delta = instant.astimezone(zone).utcoffset()
    return int(delta.total_seconds() // 60) if delta is not None else 0


def iana_for_definition(elem: etree._Element, year: int | None = None) -> str | None:
    """The IANA zone whose rules match the definition in `year` and the next (None: no definition)."""
    if elem.find(f"{{{T}}}Periods") is None:
        return None
    year = year or datetime.now(UTC).year
    checks: list[tuple[datetime, int]] = []
    standard, switches = _switches(elem, year)
    if standard == 0 and not switches:
        return "UTC"  # tzone://Microsoft/Utc and the like
    for y in (year, year + 1):
        standard, switches = _switches(elem, y)
        if not switches:
            checks += [(datetime(y, 1, 15, 12, tzinfo=UTC), standard), (datetime(y, 7, 15, 12, tzinfo=UTC), standard)]
        before = switches[-1][1] if switches else standard
        for instant, after in switches:
            checks += [(instant - timedelta(minutes=1), before), (instant, after)]
            before = after
    for name in _candidates():
        zone = ZoneInfo(name)
        if all(_offset(zone, instant) == offset for instant, offset in checks):
            return name
    if standard % 60 == 0 and -14 * 60 <= standard <= 12 * 60:
        hours = -standard // 60  # Etc/GMT signs are inverted: UTC+01:00 is Etc/GMT-1
        return "UTC" if hours == 0 else f"Etc/GMT{hours:+d}"
    return None
