"""The Microsoft 365 contacts spoke (kind "graph_contacts"): one contact folder of a user or shared
mailbox, through Microsoft Graph v1.0, behind the SpokeConnector port.

Same credential (kind "graph": an Entra app with the `Contacts.ReadWrite` application
permission), token handling, throttling, `$batch` and per-mailbox concurrency as the calendar
spoke: both use `GraphClient` and the helpers of `connector.py`.

A spoke's address: `{"mailbox": <UPN, SMTP address or object id>, "folder_id": <contactFolder id>}`.

Change detection (`contactFolders/{id}/contacts/delta`, "contact: delta"):
- `changes(None)`: a delta round is run to its `@odata.deltaLink` first (its token marks the
  moment; `$select=id` keeps it light), then the folder's contacts are listed with their hub id
  and side data: a complete listing (`full=True`). The cursor is the delta link.
- `changes(cursor)`: the delta link gives the ids changed or `@removed`; each is read back once in
  `$batch`es (the delta answer carries no extended properties), and only an id that no longer
  exists is reported deleted. An expired or refused delta token (410): `FullResyncRequired`.

Writes: `$batch`es of ≤ 20. Contacts have no `transactionId`, so a create first looks for a
contact already carrying the hub id (`$filter` on the extended property, the documented way to
find items by a single-value extended property): a create retried after a crash answers
`exists` with that contact instead of making a second one. Updates and deletes carry `If-Match`
with the etag (412: conflict, or not_found when the contact is gone). Versions are etags.
"""

from __future__ import annotations

import json
import urllib.parse
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spokesync.connectors.graph import contact_mapping as cm
from spokesync.connectors.graph.client import GraphClient, Response
from spokesync.connectors.graph.connector import batch_get, classify_conflicts, delta_round, write_failure
from spokesync.connectors.graph.mapping import without_kept
from spokesync.model.item import as_contact
from spokesync.ports import (
    Capabilities,
    ChangeSet,
    ConnectorError,
    FullResyncRequired,
    ItemDelete,
    ItemUpdate,
    NewItem,
    SpokeItem,
    WriteResult,
)

if TYPE_CHECKING:
    from spokesync.config import Config
    from spokesync.model.hub import CredentialRef, Spoke
    from spokesync.ports import Clock, SecretStore

CURSOR = b"GC1"
LIST_PAGE = 200
DELTA_PAGE = 200


@dataclass(frozen=True)
class ContactsTarget:
    mailbox: str  # user principal name / SMTP address / object id (users and shared mailboxes)
    folder_id: str
    kind: str = "user"  # Microsoft 365 groups have no contact folders

    @property
    def root(self) -> str:
        return f"users/{self.mailbox}"

    @property
    def folder_path(self) -> str:
        return f"{self.root}/contactFolders/{self.folder_id}"

    def contact_path(self, contact_id: str) -> str:
        return f"{self.folder_path}/contacts/{contact_id}"


def target_of(address: dict[str, Any]) -> ContactsTarget:
    mailbox = str(address.get("mailbox") or "").strip()
    folder = str(address.get("folder_id") or "").strip()
    if not mailbox:
        raise ConnectorError("the Microsoft 365 contacts spoke needs a mailbox (a user or shared mailbox address)")
    if not folder:
        raise ConnectorError("the Microsoft 365 contacts spoke needs a contacts folder: choose one in the folder "
                             "browser")
    return ContactsTarget(mailbox, folder)


def from_spoke(spoke: Spoke, credential: CredentialRef | None, secrets: SecretStore,
               config: Config, clock: Clock) -> GraphContactsConnector:
    """The registry's factory for kind "graph_contacts"."""
    from spokesync.connectors.graph import client_for_spoke

    target = target_of(spoke.address)
    return GraphContactsConnector(client_for_spoke(spoke, credential, secrets, config, target.mailbox), target)


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class GraphContactsConnector:
    # fields this spoke's options keep out of the sync: updates leave Microsoft 365's values
    # (set by `registry.connector_for`)
    kept: frozenset[str] = frozenset()

    def __init__(self, client: GraphClient, target: ContactsTarget) -> None:
        self.client = client
        self.target = target
        self.capabilities = Capabilities(incremental=True, snapshot_diff=False, push=False, batch_size=20,
                                         fields=cm.FIELDS, deterministic_ids=False, limits=dict(cm.LIMITS))

    def _error(self, resp: Response, doing: str) -> ConnectorError:
        from spokesync.connectors.graph import CONTACTS_ROLE, describe_response

        return describe_response(resp, self.target, doing, role=CONTACTS_ROLE, container="contacts folder")

    @staticmethod
    def _item(raw: dict[str, Any]) -> SpokeItem:
        contact = cm.graph_to_contact(raw)
        return SpokeItem(str(raw["id"]), str(raw.get("@odata.etag") or ""), contact, cm.hub_id_of(raw))

    def _read_url(self, contact_id: str) -> str:
        return f"/{self.target.contact_path(contact_id)}?$select={cm.SELECT}&$expand={cm.EXPAND}"

    # ------------------------------------------------------------ reading
    def _read_raw(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        ids = list(dict.fromkeys(ids))
        found = batch_get(self.client, [self._read_url(i) for i in ids], lambda r: self._error(r, "read contacts"))
        return {ids[n]: raw for n, raw in found.items()}

    def read(self, ids: Sequence[str]) -> dict[str, SpokeItem]:
        return {i: self._item(raw) for i, raw in self._read_raw(ids).items()}

    def _delta(self, url: str) -> tuple[list[dict[str, Any]], str]:
        return delta_round(self.client, url, DELTA_PAGE, lambda r: self._error(r, "read the folder's changes"))

    @staticmethod
    def _link(cursor: bytes) -> str:
        try:
            if cursor[:3] != CURSOR:
                raise ValueError("not a Graph contacts cursor")
            return str(json.loads(zlib.decompress(cursor[3:]))["delta"])
        except (ValueError, KeyError, TypeError, zlib.error) as exc:
            raise FullResyncRequired("unreadable Microsoft 365 contacts cursor: full resync") from exc

    def change_versions(self, cursor: bytes) -> tuple[dict[str, str], list[str], bytes]:
        """`changes(cursor)` as ids and etags only (`ports.VersionFeed`): the same delta round,
        without reading the contacts again. An entry without an etag gets no version (never taken
        for the caller's own write: the next run reads it with `changes`, as before)."""
        raws, new_link = self._delta(self._link(cursor))
        changed: dict[str, str] = {}
        deleted: list[str] = []
        for raw in raws:
            if "id" not in raw:
                continue
            if "@removed" in raw:
                deleted.append(str(raw["id"]))
            else:
                changed[str(raw["id"])] = str(raw.get("@odata.etag") or "")
        return changed, [i for i in dict.fromkeys(deleted) if i not in changed], (
            cursor if not raws else self._cursor(new_link))

    def changes(self, cursor: bytes | None) -> ChangeSet:
        if cursor is None:
            return self._full()
        raws, new_link = self._delta(self._link(cursor))
        touched = list(dict.fromkeys(str(r["id"]) for r in raws if "id" in r))
        found = self.read(touched)
        items = [found[i] for i in touched if i in found]
        deleted = [i for i in touched if i not in found]
        # Nothing new: keep the cursor, so an idle run writes nothing.
        return ChangeSet(items=items, deleted=deleted, cursor=cursor if not raws else self._cursor(new_link),
                         full=False)

    @staticmethod
    def _cursor(link: str) -> bytes:
        return CURSOR + zlib.compress(json.dumps({"delta": link}, separators=(",", ":")).encode())

    def _full(self) -> ChangeSet:
        _, link = self._delta(f"{self.target.folder_path}/contacts/delta?$select=id")
        listing = f"{self.target.folder_path}/contacts?$select={cm.SELECT}&$expand={cm.EXPAND}&$top={LIST_PAGE}"
        raws, resp = self.client.pages(listing, headers={"Prefer": f"odata.maxpagesize={LIST_PAGE}"})
        if not resp.ok:
            raise self._error(resp, "list the contacts folder")
        return ChangeSet(items=[self._item(r) for r in raws], deleted=[], cursor=self._cursor(link), full=True)

    # ------------------------------------------------------------ writing
    def _existing(self, hub_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Contacts of the folder that already carry one of these hub ids (a create retried)."""
        urls = []
        for hub_id in hub_ids:
            value = hub_id.replace("'", "''")
            flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{cm.HUB_ID_PROP}' and ep/value eq '{value}')"
            urls.append(f"/{self.target.folder_path}/contacts?$filter={_q(flt)}&$select={cm.SELECT}"
                        f"&$expand={_q(cm.EXPAND)}&$top=1")
        found = batch_get(self.client, urls, lambda r: self._error(r, "look for contacts already written"))
        return {hub_ids[n]: body["value"][0] for n, body in found.items() if body.get("value")}

    def create(self, items: Sequence[NewItem]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(items)
        there = self._existing([n.hub_id for n in items])
        requests: list[dict[str, Any]] = []
        for index, new in enumerate(items):
            raw = there.get(new.hub_id)
            if raw is not None:
                item = self._item(raw)
                results[index] = WriteResult("exists", item.id, item.version, item=item)
                continue
            body = cm.contact_to_graph(as_contact(new.event), new.hub_id)
            requests.append({"id": str(index), "method": "POST", "url": f"/{self.target.folder_path}/contacts",
                             "body": body})
        for key, resp in self.client.batch(requests).items():
            index = int(key)
            if resp.ok and isinstance(resp.body, dict):
                results[index] = WriteResult("ok", str(resp.body["id"]), str(resp.body.get("@odata.etag") or ""))
            else:
                results[index] = write_failure(resp)
        return [r if r is not None else WriteResult("error", message="no result") for r in results]

    def update(self, items: Sequence[ItemUpdate]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(items)
        bodies = [without_kept(cm.contact_to_graph(as_contact(upd.event), upd.hub_id), self.kept,
                               cm.KEPT_KEYS, cm.KEPT_PROPS) for upd in items]
        if "anniversary" in self.kept and items:
            # the anniversary lives in spokesync's side data, written whole: keep the contact's own
            current = self._read_raw([upd.spoke_item_id for upd in items])
            for body, upd in zip(bodies, items, strict=True):
                if upd.spoke_item_id in current:
                    cm.keep_anniversary(body, current[upd.spoke_item_id])
        requests = [{"id": str(index), "method": "PATCH", "url": f"/{self.target.contact_path(upd.spoke_item_id)}",
                     "body": body, "headers": {"If-Match": upd.version}}
                    for index, (upd, body) in enumerate(zip(items, bodies, strict=True))]
        self._send(items, requests, results)
        return [r if r is not None else WriteResult("error", message="no result") for r in results]

    def delete(self, items: Sequence[ItemDelete]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(items)
        requests = [{"id": str(index), "method": "DELETE", "url": f"/{self.target.contact_path(rem.spoke_item_id)}",
                     "headers": {"If-Match": rem.version}} for index, rem in enumerate(items)]
        self._send(items, requests, results)
        return [r if r is not None else WriteResult("error", message="no result") for r in results]

    def _send(self, items: Sequence[ItemUpdate | ItemDelete], requests: list[dict[str, Any]],
              results: list[WriteResult | None]) -> None:
        conflicts: list[int] = []
        for key, resp in self.client.batch(requests).items():
            index = int(key)
            if resp.status == 412:
                conflicts.append(index)
            elif resp.ok:
                version = str(resp.body.get("@odata.etag") or "") if isinstance(resp.body, dict) else ""
                results[index] = WriteResult("ok", items[index].spoke_item_id, version)
            else:
                results[index] = write_failure(resp, items[index].spoke_item_id)
        classify_conflicts(items, conflicts, results, self._read_raw)


# ---------------------------------------------------------------- the folder browser


@dataclass(frozen=True)
class FolderInfo:
    id: str
    name: str
    parent_id: str
    path: str  # "Shared / Customers"


def list_folders(client: GraphClient, mailbox: str) -> list[FolderInfo]:
    """The mailbox's contact folders (those in its default Contacts folder and their sub-folders)."""
    from spokesync.connectors.graph import CONTACTS_ROLE, describe_response

    target = ContactsTarget(mailbox, "")
    out: list[FolderInfo] = []
    todo: list[tuple[str, str]] = [(f"{target.root}/contactFolders", "")]
    while todo:
        path, prefix = todo.pop(0)
        raws, resp = client.pages(path)
        if not resp.ok:
            raise describe_response(resp, target, "read contact folders", role=CONTACTS_ROLE,
                                    container="contacts folder")
        for raw in raws:
            name = str(raw.get("displayName") or "")
            info = FolderInfo(str(raw["id"]), name, str(raw.get("parentFolderId") or ""),
                              f"{prefix} / {name}" if prefix else name)
            out.append(info)
            todo.append((f"{target.root}/contactFolders/{info.id}/childFolders", info.path))
    return out
