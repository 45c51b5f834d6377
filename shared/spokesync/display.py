"""Words and shapes for people: tables, times in the reader's zone, relative times,
whole numbers and percentages, plain names for states. Used by the CLI (and by the
web UI for the same words).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

STATE_WORDS = {
    "ok": "ok",
    "running": "running",
    "failed": "failed",
    "paused": "paused",
    "needs_confirmation": "waiting for your decision",
    "credential_broken": "needs a new sign-in or password",
}

RUN_WORDS = {
    "ok": "done",
    "failed": "failed",
    "paused": "paused",
    "continued": "continued in a new run",
    "skipped": "skipped (another run was going)",
    "interrupted": "stopped before the end",
    "dry_run": "preview",
    "running": "running",
}

KIND_WORDS = {"google": "Google Calendar", "exchange": "Exchange", "graph": "Microsoft 365", "memory": "memory (test)", "memory_contacts": "memory contacts (test)",
              "google_contacts": "Google Contacts", "exchange_contacts": "Exchange contacts",
              "graph_contacts": "Microsoft 365 contacts", "calendar": "calendars", "contacts": "contacts"}

PLAN_WORDS = {
    "hub_create": "add to the hub",
    "hub_update": "update in the hub",
    "hub_delete": "delete from the hub",
    "spoke_create": "add to this calendar",
    "spoke_update": "update in this calendar",
    "spoke_delete": "delete from this calendar",
    "match": "already in the hub: linked, not copied",
    "ambiguous_match": "several possible matches: left unlinked until you decide",
}


def plan_words(action: str, object_type: str = "calendar") -> str:
    """A plan step's words; a contacts spoke is an address book, not a calendar."""
    words = PLAN_WORDS.get(action, action.replace("_", " "))
    return words.replace("this calendar", "this address book") if object_type == "contacts" else words


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain text table: a header, a rule, one line per row; columns as wide as their widest cell."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def local_time(value: Any, zone: tzinfo | None = None) -> str:
    """'2026-12-01 11:05 CET': the reader's zone (the machine's, unless given), with its name."""
    when = parse_time(value)
    if when is None:
        return "-"
    local = when.astimezone(zone) if zone is not None else when.astimezone()
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".rstrip()


def relative(value: Any, now: datetime) -> str:
    """'now', 'in 5 minutes', '3 hours ago', 'in 6 days'."""
    when = parse_time(value)
    if when is None:
        return "-"
    seconds = (when - now).total_seconds()
    future = seconds > 0
    size = abs(seconds)
    if size < 45:
        return "now"
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if size >= length * 0.95 or unit == "minute":
            n = max(1, round(size / length))
            words = f"{n} {unit}{'' if n == 1 else 's'}"
            return f"in {words}" if future else f"{words} ago"
    return "now"  # pragma: no cover - the loop always returns


def when(value: Any, now: datetime, zone: tzinfo | None = None) -> str:
    """Local time with the relative time: '2026-12-07 09:00 CET (in 6 days)'."""
    if parse_time(value) is None:
        return "-"
    return f"{local_time(value, zone)} ({relative(value, now)})"


def percent(share: float) -> str:
    """0.25 -> '25 %', 0.125 -> '12.5 %'."""
    return f"{share * 100:g} %"


def interval(seconds: float) -> str:
    """300 -> 'every 5 minutes'."""
    s = int(seconds)
    if s % 3600 == 0 and s >= 3600:
        n = s // 3600
        return "every hour" if n == 1 else f"every {n} hours"
    if s % 60 == 0 and s >= 60:
        n = s // 60
        return "every minute" if n == 1 else f"every {n} minutes"
    return f"every {s} seconds"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def conflict_title(conflict: dict[str, Any]) -> str:
    for side in ("hub_version", "spoke_version"):
        version = conflict.get(side) or {}
        if isinstance(version, dict) and version.get("title"):
            return str(version["title"])
    return "(no title)"


def address_words(kind: str, address: dict[str, Any]) -> str:
    if kind == "google":
        return str(address.get("calendar_id", ""))
    if kind == "google_contacts":
        return f"contact group {address.get('group', '')}"
    if kind == "graph_contacts":
        return f"{address.get('mailbox', '')} · {address.get('folder') or 'Contacts'}"
    if kind in ("exchange", "exchange_contacts"):
        where = "public folder" if address.get("public") else "mailbox folder"
        return f"{where} {address.get('path') or address.get('folder_name') or address.get('folder_id', '')}"
    return ", ".join(f"{k}={v}" for k, v in address.items())
