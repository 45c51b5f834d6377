"""The runner: one sync of one spoke against its hub (the imperative shell).

take the spoke's lease -> read the spoke's changes and the hub's changes ->
plan (pure) -> check the guards -> apply in batches, committing links with
each batch -> commit cursors -> record the run -> release the lease -> enqueue
the other two-way spokes when the hub changed, and a continuation when the
time budget ran out, a write must be retried, or a sync was requested meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, NamedTuple

from spokesync.engine import rules
from spokesync.engine.collecting import fewer_full_collections
from spokesync.engine.kinds import CALENDAR, ItemKind, kind_for
from spokesync.engine.planner import (
    DeletionBudget,
    GuardVerdict,
    HubUpsert,
    LinkChange,
    Plan,
    PlanInput,
    SpokeCreate,
    SpokeDelete,
    SpokeUpdate,
    check_guards,
    iter_batches,
    plan_sync,
    planned_deletions,
)
from spokesync.engine.stopping import STOPPING, Interrupted, request_stop, stop_requested  # noqa: F401 - re-exported
from spokesync.model.hub import (
    ATTENTION_MAX,
    PENDING_DETAILS_MAX,
    PENDING_IDS_MAX,
    RUN_ITEMS_MAX,
    HubItem,
    Link,
    RunRecord,
    Spoke,
)
from spokesync.model.item import title as item_title
from spokesync.ports import (
    ChangeSet,
    CommitBatch,
    ConnectorError,
    CredentialBroken,
    FullResyncRequired,
    HubItemConflict,
    HubWrite,
    ItemDelete,
    ItemUpdate,
    LeaseLost,
    NewItem,
    QuotaExceeded,
    RunProgress,
    SpokeConnector,
    SpokeItem,
    SyncTask,
    Throttled,
    VersionFeed,
    WriteResult,
)

if TYPE_CHECKING:
    from spokesync.ports import RunContext

log = logging.getLogger("spokesync.runner")

HUB_BATCH = 200  # hub writes per commit: each is an item and a link (Firestore: <= 500 writes)
# Hub items read, planned and applied at a time: a run's memory does not grow with the hub
# (docs/decisions/2026-12-01-paged-runs.md). Tests set a small one to exercise the paging.
HUB_PAGE = 1000


class _OutOfTime(Exception):
    pass


# Set by a signal handler (SIGTERM in the local server and the functions): every
# run of this process stops at its next batch boundary. See `spokesync.engine.stopping`.
_STOPPING = STOPPING
_LIVE = HubItem(id="", hub_id="", version=0, seq=0, event=None)


INTERRUPTED_REASON = ("The run was stopped before it finished. Nothing was lost: what it had written is "
                      "recorded, and the next run continues from there.")


class _Planned(NamedTuple):
    connector: SpokeConnector
    changes: ChangeSet
    plan: Plan
    live: int  # the spoke's live links, or -1 when not counted yet
    hub_changed: list[HubItem]
    previous_cursor: bytes | None
    hub_items: dict[str, HubItem]
    # Paging of the hub's changes: the last seq read from the store (the page ends where a seq
    # ends), and whether more hub items may follow it (the page was full).
    read_to: int = 0
    more: bool = False


@dataclass
class _Progress:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("hub_created", "hub_updated", "hub_deleted", "spoke_created", "spoke_updated", "spoke_deleted",
         "conflicts", "write_errors", "retries"), 0))
    errors: list[str] = field(default_factory=list)
    unfinished: Counter[int] = field(default_factory=Counter)  # hub seqs not yet written to the spoke
    hub_changed: bool = False
    rerun: bool = False  # something must be looked at again in a following run
    stale: list[str] = field(default_factory=list)  # spoke items that changed under our write
    # The hub's last seq this spoke has seen. Our own hub commits advance it when
    # they are the very next seqs (nobody else wrote in between): the spoke then
    # does not read its own writes back on its next run.
    top_seq: int = 0
    own_tail: bool = True
    retry_after_s: float = 0.0
    # deletions not confirmed by an administrator: they count against the deletion budget
    budget_hub: int = 0
    budget_spoke: int = 0
    attention_add: dict[str, dict[str, object]] = field(default_factory=dict)  # hub item id -> refused write
    attention_clear: set[str] = field(default_factory=set)  # hub item ids written fine this run
    confirmed: frozenset[str] = frozenset()  # hub item ids an administrator confirmed for deletion
    items: list[dict[str, object]] = field(default_factory=list)  # the first changed items, by title
    done: int = 0  # planned writes made (progress reports)
    total: int = 0
    ambiguous: list[dict[str, object]] | None = None  # the spoke's ambiguous matches after this run
    created: list[str] = field(default_factory=list)  # spoke items this run created (see Spoke.unseen_writes)
    cursor_stored: bool = False  # this run stored the feed cursor it read
    stored_cursor: bytes | None = None  # that cursor (a complete answer's)
    # What this run wrote into the spoke: spoke item id -> the version its write returned ("" for a
    # deletion); None when there were too many to keep (see `_own_writes_seen`)
    own: dict[str, str] | None = field(default_factory=dict)
    watch: frozenset[str] = frozenset()  # hub item ids on the spoke's attention list
    # the lowest hub seq an earlier page of this run left unwritten to the spoke (0: none)
    hold: int = 0
    hub_cursor: int = 0  # the hub cursor as last committed by this run
    inbound_done: bool = False  # the spoke's changes are written into the hub


# Spoke.unseen_writes kept per spoke (a spoke record stays well under Firestore's 1 MiB)
UNSEEN_WRITES_MAX = 2000
# A run's own spoke writes remembered to recognise them in the spoke's feed afterwards (ids and versions)
OWN_WRITES_MAX = 50_000


def _own(progress: _Progress, spoke_item_id: str, version: str) -> None:
    if progress.own is None:
        return
    if len(progress.own) >= OWN_WRITES_MAX and spoke_item_id not in progress.own:
        progress.own = None  # too many to keep: the next run reads them back
        return
    progress.own[spoke_item_id] = version


def _only_own(own: dict[str, str], changed: Iterable[tuple[str, str]], deleted: Iterable[str]) -> bool:
    """Are these feed entries all this run's own writes: each changed item with the version its
    write returned (a version, never ""), each deleted one deleted by the run ("")?"""
    return all(version and own.get(i) == version for i, version in changed) and all(
        own.get(d) == "" for d in deleted)


def new_id() -> str:
    return uuid.uuid4().hex


class Runner:
    def __init__(self, ctx: RunContext, budget_s: float | None = None) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.clock = ctx.clock
        self.budget_s = ctx.config.run_budget_s if budget_s is None else budget_s
        self.hashes = rules.HashMemo()  # one per run: each event is hashed once
        self.kind: ItemKind = CALENDAR  # the hub's item kind, set when the spoke is read
        self._planned: _Planned | None = None  # made before the lease, still valid under it
        self.page_size = HUB_PAGE

    # ---------------------------------------------------------------- entry
    def sync(self, spoke_id: str, reason: str = "manual", dry_run: bool = False) -> RunRecord:
        with fewer_full_collections():  # a run's objects are long-lived and hold no cycles (see collecting)
            return self._sync(spoke_id, reason, dry_run)

    def _sync(self, spoke_id: str, reason: str, dry_run: bool) -> RunRecord:
        run = RunRecord(id=new_id(), spoke_id=spoke_id, hub_id="", started_at=self.clock.now())
        self.hashes = rules.HashMemo()
        if dry_run:
            return self._dry_run(run)
        peeked: tuple[Spoke, _Planned] | None = None
        if reason not in RECORDED_REASONS:
            peeked = self._peek(run)
            if peeked is not None and _idle(peeked[1]):
                # Nothing changed on either side since the spoke's cursors: no lease, no record,
                # no write (docs/decisions/2026-12-01-idle-polls.md).
                run.hub_id, run.status, run.finished_at = peeked[0].hub_id, "ok", self.clock.now()
                run.reason = "nothing changed"
                log.debug("idle poll", extra={"spoke_id": spoke_id, "run_id": run.id})
                return run
        lease_id = run.id
        spoke = self.store.acquire_lease(spoke_id, lease_id, self.clock.now(), self.ctx.config.lease_ttl_s)
        if spoke is None:
            # Another run holds the lease; it saw the dirty flag we left and runs again.
            return self._skipped(run)
        run.hub_id = spoke.hub_id
        # The plan made before the lease holds when no run moved the spoke in between (every run
        # that commits also releases, which rewrites the record); else it is made again.
        self._planned = peeked[1] if peeked is not None and _same_spoke(peeked[0], spoke) else None
        peeked = None  # (the run lets go of its pages as it writes them)
        progress = _Progress()
        state, state_reason = "ok", ""
        stopped: BaseException | None = None
        try:
            self._run(spoke, run, progress)
        except _Paused as paused:
            run.status, run.reason = "paused", paused.reason
            state, state_reason = paused.state, paused.reason
        except CredentialBroken as err:
            run.status, run.reason = "failed", str(err)
            state, state_reason = "credential_broken", str(err)
            if spoke.credential_id:  # the shared credential, every spoke using it and its page say so
                self.ctx.credential_broken(spoke.credential_id, str(err))
        except QuotaExceeded as err:
            # The service refuses work for hours: pause, and let polling retry after a long wait.
            wait = timedelta(seconds=self.ctx.config.quota_retry_s)
            retry_at = self.clock.now() + wait
            run.status = "paused"
            run.reason = f"{err} Paused; retrying after {retry_at:%Y-%m-%d %H:%M} UTC."
            state, state_reason = "paused", run.reason
        except Throttled as err:
            run.status, run.reason = "continued", f"throttled: {err}"
            progress.rerun, progress.retry_after_s = True, err.retry_after_s
        except (HubItemConflict, LeaseLost) as err:
            run.status, run.reason = "continued", str(err)
            progress.rerun = not isinstance(err, LeaseLost)
        except ConnectorError as err:
            run.status, run.reason = "failed", str(err)
            state, state_reason = "failed", str(err)
        except (KeyboardInterrupt, Interrupted) as err:
            # Ctrl-C in the CLI, SIGTERM in a server: record the run and release the lease, then stop.
            run.status, run.reason = "interrupted", INTERRUPTED_REASON
            stopped = err
        except Exception as err:  # noqa: BLE001 - a run records every failure, never crashes the worker
            log.exception("sync run failed", extra={"spoke_id": spoke_id, "run_id": run.id})
            run.status, run.reason = "failed", f"{type(err).__name__}: {err}"
            state, state_reason = "failed", run.reason
        # (a crash — the process dying — leaves the lease to expire: nothing below runs)
        run.finished_at = self.clock.now()
        run.counts, run.errors, run.items = progress.counts, progress.errors[:50], progress.items[:RUN_ITEMS_MAX]
        if run.status == "running":
            run.status = "ok"
        if stopped is not None:
            self._finish(spoke, lease_id, run, progress, state, state_reason, follow_up=False)
            raise stopped
        return self._finish(spoke, lease_id, run, progress, state, state_reason)

    def _finish(self, spoke: Spoke, lease_id: str, run: RunRecord, progress: _Progress, state: str,
                state_reason: str, follow_up: bool = True) -> RunRecord:
        now = self.clock.now()
        next_run = now + timedelta(
            seconds=self.ctx.config.quota_retry_s if state == "paused" else spoke.options.poll_interval_s)
        if run.status == "interrupted":
            next_run = now  # polled again at once: it continues where it stopped
        outcome = _outcome(run)
        quiet = _quiet(run)
        if quiet and outcome == spoke.last_outcome and spoke.idle_runs and spoke.last_run_id and spoke.idle_since:
            # Runs in a row with the same quiet outcome (polls that change nothing, a pause for the
            # same reason) extend one record instead of adding one each (288 a day at 5-minute
            # polls): the history keeps the runs that did something. Same single write.
            # (The lease stays the run's own id: `lease_id`.)
            run = replace(run, id=spoke.last_run_id, started_at=spoke.idle_since, runs=spoke.idle_runs + 1)
        self.store.put_run(run)
        changes: dict[str, object] = {
            "last_run_id": run.id, "last_run_at": run.finished_at, "next_run_at": next_run,
            "idle_since": run.started_at if quiet else None, "idle_runs": run.runs if quiet else 0,
            "last_outcome": outcome if quiet else "",
        }
        if run.status not in ("continued", "interrupted"):
            changes["state"], changes["state_reason"] = state, state_reason
        if run.status == "ok":
            # the administrator's decision covered this run's deletions; the next pause asks again
            changes.update(confirm_deletions=False, refuse_deletions=False, pending_deletions=0, pending_ids=[],
                           pending_items=[], confirmed_ids=[])
        if progress.budget_hub or progress.budget_spoke:
            changes["deletion_log"] = _window_log(spoke, now) + [
                {"at": now.isoformat(), "hub": progress.budget_hub, "spoke": progress.budget_spoke}]
        attention = _attention(spoke, progress)
        if attention is not None:
            changes["attention"] = attention
        if spoke.retry_attention and run.status == "ok":
            changes["retry_attention"] = False
        # the creates made after the stored cursor; those before it are in the feed from it on
        unseen = ([] if progress.cursor_stored else list(spoke.unseen_writes)) + progress.created
        unseen = unseen[-UNSEEN_WRITES_MAX:]
        if unseen != spoke.unseen_writes:
            changes["unseen_writes"] = unseen
        if run.status == "ok":
            if not spoke.joined:
                changes["joined"] = True  # matching is over: later items are new ones
            if progress.ambiguous is not None:
                changes["ambiguous"] = progress.ambiguous[:ATTENTION_MAX]
            if spoke.match_decisions:
                changes["match_decisions"] = {}
        dirty = self.store.release_lease(spoke.id, lease_id, **changes)
        self._report(replace(run, spoke_id=spoke.id), progress, "done")
        if follow_up:
            self._follow_up(spoke, run, progress, dirty)
        log.info("sync run finished", extra={"spoke_id": spoke.id, "hub_id": spoke.hub_id, "run_id": run.id,
                                             "status": run.status, "counts": run.counts})
        return run

    def _skipped(self, run: RunRecord) -> RunRecord:
        """Another run holds the lease. The skip is recorded — once per holder, counted — so the
        history and the CLI can say so; the holder saw the dirty flag and runs again."""
        now = self.clock.now()
        current = self.store.get_spoke(run.spoke_id)
        if current is None:
            raise KeyError(f"no spoke {run.spoke_id}")
        until = current.lease_expires
        run.hub_id = current.hub_id
        run.status = "skipped"
        run.reason = ("another run of this spoke is in progress"
                      + (f" (started by this or another process; it holds the spoke until {until:%H:%M:%S} UTC "
                         "at the latest)" if until is not None else "")
                      + "; it syncs again when it finishes, so nothing is missed")
        run.finished_at = now
        if current.lease_owner:
            record_id = f"{current.lease_owner}-skipped"
            earlier = self.store.get_run(record_id)
            run = replace(run, id=record_id, started_at=earlier.started_at if earlier else run.started_at,
                          runs=(earlier.runs + 1) if earlier else 1)
            self.store.put_run(run)
        return run

    def _follow_up(self, spoke: Spoke, run: RunRecord, progress: _Progress, dirty: bool) -> None:
        queue = self.ctx.queue
        if progress.hub_changed:
            for other in self.store.list_spokes(spoke.hub_id):
                if other.id != spoke.id and other.options.two_way and other.state not in ("needs_confirmation",):
                    queue.enqueue(SyncTask(other.id, reason="hub_changed"))
        if run.status == "continued" or progress.rerun or dirty:
            reason = "dirty" if dirty and not progress.rerun else "continuation"
            queue.enqueue(SyncTask(spoke.id, reason=reason), delay_s=progress.retry_after_s)

    # ----------------------------------------------------------------- core
    def _read(self, spoke: Spoke, connector: SpokeConnector) -> tuple[ChangeSet, bytes | None]:
        """The spoke's changes, and the cursor they were read from."""
        cursor = self.store.get_cursor(spoke.id)
        try:
            changes = connector.changes(cursor)
        except FullResyncRequired:
            log.info("full resync required", extra={"spoke_id": spoke.id})
            return connector.changes(None), cursor
        return self._with_unseen_deletions(spoke, connector, changes), cursor

    @staticmethod
    def _with_unseen_deletions(spoke: Spoke, connector: SpokeConnector, changes: ChangeSet) -> ChangeSet:
        """Items the hub created after the stored cursor and the feed does not mention: those gone
        from the spoke were deleted there (an item created and deleted after a sync state is in no
        answer from that state), so they are added to the feed's deletions."""
        if changes.full or not spoke.unseen_writes:
            return changes
        mentioned = {item.id for item in changes.items} | set(changes.deleted)
        unseen = [i for i in spoke.unseen_writes if i not in mentioned]
        if not unseen:
            return changes
        present = connector.read(unseen)
        gone = [i for i in unseen if i not in present]
        return replace(changes, deleted=list(changes.deleted) + gone) if gone else changes

    def _use_kind(self, spoke: Spoke) -> ItemKind:
        """The kind of the spoke's hub items: the spoke's object type, which the service keeps equal
        to its hub's (a hub holds one object type), known without reading the hub."""
        self.kind = kind_for(self.ctx.object_type(spoke))
        self.hashes.hash_fn = self.kind.content_hash
        return self.kind

    def _matches_on_join(self, spoke: Spoke) -> bool:
        match_on = spoke.options.match_existing
        if match_on is None:
            match_on = self.kind.matches_by_default()
        return bool(match_on) and not spoke.joined

    def _inputs(self, spoke: Spoke, connector: SpokeConnector, changes: ChangeSet, hub_changed: list[HubItem],
                first: bool = True) -> tuple[PlanInput, int]:
        """The plan's input for the spoke's changes and one page of the hub's (`hub_changed`, which
        is extended by refused writes to try again). Pages after the first (`first` False) carry
        no spoke changes: what only the first page does (retries, matching, decisions) is skipped."""
        store = self.store
        kind = self._use_kind(spoke)
        if (first and spoke.refuse_deletions and not spoke.options.two_way and spoke.options.deletions != "keep"
                and spoke.pending_ids):
            # A one-way spoke reads no hub changes: the items its refused pause listed that the hub
            # deleted meanwhile (another spoke's confirmed deletion) come back from its copies.
            lost = [h for h in store.get_hub_items(spoke.hub_id, spoke.pending_ids).values() if h.deleted]
            hub_changed = [*hub_changed, *lost]
        if changes.full:
            all_links = store.list_links(spoke.id)
            links_by_spoke = {link.spoke_item_id: link for link in all_links}
            links_by_hub = {link.hub_item_id: link for link in all_links}
            live = sum(1 for link in all_links if not link.detached)
        else:
            ids = [i.id for i in changes.items] + list(changes.deleted)
            links_by_spoke = store.links_by_spoke_items(spoke.id, ids) if ids else {}
            # each link is read once: those of the changed items are known already
            have = {link.hub_item_id: link for link in links_by_spoke.values()}
            wanted = [h.id for h in hub_changed] + [i.hub_id for i in changes.items if i.hub_id]
            wanted = [i for i in dict.fromkeys(wanted) if i not in have]
            links_by_hub = store.links_by_hub_items(spoke.id, wanted) if wanted else {}
            links_by_hub.update(have)
            live = -1  # counted only when a deletion needs the guard
        needed = self._hub_items_needed(spoke, connector, changes, links_by_spoke)
        known = {h.id: h for h in hub_changed}
        missing = [i for i in needed if i not in known]
        hub_items = dict(known)
        if missing:
            hub_items.update(store.get_hub_items(spoke.hub_id, missing))
        if first and spoke.retry_attention and spoke.options.two_way and spoke.attention:
            # the administrator asked to try the refused writes again: plan those items once more
            again = [str(a["hub_item_id"]) for a in spoke.attention if a.get("hub_item_id") not in known]
            for item in store.get_hub_items(spoke.hub_id, again).values():
                hub_changed.append(item)
                known[item.id] = hub_items[item.id] = item
            fresh = [h.id for h in hub_changed if h.id not in links_by_hub]
            if fresh:
                links_by_hub.update(store.links_by_hub_items(spoke.id, fresh))
        candidates: list[HubItem] | None = None
        if first and self._matches_on_join(spoke):
            # Joining: the spoke's items that are already in the hub are linked, not copied. A
            # two-way spoke's first run has read every hub item already (its hub cursor is 0; the
            # hub is read in one page when the spoke has items to match, see `_plan`).
            pool = ([h for h in hub_changed if not h.deleted] if spoke.options.two_way and spoke.hub_cursor == 0
                    else store.list_hub_items(spoke.hub_id))
            linked = set(links_by_hub) if changes.full else {k.hub_item_id for k in store.list_links(spoke.id)}
            candidates = [h for h in pool if h.id not in linked]
        if first and spoke.match_decisions:
            # an administrator decided ambiguous matches: plan those spoke items again
            listed = {i.id for i in changes.items}
            again = [i for i in spoke.match_decisions if i not in listed]
            if again:
                changes = replace(changes, items=[*changes.items, *connector.read(again).values()])
            chosen = [h for h in spoke.match_decisions.values() if h and h not in hub_items]
            if chosen:
                hub_items.update(store.get_hub_items(spoke.hub_id, chosen))
        restore: dict[str, SpokeItem] = {}
        if spoke.refuse_deletions and spoke.options.deletions != "keep":
            # A refused deletion keeps both sides: what the hub deleted comes back from this spoke's copies.
            ids = [links_by_hub[h.id].spoke_item_id for h in hub_changed if h.deleted and h.id in links_by_hub]
            ids += [i.id for i in changes.items if i.hub_id and hub_items.get(i.hub_id, _LIVE).deleted]
            if ids:
                restore = connector.read(list(dict.fromkeys(ids)))
        inp = PlanInput(
            hub_id=spoke.hub_id, spoke_id=spoke.id, options=spoke.options, fields=connector.capabilities.fields,
            changes=changes, hub_changed=hub_changed, hub_items=hub_items, links_by_spoke=links_by_spoke,
            links_by_hub=links_by_hub, now=self.clock.now(), new_id=self.ctx.store.new_item_id,
            refuse_deletions=spoke.refuse_deletions, restore=restore,
            confirmed=frozenset(spoke.confirmed_ids) if spoke.confirm_deletions else frozenset(),
            hashes=self.hashes, kind=kind, limits=dict(connector.capabilities.limits),
            match_candidates=candidates, match_decisions=dict(spoke.match_decisions),
            ambiguous_ids=frozenset(str(a.get("spoke_item_id")) for a in spoke.ambiguous),
        )
        return inp, live

    def _hub_items_needed(self, spoke: Spoke, connector: SpokeConnector, changes: ChangeSet,
                          links_by_spoke: dict[str, Link]) -> set[str]:
        """The hub items the plan will look at: those of spoke items that changed (an unchanged
        copy — the same version, or the same content — needs only its link), of deletions, and
        of unlinked items that carry a hub id (a retried create, an orphan)."""
        fields = connector.capabilities.fields
        needed: set[str] = set()
        seen: set[str] = set()
        for item in changes.items:
            seen.add(item.id)
            link = links_by_spoke.get(item.id)
            if link is None:
                if item.hub_id:
                    needed.add(item.hub_id)
                continue
            if link.detached or (item.version and item.version == link.spoke_version):
                continue
            names = self.kind.compared_fields(spoke.options, fields, link.created_by_hub)
            if self.hashes(item.event, names) != link.spoke_hash:
                needed.add(link.hub_item_id)
        for spoke_item_id in changes.deleted:
            link = links_by_spoke.get(spoke_item_id)
            if link is not None:
                needed.add(link.hub_item_id)
        if changes.full:
            needed |= {link.hub_item_id for sid, link in links_by_spoke.items() if sid not in seen}
        return needed

    def _hub_page(self, spoke: Spoke, after: int, limit: int | None) -> tuple[list[HubItem], int, bool]:
        """One page of the hub's changes for a two-way spoke: the items, the last seq read, and
        whether more may follow."""
        if not spoke.options.two_way:
            return [], after, False
        items = self.store.hub_items_since(spoke.hub_id, after, limit)
        return items, max([after] + [h.seq for h in items]), limit is not None and len(items) >= limit

    def _plan(self, spoke: Spoke, paged: bool = True) -> _Planned:
        """The spoke's changes and the first page of the hub's, planned. Read in one page: a dry
        run (its preview is the whole run), and a joining spoke with items to match (every hub
        item is a candidate)."""
        connector = self.ctx.connector(spoke)
        changes, previous = self._read(spoke, connector)
        self._use_kind(spoke)
        joining = bool(changes.items) and self._matches_on_join(spoke)
        if changes.more:
            if (not paged or (joining and self.store.count_hub_items(spoke.hub_id))
                    or (changes.full and self.store.count_links(spoke.id))):
                # Read to the end: a dry run, a spoke joining a hub with items to match against
                # (every listed item is matched), a full listing of a spoke with links (a link
                # not listed is a deletion: known only from the whole listing).
                changes = self._drain(connector, changes)
            elif changes.full:
                # A first listing (nothing linked: nothing to find deleted), taken page by page:
                # each page is planned as the items it lists, no more (the links earlier pages
                # wrote are not deletions).
                changes = replace(changes, full=False)
        whole = not paged or (joining and spoke.hub_cursor == 0)
        hub_changed, read_to, more = self._hub_page(spoke, spoke.hub_cursor, None if whole else self.page_size)
        inp, live = self._inputs(spoke, connector, changes, hub_changed)
        return _Planned(connector, changes, plan_sync(inp), live, inp.hub_changed, previous, inp.hub_items,
                        read_to, more)

    @staticmethod
    def _drain(connector: SpokeConnector, changes: ChangeSet) -> ChangeSet:
        """Every page of the answer `changes` begins, as one ChangeSet."""
        items, deleted = list(changes.items), list(changes.deleted)
        while changes.more:
            changes = connector.changes(changes.cursor)
            items += changes.items
            deleted += changes.deleted
        return ChangeSet(items, deleted, changes.cursor, changes.full)

    def _next_spoke_page(self, spoke: Spoke, connector: SpokeConnector, token: bytes | None, read_to: int,
                         more: bool) -> _Planned:
        """The next page of the spoke's answer, planned alone (the hub's paging state carried)."""
        self.hashes = rules.HashMemo()
        changes = connector.changes(token)
        # (a paged listing is a first one, see `_plan`: its pages are the items they list)
        changes = replace(changes, full=False)
        inp, live = self._inputs(spoke, connector, changes, [], first=False)
        return _Planned(connector, changes, plan_sync(inp), live, inp.hub_changed, token, inp.hub_items,
                        read_to, more)

    def _next_page(self, spoke: Spoke, connector: SpokeConnector, after: int) -> _Planned:
        """The next page of the hub's changes (those after seq `after`), planned alone."""
        self.hashes = rules.HashMemo()  # the memo keeps its events: one per page
        hub_changed, read_to, more = self._hub_page(spoke, after, self.page_size)
        changes = ChangeSet([], [], None, False)
        inp, live = self._inputs(spoke, connector, changes, hub_changed, first=False)
        return _Planned(connector, changes, plan_sync(inp), live, inp.hub_changed, None, inp.hub_items,
                        read_to, more)

    def _guard(self, spoke: Spoke, planned: _Planned, made: tuple[int, int] = (0, 0)) -> GuardVerdict:
        """Weigh the plan's deletions against the spoke's and the hub's deletion budgets; `made`:
        the (hub, spoke) deletions this run's earlier pages made, which count against them too."""
        changes, plan, live = planned.changes, planned.plan, planned.live
        hub_ids, spoke_ids = planned_deletions(plan)
        if (hub_ids or spoke_ids or changes.full) and live < 0:
            live = self.store.count_links(spoke.id)
        now = self.clock.now()
        spoke_window = sum(window_deletions(spoke, now)) + sum(made)
        confirmed = frozenset(spoke.confirmed_ids) if spoke.confirm_deletions else frozenset()
        hub_window, hub_live = 0, -1
        if any(i not in confirmed for i in hub_ids):
            # the hub's budget: every spoke's deletions into the hub inside its window
            hub_window = sum(window_deletions(s, now)[0] for s in self.store.list_spokes(spoke.hub_id)) + made[0]
            hub_live = self.store.count_hub_items(spoke.hub_id)
        budget = DeletionBudget(live, spoke_window, hub_window, hub_live, confirmed,
                                confirmed_all=spoke.confirm_deletions and not spoke.confirmed_ids,
                                refused=spoke.refuse_deletions)
        return check_guards(changes, plan, budget, spoke.options, spoke.name)

    def _pause_details(self, verdict: GuardVerdict, planned: _Planned) -> dict[str, object]:
        """What a pause is about, for the administrator: the items, their dates, who deleted them."""
        hub_ids, _ = planned_deletions(planned.plan)
        from_spoke = set(hub_ids)
        tombs = {a.hub_item.id: a.hub_item for a in planned.plan.spoke if isinstance(a, SpokeDelete)}
        details: list[dict[str, object]] = []
        for hub_item_id in verdict.ids[:PENDING_DETAILS_MAX]:
            known = planned.hub_items.get(hub_item_id) or tombs.get(hub_item_id)
            title, start = "", ""
            if known is not None and known.event is not None:
                title, _, start = self.kind.label(known.event).partition("\t")
            elif known is not None and known.label:
                title, _, start = known.label.partition("\t")
            details.append({"hub_item_id": hub_item_id, "title": title, "start": start,
                            "deleted_in": "spoke" if hub_item_id in from_spoke else "hub"})
        return {"pending_deletions": verdict.deletions, "pending_ids": list(verdict.ids[:PENDING_IDS_MAX]),
                "pending_items": details}

    def _peek(self, run: RunRecord) -> tuple[Spoke, _Planned] | None:
        """Plan without the lease (reads only): an idle poll ends here. None when the spoke is in
        a state only a full run handles (held by a run, paused, an administrator's decision
        waiting, a sync requested meanwhile) or reading failed (the full run reports it)."""
        spoke = self.store.get_spoke(run.spoke_id)
        now = self.clock.now()
        if (spoke is None or spoke.state != "ok" or spoke.dirty or spoke.retry_attention
                or spoke.confirm_deletions or spoke.refuse_deletions or spoke.match_decisions
                or (spoke.lease_owner and spoke.lease_expires is not None and spoke.lease_expires > now)):
            return None
        try:
            return spoke, self._plan(spoke)
        except Exception:  # noqa: BLE001 - the run that follows meets the same failure and records it
            log.debug("peek failed; running in full", extra={"spoke_id": spoke.id}, exc_info=True)
            return None

    def _run(self, spoke: Spoke, run: RunRecord, progress: _Progress) -> None:
        deadline = self.clock.monotonic() + self.budget_s
        self._report(run, progress, "reading")
        planned = self._planned if self._planned is not None else self._plan(spoke)
        self._planned = None
        connector, changes, plan = planned.connector, planned.changes, planned.plan
        verdict = self._guard(spoke, planned)
        if not verdict.ok:
            self.store.update_spoke(spoke.id, **self._pause_details(verdict, planned))
            raise _Paused(verdict.state, verdict.reason)
        progress.confirmed = frozenset(spoke.confirmed_ids) if spoke.confirm_deletions else frozenset()
        progress.watch = frozenset(str(a.get("hub_item_id")) for a in spoke.attention)
        progress.hub_cursor = spoke.hub_cursor
        if plan.matching:
            progress.ambiguous = list(plan.ambiguous)
        elif spoke.match_decisions:
            progress.ambiguous = [a for a in spoke.ambiguous
                                  if a.get("spoke_item_id") not in spoke.match_decisions] + plan.ambiguous
        for key, found in (("matched", plan.matched), ("ambiguous_matches", plan.ambiguous)):
            if found:
                progress.counts[key] = len(found)
                progress.items.extend({"action": "matched" if key == "matched" else "ambiguous_match",
                                       "title": f["title"], "hub_item_id": f.get("hub_item_id", "")}
                                      for f in found[: max(0, RUN_ITEMS_MAX - len(progress.items))])
        run.conflicts = [c.to_dict() for c in plan.conflicts[:100]]
        progress.counts["conflicts"] = len(plan.conflicts)
        progress.top_seq = max([plan.max_seq, spoke.hub_cursor] + [h.seq for h in planned.hub_changed])
        page = planned
        del planned, plan, changes  # (a page's inputs are let go once it is written)
        feed = True  # the page carries the spoke's changes
        committed = False
        try:
            while True:
                committed = False
                self._apply_page(spoke, run, connector, page, progress, deadline)
                self._commit_cursors(spoke, run, progress, page, feed=feed)
                committed = True
                if not (page.more or (feed and page.changes.more)):
                    break
                # The next page (the spoke's first, then the hub's): its links, its writes and the
                # cursors are committed with it, so that a run interrupted between pages keeps what it did.
                self._check_time(deadline)  # (a stop or the time budget: between two pages too)
                if feed and page.changes.more:
                    progress.inbound_done = False
                    page = self._next_spoke_page(spoke, connector, page.changes.cursor, page.read_to, page.more)
                else:
                    feed = False
                    page = self._next_page(spoke, connector, page.read_to)
                verdict = self._guard(spoke, page, (progress.budget_hub, progress.budget_spoke))
                if not verdict.ok:
                    self.store.update_spoke(spoke.id, **self._pause_details(verdict, page))
                    raise _Paused(verdict.state, verdict.reason)
                run.conflicts += [c.to_dict() for c in page.plan.conflicts[: max(0, 100 - len(run.conflicts))]]
                progress.counts["conflicts"] += len(page.plan.conflicts)
            self._own_writes_seen(spoke, run, connector, progress)
        except _OutOfTime:
            run.status, run.reason = "continued", "time budget used up; continuing in a new run"
            if not committed:  # (a spoke page's cursor only once its inbound writes are in the hub)
                self._commit_cursors(spoke, run, progress, page, feed=feed and progress.inbound_done)

    def _own_writes_seen(self, spoke: Spoke, run: RunRecord, connector: SpokeConnector, progress: _Progress) -> None:
        """Recognise this run's own writes in the spoke's feed, so that its next run does not read
        them back: read the feed from the cursor this run stored (taken before its writes); when it
        holds only this run's writes, each with the version its write returned (a deletion: as
        deleted), store the feed's new cursor. Anything else in it (a user's edit, even of an item
        this run wrote) leaves the stored cursor as it is, and the next run reads it all, as before."""
        own = progress.own
        if not own or progress.stored_cursor is None or progress.rerun or progress.stale:
            return
        cursor: bytes | None = progress.stored_cursor
        try:
            if isinstance(connector, VersionFeed):  # (versions only: no item is fetched)
                changed, deleted, cursor = connector.change_versions(progress.stored_cursor)
                if not _only_own(own, changed.items(), deleted):
                    return
            else:
                cursor = self._own_writes_in_pages(connector, cursor, own)
                if cursor is None:
                    return
        except (ConnectorError, FullResyncRequired):
            return  # (the next run reads the feed from the stored cursor, as before)
        if cursor == progress.stored_cursor:
            return
        self.store.commit(CommitBatch(spoke.hub_id, spoke.id, run.id, cursor=cursor, set_cursor=True),
                          self.clock.now())
        progress.stored_cursor = cursor
        progress.created.clear()  # (the feed from the new cursor is after them: none is unseen)

    @staticmethod
    def _own_writes_in_pages(connector: SpokeConnector, cursor: bytes | None, own: dict[str, str]) -> bytes | None:
        """The feed's cursor after `cursor` when the feed holds only `own` writes; else None."""
        for _ in range(1 + len(own) // 100):  # (a feed of our writes has at most that many pages)
            after = connector.changes(cursor)
            if after.full or not _only_own(own, ((i.id, i.version) for i in after.items), after.deleted):
                return None
            cursor = after.cursor
            if not after.more:
                return cursor
        return None

    def _apply_page(self, spoke: Spoke, run: RunRecord, connector: SpokeConnector, page: _Planned,
                    progress: _Progress, deadline: float) -> None:
        """Write one page's plan: into the hub, then into the spoke; then what met a newer version."""
        plan = page.plan
        progress.unfinished.update(a.hub_item.seq for a in plan.spoke)
        progress.top_seq = max([progress.top_seq, plan.max_seq] + [h.seq for h in page.hub_changed])
        progress.total += len(plan.hub) + len(plan.links) + len(plan.spoke)
        self._report(run, progress, "writing")
        self._apply_hub(spoke, run, plan, progress, deadline)
        progress.inbound_done = True
        self._apply_spoke(spoke, run, connector, plan, progress, deadline)
        if progress.stale:
            more = self._replan_stale(spoke, run, connector, progress, deadline, page.hub_changed)
            progress.top_seq = max([progress.top_seq] + [h.seq for h in more])
        del progress.created[:-UNSEEN_WRITES_MAX]  # (only the last ones are kept: see _finish)

    def _commit_cursors(self, spoke: Spoke, run: RunRecord, progress: _Progress, page: _Planned,
                        feed: bool) -> None:
        """Cursors after a page (or where the run stopped): the spoke's feed only when every
        inbound change is in the hub (`feed`); the hub cursor up to the first hub change not yet
        written to the spoke, and, while more pages follow, no further than the page read."""
        hub_cursor = progress.hub_cursor
        if spoke.options.two_way:
            waiting = [seq for seq, n in progress.unfinished.items() if n > 0]
            progress.unfinished.clear()
            if waiting:
                progress.hold = min([*waiting, progress.hold]) if progress.hold else min(waiting)
            top = page.read_to if page.more else max([progress.top_seq, spoke.hub_cursor, page.read_to])
            # (it may move back: a failed write on an older item is retried from its seq)
            hub_cursor = min(progress.hold - 1, top) if progress.hold else top
        batch = CommitBatch(spoke.hub_id, spoke.id, run.id, hub_cursor=hub_cursor)
        changes = page.changes
        if feed and changes.cursor != page.previous_cursor and (not changes.more or changes.resumable):
            # (a page's token is stored only when the connector says a later run may resume from it)
            batch.cursor, batch.set_cursor = changes.cursor, True
            # the feed's end: the creates before it are in the feed from it on (see _finish); a
            # resumable page's position may be before earlier unseen writes: they are kept
            progress.cursor_stored = progress.cursor_stored or not changes.more
        if feed and not changes.more and changes.cursor is not None and (
                batch.set_cursor or changes.cursor == page.previous_cursor):
            progress.stored_cursor = changes.cursor  # the spoke's cursor now (see _own_writes_seen)
        if batch.set_cursor or hub_cursor != progress.hub_cursor:  # an idle run writes no cursor
            self.store.commit(batch, self.clock.now())
            progress.hub_cursor = hub_cursor

    def _replan_stale(self, spoke: Spoke, run: RunRecord, connector: SpokeConnector, progress: _Progress,
                      deadline: float, page: list[HubItem]) -> list[HubItem]:
        """Items whose write met a newer version (412 / ChangeKey): re-read them
        and plan them again, now, instead of trusting a feed that has moved on (with the page's
        hub items as they are now)."""
        ids = list(dict.fromkeys(progress.stale))
        progress.stale.clear()
        fresh = connector.read(ids)
        again = ChangeSet(list(fresh.values()), [i for i in ids if i not in fresh], None, False)
        current = self.store.get_hub_items(spoke.hub_id, [h.id for h in page]) if page else {}
        inp, _ = self._inputs(spoke, connector, again, [current[h.id] for h in page if h.id in current],
                              first=False)
        plan = plan_sync(inp)
        run.conflicts += [c.to_dict() for c in plan.conflicts[: max(0, 100 - len(run.conflicts))]]
        progress.counts["conflicts"] += len(plan.conflicts)
        progress.unfinished = Counter(a.hub_item.seq for a in plan.spoke)
        self._apply_hub(spoke, run, plan, progress, deadline)
        self._apply_spoke(spoke, run, connector, plan, progress, deadline)
        return inp.hub_changed

    def _report(self, run: RunRecord, progress: _Progress, phase: Literal["reading", "writing", "done"]) -> None:
        counts = progress.counts
        self.ctx.run_progress(RunProgress(
            run.spoke_id, run.id, phase, progress.done, max(progress.total, progress.done),
            into_hub=sum(counts.get(k, 0) for k in ("hub_created", "hub_updated", "hub_deleted", "hub_restored")),
            into_spoke=sum(counts.get(k, 0) for k in ("spoke_created", "spoke_updated", "spoke_deleted"))))

    # --------------------------------------------------------------- inbound
    def _check_time(self, deadline: float) -> None:
        if _STOPPING.is_set():
            raise Interrupted("the process is stopping")
        if self.clock.monotonic() > deadline:
            raise _OutOfTime()

    def _apply_hub(self, spoke: Spoke, run: RunRecord, plan: Plan, progress: _Progress, deadline: float) -> None:
        actions: list[HubUpsert | LinkChange] = [*plan.hub, *plan.links]
        for chunk in iter_batches(actions, HUB_BATCH):
            self._check_time(deadline)
            batch = CommitBatch(spoke.hub_id, spoke.id, run.id)
            for action in chunk:
                if isinstance(action, HubUpsert):
                    batch.hub_writes.append(HubWrite(action.item, action.expected_version))
                    if action.link is not None:
                        batch.link_upserts.append(action.link)
                    elif action.drop_link:
                        batch.link_deletes.append(action.item.id)
                elif action.drop or action.link is None:
                    batch.link_deletes.append(action.hub_item_id)
                else:
                    batch.link_upserts.append(action.link)
            seq = self.store.commit(batch, self.clock.now())
            if seq:
                if progress.own_tail and seq == progress.top_seq + 1:
                    progress.top_seq = seq
                else:
                    progress.own_tail = False
            for action in chunk:
                if isinstance(action, HubUpsert):
                    key = "hub_deleted" if action.item.deleted else (
                        "hub_restored" if action.restore else
                        "hub_created" if action.expected_version == 0 else "hub_updated")
                    progress.counts[key] = progress.counts.get(key, 0) + 1
                    progress.hub_changed = True
                    _note(progress, key, action.item)
                    if action.item.deleted and action.expected_version and not action.item.confirmed:
                        progress.budget_hub += 1
            progress.done += len(chunk)
            self._report(run, progress, "writing")

    # -------------------------------------------------------------- outbound
    def _apply_spoke(self, spoke: Spoke, run: RunRecord, connector: SpokeConnector, plan: Plan,
                     progress: _Progress, deadline: float) -> None:
        size = max(1, connector.capabilities.batch_size)
        creates = [a for a in plan.spoke if isinstance(a, SpokeCreate)]
        updates = [a for a in plan.spoke if isinstance(a, SpokeUpdate)]
        deletes = [a for a in plan.spoke if isinstance(a, SpokeDelete)]
        for c_chunk in iter_batches(creates, size):
            self._check_time(deadline)
            results = connector.create([NewItem(a.hub_item.id, a.event) for a in c_chunk])
            follow = self._settle(spoke, run, progress, connector.capabilities.fields, c_chunk, results)
            updates.extend(follow)
            progress.total += len(follow)
        for u_chunk in iter_batches(updates, size):
            self._check_time(deadline)
            results = connector.update([ItemUpdate(a.link.spoke_item_id, a.version, a.event, a.hub_item.id)
                                        for a in u_chunk])
            self._settle(spoke, run, progress, connector.capabilities.fields, u_chunk, results)
        for d_chunk in iter_batches(deletes, size):
            self._check_time(deadline)
            results = connector.delete([ItemDelete(a.link.spoke_item_id, a.link.spoke_version) for a in d_chunk])
            self._settle(spoke, run, progress, connector.capabilities.fields, d_chunk, results)

    def _settle(self, spoke: Spoke, run: RunRecord, progress: _Progress, fields: frozenset[str],
                actions: list, results: list[WriteResult]) -> list[SpokeUpdate]:  # type: ignore[type-arg]
        """Commit the links of one write batch; returns follow-up updates for
        creates that found their item already there."""
        if len(results) != len(actions):
            raise ConnectorError(f"the spoke answered {len(results)} results for {len(actions)} writes")
        batch = CommitBatch(spoke.hub_id, spoke.id, run.id)
        follow: list[SpokeUpdate] = []
        done_seqs: list[int] = []
        for action, result in zip(actions, results, strict=True):
            hub_item: HubItem = action.hub_item
            compared = self.kind.compared_fields(spoke.options, fields, True if isinstance(action, SpokeCreate)
                                                 else action.link.created_by_hub)
            if result.status in ("ok", "exists", "not_found") and hub_item.id in progress.watch:
                progress.attention_clear.add(hub_item.id)
            if result.status == "ok":
                done_seqs.append(hub_item.seq)
                _own(progress, result.spoke_item_id or action.link.spoke_item_id,
                     "" if isinstance(action, SpokeDelete) else result.version)
                if isinstance(action, SpokeDelete):
                    batch.link_deletes.append(hub_item.id)
                    progress.counts["spoke_deleted"] += 1
                    _note(progress, "spoke_deleted", hub_item)
                    if not hub_item.confirmed and hub_item.id not in progress.confirmed:
                        progress.budget_spoke += 1
                    continue
                created = isinstance(action, SpokeCreate)
                if created:
                    progress.created.append(result.spoke_item_id)
                link = Link(spoke.id, hub_item.id, result.spoke_item_id or action.link.spoke_item_id,
                            result.version, self.hashes(action.event, compared), hub_item.version,
                            created_by_hub=True if created else action.link.created_by_hub)
                batch.link_upserts.append(link)
                progress.counts["spoke_created" if created else "spoke_updated"] += 1
                _note(progress, "spoke_created" if created else "spoke_updated", hub_item, item_title(action.event))
            elif result.status == "exists" and isinstance(action, SpokeCreate):
                # A retried create: the item is there already (an earlier run crashed before
                # committing its link). Link it, then bring it up to date in this run.
                existing_hash = self.hashes(result.item.event, compared) if result.item else ""
                link = Link(spoke.id, hub_item.id, result.spoke_item_id, result.version, existing_hash,
                            hub_item.version, created_by_hub=True)
                batch.link_upserts.append(link)
                if existing_hash != self.hashes(action.event, compared):
                    follow.append(SpokeUpdate(link, hub_item, action.event, result.version))
                    progress.unfinished[hub_item.seq] += 1
                    done_seqs.append(hub_item.seq)
                else:
                    done_seqs.append(hub_item.seq)
            elif result.status == "not_found" and isinstance(action, SpokeDelete):
                done_seqs.append(hub_item.seq)
                batch.link_deletes.append(hub_item.id)
            elif result.status == "not_found" and isinstance(action, SpokeUpdate):
                # deleted in the spoke meanwhile: the hub's newer edit wins, recreate next run
                batch.link_deletes.append(hub_item.id)
                progress.rerun = True
            elif result.status == "conflict":
                # the spoke copy changed since we read it: re-read and re-plan it
                progress.rerun = True
                progress.counts["retries"] += 1
                progress.stale.append(action.link.spoke_item_id)
            elif result.status == "retry":
                progress.rerun = True
                progress.counts["retries"] += 1
                progress.retry_after_s = max(progress.retry_after_s, 30.0)
            else:
                # Refused for good (e.g. a rule the spoke cannot hold): listed on the spoke as needing
                # attention, not retried unchanged, and not holding back the hub cursor. A change of
                # the hub item (or the administrator's "try again") plans it again.
                done_seqs.append(hub_item.seq)
                progress.counts["write_errors"] += 1
                message = result.message or result.status
                progress.errors.append(f"{_VERB[type(action).__name__]} '{_title(action)}': {message}")
                progress.attention_add[hub_item.id] = {
                    "hub_item_id": hub_item.id, "hub_version": hub_item.version, "title": _title(action),
                    "action": _VERB[type(action).__name__], "message": message, "at": self.clock.now().isoformat()}
        for seq in done_seqs:
            progress.unfinished[seq] -= 1
        if len(batch):
            self.store.commit(batch, self.clock.now())
        progress.done += len(actions)
        self._report(run, progress, "writing")
        return follow


    # ------------------------------------------------------------ dry runs
    def _dry_run(self, run: RunRecord) -> RunRecord:
        spoke = self.store.get_spoke(run.spoke_id)
        if spoke is None:
            raise KeyError(f"no spoke {run.spoke_id}")
        run.hub_id = spoke.hub_id
        planned = self._plan(spoke, paged=False)
        plan = planned.plan
        verdict = self._guard(spoke, planned)
        run.status = "dry_run"
        run.reason = "" if verdict.ok else verdict.reason
        run.counts = plan.counts()
        run.conflicts = [c.to_dict() for c in plan.conflicts[:100]]
        run.plan = plan.describe()
        run.finished_at = self.clock.now()
        return run


class _Paused(Exception):
    def __init__(self, state: str, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


_VERB = {"SpokeCreate": "create", "SpokeUpdate": "update", "SpokeDelete": "delete"}


def _title(action: SpokeCreate | SpokeUpdate | SpokeDelete) -> str:
    event = action.hub_item.event
    if event is not None:
        return item_title(event)
    return action.hub_item.label.partition("\t")[0] or action.hub_item.id



# Runs a person asked for: they always take the lease and leave a record (folded when idle).
RECORDED_REASONS = frozenset({"manual", "initial", "confirmed", "refused", "credential_repaired", "retry"})


def _idle(planned: _Planned) -> bool:
    """Nothing to write anywhere: no hub change for the spoke, its feed's cursor unchanged, and a
    plan without actions (a full listing repeats every item: idle when nothing in it moved)."""
    plan = planned.plan
    return (not planned.hub_changed and planned.changes.cursor == planned.previous_cursor
            and not (plan.hub or plan.links or plan.spoke or plan.conflicts))


def _same_spoke(before: Spoke, after: Spoke) -> bool:
    """The spoke record is as it was, apart from the lease just taken."""
    return replace(after, lease_owner=before.lease_owner, lease_expires=before.lease_expires,
                   dirty=before.dirty) == before


def _note(progress: _Progress, action: str, item: HubItem, title: str | None = None) -> None:
    """Name a changed item in the run record (the first RUN_ITEMS_MAX of them)."""
    if len(progress.items) >= RUN_ITEMS_MAX:
        return
    if title is None:
        title = item_title(item.event) if item.event is not None else item.label.partition("\t")[0]
    progress.items.append({"action": action, "title": title or "(no title)", "hub_item_id": item.id})


def _outcome(run: RunRecord) -> str:
    """What a run came to, as a key: runs in a row with the same key and nothing done share a record."""
    return hashlib.sha256(f"{run.status}\n{run.reason}".encode()).hexdigest()[:16]


def _quiet(run: RunRecord) -> bool:
    """Nothing changed, no conflict, no error: an idle poll, a repeated pause or failure, an echo."""
    return (run.status in ("ok", "paused", "failed") and not run.errors and not run.conflicts
            and not any(run.counts.values()))


def _window_log(spoke: Spoke, now: datetime) -> list[dict[str, object]]:
    """The spoke's deletion log inside its budget window."""
    start = now - timedelta(hours=spoke.options.deletion_window_h)
    return [e for e in spoke.deletion_log if datetime.fromisoformat(str(e.get("at"))) > start]


def window_deletions(spoke: Spoke, now: datetime) -> tuple[int, int]:
    """(hub deletions, spoke deletions) this spoke's runs made inside the budget window."""
    entries = _window_log(spoke, now)
    return (sum(int(e.get("hub", 0)) for e in entries),  # type: ignore[call-overload]
            sum(int(e.get("spoke", 0)) for e in entries))  # type: ignore[call-overload]


def _attention(spoke: Spoke, progress: _Progress) -> list[dict[str, object]] | None:
    """The spoke's refused writes after this run (None: unchanged)."""
    if spoke.retry_attention:  # every refused write was planned again: what failed again is re-added
        return list(progress.attention_add.values())[-ATTENTION_MAX:]
    if not progress.attention_add and not (progress.attention_clear & {str(a.get("hub_item_id")) for a in spoke.attention}):
        return None
    kept = [a for a in spoke.attention
            if a.get("hub_item_id") not in progress.attention_clear and a.get("hub_item_id") not in progress.attention_add]
    return (kept + list(progress.attention_add.values()))[-ATTENTION_MAX:]
