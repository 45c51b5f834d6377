"""The ports every adapter implements: SpokeConnector, HubStore, SecretStore,
TaskQueue and Clock, with the plain data they exchange.

The engine only ever talks to these; no cloud SDK is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from spokesync.model.hub import Channel, CredentialRef, Hub, HubItem, Link, RunRecord, Spoke

if TYPE_CHECKING:
    from spokesync.model.item import Item

# ------------------------------------------------------------------ connector


@dataclass(frozen=True)
class SpokeItem:
    """An item as read from a spoke."""

    id: str
    version: str  # etag / change key: changes whenever the server's copy changes
    event: Item  # an Event (calendar spokes) or a Contact (contacts spokes)
    # The hub item id this item carries (Google extendedProperties.private,
    # an Exchange PublicStrings property): how a create retried after a crash
    # is recognised instead of duplicated.
    hub_id: str | None = None


@dataclass(frozen=True)
class ChangeSet:
    items: list[SpokeItem]
    deleted: list[str]
    cursor: bytes | None  # opaque; handed back to the next `changes` call
    # True when `items` is the spoke's complete content: every linked item
    # not in it has been deleted (subject to the empty-spoke guard).
    full: bool = False
    # One page of a longer answer: `cursor` is then the token for the next page, handed back
    # to `changes` (a full listing's pages each say `full`; the listing is complete with the
    # last page). Connectors that do not page answer in one (`more` False).
    more: bool = False
    # The page's `cursor` may be stored as the spoke's cursor: a later run continues the feed
    # from it and misses nothing (an incremental feed's position). False: only the last page's
    # cursor is stored (docs/decisions/2026-12-01-paged-runs.md).
    resumable: bool = False


@dataclass(frozen=True)
class Capabilities:
    incremental: bool  # a server-side change feed (sync token / sync state)
    snapshot_diff: bool  # changes found by diffing listings against a stored snapshot
    push: bool  # can announce changes (Google watch channels)
    batch_size: int  # items per bulk write call
    # Event fields the spoke stores and returns faithfully (see model.event).
    fields: frozenset[str]
    deterministic_ids: bool = False  # the spoke item id is derived from the hub id
    # List fields with fixed slots on this spoke (contacts: Exchange holds three
    # e-mail addresses, see model.contact.SLOT_LIMITS_EXCHANGE); what does not fit
    # stays in the hub and is never erased by this spoke.
    limits: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class NewItem:
    hub_id: str
    event: Item  # an Event (calendar spokes) or a Contact (contacts spokes)


@dataclass(frozen=True)
class ItemUpdate:
    spoke_item_id: str
    version: str  # precondition: write only if the spoke still holds this version
    event: Item  # an Event (calendar spokes) or a Contact (contacts spokes)
    hub_id: str


@dataclass(frozen=True)
class ItemDelete:
    spoke_item_id: str
    version: str


WriteStatus = Literal["ok", "exists", "conflict", "not_found", "error", "retry"]


@dataclass(frozen=True)
class WriteResult:
    """One result per item of a bulk write.

    ok: done (version is the new one); exists: a create found the item already
    there (a retried create: spoke_item_id/version/item describe it);
    conflict: the version precondition failed (re-read and re-plan);
    not_found: the item is gone; retry: throttled, try in a later run;
    error: failed for this item only (message says why).
    """

    status: WriteStatus
    spoke_item_id: str = ""
    version: str = ""
    message: str = ""
    item: SpokeItem | None = None


class FullResyncRequired(Exception):
    """The stored cursor is no longer valid: call `changes(None)`."""


class ConnectorError(Exception):
    """A spoke-level failure with a message an administrator understands, and a stable
    `code` for scripts (the API's `code` field; the words may change, the code does not)."""

    code = "service_error"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class CredentialBroken(ConnectorError):
    """The credential was refused (wrong password, revoked token)."""

    code = "credential_refused"


class QuotaExceeded(ConnectorError):
    """The service refuses work for hours: pause the spoke with this reason."""

    code = "quota_exceeded"


class Throttled(ConnectorError):
    """Rate limited past the run's budget: stop cleanly, continue later."""

    code = "throttled"

    def __init__(self, message: str, retry_after_s: float = 60.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@runtime_checkable
class SpokeConnector(Protocol):
    capabilities: Capabilities

    def changes(self, cursor: bytes | None) -> ChangeSet:
        """Changes since `cursor` (None: a full listing with full=True), or the next page of an
        answer whose ChangeSet said `more` (`cursor` is then that page's token)."""
        ...

    def read(self, ids: Sequence[str]) -> dict[str, SpokeItem]:
        """Bulk read; ids that no longer exist are absent from the result."""
        ...

    def create(self, items: Sequence[NewItem]) -> list[WriteResult]: ...

    def update(self, items: Sequence[ItemUpdate]) -> list[WriteResult]: ...

    def delete(self, items: Sequence[ItemDelete]) -> list[WriteResult]: ...


@runtime_checkable
class VersionFeed(Protocol):
    """A connector that can read its change feed as versions only (optional). After writing into
    a spoke, a run reads the feed once more to recognise its own writes (their ids and the
    versions the writes returned); a connector whose `changes` fetches every changed item's
    content (EWS: SyncFolderItems, then GetItem) offers this cheaper read instead."""

    def change_versions(self, cursor: bytes) -> tuple[dict[str, str], list[str], bytes]:
        """The changes after `cursor` to the end of the feed: (changed item id -> version,
        deleted ids, the cursor `changes(cursor)` would have returned)."""
        ...


# ------------------------------------------------------------------ hub store


class StoreError(Exception):
    pass


class LeaseLost(StoreError):
    """The run no longer holds its spoke's lease: it must stop writing."""


class HubItemConflict(StoreError):
    """A hub item changed since it was read (another spoke's run wrote it)."""

    def __init__(self, ids: Sequence[str]) -> None:
        super().__init__(f"hub items changed concurrently: {', '.join(ids)}")
        self.ids = list(ids)


@dataclass(frozen=True)
class HubWrite:
    """Upsert of a hub item; `expected_version` 0 means "must not exist"."""

    item: HubItem
    expected_version: int


@dataclass
class CommitBatch:
    hub_id: str
    spoke_id: str
    run_id: str
    # Hub items written: the store assigns them one new hub seq (bumping the
    # hub's counter once per commit), and returns it.
    hub_writes: list[HubWrite] = field(default_factory=list)
    link_upserts: list[Link] = field(default_factory=list)
    link_deletes: list[str] = field(default_factory=list)  # hub item ids
    # When set, the spoke's inbound cursor / hub cursor are replaced.
    cursor: bytes | None = None
    set_cursor: bool = False
    hub_cursor: int | None = None

    def __len__(self) -> int:
        return len(self.hub_writes) + len(self.link_upserts) + len(self.link_deletes)


class HubStore(Protocol):
    # credentials (references only)
    def put_credential(self, credential: CredentialRef) -> None: ...
    def get_credential(self, credential_id: str) -> CredentialRef | None: ...
    def list_credentials(self) -> list[CredentialRef]: ...
    def delete_credential(self, credential_id: str) -> None: ...

    # hubs
    def put_hub(self, hub: Hub) -> None: ...
    def get_hub(self, hub_id: str) -> Hub | None: ...
    def list_hubs(self) -> list[Hub]: ...
    def delete_hub(self, hub_id: str) -> None: ...

    # spokes: config and state in one record
    def put_spoke(self, spoke: Spoke) -> None: ...
    def get_spoke(self, spoke_id: str) -> Spoke | None: ...
    def list_spokes(self, hub_id: str | None = None) -> list[Spoke]: ...
    def update_spoke(self, spoke_id: str, **changes: Any) -> Spoke:
        """Change state fields atomically (read-modify-write in a transaction)."""
        ...
    def delete_spoke(self, spoke_id: str) -> None:
        """The spoke, its links, cursor and channels."""
        ...

    # leases: one run per spoke at a time
    def acquire_lease(self, spoke_id: str, run_id: str, now: datetime, ttl_s: float) -> Spoke | None:
        """Take the lease if free or expired; else mark the spoke dirty and return None."""
        ...
    def release_lease(self, spoke_id: str, run_id: str, **changes: Any) -> bool:
        """Release (applying `changes` to the spoke); returns the dirty flag it cleared."""
        ...

    # the spoke's opaque inbound cursor (may be large: snapshots)
    def get_cursor(self, spoke_id: str) -> bytes | None: ...

    # hub items
    def new_item_id(self) -> str:
        """An id for a new hub item: unique, 32 lowercase hex digits. The store chooses their
        order for its own indexes (docs/decisions/2026-12-01-item-ids-per-store.md)."""
        ...
    def get_hub_items(self, hub_id: str, ids: Sequence[str]) -> dict[str, HubItem]: ...
    def hub_items_since(self, hub_id: str, seq: int, limit: int | None = None) -> list[HubItem]:
        """Items (tombstones included) with seq > `seq`, ordered by (seq, id). With `limit`, one
        page: the first `limit` of them and the rest of the last seq's items (the items of one
        commit share a seq), so that a page ends where a seq ends and the next page is the items
        after its last seq. A page shorter than `limit` is the last."""
        ...
    def list_hub_items(self, hub_id: str, include_deleted: bool = False) -> list[HubItem]: ...
    def count_hub_items(self, hub_id: str) -> int:
        """Live items (tombstones not counted), without reading them."""
        ...

    # links
    def links_by_spoke_items(self, spoke_id: str, spoke_item_ids: Sequence[str]) -> dict[str, Link]: ...
    def links_by_hub_items(self, spoke_id: str, hub_item_ids: Sequence[str]) -> dict[str, Link]: ...
    def list_links(self, spoke_id: str) -> list[Link]: ...
    def count_links(self, spoke_id: str) -> int:
        """Links that are not detached."""
        ...

    def commit(self, batch: CommitBatch, now: datetime) -> int:
        """Apply the batch atomically if the run still holds the lease
        (LeaseLost) and every hub write's expected version matches
        (HubItemConflict). Returns the hub seq given to the written items."""
        ...

    # run history
    def put_run(self, run: RunRecord) -> None: ...
    def get_run(self, run_id: str) -> RunRecord | None: ...
    def list_runs(self, spoke_id: str | None = None, hub_id: str | None = None, limit: int = 20) -> list[RunRecord]: ...

    # push channels
    def put_channel(self, channel: Channel) -> None: ...
    def get_channel(self, channel_id: str) -> Channel | None: ...
    def list_channels(self, spoke_id: str | None = None, expiring_before: datetime | None = None) -> list[Channel]: ...
    def delete_channel(self, channel_id: str) -> None: ...


# ------------------------------------------------------------ secrets, queue


class SecretNotFound(KeyError):
    pass


class SecretStore(Protocol):
    def put(self, name: str, value: str) -> str:
        """Store (or add a new version of) a secret; returns its name."""
        ...
    def get(self, name: str) -> str: ...
    def delete(self, name: str) -> None: ...


@dataclass(frozen=True)
class SyncTask:
    spoke_id: str
    reason: str = "manual"  # manual | poll | push | hub_changed | continuation | dirty
    dry_run: bool = False


class TaskQueue(Protocol):
    def enqueue(self, task: SyncTask, delay_s: float = 0.0) -> bool:
        """Queue a sync of the task's spoke; bursts for one spoke coalesce.
        Returns False when an equivalent task was already pending."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...
    def monotonic(self) -> float: ...


class RunSettings(Protocol):
    """The settings a sync run reads (`spokesync.config.Config` has them)."""

    @property
    def run_budget_s(self) -> float: ...
    @property
    def lease_ttl_s(self) -> float: ...
    @property
    def quota_retry_s(self) -> int: ...


@dataclass(frozen=True)
class RunProgress:
    """How far a running sync is: what the CLI's progress bar and the dashboard show.

    phase: "reading" (the spoke's changes and the hub's), "writing" (into the hub, then the
    spoke; `done` of `total` planned writes), "done". Rates are the reader's business."""

    spoke_id: str
    run_id: str
    phase: Literal["reading", "writing", "done"]
    done: int = 0
    total: int = 0
    into_hub: int = 0
    into_spoke: int = 0


class RunContext(Protocol):
    """What the engine's runner is given: stores, clock, queue, connectors, and a way
    to report a refused credential. The engine imports nothing above the ports;
    `spokesync.bootstrap.Context` implements this."""

    store: HubStore
    clock: Clock
    queue: TaskQueue

    @property
    def config(self) -> RunSettings: ...
    def connector(self, spoke: Spoke) -> SpokeConnector: ...
    def object_type(self, spoke: Spoke) -> str:
        """The object type ("calendar", "contacts") of the spoke's kind, which is its hub's."""
        ...
    def credential_broken(self, credential_id: str, reason: str) -> None:
        """The credential was refused: mark it (and every spoke using it) as needing repair."""
        ...
    def run_progress(self, progress: RunProgress) -> None:
        """A run reports how far it is (after reading, after each write batch, at the end)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        import time

        return time.monotonic()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self._now += timedelta(seconds=seconds)
        self._mono += seconds
