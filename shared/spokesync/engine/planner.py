"""The pure planner: (a spoke's changes, hub items, links, options) -> actions.

No I/O. The runner gathers the inputs, calls `plan_sync`, checks the guards
and applies the plan. Rules (see docs/decisions/2026-11-23-sync-semantics.md):

- Inbound first: spoke edits become hub upserts/deletes; then outbound: hub
  items changed since the spoke's hub cursor become spoke creates/updates/deletes.
- A spoke copy counts as edited only when its content hash over the fields it
  exchanges with the hub changed (echo suppression); a hub item counts as
  changed for a spoke when its version is newer than the link's.
- Both changed: the spoke's conflict policy decides, and a Conflict records
  both versions. Delete against edit: the edit wins (no silent data loss).
- Filters define membership; the date window only limits what gets created.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from spokesync.engine import rules
from spokesync.engine.kinds import CALENDAR, ItemKind
from spokesync.model.hub import Conflict, HubItem, Link, SyncOptions, hash_scope
from spokesync.model.item import Item
from spokesync.ports import ChangeSet, SpokeItem


@dataclass(frozen=True)
class HubUpsert:
    item: HubItem
    expected_version: int  # 0: must not exist yet
    link: Link | None  # this spoke's link after the write (None: drop it)
    drop_link: bool = False
    restore: bool = False  # a refused deletion: the item comes back from this spoke's copy


@dataclass(frozen=True)
class LinkChange:
    """Only the link moves (a spoke version that changed without an edit, an
    adopted item, a detachment)."""

    link: Link | None
    hub_item_id: str
    drop: bool = False


@dataclass(frozen=True)
class SpokeCreate:
    hub_item: HubItem
    event: Item  # the projection written into the spoke


@dataclass(frozen=True)
class SpokeUpdate:
    link: Link
    hub_item: HubItem
    event: Item
    version: str  # precondition: the spoke copy's version


@dataclass(frozen=True)
class SpokeDelete:
    link: Link
    hub_item: HubItem


SpokeAction = SpokeCreate | SpokeUpdate | SpokeDelete


@dataclass
class Plan:
    hub: list[HubUpsert] = field(default_factory=list)
    links: list[LinkChange] = field(default_factory=list)
    spoke: list[SpokeAction] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    # hub seq of each outbound action's item: the hub cursor may not pass an unfinished one
    max_seq: int = 0
    kind: ItemKind = CALENDAR  # the hub's item kind: how the plan names its items
    # Matching instead of duplicating (docs/decisions/2026-12-01-matching.md): spoke items linked to
    # the hub item that is the same person (or meeting), and those that match several (or share
    # their match with another spoke item): left unlinked until an administrator decides.
    matched: list[dict[str, object]] = field(default_factory=list)
    ambiguous: list[dict[str, object]] = field(default_factory=list)
    matching: bool = False  # this plan matched the spoke's unlinked items (it is joining)

    @property
    def hub_deletes(self) -> int:
        return sum(1 for a in self.hub if a.item.deleted and a.expected_version)

    @property
    def spoke_deletes(self) -> int:
        return sum(1 for a in self.spoke if isinstance(a, SpokeDelete))

    def counts(self) -> dict[str, int]:
        hub_created = sum(1 for a in self.hub if a.expected_version == 0)
        return {
            "hub_created": hub_created,
            "hub_updated": sum(1 for a in self.hub if a.expected_version and not a.item.deleted),
            "hub_deleted": self.hub_deletes,
            "spoke_created": sum(1 for a in self.spoke if isinstance(a, SpokeCreate)),
            "spoke_updated": sum(1 for a in self.spoke if isinstance(a, SpokeUpdate)),
            "spoke_deleted": self.spoke_deletes,
            "conflicts": len(self.conflicts),
        }

    def describe(self) -> list[dict[str, object]]:
        """The plan in words, for dry runs."""
        out: list[dict[str, object]] = []
        title = self.kind.title
        for h in self.hub:
            kind = "hub_delete" if h.item.deleted else ("hub_create" if h.expected_version == 0 else "hub_update")
            out.append({"action": kind, "hub_item_id": h.item.id,
                        "title": "" if h.item.event is None else title(h.item.event)})
        for s in self.spoke:
            if isinstance(s, SpokeCreate):
                out.append({"action": "spoke_create", "hub_item_id": s.hub_item.id, "title": title(s.event)})
            elif isinstance(s, SpokeUpdate):
                out.append({"action": "spoke_update", "hub_item_id": s.hub_item.id,
                            "spoke_item_id": s.link.spoke_item_id, "title": title(s.event)})
            else:
                out.append({"action": "spoke_delete", "hub_item_id": s.hub_item.id,
                            "spoke_item_id": s.link.spoke_item_id})
        for c in self.conflicts:
            out.append({"action": "conflict", "hub_item_id": c.hub_item_id, "kind": c.kind, "winner": c.winner})
        out.extend({"action": "match", **m} for m in self.matched)
        out.extend({"action": "ambiguous_match", **a} for a in self.ambiguous)
        return out


@dataclass(frozen=True)
class PlanInput:
    hub_id: str
    spoke_id: str
    options: SyncOptions
    fields: frozenset[str]  # the connector's capabilities.fields
    changes: ChangeSet
    # hub items with seq > the spoke's hub cursor (two-way only; a one-way spoke's refused run: the
    # tombstones of the items its pause listed)
    hub_changed: list[HubItem]
    hub_items: dict[str, HubItem]  # hub items the spoke's changes refer to
    links_by_spoke: dict[str, Link]  # links of the changed / deleted / listed spoke items
    links_by_hub: dict[str, Link]  # links of hub_changed items (and of every item on a full listing)
    now: datetime
    new_id: Callable[[], str]
    # an administrator refused the spoke's deletions: restore instead of deleting, both ways
    refuse_deletions: bool = False
    # for a refused run: this spoke's copies of items the hub deleted, by spoke item id
    restore: dict[str, SpokeItem] = field(default_factory=dict)
    # hub item ids an administrator confirmed for deletion (their tombstones say so)
    confirmed: frozenset[str] = frozenset()
    # the run's content hashes: each event is hashed once per run (the runner shares it)
    hashes: rules.HashMemo = field(default_factory=rules.HashMemo)
    # the hub's item kind (by its object type) and the spoke's fixed slots (Capabilities.limits)
    kind: ItemKind = CALENDAR
    limits: Mapping[str, int] = field(default_factory=dict)
    # matching instead of duplicating: live hub items this spoke has no link to, which its
    # unlinked items are matched against (given while the spoke joins, when matching is on)
    match_candidates: list[HubItem] | None = None
    # an administrator's decisions on ambiguous matches: spoke item id -> hub item id ("": a new item)
    match_decisions: Mapping[str, str] = field(default_factory=dict)
    # spoke items still waiting for such a decision: never copied meanwhile
    ambiguous_ids: frozenset[str] = frozenset()


Winner = Literal["hub", "spoke"]


def _conflict_winner(policy: str, spoke_id: str, hub_item: HubItem, spoke_event: Item) -> Winner:
    if policy == "hub":
        return "hub"
    if policy.startswith("spoke:"):
        return "spoke" if policy.split(":", 1)[1] == spoke_id else "hub"
    # most recent change wins; a tie (or no timestamps) keeps the hub's version
    if spoke_event.modified is not None and (hub_item.modified is None or spoke_event.modified > hub_item.modified):
        return "spoke"
    return "hub"


class _Planner:
    def __init__(self, inp: PlanInput) -> None:
        self.inp = inp
        self.kind = inp.kind
        self.plan = Plan(kind=inp.kind)
        self.matching: dict[str, list[str]] | None = None  # spoke item id -> matching hub item ids
        self.matched_by: dict[str, list[str]] = {}  # hub item id -> spoke item ids matching it
        self.candidates: dict[str, HubItem] = {}
        if inp.match_candidates is not None:
            self.index_matches(inp.match_candidates)
        self.opts = inp.options
        self.two_way = inp.options.two_way
        self.keep_deletions = inp.options.deletions == "keep"
        self.handled: set[str] = set()  # hub item ids already decided in this plan
        # links as they will be after the inbound pass (outbound reads these)
        self.links_by_hub: dict[str, Link] = dict(inp.links_by_hub)
        for link in inp.links_by_spoke.values():
            self.links_by_hub.setdefault(link.hub_item_id, link)

    # ------------------------------------------------------------ helpers
    def compared(self, created_by_hub: bool) -> frozenset[str]:
        return self.kind.compared_fields(self.opts, self.inp.fields, created_by_hub)

    def exchanged(self) -> frozenset[str]:
        return self.kind.exchanged_fields(self.opts, self.inp.fields)

    def project(self, item: Item | None, created_by_hub: bool) -> Item:
        """What the hub writes into this spoke for `item`."""
        return self.kind.project(item if item is not None else self.kind.blank(), self.opts, self.inp.fields,
                                 created_by_hub, self.inp.limits)

    def merge(self, hub: Item | None, spoke: Item, names: frozenset[str]) -> Item:
        return self.kind.merge_inbound(hub, spoke, names, self.opts, self.inp.limits)

    def _dump(self, item: Item | None) -> dict[str, object] | None:
        return None if item is None else self.kind.to_dict(item)

    def link_for(self, item: SpokeItem, hub_item_id: str, hub_version: int, created_by_hub: bool) -> Link:
        return Link(
            spoke_id=self.inp.spoke_id,
            hub_item_id=hub_item_id,
            spoke_item_id=item.id,
            spoke_version=item.version,
            spoke_hash=self.inp.hashes(item.event, self.compared(created_by_hub)),
            hub_version=hub_version,
            created_by_hub=created_by_hub,
        )

    def merged_hash(self, item: SpokeItem, merged: Item, names: frozenset[str]) -> str:
        """The hub version's hash over the fields taken from the spoke copy: the copy's own hash
        (computed once) when the merge took those fields as they are (a removed category stamp,
        the hub's overflow or a kept photo make new values: then the merge is hashed itself)."""
        if self.kind.hashes_alike(item.event, merged, names):
            value = self.inp.hashes(item.event, names)
            self.inp.hashes.seed(merged, names, value)
            return value
        return self.inp.hashes(merged, names)

    def projection(self, hub: HubItem, created_by_hub: bool) -> Item:
        """What the hub writes into this spoke for `hub` (`project`). When the hub item's hash
        covers exactly the fields this spoke compares and the copy took them as they are, the
        run knows the copy's hash already: it is the hub item's (seeded, never computed again).
        docs/decisions/2026-12-01-hash-once.md"""
        event = self.project(hub.event, created_by_hub)
        if hub.hash and hub.hash_of and hub.event is not None:
            names = self.compared(created_by_hub)
            if (hub.hash_of == hash_scope(self.kind.object_type, names)
                    and self.kind.hashes_alike(hub.event, event, names)):
                self.inp.hashes.seed(event, names, hub.hash)
        return event

    def hub_version_of(self, item_id: str, base: HubItem | None, event: Item | None, deleted: bool,
                       hash_: str = "", names: frozenset[str] | None = None) -> HubItem:
        """The hub's next version of `item_id`; `hash_`: `event`'s content hash over `names`
        (exactly that: the hub item records which names it covers, `HubItem.hash_of`)."""
        version = (base.version if base else 0) + 1
        return HubItem(
            id=item_id,
            hub_id=self.inp.hub_id,
            version=version,
            seq=0,
            event=event,
            hash="" if event is None else hash_,
            hash_of="" if event is None or not hash_ or names is None else hash_scope(self.kind.object_type, names),
            origin_spoke_id=base.origin_spoke_id if base else self.inp.spoke_id,
            modified=(event.modified if event is not None and event.modified else self.inp.now),
            deleted=deleted,
            confirmed=deleted and item_id in self.inp.confirmed,
            label=self.kind.label(base.event) if deleted and base is not None and base.event is not None else "",
        )

    def set_link(self, link: Link | None, hub_item_id: str) -> None:
        if link is None:
            self.links_by_hub.pop(hub_item_id, None)
        else:
            self.links_by_hub[hub_item_id] = link

    # ----------------------------------------------------------- matching
    def index_matches(self, candidates: list[HubItem]) -> None:
        """Which unlinked spoke items are the same as which unlinked hub items (by the kind's keys)."""
        by_key: dict[str, set[str]] = {}
        for hub in candidates:
            if hub.deleted or hub.event is None:
                continue
            self.candidates[hub.id] = hub
            for key in self.kind.match_keys(hub.event):
                by_key.setdefault(key, set()).add(hub.id)
        self.matching = {}
        self.plan.matching = True
        for item in self.inp.changes.items:
            if item.id in self.inp.links_by_spoke or (item.hub_id and item.hub_id in self.inp.hub_items):
                continue
            found: set[str] = set()
            for key in self.kind.match_keys(item.event):
                found |= by_key.get(key, set())
            if found:
                self.matching[item.id] = sorted(found)
                for hub_id in found:
                    self.matched_by.setdefault(hub_id, []).append(item.id)

    def match(self, item: SpokeItem) -> bool:
        """Link `item` to the hub item it is the same as, or hold it back when that is ambiguous.
        False: it is a new item (copy it into the hub)."""
        decided = self.inp.match_decisions.get(item.id)
        if decided is not None:
            hub = self.candidates.get(decided) or self.inp.hub_items.get(decided)
            if not decided or hub is None or hub.deleted:
                return False  # "a new item" (or its chosen match is gone): copy it
            if decided in self.links_by_hub:  # taken by another item meanwhile: ask again
                self.plan.ambiguous.append({"spoke_item_id": item.id, "title": self.kind.title(item.event),
                                            "detail": self.detail(item.event), "candidates": [],
                                            "same_as_spoke_items": []})
                return True
            self.link_match(item, hub)
            return True
        found = (self.matching or {}).get(item.id, [])
        found = [h for h in found if h not in self.links_by_hub]  # (linked meanwhile: taken)
        if len(found) == 1 and len(self.matched_by.get(found[0], ())) == 1:
            self.link_match(item, self.candidates[found[0]])
            return True
        if found:
            # several hub items are this one, or another spoke item is the same as its hub item
            rivals = sorted({s for h in found for s in self.matched_by.get(h, ())} - {item.id})
            self.plan.ambiguous.append({
                "spoke_item_id": item.id, "title": self.kind.title(item.event), "detail": self.detail(item.event),
                "candidates": [{"hub_item_id": h, "title": self.kind.title(self.candidates[h].event),  # type: ignore[arg-type]
                                "detail": self.detail(self.candidates[h].event)}  # type: ignore[arg-type]
                               for h in found],
                "same_as_spoke_items": rivals,
            })
            self.handled.update(found)  # not copied into this spoke either, until decided
            return True
        return item.id in self.inp.ambiguous_ids  # (True: still waiting for the administrator)

    def detail(self, item: Item) -> str:
        """What tells two items of one title apart for the administrator deciding a match: a
        contact's first e-mail address, an event's start (the part of `label` after its title)."""
        return self.kind.label(item).partition("\t")[2]

    def link_match(self, item: SpokeItem, hub: HubItem) -> None:
        """The spoke's copy and the hub item are the same: link them. The hub's version keeps its
        values; what only the copy has (a phone number the hub lacks) is added to it. The copy is
        then brought up to date (two-way spokes)."""
        assert hub.event is not None
        self.handled.add(hub.id)
        names = self.compared(False)  # the copy is the spoke's own
        combined = self.kind.combine(hub.event, item.event, names)
        self.plan.matched.append({"hub_item_id": hub.id, "spoke_item_id": item.id,
                                  "title": self.kind.title(hub.event)})
        link = self.link_for(item, hub.id, hub.version, created_by_hub=False)
        target = hub
        if self.kind.content_hash(combined, self.kind.all_fields) != self.kind.content_hash(
                hub.event, self.kind.all_fields):
            target = self.hub_version_of(hub.id, hub, combined, deleted=False,
                                         hash_=self.inp.hashes(combined, names), names=names)
            link = replace(link, hub_version=target.version)
        projected = self.projection(target, False)
        update = self.two_way and self.inp.hashes(projected, names) != link.spoke_hash
        if update:
            link = replace(link, hub_version=hub.version)  # until the copy holds the hub's version
        if target is hub:
            self.plan.links.append(LinkChange(link, hub.id))
        else:
            self.plan.hub.append(HubUpsert(target, hub.version, link))
        self.set_link(link, hub.id)
        if update:
            self.plan.spoke.append(SpokeUpdate(link, replace(target, seq=hub.seq), projected, item.version))
            self.plan.max_seq = max(self.plan.max_seq, hub.seq)

    # ------------------------------------------------------------ inbound
    def inbound_item(self, item: SpokeItem) -> None:
        link = self.inp.links_by_spoke.get(item.id)
        if link is None:
            self.inbound_new(item)
        elif link.detached:
            return
        elif item.version and item.version == link.spoke_version:
            # Unchanged since the link was written (the port's version changes with every change
            # of the server's copy): our own write read back, or an item the feed repeats.
            return
        else:
            self.inbound_linked(item, link)

    def inbound_new(self, item: SpokeItem) -> None:
        hub = self.inp.hub_items.get(item.hub_id) if item.hub_id else None
        if hub is not None and hub.deleted:
            # Our own copy, written before a crash, of an item the hub has since deleted:
            # it is not a new item. Remove it (two-way), never import it again.
            if self.inp.refuse_deletions:
                orphan = Link(self.inp.spoke_id, hub.id, item.id, item.version, "", hub.version, created_by_hub=True)
                self.restore(hub, orphan, item)
                return
            if self.two_way and not self.keep_deletions:
                orphan = Link(self.inp.spoke_id, hub.id, item.id, item.version, "", hub.version, created_by_hub=True)
                self.plan.links.append(LinkChange(orphan, hub.id))  # so a failed delete is retried
                self.plan.spoke.append(SpokeDelete(orphan, hub))
            self.handled.add(hub.id)
            return
        if hub is not None and not hub.deleted and item.hub_id not in self.links_by_hub:
            # Our own earlier write whose link was never committed (a crash): adopt it.
            names = self.compared(True)
            projected = self.projection(hub, True)
            same = self.inp.hashes(item.event, names) == self.inp.hashes(projected, names)
            # version 0 when it holds older content: a failed update is then retried
            link = self.link_for(item, hub.id, hub.version if same else 0, True)
            self.plan.links.append(LinkChange(link, hub.id))
            self.set_link(link, hub.id)
            self.handled.add(hub.id)
            if not same and self.two_way:  # it holds an older version: bring it up to date
                self.plan.spoke.append(SpokeUpdate(link, hub, projected, item.version))
            return
        if not self.kind.belongs(item.event, self.opts, self.inp.now):
            return
        if (self.matching is not None or self.inp.match_decisions or self.inp.ambiguous_ids) and self.match(item):
            return
        hub_id = self.inp.new_id()
        names = self.exchanged()  # == self.compared(False): the item is the spoke's own
        event = self.merge(None, item.event, names)
        new = self.hub_version_of(hub_id, None, event, deleted=False, hash_=self.merged_hash(item, event, names),
                                  names=names)
        link = self.link_for(item, hub_id, new.version, created_by_hub=False)
        self.plan.hub.append(HubUpsert(new, 0, link))
        self.set_link(link, hub_id)
        self.handled.add(hub_id)

    def inbound_linked(self, item: SpokeItem, link: Link) -> None:
        hub = self.inp.hub_items.get(link.hub_item_id)
        names = self.compared(link.created_by_hub)
        new_hash = self.inp.hashes(item.event, names)
        if new_hash == link.spoke_hash:
            if item.version != link.spoke_version:  # the server rewrote it; no edit
                moved = replace(link, spoke_version=item.version)
                self.plan.links.append(LinkChange(moved, link.hub_item_id))
                self.set_link(moved, link.hub_item_id)
            return
        if hub is None:
            # The hub lost the item (should not happen): treat the copy as new.
            self.plan.links.append(LinkChange(None, link.hub_item_id, drop=True))
            self.set_link(None, link.hub_item_id)
            self.inbound_new(replace(item, hub_id=None))
            return
        self.handled.add(hub.id)
        if not self.kind.passes_filters(item.event, self.opts):
            # Edited out of this spoke's share: un-share it (or just let go, when deletions stay local).
            self.inbound_deleted(link, hub, reason_filtered=True)
            return
        hub_changed = hub.deleted or hub.version != link.hub_version
        merged_names = names  # a placeholder copy only ever gives back its times
        if not hub_changed:
            self.take_spoke(item, link, hub, merged_names)
            return
        if hub.deleted:
            # edited here, deleted in the hub: the edit wins and brings the item back
            self.record(hub, item, "edit_delete", "spoke")
            self.take_spoke(item, link, hub, merged_names)
            return
        winner = _conflict_winner(self.opts.conflict_policy, self.inp.spoke_id, hub, item.event)
        self.record(hub, item, "edit_edit", winner)
        if winner == "spoke":
            self.take_spoke(item, link, hub, merged_names)
        elif self.two_way:
            event = self.projection(hub, link.created_by_hub)
            current = replace(link, spoke_version=item.version, spoke_hash=new_hash)
            self.plan.spoke.append(SpokeUpdate(current, hub, event, item.version))
            self.set_link(current, hub.id)
        else:
            # a one-way spoke keeps its edit; the hub keeps its own; stop re-detecting it
            kept = replace(link, spoke_version=item.version, spoke_hash=new_hash, hub_version=hub.version)
            self.plan.links.append(LinkChange(kept, hub.id))
            self.set_link(kept, hub.id)

    def take_spoke(self, item: SpokeItem, link: Link, hub: HubItem, names: frozenset[str]) -> None:
        event = self.merge(None if hub.deleted else hub.event, item.event, names)
        new = self.hub_version_of(hub.id, hub, event, deleted=False, hash_=self.merged_hash(item, event, names),
                                  names=names)
        new_link = self.link_for(item, hub.id, new.version, link.created_by_hub)
        if self.inp.limits and self.two_way:
            # A spoke with fixed slots: the hub kept what did not fit (a fourth e-mail address), and
            # what fits changed with the edit (one of three was removed: the fourth now fits).
            # Give the spoke the new projection; the link keeps the old hub version until written.
            projected = self.project(event, link.created_by_hub)
            if self.inp.hashes(projected, names) != new_link.spoke_hash:
                kept = replace(new_link, hub_version=hub.version)
                self.plan.hub.append(HubUpsert(new, hub.version, kept))
                self.set_link(kept, hub.id)
                self.plan.spoke.append(SpokeUpdate(kept, replace(new, seq=hub.seq), projected, item.version))
                self.plan.max_seq = max(self.plan.max_seq, hub.seq)
                return
        self.plan.hub.append(HubUpsert(new, hub.version, new_link))
        self.set_link(new_link, hub.id)

    def inbound_deleted(self, link: Link, hub: HubItem | None, reason_filtered: bool = False) -> None:
        if hub is None or hub.deleted:
            self.plan.links.append(LinkChange(None, link.hub_item_id, drop=True))
            self.set_link(None, link.hub_item_id)
            return
        self.handled.add(hub.id)
        if self.inp.refuse_deletions and not reason_filtered:
            self.plan.links.append(LinkChange(None, hub.id, drop=True))
            self.set_link(None, hub.id)
            if self.two_way and hub.event is not None:
                self.plan.spoke.append(SpokeCreate(hub, self.projection(hub, True)))
            return
        if self.keep_deletions:
            detached = replace(link, detached=True)
            self.plan.links.append(LinkChange(detached, hub.id))
            self.set_link(detached, hub.id)
            return
        if hub.version != link.hub_version and not reason_filtered:
            # deleted here, edited in the hub: the edit wins
            self.record(hub, None, "delete_edit", "hub")
            self.plan.links.append(LinkChange(None, hub.id, drop=True))
            self.set_link(None, hub.id)
            if self.two_way and hub.event is not None and self.kind.passes_filters(hub.event, self.opts):
                self.plan.spoke.append(SpokeCreate(hub, self.projection(hub, True)))
            return
        tomb = self.hub_version_of(hub.id, hub, None, deleted=True)
        self.plan.hub.append(HubUpsert(tomb, hub.version, None, drop_link=True))
        self.set_link(None, hub.id)

    def restore(self, hub: HubItem, link: Link, item: SpokeItem | None) -> None:
        """A refused deletion of `hub`, deleted in the hub: bring it back from this spoke's copy
        (the hub then gives it back to every other spoke). No copy left: nothing to restore from."""
        self.handled.add(hub.id)
        if item is None:
            self.plan.links.append(LinkChange(None, hub.id, drop=True))
            self.set_link(None, hub.id)
            return
        names = self.compared(link.created_by_hub)
        event = self.merge(None, item.event, names)
        back = self.hub_version_of(hub.id, hub, event, deleted=False, hash_=self.merged_hash(item, event, names),
                                   names=names)
        new_link = self.link_for(item, hub.id, back.version, link.created_by_hub)
        self.plan.hub.append(HubUpsert(back, hub.version, new_link, restore=True))
        self.set_link(new_link, hub.id)

    def record(self, hub: HubItem, item: SpokeItem | None, kind: str, winner: Winner) -> None:
        self.plan.conflicts.append(Conflict(
            hub_item_id=hub.id,
            spoke_item_id="" if item is None else item.id,
            kind=kind,
            policy=self.opts.conflict_policy,
            winner=winner,
            hub_version=self._dump(hub.event),
            spoke_version=None if item is None else self._dump(item.event),
        ))

    # ----------------------------------------------------------- outbound
    def outbound(self, hub: HubItem) -> None:
        self.plan.max_seq = max(self.plan.max_seq, hub.seq)
        if hub.id in self.handled:
            return
        link = self.links_by_hub.get(hub.id)
        if link is not None and link.detached:
            return
        if hub.deleted or hub.event is None:
            if link is not None:
                if self.keep_deletions:
                    self.plan.links.append(LinkChange(replace(link, detached=True), hub.id))
                elif self.inp.refuse_deletions:
                    self.restore(hub, link, self.inp.restore.get(link.spoke_item_id))
                else:
                    self.plan.spoke.append(SpokeDelete(link, hub))
            return
        member = self.kind.passes_filters(hub.event, self.opts)
        if link is None:
            if member and self.kind.in_window(hub.event, self.opts, self.inp.now):
                self.plan.spoke.append(SpokeCreate(hub, self.projection(hub, True)))
            return
        if link.hub_version == hub.version:
            return
        if not member:
            if link.created_by_hub and not self.keep_deletions and not self.inp.refuse_deletions:
                self.plan.spoke.append(SpokeDelete(link, hub))
            else:
                self.plan.links.append(LinkChange(replace(link, detached=True), hub.id))
            return
        event = self.projection(hub, link.created_by_hub)
        if self.inp.hashes(event, self.compared(link.created_by_hub)) == link.spoke_hash:
            # the spoke already shows this content (e.g. a field it does not hold changed)
            self.plan.links.append(LinkChange(replace(link, hub_version=hub.version), hub.id))
            return
        self.plan.spoke.append(SpokeUpdate(link, hub, event, link.spoke_version))

    # ---------------------------------------------------------------- run
    def run(self) -> Plan:
        changes = self.inp.changes
        seen: set[str] = set()
        for item in changes.items:
            seen.add(item.id)
            self.inbound_item(item)
        deleted = list(changes.deleted)
        if changes.full:
            deleted += [sid for sid in self.inp.links_by_spoke if sid not in seen]
        for spoke_item_id in dict.fromkeys(deleted):
            link = self.inp.links_by_spoke.get(spoke_item_id)
            if link is None or link.detached:
                continue
            self.inbound_deleted(link, self.inp.hub_items.get(link.hub_item_id))
        if self.two_way:
            for hub in self.inp.hub_changed:
                self.outbound(hub)
        elif self.inp.refuse_deletions:
            # a one-way spoke's refused deletion: what the hub lost comes back from its copies
            for hub in self.inp.hub_changed:
                link = self.links_by_hub.get(hub.id)
                if hub.deleted and hub.id not in self.handled and link is not None and not link.detached:
                    self.restore(hub, link, self.inp.restore.get(link.spoke_item_id))
        return self.plan


def plan_sync(inp: PlanInput) -> Plan:
    return _Planner(inp).run()


# ---------------------------------------------------------------- guards


@dataclass(frozen=True)
class GuardVerdict:
    ok: bool
    state: str = "ok"  # "needs_confirmation" when not ok
    reason: str = ""
    deletions: int = 0
    ids: tuple[str, ...] = ()  # the hub items the paused run would have deleted (unconfirmed ones)


@dataclass(frozen=True)
class DeletionBudget:
    """What the no-silent-data-loss guards weigh a plan against (all counts, no I/O).

    `spoke_window` / `hub_window`: deletions already made inside the budget window
    (since the last confirmation) by this spoke's runs / by every run of the hub;
    `hub_live`: the hub's live items (-1: not counted, no hub deletion planned)."""

    live_links: int
    spoke_window: int = 0
    hub_window: int = 0
    hub_live: int = -1
    confirmed: frozenset[str] = frozenset()
    confirmed_all: bool = False  # a confirmation without ids (older records): the run may delete
    refused: bool = False


def planned_deletions(plan: Plan) -> tuple[list[str], list[str]]:
    """Hub item ids the plan deletes from the hub, and those it deletes from the spoke
    (tombstones an administrator confirmed elsewhere are not counted again)."""
    hub = [a.item.id for a in plan.hub if a.item.deleted and a.expected_version]
    spoke = [a.hub_item.id for a in plan.spoke if isinstance(a, SpokeDelete) and not a.hub_item.confirmed]
    return hub, spoke


def check_guards(changes: ChangeSet, plan: Plan, budget: DeletionBudget, options: SyncOptions,
                 spoke_name: str) -> GuardVerdict:
    """The no-silent-data-loss guards: an empty read, and the deletion budget over time.

    A run may delete what an administrator confirmed; everything else it would
    delete is added to what was deleted inside the window, and the run pauses
    (deleting nothing) when that total passes both the item count and the share
    of the spoke's items, or of the hub's items."""
    if budget.refused or budget.confirmed_all:
        return GuardVerdict(True)
    hub_ids, spoke_ids = planned_deletions(plan)
    unconfirmed_hub = [i for i in hub_ids if i not in budget.confirmed]
    unconfirmed = list(dict.fromkeys(unconfirmed_hub + [i for i in spoke_ids if i not in budget.confirmed]))
    live = budget.live_links
    if changes.full and not changes.items and live > 0 and (unconfirmed or not budget.confirmed):
        return GuardVerdict(
            False, "needs_confirmation",
            f"Spoke '{spoke_name}' read as empty, but {live} of its items are in the hub. "
            "Nothing was deleted. If the calendar really was emptied, confirm the deletion; "
            "if not, refuse it and every item is kept.",
            len(unconfirmed), tuple(unconfirmed))
    if not unconfirmed:
        return GuardVerdict(True)
    window = f"{options.deletion_window_h} h"
    total = budget.spoke_window + len(unconfirmed)
    baseline = live + budget.spoke_window  # what the spoke held before the window's deletions
    if total > options.max_delete_count and total > options.max_delete_share * baseline:
        earlier = (f" ({budget.spoke_window} already deleted in the last {window}, {len(unconfirmed)} more now)"
                   if budget.spoke_window else "")
        return GuardVerdict(
            False, "needs_confirmation",
            f"Syncing '{spoke_name}' would delete {total} of its {baseline} items{earlier}: more than "
            f"{_share(options.max_delete_share)} in {window}. Nothing more was deleted. "
            "Check the list, then confirm the deletions or refuse them (refusing keeps every item).",
            len(unconfirmed), tuple(unconfirmed))
    if unconfirmed_hub and budget.hub_live >= 0:
        hub_total = budget.hub_window + len(unconfirmed_hub)
        hub_baseline = budget.hub_live + budget.hub_window
        if hub_total > options.max_delete_count and hub_total > options.max_delete_share * hub_baseline:
            return GuardVerdict(
                False, "needs_confirmation",
                f"Syncing '{spoke_name}' would bring the hub's deletions to {hub_total} of its {hub_baseline} "
                f"items in {window}: more than {_share(options.max_delete_share)}. Nothing more was deleted. "
                "Check the list, then confirm the deletions or refuse them (refusing keeps every item).",
                len(unconfirmed), tuple(unconfirmed))
    return GuardVerdict(True)


def _share(value: float) -> str:
    percent = value * 100
    return f"{percent:.0f} %" if abs(percent - round(percent)) < 1e-9 else f"{percent:.1f} %"


def iter_batches(items: list, size: int) -> Iterable[list]:  # type: ignore[type-arg]
    for start in range(0, len(items), size):
        yield items[start : start + size]
