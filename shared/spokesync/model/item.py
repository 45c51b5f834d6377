"""What a hub item holds: a calendar `Event` or a `Contact` (one kind per hub).

Plain data helpers over both kinds: their serialisation for the hub stores
(a contact's dict is tagged with its object type; an untagged dict is an
event, as every item stored before contacts existed), the words a person
reads for an item (history, pauses, previews), and narrowing helpers for code
that handles one kind only (a calendar connector narrows with `as_event`).
The engine's per-kind behaviour (projection, filters, merge) is in
`spokesync.engine.kinds`.
"""

from __future__ import annotations

from typing import Any, Literal

from spokesync.model import contact as contact_model
from spokesync.model.contact import Contact, contact_from_dict, contact_to_dict
from spokesync.model.event import Event, event_from_dict, event_to_dict

Item = Event | Contact
ObjectType = Literal["calendar", "contacts"]
OBJECT_TYPES: tuple[ObjectType, ...] = ("calendar", "contacts")


def object_type_of(item: Item) -> ObjectType:
    return "contacts" if isinstance(item, Contact) else "calendar"


def as_event(item: Item | None) -> Event:
    """The item as a calendar event (code that only ever sees calendar items)."""
    if not isinstance(item, Event):
        raise TypeError(f"a calendar event was expected, not {type(item).__name__}")
    return item


def as_contact(item: Item | None) -> Contact:
    """The item as a contact (code that only ever sees contacts)."""
    if not isinstance(item, Contact):
        raise TypeError(f"a contact was expected, not {type(item).__name__}")
    return item


def item_to_dict(item: Item) -> dict[str, Any]:
    if isinstance(item, Contact):
        return {"object_type": "contacts", **contact_to_dict(item)}
    return event_to_dict(item)


def item_from_dict(raw: dict[str, Any]) -> Item:
    if raw.get("object_type") == "contacts":
        return contact_from_dict(raw)
    return event_from_dict(raw)


def title(item: Item) -> str:
    """The words a person recognises the item by: an event's title, a contact's name."""
    if isinstance(item, Contact):
        return item.name
    return item.title


def label(item: Item) -> str:
    """`title<TAB>detail`: an event's start (ISO), a contact's first e-mail address. A tombstone
    keeps it so that a paused deletion can still say what it is about."""
    if isinstance(item, Contact):
        return contact_model.label(item)
    start = item.start.isoformat() if item.start is not None else ""
    return f"{item.title}\t{start}"
