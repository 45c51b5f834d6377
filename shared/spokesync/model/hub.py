"""Hubs, spokes, their sync options, hub items, links, runs: plain data.

Everything here serialises to JSON-safe dicts (`to_dict` / `from_dict`) so
that every HubStore adapter stores the same shapes.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:  # the item model (events, contacts) is loaded when a hub item is: not for a channel or spoke
    from spokesync.model.item import Item, ObjectType

Direction = Literal["to_hub", "two_way"]
PrivacyMode = Literal["as_is", "private", "busy_only"]
Deletions = Literal["propagate", "keep"]
SpokeState = Literal["ok", "running", "failed", "paused", "needs_confirmation", "credential_broken"]

T = TypeVar("T")


def _from_dict(cls: type[T], raw: dict[str, Any]) -> T:
    names = _field_names(cls)  # type: ignore[arg-type]
    return cls(**{k: v for k, v in raw.items() if k in names})


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    """A dataclass's field names, looked up once per class (records are read per item)."""
    return frozenset(f.name for f in fields(cls))


@dataclass(frozen=True)
class Filters:
    """A spoke's conditions: an item is shared with the spoke only when it meets every one.

    Both kinds: `categories` (calendar categories; contacts: Exchange categories / Google
    contact groups) — the item carries one of these (empty: any).
    Calendar only: `subject_contains`, `show_as` (allowed busy statuses), `exclude_all_day`,
    `exclude_private`.
    Contacts only: `has_email` (the contact has an e-mail address); `companies` / `email_domains`
    (the contact's company is one of these, or one of its e-mail addresses is in one of these
    domains: either identifies the organisation; empty: any).
    The service refuses a condition that means nothing for the hub's object type."""

    categories: tuple[str, ...] = ()
    subject_contains: str = ""
    show_as: tuple[str, ...] = ()
    exclude_all_day: bool = False
    exclude_private: bool = False
    has_email: bool = False
    companies: tuple[str, ...] = ()
    email_domains: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Filters:
        raw = dict(raw)
        for name in ("categories", "show_as", "companies", "email_domains"):
            raw[name] = tuple(raw.get(name, ()))
        return _from_dict(cls, raw)


@dataclass(frozen=True)
class SyncOptions:
    """Per-spoke options; every one is honoured by the planner.

    Some mean something for one object type only (the service refuses the others for a hub of
    the other type: `spokesync.engine.kinds.*_OPTIONS`, docs/decisions/2026-12-01-contact-options.md):
    calendar: the date window, `sync_description/location/attendees/reminders`, `privacy_mode`,
    `placeholder_title`, `meetings_as_appointments`; contacts: `sync_notes`, `sync_birthday`
    (birthday and anniversary), `sync_photo`. Both: direction, filters (see `Filters`), deletions,
    conflict policy, the deletion budget, polling, `spoke_category`, `match_existing`."""

    # "Allow the hub to create and sync items in this spoke": two_way.
    direction: Direction = "to_hub"
    # Date window: items whose time lies outside are not created on either side.
    # None means unbounded.
    days_past: int | None = None
    days_future: int | None = None
    filters: Filters = field(default_factory=Filters)
    # Optional fields carried to and from this spoke.
    sync_description: bool = True
    sync_location: bool = True
    sync_attendees: bool = True
    sync_reminders: bool = True
    privacy_mode: PrivacyMode = "as_is"
    placeholder_title: str = "Busy"
    deletions: Deletions = "propagate"
    # "latest" | "hub" | "spoke:<spoke id>"
    conflict_policy: str = "latest"
    # Deletion budget (docs/decisions/2026-12-01-deletion-budget.md): deletions are counted
    # across runs over a sliding window of `deletion_window_h` hours (reset by an
    # administrator's confirmation); a run that would take the count past both
    # `max_delete_count` items and `max_delete_share` of the spoke's (or the hub's)
    # items pauses before deleting anything, until an administrator confirms or refuses.
    max_delete_share: float = 0.25
    max_delete_count: int = 10
    deletion_window_h: int = 24
    # Polling interval for spokes without push (seconds).
    poll_interval_s: int = 300
    # CiraHub's two calendar options (docs/decisions/2026-12-01-for-people.md):
    # "categorize data in spoke": this category is stamped on the items the hub creates in this
    # spoke (and never carried back into the hub); "" for none.
    spoke_category: str = ""
    # "sync meetings as appointments": the copies the hub creates here carry no attendees and no
    # organiser, so nobody becomes an organiser or gets mail; the hub keeps the meeting's people.
    meetings_as_appointments: bool = False
    # Contacts: which optional fields travel to and from this spoke ("which fields travel").
    sync_notes: bool = True
    sync_birthday: bool = True  # birthday and anniversary
    sync_photo: bool = True
    # Matching instead of duplicating (docs/decisions/2026-12-01-matching.md): when this spoke
    # first syncs, its items that are already in the hub (contacts: the same e-mail address, else
    # the same name and phone; calendars: the same title, start and end) are linked, not copied.
    # None: the object type's default (on for contacts, off for calendars).
    match_existing: bool | None = None

    @property
    def two_way(self) -> bool:
        return self.direction == "two_way"

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["filters"] = asdict(self.filters)
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SyncOptions:
        raw = dict(raw)
        raw["filters"] = Filters.from_dict(raw.get("filters") or {})
        return _from_dict(cls, raw)

    def validate(self) -> None:
        if self.direction not in ("to_hub", "two_way"):
            raise ValueError(f"direction must be 'to_hub' or 'two_way', not {self.direction!r}")
        if self.privacy_mode not in ("as_is", "private", "busy_only"):
            raise ValueError(f"privacy_mode must be as_is, private or busy_only, not {self.privacy_mode!r}")
        if self.deletions not in ("propagate", "keep"):
            raise ValueError(f"deletions must be 'propagate' or 'keep', not {self.deletions!r}")
        if not (self.conflict_policy in ("latest", "hub") or self.conflict_policy.startswith("spoke:")):
            raise ValueError("conflict_policy must be 'latest', 'hub' or 'spoke:<spoke id>'")
        for name in ("days_past", "days_future"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative whole number of days")
        if not 0 < self.max_delete_share <= 1:
            raise ValueError("max_delete_share must be in (0, 1]")
        if not isinstance(self.max_delete_count, int) or self.max_delete_count < 0:
            raise ValueError("max_delete_count must be a whole number, 0 or more")
        if not isinstance(self.deletion_window_h, int) or not 1 <= self.deletion_window_h <= 24 * 90:
            raise ValueError("deletion_window_h must be a whole number of hours from 1 to 2160 (90 days)")
        if self.poll_interval_s < 30:
            raise ValueError("poll_interval_s must be at least 30 seconds")
        if not isinstance(self.spoke_category, str) or len(self.spoke_category) > 255:
            raise ValueError("spoke_category must be text of at most 255 characters (or empty for none)")
        for name in ("meetings_as_appointments", "sync_notes", "sync_birthday", "sync_photo"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        if self.match_existing is not None and not isinstance(self.match_existing, bool):
            raise ValueError("match_existing must be true, false or empty (the default for the object type)")
        f = self.filters
        if not isinstance(f.has_email, bool):
            raise ValueError("filters.has_email must be true or false")
        for name in ("companies", "email_domains"):
            if not all(isinstance(v, str) and v.strip() for v in getattr(f, name)):
                raise ValueError(f"filters.{name} must be a list of non-empty texts")
        if any("@" in d.strip().lstrip("@") or "." not in d for d in f.email_domains):
            raise ValueError("filters.email_domains must be domain names such as example.com (without a name@)")


@dataclass(frozen=True)
class CredentialRef:
    """A saved credential. Holds the *name* of its secret, never the secret."""

    id: str
    kind: str  # "google_oauth" | "google_service_account" | "exchange" | "memory"
    label: str
    secret_name: str | None = None
    # Non-secret settings (EWS URL, username, version, auth type, Google account).
    settings: dict[str, Any] = field(default_factory=dict)
    broken_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CredentialRef:
        return _from_dict(cls, raw)


@dataclass(frozen=True)
class Hub:
    id: str
    name: str
    object_type: ObjectType = "calendar"
    # Highest hub-item sequence number handed out: bumped once per commit.
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Hub:
        return _from_dict(cls, raw)


PENDING_IDS_MAX = 20_000  # ids a pause keeps (a Firestore document holds 1 MiB)
PENDING_DETAILS_MAX = 200  # items a pause describes with title, date and side
ATTENTION_MAX = 100

# Spoke fields that hold datetimes (ISO strings in JSON, native timestamps in Firestore)
SPOKE_TIMES = ("lease_expires", "last_run_at", "next_run_at", "idle_since")


@dataclass(frozen=True)
class Spoke:
    id: str
    hub_id: str
    name: str
    kind: str  # connector kind: "memory" | "google" | "exchange"
    credential_id: str | None = None
    # Connector address: calendar id, folder id, public/mailbox flag, ...
    address: dict[str, Any] = field(default_factory=dict)
    options: SyncOptions = field(default_factory=SyncOptions)
    # --- state, written by runs
    state: SpokeState = "ok"
    state_reason: str = ""
    hub_cursor: int = 0  # highest hub seq this spoke has taken
    lease_owner: str | None = None
    lease_expires: datetime | None = None
    dirty: bool = False  # a sync was requested while a run held the lease
    confirm_deletions: bool = False  # an admin confirmed a paused mass deletion
    refuse_deletions: bool = False  # an admin refused it: nothing is deleted on either side, both restored
    pending_deletions: int = 0
    # What a pause is about: the hub item ids it would delete (at most PENDING_IDS_MAX)
    # and, for people, the first PENDING_DETAILS_MAX of them with titles, dates and sides.
    pending_ids: list[str] = field(default_factory=list)
    pending_items: list[dict[str, Any]] = field(default_factory=list)
    # The ids an administrator confirmed: a confirmed run deletes these without counting them.
    confirmed_ids: list[str] = field(default_factory=list)
    # Deletions made by this spoke's runs inside the budget window: [{"at": iso, "hub": n, "spoke": m}].
    deletion_log: list[dict[str, Any]] = field(default_factory=list)
    # Writes the spoke refused for good (not retried until the hub item changes):
    # [{"hub_item_id", "hub_version", "title", "action", "message", "at"}].
    attention: list[dict[str, Any]] = field(default_factory=list)
    retry_attention: bool = False  # an administrator asked to try the refused writes again
    # The outcome (status and reason) of the last run record: identical quiet outcomes in a row share it.
    last_outcome: str = ""
    last_run_id: str | None = None
    last_run_at: datetime | None = None
    next_run_at: datetime | None = None
    # A streak of runs that changed nothing is kept as one run record (last_run_id): since when, how many.
    idle_since: datetime | None = None
    idle_runs: int = 0
    # Matching instead of duplicating (docs/decisions/2026-12-01-matching.md): `joined` once a run
    # finished ok (matching happens until then); the spoke's items that matched ambiguously, left
    # unlinked ([{"spoke_item_id", "title", "candidates": [{"hub_item_id", "title"}],
    # "same_as_spoke_items": [...]}]); an administrator's decisions on them (spoke item id -> hub
    # item id, or "" for "a new item"), applied by the next run.
    joined: bool = False
    ambiguous: list[dict[str, Any]] = field(default_factory=list)
    # Spoke items the hub created after the feed cursor its last run stored (at most
    # UNSEEN_WRITES_MAX): a feed read from a state before their creation (Exchange's
    # SyncFolderItems, a public folder's listing snapshot) reports nothing for an item
    # created and deleted since, so the next run reads those its feed does not mention.
    unseen_writes: list[str] = field(default_factory=list)
    match_decisions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["options"] = self.options.to_dict()
        for name in SPOKE_TIMES:
            value = getattr(self, name)
            raw[name] = None if value is None else value.isoformat()
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Spoke:
        raw = dict(raw)
        raw["options"] = SyncOptions.from_dict(raw.get("options") or {})
        for name in SPOKE_TIMES:
            value = raw.get(name)
            raw[name] = None if value is None else (
                value if isinstance(value, datetime) else datetime.fromisoformat(value)
            )
        return _from_dict(cls, raw)


def _item_model() -> Any:
    from spokesync.model import item

    return item


@dataclass(frozen=True)
class HubItem:
    id: str
    hub_id: str
    version: int  # bumped on every change; links remember the version they hold
    seq: int  # hub sequence at the last change: "changed since" queries
    event: Item | None  # an Event or a Contact (the hub's object type); None for a tombstone
    hash: str = ""  # content hash over the fields the writing spoke gave it
    # which fields `hash` covers: `hash_scope(object type, names)` when `hash` is exactly the kind's
    # content hash of `event` over those names; "" when unknown (older items, tombstones). A run
    # that writes the item into a spoke comparing those very names reuses `hash` instead of
    # hashing its copy again (docs/decisions/2026-12-01-hash-once.md).
    hash_of: str = ""
    origin_spoke_id: str = ""
    modified: datetime | None = None
    deleted: bool = False
    # a tombstone an administrator confirmed: its deletion in other spokes is not counted again
    confirmed: bool = False
    # a tombstone's title and start, so that a paused deletion can still say what it is about
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "confirmed": self.confirmed,
            "label": self.label,
            "id": self.id,
            "hub_id": self.hub_id,
            "version": self.version,
            "seq": self.seq,
            "event": None if self.event is None else _item_model().item_to_dict(self.event),
            "hash": self.hash,
            "hash_of": self.hash_of,  # (always written: a store's partial update must not keep an old one)
            "origin_spoke_id": self.origin_spoke_id,
            "modified": None if self.modified is None else self.modified.isoformat(),
            "deleted": self.deleted,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> HubItem:
        modified = raw.get("modified")
        return cls(
            id=raw["id"],
            hub_id=raw["hub_id"],
            version=int(raw["version"]),
            seq=int(raw["seq"]),
            event=None if raw.get("event") is None else _item_model().item_from_dict(raw["event"]),
            hash=raw.get("hash", ""),
            hash_of=str(raw.get("hash_of") or ""),
            origin_spoke_id=raw.get("origin_spoke_id", ""),
            modified=None if not modified else (
                modified if isinstance(modified, datetime) else datetime.fromisoformat(modified)
            ),
            deleted=bool(raw.get("deleted", False)),
            confirmed=bool(raw.get("confirmed", False)),
            label=str(raw.get("label", "")),
        )


# Bumped whenever a content hash changes its meaning for the same item (its normalisation, its
# encoding): a hub item's `hash` made by an older scheme is then never taken for a new one.
HASH_SCHEME = "1"


@functools.lru_cache(maxsize=256)
def hash_scope(object_type: str, names: frozenset[str]) -> str:
    """A short, stable name for a set of hashed fields (`HubItem.hash_of`): 16 hex digits of a
    SHA-256 over the scheme, the object type and the sorted names (a handful of sets exist per
    hub; 64 bits make two of them sharing a name out of reach)."""
    text = "|".join((HASH_SCHEME, object_type, *sorted(names)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Link:
    """One hub item's copy in one spoke."""

    spoke_id: str
    hub_item_id: str
    spoke_item_id: str
    spoke_version: str  # etag / change key last seen or written
    spoke_hash: str  # content hash over the spoke's compared fields, last seen or written
    hub_version: int  # hub item version the spoke copy corresponds to
    created_by_hub: bool = False  # the hub wrote this copy (else it originated in the spoke)
    detached: bool = False  # deletion kept local: the two copies no longer follow each other

    def to_dict(self) -> dict[str, Any]:
        # flat fields of plain types: the same dict as dataclasses.asdict, without its deep copies
        # (one per link written: it showed in the engine's profile)
        return {name: getattr(self, name) for name in _LINK_FIELDS}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Link:
        return _from_dict(cls, raw)


@dataclass(frozen=True)
class Conflict:
    hub_item_id: str
    spoke_item_id: str
    kind: str  # "edit_edit" | "delete_edit" | "edit_delete"
    policy: str
    winner: str  # "hub" | "spoke"
    hub_version: dict[str, Any] | None
    spoke_version: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RUN_ITEMS_MAX = 50  # changed items a run record names (the counts hold the rest)


@dataclass
class RunRecord:
    id: str
    spoke_id: str
    hub_id: str
    started_at: datetime
    finished_at: datetime | None = None
    # "ok" | "failed" | "paused" | "continued" | "skipped" | "dry_run"
    status: str = "running"
    reason: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    plan: list[dict[str, Any]] | None = None  # dry runs only
    # What changed, by title: the first RUN_ITEMS_MAX writes ({"action": "hub_created", "title": ...}).
    items: list[dict[str, Any]] = field(default_factory=list)
    runs: int = 1  # how many runs in a row this record stands for (> 1 only for runs that changed nothing)
    # A running run's progress ({"done", "total", "into_hub", "into_spoke"}), written while it runs
    # (status "running") so that other processes can show it; empty once the run has finished.
    progress: dict[str, int] = field(default_factory=dict)

    @property
    def idle(self) -> bool:
        """A finished run that changed nothing, met no conflict and no error."""
        return self.status == "ok" and not self.errors and not self.conflicts and not any(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["started_at"] = self.started_at.isoformat()
        raw["finished_at"] = None if self.finished_at is None else self.finished_at.isoformat()
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunRecord:
        raw = dict(raw)
        for name in ("started_at", "finished_at"):
            value = raw.get(name)
            if isinstance(value, str):
                raw[name] = datetime.fromisoformat(value)
        return _from_dict(cls, raw)


@dataclass(frozen=True)
class Channel:
    """A push channel opened for a spoke: a Google watch channel, or a Microsoft Graph
    change-notification subscription (id = subscription id, resource_id "graph:<calendar path>",
    token_hash = sha256 of its clientState)."""

    id: str
    spoke_id: str
    resource_id: str
    token_hash: str  # sha256 of the channel token; the token itself is a secret
    expires_at: datetime
    address: str = ""

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["expires_at"] = self.expires_at.isoformat()
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Channel:
        raw = dict(raw)
        if isinstance(raw.get("expires_at"), str):
            raw["expires_at"] = datetime.fromisoformat(raw["expires_at"])
        return _from_dict(cls, raw)


_LINK_FIELDS = tuple(f.name for f in fields(Link))
