"""Item kinds: what the engine knows about one object type (calendar events, contacts).

The planner, the runner and the guards handle hub items only through an
`ItemKind`, chosen by the hub's object type, so that every invariant (no echo,
no duplicates, guards, conflicts, leases, the deletion budget, continuations)
holds for every kind with one implementation. A kind says:

- its canonical type and the fields a spoke can hold (`all_fields`, and the
  `optional_fields` a sync option switches off),
- its content hash (echo suppression compares only hashes) and `restrict`,
- which fields a spoke exchanges with the hub and compares (`exchanged_fields`,
  `compared_fields`), what the hub writes into a spoke (`project`), and how a
  spoke's copy becomes the hub's new version (`merge_inbound`),
- membership: `passes_filters` (what a spoke shares) and `in_window` (what is
  created at all),
- serialisation and the words a person reads (`to_dict`, `title`, `label`),
- how the same item already present on two sides is recognised (`match_keys`,
  see docs/decisions/2026-12-01-matching.md).

Calendar behaviour lives in `engine.rules` (unchanged); contacts in this module.
Pure functions; the engine imports nothing above the model and the ports.
"""

from __future__ import annotations

import functools
import operator
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from spokesync.engine import rules
from spokesync.model import contact as contact_model
from spokesync.model import event as event_model
from spokesync.model import item as item_model
from spokesync.model.contact import Contact
from spokesync.model.event import Event
from spokesync.model.hub import SyncOptions
from spokesync.model.item import Item, ObjectType, as_contact, as_event

NO_LIMITS: Mapping[str, int] = {}


class ItemKind(Protocol):
    object_type: ObjectType
    all_fields: frozenset[str]
    optional_fields: Mapping[str, frozenset[str]]
    # SyncOptions fields that mean something for this kind (the service refuses the others)
    option_names: frozenset[str]
    filter_names: frozenset[str]

    @property
    def item_type(self) -> type: ...
    def blank(self) -> Item: ...
    def content_hash(self, item: Item, names: frozenset[str]) -> str: ...
    def exchanged_fields(self, options: SyncOptions, capabilities: frozenset[str]) -> frozenset[str]: ...
    def compared_fields(self, options: SyncOptions, capabilities: frozenset[str],
                        created_by_hub: bool) -> frozenset[str]: ...
    def project(self, item: Item, options: SyncOptions, capabilities: frozenset[str], created_by_hub: bool,
                limits: Mapping[str, int] = NO_LIMITS) -> Item: ...
    def merge_inbound(self, hub_item: Item | None, spoke_item: Item, names: frozenset[str],
                      options: SyncOptions | None = None, limits: Mapping[str, int] = NO_LIMITS) -> Item: ...
    def hashes_alike(self, source: Item, copy: Item, names: frozenset[str]) -> bool:
        """Does `copy` hash over `names` exactly like `source`, known without hashing either? True
        only when every value that hash reads is the very same object in both (a merge or a
        projection that took those fields as they are): see docs/decisions/2026-12-01-hash-once.md."""
        ...
    def passes_filters(self, item: Item, options: SyncOptions) -> bool: ...
    def in_window(self, item: Item, options: SyncOptions, now: datetime) -> bool: ...
    def belongs(self, item: Item, options: SyncOptions, now: datetime) -> bool: ...
    def to_dict(self, item: Item) -> dict[str, Any]: ...
    def from_dict(self, raw: dict[str, Any]) -> Item: ...
    def title(self, item: Item) -> str: ...
    def label(self, item: Item) -> str: ...
    def match_keys(self, item: Item) -> tuple[str, ...]:
        """Keys under which the same item on another side is recognised (empty: never matched)."""
        ...
    def combine(self, hub_item: Item, spoke_item: Item, names: frozenset[str]) -> Item:
        """The hub's version of two matched copies: the hub's values, with what only the spoke's
        copy holds (among `names`) added, so that linking loses nothing."""
        ...
    def matches_by_default(self) -> bool:
        """Is `match_existing` on when a spoke leaves it unset?"""
        ...


# Options every kind honours (the budget, deletions, conflicts, direction, polling, the spoke's
# category stamp); the rest belong to one kind.
COMMON_OPTIONS = frozenset({
    "direction", "filters", "deletions", "conflict_policy", "max_delete_share", "max_delete_count",
    "deletion_window_h", "poll_interval_s", "spoke_category", "match_existing",
})
CALENDAR_OPTIONS = COMMON_OPTIONS | {
    "days_past", "days_future", "sync_description", "sync_location", "sync_attendees", "sync_reminders",
    "privacy_mode", "placeholder_title", "meetings_as_appointments",
}
CONTACTS_OPTIONS = COMMON_OPTIONS | {"sync_notes", "sync_birthday", "sync_photo"}
CALENDAR_FILTERS = frozenset({"categories", "subject_contains", "show_as", "exclude_all_day", "exclude_private"})
CONTACTS_FILTERS = frozenset({"categories", "has_email", "companies", "email_domains"})


# --------------------------------------------------------------- calendar


class CalendarKind:
    """Calendar events: the rules of `engine.rules`, unchanged."""

    object_type: ObjectType = "calendar"
    item_type = Event
    all_fields = event_model.ALL_FIELDS
    optional_fields: Mapping[str, frozenset[str]] = event_model.OPTIONAL_FIELDS
    option_names = CALENDAR_OPTIONS
    filter_names = CALENDAR_FILTERS

    def blank(self) -> Item:
        return Event()

    def content_hash(self, item: Item, names: frozenset[str]) -> str:
        return rules.content_hash(as_event(item), names)  # (looked up on `rules`: benchmarks count it)

    def exchanged_fields(self, options: SyncOptions, capabilities: frozenset[str]) -> frozenset[str]:
        return rules.exchanged_fields(options, capabilities)

    def compared_fields(self, options: SyncOptions, capabilities: frozenset[str],
                        created_by_hub: bool) -> frozenset[str]:
        return rules.compared_fields(options, capabilities, created_by_hub)

    def project(self, item: Item, options: SyncOptions, capabilities: frozenset[str], created_by_hub: bool,
                limits: Mapping[str, int] = NO_LIMITS) -> Item:
        return rules.project(as_event(item), options, capabilities, created_by_hub)

    def merge_inbound(self, hub_item: Item | None, spoke_item: Item, names: frozenset[str],
                      options: SyncOptions | None = None, limits: Mapping[str, int] = NO_LIMITS) -> Item:
        return rules.merge_inbound(None if hub_item is None else as_event(hub_item), as_event(spoke_item),
                                   names, options)

    def hashes_alike(self, source: Item, copy: Item, names: frozenset[str]) -> bool:
        # (EXDATE lines and cancelled overrides fold into `cancelled`: those fields must all be
        # hashed or none, else the hash reads fields outside `names`)
        return rules.self_contained(names) and _same_values(source, copy, _read_by_hash(names, "description"))

    def passes_filters(self, item: Item, options: SyncOptions) -> bool:
        return rules.passes_filters(as_event(item), options)

    def in_window(self, item: Item, options: SyncOptions, now: datetime) -> bool:
        return rules.in_window(as_event(item), options, now)

    def belongs(self, item: Item, options: SyncOptions, now: datetime) -> bool:
        return rules.belongs(as_event(item), options, now)

    def to_dict(self, item: Item) -> dict[str, Any]:
        return item_model.item_to_dict(item)

    def from_dict(self, raw: dict[str, Any]) -> Item:
        return event_model.event_from_dict(raw)

    def title(self, item: Item) -> str:
        return item_model.title(item)

    def label(self, item: Item) -> str:
        return item_model.label(item)

    def match_keys(self, item: Item) -> tuple[str, ...]:
        """The same meeting already in two calendars: same title, start and end (an event's
        iCalUID is not in the canonical model; each service assigns its own). Only used when a
        spoke's `match_existing` is on (off by default for calendars: see the decision record)."""
        event = as_event(item)
        if event.start is None or not event.title.strip():
            return ()
        end = "" if event.end is None else _instant(event.end)
        return (f"event:{_fold(event.title)}|{_instant(event.start)}|{end}",)

    def combine(self, hub_item: Item, spoke_item: Item, names: frozenset[str]) -> Item:
        return hub_item  # the same meeting: the hub's copy stands (the spoke's is brought up to date)

    def matches_by_default(self) -> bool:
        return False


@functools.lru_cache(maxsize=128)
def _read_by_hash(names: frozenset[str], text_field: str) -> Callable[[Any], Any]:
    """The values a content hash over `names` reads from an item, in one call: the fields
    themselves, and the formatted twin (`<text_field>_html`) of the text field it derives from."""
    read = set(names)
    if text_field in read:
        read.add(f"{text_field}_html")
    ordered = sorted(read)
    if len(ordered) == 1:
        one = ordered[0]
        return lambda item: (getattr(item, one),)
    return operator.attrgetter(*ordered) if ordered else (lambda item: ())


def _same_values(source: Any, copy: Any, read: Callable[[Any], Any]) -> bool:
    """Is every value `read` takes from `copy` the same object as in `source` (not merely equal:
    the same object is the same value however the hash treats it)?"""
    if source is copy:
        return True
    return all(map(operator.is_, read(source), read(copy)))  # (one getter for both: the same length)


def _instant(value: Any) -> str:
    """A start or end as one string per instant (the same meeting in two zones is one key)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).isoformat()
    return str(value.isoformat())


# --------------------------------------------------------------- contacts


def _fold(text: str) -> str:
    """A name as matching compares it: accents, case and spacing folded."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().split())


class ContactsKind:
    """Contacts: typed, ordered lists; fixed slots on some spokes (Exchange holds three e-mail
    addresses). What a spoke cannot hold stays in the hub: the spoke is given the entries that fit
    (`model.contact.fit`) and its edits are merged back with the hub's overflow kept
    (`model.contact.keep_overflow`), so a fourth e-mail address is never erased."""

    object_type: ObjectType = "contacts"
    item_type = Contact
    all_fields = contact_model.ALL_FIELDS
    optional_fields: Mapping[str, frozenset[str]] = contact_model.OPTIONAL_FIELDS
    option_names = CONTACTS_OPTIONS
    filter_names = CONTACTS_FILTERS

    def blank(self) -> Item:
        return Contact()

    def content_hash(self, item: Item, names: frozenset[str]) -> str:
        return contact_model.content_hash(as_contact(item), names)

    def exchanged_fields(self, options: SyncOptions, capabilities: frozenset[str]) -> frozenset[str]:
        names = set(capabilities & contact_model.ALL_FIELDS)
        switches = {"notes": options.sync_notes, "birthday": options.sync_birthday, "photo": options.sync_photo}
        for switch, enabled in switches.items():
            if not enabled:
                names -= contact_model.OPTIONAL_FIELDS[switch]
        return frozenset(names)

    def compared_fields(self, options: SyncOptions, capabilities: frozenset[str],
                        created_by_hub: bool) -> frozenset[str]:
        return self.exchanged_fields(options, capabilities)

    def project(self, item: Item, options: SyncOptions, capabilities: frozenset[str], created_by_hub: bool,
                limits: Mapping[str, int] = NO_LIMITS) -> Item:
        names = self.exchanged_fields(options, capabilities)
        out = contact_model.restrict(as_contact(item), Contact(), names | {"modified"})
        if created_by_hub and options.spoke_category and "categories" in names:
            out = replace(out, categories=tuple(sorted({*out.categories, options.spoke_category})))
        return contact_model.fit(out, dict(limits)) if limits else out

    def merge_inbound(self, hub_item: Item | None, spoke_item: Item, names: frozenset[str],
                      options: SyncOptions | None = None, limits: Mapping[str, int] = NO_LIMITS) -> Item:
        spoke = as_contact(spoke_item)
        if options is not None and options.spoke_category and options.spoke_category in spoke.categories:
            spoke = replace(spoke, categories=tuple(c for c in spoke.categories if c != options.spoke_category))
        base = as_contact(hub_item) if hub_item is not None else Contact()
        if hub_item is not None and limits:
            spoke = contact_model.keep_overflow(base, spoke, {k: v for k, v in limits.items() if k in names})
        if "photo" in names and spoke.photo is None and base.photo is not None and not base.photo.data:
            # the hub holds this photo's hash only (too large to keep, `PHOTO_BYTES_MAX`): it could not
            # give it to this spoke, so the spoke's lack of a picture erases nothing
            spoke = replace(spoke, photo=base.photo)
        merged = contact_model.restrict(spoke, base, names)
        return replace(merged, modified=spoke.modified)

    def hashes_alike(self, source: Item, copy: Item, names: frozenset[str]) -> bool:
        # (each field is hashed on its own; the hub's overflow appended to a list, a kept photo or
        # a removed category stamp make new values: those copies are hashed afresh)
        return _same_values(source, copy, _read_by_hash(names, "notes"))

    def passes_filters(self, item: Item, options: SyncOptions) -> bool:
        contact = as_contact(item)
        f = options.filters
        if f.categories and not set(f.categories) & set(contact.categories):
            return False
        if f.has_email and not any(e.address.strip() for e in contact.emails):
            return False
        if f.companies or f.email_domains:
            # "company or e-mail domain": either identifies the organisation a contact belongs to
            company = _fold(contact.company)
            domains = {e.address.strip().lower().rpartition("@")[2] for e in contact.emails}
            wanted_domains = {d.strip().lower().lstrip("@") for d in f.email_domains}
            if not (company and company in {_fold(c) for c in f.companies}) and not (domains & wanted_domains):
                return False
        return True

    def in_window(self, item: Item, options: SyncOptions, now: datetime) -> bool:
        return True  # contacts have no time: every contact that passes the filters is created

    def belongs(self, item: Item, options: SyncOptions, now: datetime) -> bool:
        return self.passes_filters(item, options)

    def to_dict(self, item: Item) -> dict[str, Any]:
        return item_model.item_to_dict(item)

    def from_dict(self, raw: dict[str, Any]) -> Item:
        return contact_model.contact_from_dict(raw)

    def title(self, item: Item) -> str:
        return item_model.title(item)

    def label(self, item: Item) -> str:
        return item_model.label(item)

    def match_keys(self, item: Item) -> tuple[str, ...]:
        """The same person: each e-mail address (case folded); without one, the normalised name
        with each phone number."""
        contact = as_contact(item)
        emails = tuple(dict.fromkeys(f"email:{e.address.strip().lower()}" for e in contact.emails
                                     if e.address.strip()))
        if emails:
            return emails
        name = _fold(contact.name)
        phones = [contact_model.normalise_phone(p.number) for p in contact.phones]
        return tuple(dict.fromkeys(f"name-phone:{name}|{p}" for p in phones if p and name))

    def combine(self, hub_item: Item, spoke_item: Item, names: frozenset[str]) -> Item:
        hub, spoke = as_contact(hub_item), as_contact(spoke_item)
        changes: dict[str, Any] = {}
        for name in names:
            mine, theirs = getattr(hub, name), getattr(spoke, name)
            if isinstance(mine, tuple):
                keys = {_entry_key(name, v) for v in mine}
                extra = tuple(v for v in theirs if _entry_key(name, v) not in keys)
                if extra:
                    changes[name] = mine + extra
            elif not mine and theirs:
                changes[name] = theirs
        if "notes" in changes and "notes_html" not in changes and not hub.notes_html:
            changes["notes_html"] = spoke.notes_html
        return replace(hub, **changes) if changes else hub

    def matches_by_default(self) -> bool:
        return True


def _entry_key(name: str, value: Any) -> Any:
    """When two list entries are the same one (an address in another case, a reformatted number)."""
    if name == "emails":
        return value.address.strip().lower()
    if name == "phones":
        return contact_model.normalise_phone(value.number)
    if isinstance(value, str):
        return _fold(value)
    return value


CALENDAR = CalendarKind()
CONTACTS = ContactsKind()
KINDS: dict[str, ItemKind] = {"calendar": CALENDAR, "contacts": CONTACTS}


def kind_for(object_type: str) -> ItemKind:
    """The kind of a hub's items, by the hub's object type."""
    try:
        return KINDS[object_type]
    except KeyError:
        raise ValueError(f"unknown object type {object_type!r}; known: {', '.join(sorted(KINDS))}") from None


def kind_of(item: Item) -> ItemKind:
    return KINDS[item_model.object_type_of(item)]
