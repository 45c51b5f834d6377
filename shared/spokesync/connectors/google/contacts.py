"""The Google Contacts spoke kind ("google_contacts"): the People API v1.

A spoke is one contact group of one Google account: the signed-in user's
(OAuth refresh token) or, with a service account and domain-wide delegation,
the user named as the credential's subject. Address:
``{"group": "<group name>"}`` (created when missing) or
``{"group_id": "contactGroups/<id>"}`` (must exist). Decisions:
docs/decisions/2026-12-01-google-contacts.md.

- Changes: `people.connections.list` with `requestSyncToken`; a person is in
  this spoke while it is a member of the group, so one that leaves the group
  is reported deleted here (it is never deleted in Google for that). An
  expired sync token (400, ErrorInfo `EXPIRED_SYNC_TOKEN`) raises
  FullResyncRequired.
- Writes: `batchCreateContacts` / `batchUpdateContacts` (≤ 200 a call) and
  `batchDeleteContacts` (≤ 500), one call at a time ("Mutate requests for the
  same user should be sent sequentially", discovery document). Versions are
  the person's etag; updates send it as the precondition, and deletes check
  it first (the API's delete takes no etag).
- The hub id lives in `clientData` (key `spokesync.hub_id`), so a retried
  create finds the person instead of duplicating it.
- Categories are the person's other contact groups ("labels" in Google
  Contacts), created when missing. The photo travels by hash: a
  `spokesync.photo` clientData entry remembers the hash of the bytes behind
  the photo URL we wrote, so bytes are downloaded only when the URL changed
  and uploaded only when the hash changed.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from spokesync.model.contact import (
    PHONE_TYPES,
    Address,
    Contact,
    Email,
    PartialDate,
    Phone,
    Photo,
    photo_hash,
)
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
    from spokesync.connectors.google.client import GoogleClient
    from spokesync.model.hub import CredentialRef, Spoke
    from spokesync.ports import Clock, SecretStore

HUB_KEY = "spokesync.hub_id"
PHOTO_KEY = "spokesync.photo"
BATCH_LIMIT = 200  # batchCreateContacts / batchUpdateContacts / getBatchGet (discovery document)
DELETE_LIMIT = 500  # batchDeleteContacts (discovery document)
PAGE_SIZE = 1000  # connections.list maximum
PRODUCT = "Google Contacts"
# What the connector reads and writes (`personFields` / `readMask`; each is in the document's "Valid values").
READ_FIELDS = ("names", "nicknames", "emailAddresses", "phoneNumbers", "addresses", "organizations", "relations",
               "urls", "birthdays", "events", "biographies", "memberships", "clientData", "photos", "metadata")
# What an update replaces (`updateMask`): every mapped field; photos go through updateContactPhoto.
UPDATE_FIELDS = ("names", "nicknames", "emailAddresses", "phoneNumbers", "addresses", "organizations", "relations",
                 "urls", "birthdays", "events", "biographies", "memberships", "clientData")
FIELDS = frozenset({
    "display_name", "given_name", "middle_name", "family_name", "prefix", "suffix", "nickname",
    "emails", "phones", "addresses", "company", "department", "job_title", "manager", "assistant",
    "websites", "birthday", "anniversary", "notes", "categories", "photo",
})  # not file_as: `fileAses` is not among the People API's updatable fields
# People API phone types (PhoneNumber.type, discovery document) ⇄ model.contact.PHONE_TYPES.
_PHONE_TO_GOOGLE = {"mobile": "mobile", "work": "work", "home": "home", "main": "main", "work_fax": "workFax",
                    "home_fax": "homeFax", "other_fax": "otherFax", "pager": "pager", "other": "other"}
_PHONE_FROM_GOOGLE = {v: k for k, v in _PHONE_TO_GOOGLE.items()}
_TYPED = ("work", "home", "other")

_DOC: dict[str, Any] | None = None
_DOC_LOCK = threading.Lock()


def discovery_document() -> dict[str, Any]:
    """people.v1.json as shipped with google-api-python-client (loaded once)."""
    global _DOC
    if _DOC is None:
        with _DOC_LOCK:
            if _DOC is None:
                import googleapiclient

                path = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "people.v1.json"
                _DOC = json.loads(path.read_text())
    return _DOC


def error_info(exc: Exception) -> tuple[int, str, set[str]]:
    """(HTTP status, google.rpc status name, reasons) of a People API error: the
    ErrorInfo reasons in `details` and the legacy `errors[].reason`."""
    status = int(getattr(getattr(exc, "resp", None), "status", 0) or 0)
    content = getattr(exc, "content", b"")
    try:
        data = json.loads(content.decode("utf-8") if isinstance(content, bytes) else content)["error"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return status, "", set()
    reasons = {str(d.get("reason", "")) for d in data.get("details") or [] if isinstance(d, dict)}
    reasons |= {str(e.get("reason", "")) for e in data.get("errors") or [] if isinstance(e, dict)}
    return status, str(data.get("status", "")), reasons - {""}


def _permission_denied() -> ConnectorError:
    return ConnectorError("Google refused access to the contacts. A service account needs domain-wide delegation "
                          "with the contacts scope and a user to act as; a signed-in user must allow spokesync to "
                          "manage contacts. Fix the credential and try again.", code="permission_denied")


def _date(value: PartialDate | None) -> dict[str, int] | None:
    if value is None:
        return None
    out = {"month": value.month, "day": value.day}
    if value.year is not None:
        out["year"] = value.year
    return out


def _parse_date(raw: Any) -> PartialDate | None:
    if not isinstance(raw, dict):
        return None
    month, day, year = int(raw.get("month") or 0), int(raw.get("day") or 0), int(raw.get("year") or 0)
    if not month or not day:
        return None
    try:
        return PartialDate(month, day, year or None)
    except ValueError:
        return None


def _typed(kind: str, label: str, known: Sequence[str]) -> str:
    """The wire type: a known one, or the service's own word kept in `label`."""
    if kind in known and not (kind == "other" and label):
        return kind
    return label or kind or "other"


def _untyped(wire: str, known: Sequence[str]) -> tuple[str, str]:
    if wire in known:
        return wire, ""
    return "other", wire


def _in_group(person: dict[str, Any], group: str) -> bool:
    return any((m.get("contactGroupMembership") or {}).get("contactGroupResourceName") == group
               for m in person.get("memberships") or [])


def _client_value(person: dict[str, Any], key: str) -> str | None:
    return next((str(c.get("value") or "") for c in person.get("clientData") or [] if c.get("key") == key), None)


class GoogleContactsConnector:
    def __init__(self, client: GoogleClient, *, group_name: str = "", group_id: str = "",
                 fetch_photo: Callable[[str], tuple[bytes, str]] | None = None,
                 max_photo_bytes: int = 8 << 20, kept: frozenset[str] = frozenset(),
                 plain_http_root: str = "") -> None:
        """`kept`: contact fields this spoke's options keep out of the sync (notes, birthday,
        photo switched off): the engine hands them over blank, and Google's own values stay."""
        if not group_name and not group_id:
            raise ValueError("a Google contacts spoke needs a contact group (name or id)")
        self.client = client
        self.people = client.service.people()
        self.groups_api = client.service.contactGroups()
        self._group_name = group_name
        self._group_id = group_id
        self._groups: dict[str, dict[str, Any]] | None = None  # resource name -> group
        # hub id -> resource name of the group's members, from this instance's first full listing
        # (kept up to date by its own creates): a retried create is found without listing again.
        self._hub_ids: dict[str, str] | None = None
        self.fetch_photo = fetch_photo or self._download
        self.max_photo_bytes = max_photo_bytes
        self.kept = kept
        # photos come from https addresses only; a local People API server (tests, the demo) on
        # plain http may serve its own
        self.plain_http_root = plain_http_root
        self.photo_downloads = 0
        self.photo_uploads = 0
        self.capabilities = Capabilities(incremental=True, snapshot_diff=False, push=False, batch_size=BATCH_LIMIT,
                                         fields=FIELDS)

    def _call(self, request: Any, what: str) -> Any:
        """A read: Google's refusal in plain words (writes report per item, see `_failed`)."""
        from googleapiclient.errors import HttpError

        try:
            return self.client.execute(request, what)
        except HttpError as exc:
            status = error_info(exc)[0]
            if status == 403:
                raise _permission_denied() from exc
            raise ConnectorError(f"Google Contacts refused a request ({what}, error {status}); "
                                 "try again later.") from exc

    # ---------------------------------------------------------------- groups

    def _load_groups(self) -> dict[str, dict[str, Any]]:
        if self._groups is None:
            groups: dict[str, dict[str, Any]] = {}
            page: str | None = None
            while True:
                resp = self._call(self.groups_api.list(pageSize=1000, pageToken=page,
                                                       groupFields="name,groupType,metadata"), "contactGroups.list")
                for group in resp.get("contactGroups") or []:
                    groups[group["resourceName"]] = group
                page = resp.get("nextPageToken")
                if not page:
                    break
            self._groups = groups
        return self._groups

    @property
    def group(self) -> str:
        """The spoke's contact group (resource name); created from its name when missing."""
        if self._group_id:
            groups = self._load_groups()
            if self._group_id not in groups:
                raise ConnectorError(f"The contact group {self._group_id} no longer exists in this Google account. "
                                     "Choose the spoke's group again in its settings.", code="not_found")
            return self._group_id
        found = self._group_named(self._group_name, create=True)
        assert found is not None
        self._group_id = found
        return found

    def _group_named(self, name: str, create: bool) -> str | None:
        groups = self._load_groups()
        for rn, group in groups.items():
            if group.get("groupType") == "USER_CONTACT_GROUP" and group.get("name") == name:
                return rn
        if not create:
            return None
        from googleapiclient.errors import HttpError

        try:
            made = self.client.execute(self.groups_api.create(body={"contactGroup": {"name": name}}),
                                       "contactGroups.create")
        except HttpError as exc:
            if error_info(exc)[0] == 409:  # made meanwhile (another run): read the list again
                self._groups = None
                return self._group_named(name, create=False)
            if error_info(exc)[0] == 403:
                raise _permission_denied() from exc
            raise ConnectorError(f"Google Contacts refused to create the contact group {name!r} "
                                 f"(error {error_info(exc)[0]}); create it in Google Contacts and try again.") from exc
        groups[made["resourceName"]] = made
        return str(made["resourceName"])

    def check(self) -> str:
        """Before a spoke is saved (`service.hubs.check_address`): can this credential read the
        account's contacts, and which group is meant? Creates nothing. Returns the group's name."""
        self._execute_list({"resourceName": "people/me", "personFields": "metadata", "pageSize": 1})
        if self._group_id:
            group = self._load_groups().get(self._group_id)
            if group is None:
                raise ConnectorError(f"There is no contact group {self._group_id} in this Google account. Choose "
                                     "one of its labels in Google Contacts, or give a name to create.",
                                     code="not_found")
            return str(group.get("name") or self._group_id)
        found = self._group_named(self._group_name, create=False)
        return self._group_name if found else f"{self._group_name} (a new label, created at the first sync)"

    # ---------------------------------------------------------------- mapping

    def to_contact(self, person: dict[str, Any]) -> Contact:
        groups = self._load_groups()
        name = (person.get("names") or [{}])[0]
        org = (person.get("organizations") or [{}])[0]
        relations = person.get("relations") or []
        emails = tuple(Email(str(e.get("value", "")), *_untyped(str(e.get("type") or "other"), _TYPED)[:1],
                             name=str(e.get("displayName") or ""),
                             label=_untyped(str(e.get("type") or "other"), _TYPED)[1])
                       for e in person.get("emailAddresses") or [] if e.get("value"))
        phones = []
        for p in person.get("phoneNumbers") or []:
            if not p.get("value"):
                continue
            wire = str(p.get("type") or "other")
            if wire in _PHONE_FROM_GOOGLE:
                phones.append(Phone(str(p["value"]), _PHONE_FROM_GOOGLE[wire]))
            elif wire in PHONE_TYPES:
                phones.append(Phone(str(p["value"]), wire))
            else:
                phones.append(Phone(str(p["value"]), "other", wire))
        addresses = tuple(Address(*_untyped(str(a.get("type") or "other"), _TYPED)[:1],
                                  street=str(a.get("streetAddress") or ""), city=str(a.get("city") or ""),
                                  region=str(a.get("region") or ""), postal_code=str(a.get("postalCode") or ""),
                                  country=str(a.get("country") or ""), po_box=str(a.get("poBox") or ""),
                                  label=_untyped(str(a.get("type") or "other"), _TYPED)[1])
                          for a in person.get("addresses") or [])
        anniversary = next((_parse_date(e.get("date")) for e in person.get("events") or []
                            if e.get("type") == "anniversary"), None)
        categories = tuple(sorted(
            str(groups[rn].get("name") or "") for rn in (
                (m.get("contactGroupMembership") or {}).get("contactGroupResourceName")
                for m in person.get("memberships") or [])
            if rn in groups and rn != self._group_id and groups[rn].get("groupType") == "USER_CONTACT_GROUP"))
        modified = None
        for source in (person.get("metadata") or {}).get("sources") or []:
            if source.get("type") == "CONTACT" and source.get("updateTime"):
                modified = datetime.fromisoformat(str(source["updateTime"]).replace("Z", "+00:00"))
        return Contact(
            display_name=str(name.get("unstructuredName") or name.get("displayName") or ""),
            given_name=str(name.get("givenName") or ""), middle_name=str(name.get("middleName") or ""),
            family_name=str(name.get("familyName") or ""), prefix=str(name.get("honorificPrefix") or ""),
            suffix=str(name.get("honorificSuffix") or ""),
            nickname=str(((person.get("nicknames") or [{}])[0]).get("value") or ""),
            emails=emails, phones=tuple(phones), addresses=addresses,
            company=str(org.get("name") or ""), department=str(org.get("department") or ""),
            job_title=str(org.get("title") or ""),
            manager=next((str(r.get("person") or "") for r in relations if r.get("type") == "manager"), ""),
            assistant=next((str(r.get("person") or "") for r in relations if r.get("type") == "assistant"), ""),
            websites=tuple(str(u["value"]) for u in person.get("urls") or [] if u.get("value")),
            birthday=next((_parse_date(b.get("date")) for b in person.get("birthdays") or []), None),
            anniversary=anniversary,
            notes=str(((person.get("biographies") or [{}])[0]).get("value") or ""),
            categories=categories,
            photo=self._photo_of(person),
            modified=modified,
        )

    def _photo_of(self, person: dict[str, Any]) -> Photo | None:
        photo = next((p for p in person.get("photos") or [] if not p.get("default") and p.get("url")), None)
        if photo is None:
            return None
        url = str(photo["url"])
        stamp = _client_value(person, PHOTO_KEY)
        if stamp:
            known_hash, _, known_url = stamp.partition(" ")
            if known_url == url and known_hash:
                return Photo(known_hash)  # the bytes we wrote: no download
        data, content_type = self.fetch_photo(url)
        self.photo_downloads += 1
        return Photo.of(data, content_type)

    def _download(self, url: str) -> tuple[bytes, str]:
        """Photo bytes (Google serves contact photos at public URLs; no credential is sent)."""
        if not (url.startswith("https://") or (self.plain_http_root and url.startswith(self.plain_http_root))):
            raise ConnectorError("Google Contacts returned a photo address that is not https; try again later.")
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - scheme checked above
                data = resp.read(self.max_photo_bytes + 1)
                content_type = str(resp.headers.get("Content-Type") or "image/jpeg").split(";")[0]
        except OSError as exc:
            raise ConnectorError("Could not download a contact photo from Google; the next sync tries again.") \
                from exc
        if len(data) > self.max_photo_bytes:
            raise ConnectorError("A contact photo in Google is larger than spokesync accepts; replace it with a "
                                 "smaller picture.")
        return data, content_type

    def _memberships(self, contact: Contact, current: dict[str, Any] | None) -> list[dict[str, Any]]:
        groups = self._load_groups()
        names = [self.group]
        for category in sorted(set(contact.categories)):
            if category and category != self._group_name:
                rn = self._group_named(category, create=True)
                if rn and rn not in names:
                    names.append(rn)
        kept = ["contactGroups/myContacts"] if current is None else [
            rn for rn in ((m.get("contactGroupMembership") or {}).get("contactGroupResourceName")
                          for m in current.get("memberships") or [])
            if rn and groups.get(rn, {}).get("groupType", "SYSTEM_CONTACT_GROUP") != "USER_CONTACT_GROUP"]
        return [{"contactGroupMembership": {"contactGroupResourceName": rn}} for rn in dict.fromkeys(names + kept)]

    def to_person(self, contact: Contact, hub_id: str, current: dict[str, Any] | None = None) -> dict[str, Any]:
        """The People API body for `contact`; what only Google holds (other events,
        relations and clientData, system groups) is kept from `current`."""
        person: dict[str, Any] = {}
        name = {k: v for k, v in (("unstructuredName", contact.display_name), ("givenName", contact.given_name),
                                  ("middleName", contact.middle_name), ("familyName", contact.family_name),
                                  ("honorificPrefix", contact.prefix), ("honorificSuffix", contact.suffix)) if v}
        person["names"] = [name] if name else []
        person["nicknames"] = [{"value": contact.nickname}] if contact.nickname else []
        person["emailAddresses"] = [
            {k: v for k, v in (("value", e.address), ("type", _typed(e.type, e.label, _TYPED)),
                               ("displayName", e.name)) if v} for e in contact.emails]
        person["phoneNumbers"] = [
            {"value": p.number, "type": p.label if p.type == "other" and p.label else
             _PHONE_TO_GOOGLE.get(p.type, p.type)} for p in contact.phones]
        person["addresses"] = [
            {k: v for k, v in (("type", _typed(a.type, a.label, _TYPED)), ("streetAddress", a.street),
                               ("city", a.city), ("region", a.region), ("postalCode", a.postal_code),
                               ("country", a.country), ("poBox", a.po_box)) if v} for a in contact.addresses]
        org = {k: v for k, v in (("name", contact.company), ("department", contact.department),
                                 ("title", contact.job_title)) if v}
        person["organizations"] = [org] if org else []
        relations = [r for r in (current or {}).get("relations") or [] if r.get("type") not in ("manager", "assistant")]
        relations = [{k: v for k, v in r.items() if k in ("person", "type")} for r in relations]
        if contact.manager:
            relations.append({"person": contact.manager, "type": "manager"})
        if contact.assistant:
            relations.append({"person": contact.assistant, "type": "assistant"})
        person["relations"] = relations
        person["urls"] = [{"value": w} for w in contact.websites]
        person["birthdays"] = [{"date": _date(contact.birthday)}] if contact.birthday else []
        events = [{k: v for k, v in e.items() if k in ("date", "type")} for e in (current or {}).get("events") or []
                  if e.get("type") != "anniversary"]
        if contact.anniversary:
            events.append({"type": "anniversary", "date": _date(contact.anniversary)})
        person["events"] = events
        person["biographies"] = [{"value": contact.notes, "contentType": "TEXT_PLAIN"}] if contact.notes else []
        client = [{"key": c.get("key"), "value": c.get("value")} for c in (current or {}).get("clientData") or []
                  if c.get("key") != HUB_KEY]
        client.append({"key": HUB_KEY, "value": hub_id})
        person["clientData"] = client
        person["memberships"] = self._memberships(contact, current)
        return person

    def _item(self, person: dict[str, Any]) -> SpokeItem:
        return SpokeItem(id=str(person["resourceName"]), version=str(person["etag"]),
                         event=cast(Any, self.to_contact(person)), hub_id=_client_value(person, HUB_KEY))

    # ---------------------------------------------------------------- reading

    def _list(self, sync_token: str | None, fields: str) -> tuple[list[dict[str, Any]], str | None]:
        people: list[dict[str, Any]] = []
        page: str | None = None
        while True:
            kwargs: dict[str, Any] = {"resourceName": "people/me", "personFields": fields, "pageSize": PAGE_SIZE,
                                      "requestSyncToken": True}
            if sync_token:
                kwargs["syncToken"] = sync_token
            if page:
                kwargs["pageToken"] = page
            resp = self._execute_list(kwargs)
            people.extend(resp.get("connections") or [])
            page = resp.get("nextPageToken")
            if not page:
                return people, resp.get("nextSyncToken")

    def _execute_list(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        from googleapiclient.errors import HttpError

        try:
            return cast(dict[str, Any], self.client.execute(self.people.connections().list(**kwargs),
                                                            "connections.list"))
        except HttpError as exc:
            status, _, reasons = error_info(exc)
            if "EXPIRED_SYNC_TOKEN" in reasons and "syncToken" in kwargs:
                raise FullResyncRequired("the People API sync token expired (7 days after the full sync)") from exc
            if status == 403:
                raise _permission_denied() from exc
            raise ConnectorError(f"Google Contacts refused to list contacts (error {status}); "
                                 "try again later.") from exc

    def changes(self, cursor: bytes | None) -> ChangeSet:
        group = self.group
        state = json.loads(cursor) if cursor else None
        if state is not None and (state.get("group") != group or not state.get("token")):
            raise FullResyncRequired("the spoke's contact group changed")
        people, token = self._list(state["token"] if state else None, ",".join(READ_FIELDS))
        items: list[SpokeItem] = []
        deleted: list[str] = []
        for person in people:
            if (person.get("metadata") or {}).get("deleted") or not _in_group(person, group):
                # deleted in Google, or left the group: gone from this spoke (never deleted in Google for that)
                if state is not None:
                    deleted.append(str(person["resourceName"]))
                continue
            items.append(self._item(person))
        if state is None:
            self._hub_ids = {i.hub_id: i.id for i in items if i.hub_id}
        new_cursor = json.dumps({"v": 1, "group": group, "token": token}).encode() if token else None
        return ChangeSet(items=items, deleted=deleted, cursor=new_cursor, full=state is None)

    def _get(self, ids: Sequence[str], fields: str) -> dict[str, dict[str, Any]]:
        """Live persons by resource name (≤ 200 a call); absent when not found."""
        out: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(ids))
        for offset in range(0, len(unique), BATCH_LIMIT):
            chunk = unique[offset:offset + BATCH_LIMIT]
            resp = self._call(self.people.getBatchGet(resourceNames=chunk, personFields=fields),
                              "people.getBatchGet")
            for answer in resp.get("responses") or []:
                person = answer.get("person")
                if person and not (person.get("metadata") or {}).get("deleted"):
                    out[str(answer.get("requestedResourceName") or person["resourceName"])] = person
        return out

    def read(self, ids: Sequence[str]) -> dict[str, SpokeItem]:
        group = self.group
        found = self._get(ids, ",".join(READ_FIELDS))
        return {rn: self._item(p) for rn, p in found.items() if _in_group(p, group)}

    # ---------------------------------------------------------------- writing

    def create(self, items: Sequence[NewItem]) -> list[WriteResult]:
        from googleapiclient.errors import HttpError

        group = self.group
        results: list[WriteResult | None] = [None] * len(items)
        # A retried create: the person with this hub id is already in the group.
        if self._hub_ids is None and items:
            listed, _ = self._list(None, "clientData,memberships,metadata")
            self._hub_ids = {}
            for person in listed:
                hub_id = _client_value(person, HUB_KEY)
                if hub_id and _in_group(person, group):
                    self._hub_ids.setdefault(hub_id, str(person["resourceName"]))
        existing = dict(self._hub_ids or {})
        found = self._get([existing[i.hub_id] for i in items if i.hub_id in existing], ",".join(READ_FIELDS))
        todo: list[int] = []
        for n, item in enumerate(items):
            rn = existing.get(item.hub_id)
            if rn is not None and rn in found and _in_group(found[rn], group):
                spoke_item = self._item(found[rn])
                results[n] = WriteResult("exists", rn, spoke_item.version, item=spoke_item)
            else:
                todo.append(n)
        for offset in range(0, len(todo), BATCH_LIMIT):
            chunk = todo[offset:offset + BATCH_LIMIT]
            bodies = [self.to_person(cast(Contact, items[n].event), items[n].hub_id) for n in chunk]
            try:
                resp = self.client.execute(self.people.batchCreateContacts(body={
                    "contacts": [{"contactPerson": b} for b in bodies], "readMask": ",".join(READ_FIELDS)}),
                    "people.batchCreateContacts")
                created = [r.get("person") or {} for r in resp.get("createdPeople") or []]
            except HttpError as exc:
                if error_info(exc)[0] != 400 or len(chunk) == 1:
                    results_for = self._failed(exc, "create")
                    for n in chunk:
                        results[n] = results_for
                    continue
                # One bad contact fails the whole batch: create these one by one to find it.
                created = []
                for body in bodies:
                    try:
                        created.append(self.client.execute(self.people.createContact(
                            body=body, personFields=",".join(READ_FIELDS)), "people.createContact"))
                    except HttpError as one:
                        created.append({"_error": self._failed(one, "create")})
            for n, person in zip(chunk, created, strict=True):
                if "_error" in person:
                    results[n] = person["_error"]
                    continue
                results[n] = WriteResult("ok", str(person["resourceName"]), str(person["etag"]))
                if self._hub_ids is not None:
                    self._hub_ids[items[n].hub_id] = str(person["resourceName"])
            self._write_photos([(n, items[n].event, p) for n, p in zip(chunk, created, strict=True)
                                if "_error" not in p], results)
        return [r if r is not None else WriteResult("error", message="not written") for r in results]

    def update(self, items: Sequence[ItemUpdate]) -> list[WriteResult]:
        from googleapiclient.errors import HttpError

        group = self.group
        results: list[WriteResult | None] = [None] * len(items)
        current = self._get([i.spoke_item_id for i in items], ",".join(READ_FIELDS))
        todo: list[int] = []
        for n, item in enumerate(items):
            person = current.get(item.spoke_item_id)
            if person is None or not _in_group(person, group):
                results[n] = WriteResult("not_found", item.spoke_item_id)
            elif item.version and person["etag"] != item.version:
                results[n] = WriteResult("conflict", item.spoke_item_id, str(person["etag"]),
                                         "changed in Google since it was read")
            else:
                todo.append(n)
        for offset in range(0, len(todo), BATCH_LIMIT):
            chunk = todo[offset:offset + BATCH_LIMIT]
            bodies = {}
            for n in chunk:
                rn = items[n].spoke_item_id
                body = self.to_person(cast(Contact, items[n].event), items[n].hub_id, current[rn])
                body["etag"] = current[rn]["etag"]
                for name, people_field in (("notes", "biographies"), ("birthday", "birthdays"),
                                           ("anniversary", "events")):
                    if name in self.kept:  # switched off for this spoke: leave Google's value alone
                        body[people_field] = [{k: v for k, v in entry.items() if k != "metadata"}
                                              for entry in current[rn].get(people_field) or []]
                bodies[rn] = body
            try:
                resp = self.client.execute(self.people.batchUpdateContacts(body={
                    "contacts": bodies, "updateMask": ",".join(UPDATE_FIELDS), "readMask": ",".join(READ_FIELDS)}),
                    "people.batchUpdateContacts")
                updated = {rn: (r.get("person") or {}) for rn, r in (resp.get("updateResult") or {}).items()}
            except HttpError as exc:
                if error_info(exc)[0] != 400 or len(chunk) == 1:
                    for n in chunk:
                        results[n] = self._failed(exc, "update", items[n].spoke_item_id)
                    continue
                # The batch fails whole: update one by one to tell the stale or bad one from the rest.
                updated = {}
                for rn, body in bodies.items():
                    try:
                        updated[rn] = self.client.execute(self.people.updateContact(
                            resourceName=rn, body=body, updatePersonFields=",".join(UPDATE_FIELDS),
                            personFields=",".join(READ_FIELDS)), "people.updateContact")
                    except HttpError as one:
                        updated[rn] = {"_error": self._failed(one, "update", rn)}
            for n in chunk:
                rn = items[n].spoke_item_id
                person = updated.get(rn) or {"_error": WriteResult("error", rn, message="Google returned no answer")}
                results[n] = person["_error"] if "_error" in person else WriteResult("ok", rn, str(person["etag"]))
            self._write_photos([(n, items[n].event, updated[items[n].spoke_item_id]) for n in chunk
                                if "_error" not in updated.get(items[n].spoke_item_id, {"_error": 1})], results)
        return [r if r is not None else WriteResult("error", message="not written") for r in results]

    def delete(self, items: Sequence[ItemDelete]) -> list[WriteResult]:
        from googleapiclient.errors import HttpError

        group = self.group
        results: list[WriteResult | None] = [None] * len(items)
        current = self._get([i.spoke_item_id for i in items], "memberships,metadata")
        todo: list[int] = []
        for n, item in enumerate(items):
            person = current.get(item.spoke_item_id)
            if person is None or not _in_group(person, group):
                results[n] = WriteResult("not_found", item.spoke_item_id)
            elif item.version and person["etag"] != item.version:
                results[n] = WriteResult("conflict", item.spoke_item_id, str(person["etag"]),
                                         "changed in Google since it was read")
            elif item.spoke_item_id in (items[t].spoke_item_id for t in todo):
                results[n] = WriteResult("ok", item.spoke_item_id)
            else:
                todo.append(n)
        for offset in range(0, len(todo), DELETE_LIMIT):
            chunk = todo[offset:offset + DELETE_LIMIT]
            names = [items[n].spoke_item_id for n in chunk]
            try:
                self.client.execute(self.people.batchDeleteContacts(body={"resourceNames": names}),
                                    "people.batchDeleteContacts")
                for n in chunk:
                    results[n] = WriteResult("ok", items[n].spoke_item_id)
            except HttpError as exc:
                for n in chunk:
                    results[n] = self._failed(exc, "delete", items[n].spoke_item_id)
        return [r if r is not None else WriteResult("error", message="not written") for r in results]

    def _failed(self, exc: Exception, what: str, rn: str = "") -> WriteResult:
        status, code, reasons = error_info(exc)
        if status == 403:
            raise _permission_denied() from exc
        if status == 400 and (code == "FAILED_PRECONDITION" or "failedPrecondition" in reasons):
            return WriteResult("conflict", rn, message="changed in Google since it was read")
        if status == 404:
            return WriteResult("not_found", rn)
        if status == 429 or status >= 500:
            return WriteResult("retry", rn, message="Google Contacts is busy; the next sync tries again")
        return WriteResult("error", rn, message=f"Google Contacts refused to {what} this contact (error {status}); "
                                                "check its fields in Google Contacts.")

    # ---------------------------------------------------------------- photos

    def _write_photos(self, written: list[tuple[int, Any, dict[str, Any]]], results: list[WriteResult | None]) -> None:
        """Upload or remove photos whose hash changed, then stamp the hash (one batch update)."""
        from googleapiclient.errors import HttpError

        stamps: dict[str, tuple[int, dict[str, Any]]] = {}
        if "photo" in self.kept:
            return  # photos do not travel for this spoke: Google's stay as they are
        for n, event, person in written:
            contact = cast(Contact, event)
            wanted = contact.photo
            shown = next((p for p in person.get("photos") or [] if not p.get("default") and p.get("url")), None)
            stamp = _client_value(person, PHOTO_KEY) or ""
            known_hash, _, known_url = stamp.partition(" ")
            have = known_hash if shown is not None and known_url == shown.get("url") else (
                None if shown is None else "?")
            rn = str(person["resourceName"])
            try:
                if wanted is None:
                    if shown is None:
                        continue
                    after = self.client.execute(self.people.deleteContactPhoto(
                        resourceName=rn, personFields=",".join(READ_FIELDS)), "people.deleteContactPhoto")["person"]
                    results[n] = WriteResult("ok", rn, str(after["etag"]))
                    continue
                if have == wanted.hash:
                    continue
                if have == "?" and not wanted.data:
                    continue  # a photo we did not write; no bytes to replace it with
                if not wanted.data:
                    continue  # only the hash travelled: the bytes are not here to upload
                after = self.client.execute(self.people.updateContactPhoto(resourceName=rn, body={
                    "photoBytes": base64.b64encode(wanted.data).decode(), "personFields": ",".join(READ_FIELDS)}),
                    "people.updateContactPhoto")["person"]
                self.photo_uploads += 1
                stamps[rn] = (n, after)
            except HttpError as exc:
                results[n] = self._failed(exc, "store the photo of", rn)
        if not stamps:
            return
        bodies = {}
        for rn, (n, after) in stamps.items():
            url = next((str(p["url"]) for p in after.get("photos") or [] if not p.get("default")), "")
            data = cast(Contact, next(e for m, e, _ in written if m == n)).photo
            assert data is not None
            client = [{"key": c.get("key"), "value": c.get("value")} for c in after.get("clientData") or []
                      if c.get("key") != PHOTO_KEY]
            client.append({"key": PHOTO_KEY, "value": f"{data.hash or photo_hash(data.data)} {url}"})
            bodies[rn] = {"etag": after["etag"], "clientData": client}
        try:
            resp = self.client.execute(self.people.batchUpdateContacts(body={
                "contacts": bodies, "updateMask": "clientData", "readMask": "metadata"}), "people.batchUpdateContacts")
            for rn, answer in (resp.get("updateResult") or {}).items():
                results[stamps[rn][0]] = WriteResult("ok", rn, str((answer.get("person") or {}).get("etag", "")))
        except HttpError:
            # The photos are stored; without the stamp the next read downloads them once to hash them.
            for rn, (n, after) in stamps.items():
                results[n] = WriteResult("ok", rn, str(after["etag"]))


def from_spoke(spoke: Spoke, credential: CredentialRef | None, secrets: SecretStore,
               config: Config, clock: Clock) -> GoogleContactsConnector:
    from spokesync.connectors.google.auth import CONTACTS_SCOPES, credentials_for
    from spokesync.connectors.google.client import GoogleClient

    group_name = str(spoke.address.get("group") or "").strip()
    group_id = str(spoke.address.get("group_id") or "").strip()
    if not group_name and not group_id:
        raise ValueError(f"Google contacts spoke {spoke.id!r} names no contact group in its address")
    client = GoogleClient(credentials_for(credential, secrets, config, CONTACTS_SCOPES), config,
                          document=discovery_document(), api_root=config.google_people_api_root, product=PRODUCT)
    return GoogleContactsConnector(client, group_name=group_name, group_id=group_id,
                                   max_photo_bytes=min(config.max_response_bytes, 8 << 20),
                                   plain_http_root=config.google_people_api_root
                                   if config.google_people_api_root.startswith("http://") else "")


__all__ = ["FIELDS", "GoogleContactsConnector", "discovery_document", "error_info", "from_spoke"]
