"""Google's documented write rules and rewrites for events, as pure functions.

Each rule names its source. Where Google documents the rule but not the exact
error text, the reason/message below is the one users report seeing (quoted
issue threads), else marked as ours.

- Service accounts cannot set attendees without domain-wide delegation:
  403 `forbiddenForServiceAccounts` (discovery document, `Event.attendees`:
  "Service accounts need to use domain-wide delegation of authority to
  populate the attendee list"; error body as reported in
  spatie/laravel-google-calendar#242, googleapis/google-api-ruby-client#14631).
- Events the calendar does not organise (invitations) refuse edits of shared
  fields: 403 `forbiddenForNonOrganizer` "Shared properties can only be changed
  by the organizer of the event." (kewisch/gdata-provider#426, #728). What an
  attendee may change on its copy: its own `responseStatus`, `reminders`,
  `colorId`, `transparency`, `extendedProperties.private` (Event.reminders:
  "for the authenticated user"; extendedProperties.private: "private to the
  copy of the event that appears on this calendar"), unless the organiser
  set `guestsCanModify`.
- `eventType`: "This cannot be modified after the event is created";
  "fromGmail ... cannot be created" (discovery document). Birthday events are
  all-day with a yearly recurrence and only type "birthday" can be created
  (EventBirthdayProperties.type); out-of-office, focus-time and working
  location events live on a user's primary calendar, and birthday / fromGmail
  events allow only a few fields to change ("Event types" guide,
  developers.google.com/calendar/api/guides/event-types). The error reason
  `eventTypeRestriction` is ours: Google's text for these is not published.
- Rewrites Google does on write: `organizer` / `self` flags on attendees
  (EventAttendee.organizer, .self: "Read-only"), `responseStatus` defaulting to
  `needsAction`, and HTML descriptions sanitised (Event.description "Can
  contain HTML"; script/style content, event-handler attributes and
  non-http(s)/mailto links are dropped — the allow-list is ours, Google does
  not publish one).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

from spokesync.sandbox.google_calendar.common import ApiError

SPECIAL_TYPES = ("birthday", "fromGmail", "workingLocation", "outOfOffice", "focusTime")
PRIMARY_ONLY_TYPES = ("workingLocation", "outOfOffice", "focusTime")
# Fields an attendee may change on its own copy of an invitation.
ATTENDEE_OWN_FIELDS = frozenset({"reminders", "colorId", "transparency", "extendedProperties"})
# Fields that may change on special event types ("Event types" guide).
_TYPE_MUTABLE = {
    "fromGmail": frozenset({"colorId", "reminders", "visibility", "transparency", "status", "extendedProperties"}),
    "birthday": frozenset({"colorId", "summary", "reminders", "start", "end", "extendedProperties"}),
}
_IGNORED = frozenset({"etag", "updated", "sequence", "kind", "id", "htmlLink", "created", "creator", "organizer",
                      "iCalUID", "recurringEventId", "originalStartTime", "status"})


def check_attendees(body: dict[str, Any], principal_is_service_account: bool) -> None:
    if principal_is_service_account and body.get("attendees"):
        raise ApiError(403, "forbiddenForServiceAccounts",
                       "Service accounts cannot invite attendees without Domain-Wide Delegation of Authority.",
                       "calendar")


def _restriction(message: str) -> ApiError:
    return ApiError(400, "eventTypeRestriction", message, "calendar", location="eventType", location_type="other")


def check_new_event_type(body: dict[str, Any], primary: bool) -> None:
    kind = body.get("eventType") or "default"
    if kind == "fromGmail":
        raise _restriction("Events of type fromGmail cannot be created.")
    if kind == "birthday":
        props = body.get("birthdayProperties") or {}
        rules = [str(r).upper() for r in body.get("recurrence") or ()]
        if "date" not in (body.get("start") or {}) or not any("FREQ=YEARLY" in r for r in rules):
            raise _restriction("A birthday event must be an all-day event with a yearly recurrence.")
        if props.get("type", "birthday") != "birthday":
            raise _restriction("Only birthday events of type birthday can be created.")
    if kind in PRIMARY_ONLY_TYPES and not primary:
        raise _restriction(f"Events of type {kind} can only be created on a primary calendar.")
    if kind in ("outOfOffice", "focusTime") and "date" in (body.get("start") or {}):
        raise _restriction(f"Events of type {kind} cannot be all-day events.")


def _changed(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    keys = (set(before) | set(after)) - _IGNORED
    return {k for k in keys if not k.startswith("_") and before.get(k) != after.get(k)}


def check_update(before: dict[str, Any], after: dict[str, Any], calendar_id: str) -> None:
    """A write by the calendar's user (API) of an existing event."""
    if (after.get("eventType") or "default") != (before.get("eventType") or "default"):
        raise _restriction("The type of an event cannot be changed.")
    changed = _changed(before, after)
    mutable = _TYPE_MUTABLE.get(str(before.get("eventType")))
    if mutable is not None and changed - mutable:
        raise _restriction(f"Events of type {before.get('eventType')} allow changes of "
                           f"{', '.join(sorted(mutable))} only.")
    if is_invitation(before, calendar_id) and not before.get("guestsCanModify"):
        shared = changed - ATTENDEE_OWN_FIELDS
        if "attendees" in shared and _same_except_own_response(before, after, calendar_id):
            shared.discard("attendees")
        if "extendedProperties" in changed and (before.get("extendedProperties") or {}).get("shared") != (
                after.get("extendedProperties") or {}).get("shared"):
            shared.add("extendedProperties.shared")
        if shared:
            raise ApiError(403, "forbiddenForNonOrganizer",
                           "Shared properties can only be changed by the organizer of the event.", "calendar")


def is_invitation(raw: dict[str, Any], calendar_id: str) -> bool:
    organizer = (raw.get("organizer") or {}).get("email")
    return bool(organizer) and str(organizer).lower() != calendar_id.lower()


def _same_except_own_response(before: dict[str, Any], after: dict[str, Any], calendar_id: str) -> bool:
    def strip(attendees: Any) -> list[dict[str, Any]]:
        out = []
        for a in attendees or ():
            a = {k: v for k, v in a.items() if k not in ("self", "organizer")}
            if str(a.get("email", "")).lower() == calendar_id.lower():
                a.pop("responseStatus", None)
            out.append(a)
        return sorted(out, key=lambda a: str(a.get("email", "")).lower())

    return strip(before.get("attendees")) == strip(after.get("attendees"))


# ------------------------------------------------------------------ rewrites


def rewrite(raw: dict[str, Any], calendar_id: str) -> None:
    """What Google changes in a stored event after a write (in place)."""
    organizer = str((raw.get("organizer") or {}).get("email", "")).lower()
    for attendee in raw.get("attendees") or ():
        email = str(attendee.get("email", "")).lower()
        attendee.setdefault("responseStatus", "needsAction")
        if email == calendar_id.lower():
            attendee["self"] = True
        else:
            attendee.pop("self", None)
        if email and email == organizer:
            attendee["organizer"] = True
        else:
            attendee.pop("organizer", None)
    description = raw.get("description")
    if isinstance(description, str) and "<" in description:
        raw["description"] = sanitize_html(description)


_ALLOWED_TAGS = frozenset({"a", "b", "strong", "i", "em", "u", "br", "p", "ul", "ol", "li", "span", "div", "hr",
                           "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code", "s", "sub", "sup"})
_DROP_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "noscript", "template"})
_VOID = frozenset({"br", "hr"})
_SAFE_HREF = re.compile(r"^(https?:|mailto:)", re.IGNORECASE)


class _Sanitizer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT:
            self.skip += 1
            return
        if self.skip or tag not in _ALLOWED_TAGS:
            return
        kept = ""
        if tag == "a":
            href = next((v for k, v in attrs if k == "href" and v), None)
            if href and _SAFE_HREF.match(href.strip()):
                kept = f' href="{html.escape(href.strip(), quote=True)}"'
        self.out.append(f"<{tag}{kept}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID and not self.skip:
            self.out.append(f"<{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_CONTENT:
            self.skip = max(0, self.skip - 1)
            return
        if not self.skip and tag in _ALLOWED_TAGS and tag not in _VOID:
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(html.escape(data, quote=False))


def sanitize_html(text: str) -> str:
    parser = _Sanitizer()
    parser.feed(text)
    parser.close()
    return "".join(parser.out)
