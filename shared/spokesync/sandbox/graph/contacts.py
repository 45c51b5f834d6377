"""Outlook contacts in the local Graph server: contact folders, contacts, their delta and photos.

What it models, with the source of each behaviour (Microsoft Graph v1.0 reference,
microsoftgraph/microsoft-graph-docs-contrib, and the CSDL in microsoftgraph/msgraph-metadata that
`graph_v1_subset.json` is extracted from):

- `users/{id}/contactFolders`: the folders in the user's default Contacts folder ("List
  contactFolders"); POST creates one there, `contactFolders/{id}/childFolders` lists and creates
  sub-folders ("Create contactFolder", "List childFolders"). A name already used under the same
  parent: 409 `ErrorFolderExists` (Exchange's error for a duplicate folder name).
- `contactFolders/{id}/contacts`: list (`$top`/`$skip`, `$select`, `$filter` on a
  single-value extended property: "Get singleValueLegacyExtendedProperty", `$filter=
  singleValueExtendedProperties/Any(ep: ep/id eq '{id}' and ep/value eq '{value}')`), POST,
  GET, PATCH, DELETE ("contact resource type" and its methods). Bodies are validated against
  `microsoft.graph.contact` (schema.py): an undeclared property, a wrong type or a malformed
  `birthday` (Edm.DateTimeOffset) is refused with 400 `RequestBodyRead`.
- `@odata.etag` / `changeKey` change with every write; `If-Match` with a stale etag on PATCH
  or DELETE: 412 `ErrorIrresolvableConflict` (as for events).
- `contactFolders/{id}/contacts/delta` ("contact: delta"): a round of `@odata.nextLink`
  pages (`$skiptoken`) ending in an `@odata.deltaLink` (`$deltatoken`); `Prefer:
  odata.maxpagesize` answered with `Preference-Applied`; `$select` given in the first request
  is kept in the tokens; deletions as `{"id", "@removed": {"reason": "deleted"}}` ("Use delta
  query to track changes": resource representation). Outlook keeps delta tokens in a cache of
  limited size and drops the oldest ("Token duration"): a dropped token gets 410
  `syncStateNotFound`; a token that is not one of this folder's (garbled, or another
  folder's) gets 410 `resyncRequired` ("Error codes in Microsoft Graph": "The delta token is no
  longer valid, and the app must reset the sync state"), with a `Location` header holding the
  initial delta request ("Synchronization reset").
- `singleValueExtendedProperties` written with the contact, read with
  `$expand=singleValueExtendedProperties($filter=id eq '...')`.
- `contacts/{id}/photo/$value`: GET the bytes (404 `ErrorItemNotFound` without a photo), PUT
  image bytes ("Update profilePhoto": `PUT /users/{id}/contactfolders/{id}/contacts/{id}/photo/$value`,
  Content-Type image/jpeg); setting a photo changes the contact's change key (the photo is an
  attachment of the Outlook item).
"""

from __future__ import annotations

import collections
import copy
import re
import secrets
import urllib.parse
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from spokesync.sandbox.graph import schema

if TYPE_CHECKING:
    from spokesync.sandbox.graph.server import GraphServer, Mailbox

DEFAULT_DELTA_PAGE = 10
MAX_DELTA_PAGE = 1000
DELTA_TOKEN_CACHE = 500  # tokens kept before the oldest are dropped (Outlook's cache is finite)
MAX_PHOTO_BYTES = 4 * 1024 * 1024  # "Update profilePhoto": photos up to 4 MB
# Server-computed contact properties ("contact resource type": read-only or set by Outlook).
READ_ONLY = {"id", "changeKey", "createdDateTime", "lastModifiedDateTime", "parentFolderId", "photo",
             "multiValueExtendedProperties", "extensions"}
STRING_PROPS = ("assistantName", "birthday", "businessHomePage", "companyName", "department", "displayName",
                "fileAs", "generation", "givenName", "initials", "jobTitle", "manager", "middleName", "mobilePhone",
                "nickName", "officeLocation", "personalNotes", "profession", "spouseName", "surname", "title",
                "yomiCompanyName", "yomiGivenName", "yomiSurname")
LIST_PROPS = ("businessPhones", "homePhones", "imAddresses", "children", "emailAddresses", "categories")
ADDRESS_PROPS = ("businessAddress", "homeAddress", "otherAddress")
_FILTER_EP = re.compile(r"^\s*singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id\s+eq\s+'([^']*)'\s+and\s+"
                        r"\1/value\s+eq\s+'((?:[^']|'')*)'\s*\)\s*$", re.IGNORECASE)


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(24).replace("-", "A").replace("_", "B")


@dataclass
class ContactFolder:
    id: str
    name: str
    mailbox: Mailbox
    parent_id: str
    is_root: bool = False


@dataclass
class Ct:
    id: str
    folder: ContactFolder
    props: dict[str, Any]
    created: datetime
    modified: datetime
    change_key: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    photo: tuple[bytes, str] | None = None
    deleted: bool = False

    def touch(self) -> None:
        self.modified = datetime.now(UTC)
        self.change_key = secrets.token_urlsafe(12)

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'


@dataclass
class ContactDelta:
    folder: ContactFolder
    seq: int
    select: str
    page_size: int
    pending: list[dict[str, Any]] | None = None  # the rest of a round (skip tokens)


class ContactStore:
    def __init__(self, server: GraphServer) -> None:
        self.server = server
        self.folders: dict[str, ContactFolder] = {}
        self.roots: dict[str, ContactFolder] = {}  # mailbox id -> default Contacts folder
        self.contacts: dict[str, Ct] = {}
        self.log: list[tuple[int, str, str]] = []  # (seq, folder id, contact id)
        self.seq = 0
        self.tokens: collections.OrderedDict[str, ContactDelta] = collections.OrderedDict()
        self.dropped: set[str] = set()  # tokens evicted from the cache (or expired by a test)
        self.writes = 0  # creates, updates, deletes, photo puts (user edits included)

    # ------------------------------------------------------------ test API
    def root(self, mailbox: Mailbox) -> ContactFolder:
        folder = self.roots.get(mailbox.id)
        if folder is None:
            folder = ContactFolder(_new_id("AAMkAGcf"), "Contacts", mailbox, _new_id("AAMkAGmsg"), is_root=True)
            self.roots[mailbox.id] = folder
            self.folders[folder.id] = folder
        return folder

    def add_folder(self, mailbox: Mailbox, name: str, parent: ContactFolder | None = None) -> ContactFolder:
        parent = parent or self.root(mailbox)
        if any(f.parent_id == parent.id and f.name.lower() == name.lower() for f in self.folders.values()):
            raise _error(409, "ErrorFolderExists", "A folder with the specified name already exists.")
        folder = ContactFolder(_new_id("AAMkAGcf"), name, mailbox, parent.id)
        self.folders[folder.id] = folder
        return folder

    def live(self, folder: ContactFolder) -> list[Ct]:
        return sorted((c for c in self.contacts.values() if c.folder is folder and not c.deleted),
                      key=lambda c: (c.created, c.id))

    def user_create(self, folder: ContactFolder, body: dict[str, Any]) -> Ct:
        schema.validate(body, "microsoft.graph.contact")
        return self._create(folder, copy.deepcopy(body))

    def user_edit(self, contact_id: str, props: dict[str, Any]) -> None:
        schema.validate(props, "microsoft.graph.contact")
        self._patch(self._get(contact_id), copy.deepcopy(props), None)

    def user_delete(self, contact_id: str) -> None:
        self._delete(self._get(contact_id), None)

    def expire_tokens(self) -> None:
        self.dropped.update(self.tokens)
        self.tokens.clear()

    # ------------------------------------------------------------ store
    def _get(self, contact_id: str) -> Ct:
        contact = self.contacts.get(contact_id)
        if contact is None or contact.deleted:
            raise _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return contact

    def _log(self, contact: Ct) -> None:
        self.seq += 1
        self.log.append((self.seq, contact.folder.id, contact.id))
        self.writes += 1

    def _store(self, target: dict[str, Any], body: dict[str, Any]) -> None:
        from spokesync.sandbox.graph.server import _normal_prop_id

        for key in READ_ONLY & set(body):
            body.pop(key)
        for key, value in body.items():
            if key.startswith("@"):
                continue
            if key == "singleValueExtendedProperties":
                current = {p["id"].lower(): p for p in target.get(key, [])}
                for prop in value or []:
                    current[_normal_prop_id(prop["id"]).lower()] = {"id": _normal_prop_id(prop["id"]),
                                                                    "value": prop.get("value")}
                target[key] = list(current.values())
            elif key in ADDRESS_PROPS:
                target[key] = {k: v for k, v in (value or {}).items() if v not in (None, "")}
            else:
                target[key] = copy.deepcopy(value)

    def _create(self, folder: ContactFolder, body: dict[str, Any]) -> Ct:
        now = datetime.now(UTC)
        contact = Ct(_new_id("AAMkAGct"), folder, {}, now, now)
        self._store(contact.props, body)
        self.contacts[contact.id] = contact
        self._log(contact)
        return contact

    @staticmethod
    def _precondition(contact: Ct, if_match: str | None) -> None:
        if if_match and if_match.strip() != "*" and if_match.strip() != contact.etag:
            raise _error(412, "ErrorIrresolvableConflict",
                         "The change key passed in the request does not match the current change key for the item.")

    def _patch(self, contact: Ct, body: dict[str, Any], if_match: str | None) -> None:
        self._precondition(contact, if_match)
        self._store(contact.props, body)
        contact.touch()
        self._log(contact)

    def _delete(self, contact: Ct, if_match: str | None) -> None:
        self._precondition(contact, if_match)
        contact.deleted = True
        contact.touch()
        self._log(contact)

    # ------------------------------------------------------------ rendering
    def render(self, contact: Ct, select: set[str] | None = None,
               expand: dict[str, set[str] | None] | None = None) -> dict[str, Any]:
        props = dict(contact.props)
        extended = props.pop("singleValueExtendedProperties", [])
        out: dict[str, Any] = {
            "@odata.etag": contact.etag, "id": contact.id,
            "createdDateTime": contact.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastModifiedDateTime": contact.modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "changeKey": contact.change_key, "parentFolderId": contact.folder.id,
        }
        for name in STRING_PROPS:
            out[name] = props.get(name)
        for name in LIST_PROPS:
            out[name] = copy.deepcopy(props.get(name) or [])
        for name in ADDRESS_PROPS:  # Graph answers an empty address as {}
            out[name] = dict(props.get(name) or {})
        if out["displayName"] is None:
            out["displayName"] = ""
        if select:
            keep = select | {"id", "@odata.etag"}
            out = {k: v for k, v in out.items() if k in keep}
        wanted = (expand or {}).get("singleValueExtendedProperties", ...)
        if wanted is not ...:
            chosen = [p for p in extended if wanted is None or p["id"].lower() in wanted]
            if chosen:
                out["singleValueExtendedProperties"] = chosen
        return out

    @staticmethod
    def render_folder(folder: ContactFolder) -> dict[str, Any]:
        return {"id": folder.id, "displayName": folder.name, "parentFolderId": folder.parent_id}

    # ------------------------------------------------------------ requests
    def route(self, method: str, rest: list[str], query: dict[str, str], headers: dict[str, str], body: Any,
              raw: bytes, mailbox: Mailbox, base: str) -> tuple[int, dict[str, str], Any]:
        """`rest` follows `users/{id}/`: ["contactFolders", ...]."""
        from spokesync.sandbox.graph.server import _parse_expand, _prefer

        json_h = {"Content-Type": "application/json; odata.metadata=minimal"}
        root = self.root(mailbox)
        if len(rest) == 1:
            if method == "GET":
                return 200, json_h, {"value": [self.render_folder(f) for f in self.folders.values()
                                               if f.parent_id == root.id and f.mailbox is mailbox]}
            if method == "POST":
                return 201, json_h, self.render_folder(self._new_folder(mailbox, root, body))
            raise _unsupported()
        folder = self.folders.get(rest[1])
        if folder is None or folder.mailbox is not mailbox:
            raise _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        tail = rest[2:]
        if not tail:
            if method == "GET":
                return 200, json_h, self.render_folder(folder)
            raise _unsupported()
        if tail == ["childFolders"]:
            if method == "GET":
                return 200, json_h, {"value": [self.render_folder(f) for f in self.folders.values()
                                               if f.parent_id == folder.id]}
            if method == "POST":
                return 201, json_h, self.render_folder(self._new_folder(mailbox, folder, body))
            raise _unsupported()
        if tail[0] != "contacts":
            raise _error(400, "BadRequest", f"Resource not found for the segment '{tail[0]}'.")
        prefer = _prefer(headers.get("prefer", ""))
        select = {s.strip() for s in query["$select"].split(",")} if query.get("$select") else None
        expand = _parse_expand(query.get("$expand", ""))
        if tail == ["contacts", "delta"] or tail == ["contacts", "delta()"]:
            if method != "GET":
                raise _unsupported()
            out, applied = self.delta(folder, query, prefer, base, mailbox)
            extra = {"Preference-Applied": f"odata.maxpagesize={applied}"} if "odata.maxpagesize" in prefer else {}
            return 200, {**json_h, **extra}, out
        if len(tail) == 1:
            if method == "GET":
                return 200, json_h, self._list(folder, query, prefer, select, expand, f"{base}/users/{mailbox.id}/"
                                               f"contactFolders/{folder.id}/contacts")
            if method == "POST":
                if not isinstance(body, dict):
                    raise _error(400, "RequestBodyRead", "Empty Payload. JSON content expected.")
                schema.validate(body, "microsoft.graph.contact")
                contact = self._create(folder, copy.deepcopy(body))
                return 201, json_h, self.render(contact, expand={"singleValueExtendedProperties": None}
                                                if body.get("singleValueExtendedProperties") else None)
            raise _unsupported()
        contact = self._get(tail[1])
        if contact.folder is not folder:
            raise _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        if tail[2:] == ["photo", "$value"]:
            return self._photo(method, contact, headers, raw)
        if len(tail) != 2:
            raise _error(400, "BadRequest", f"Resource not found for the segment '{tail[2]}'.")
        if method == "GET":
            return 200, json_h, self.render(contact, select, expand)
        if method == "PATCH":
            if not isinstance(body, dict):
                raise _error(400, "RequestBodyRead", "Empty Payload. JSON content expected.")
            schema.validate(body, "microsoft.graph.contact")
            self._patch(contact, copy.deepcopy(body), headers.get("if-match"))
            return 200, json_h, self.render(contact, expand={"singleValueExtendedProperties": None}
                                            if body.get("singleValueExtendedProperties") else None)
        if method == "DELETE":
            self._delete(contact, headers.get("if-match"))
            return 204, {}, None
        raise _unsupported()

    def _new_folder(self, mailbox: Mailbox, parent: ContactFolder, body: Any) -> ContactFolder:
        if not isinstance(body, dict):
            raise _error(400, "RequestBodyRead", "Empty Payload. JSON content expected.")
        schema.validate(body, "microsoft.graph.contactFolder")
        name = str(body.get("displayName") or "").strip()
        if not name:
            raise _error(400, "ErrorInvalidRequest", "Your request can't be completed. The folder name is required.")
        return self.add_folder(mailbox, name, parent)

    def _photo(self, method: str, contact: Ct, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Any]:
        if method == "GET":
            if contact.photo is None:
                raise _error(404, "ErrorItemNotFound", "The photo wasn't found.")
            return 200, {"Content-Type": contact.photo[1]}, contact.photo[0]
        if method == "PUT":
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if not content_type.startswith("image/"):
                raise _error(400, "ErrorInvalidRequest", "Your request can't be completed. The photo must be an "
                                                         "image (Content-Type image/jpeg or image/png).")
            if not raw or len(raw) > MAX_PHOTO_BYTES:
                raise _error(400, "ErrorInvalidRequest", "Your request can't be completed. The photo must be "
                                                         "between 1 byte and 4 MB.")
            contact.photo = (bytes(raw), content_type)
            contact.touch()
            self._log(contact)
            return 200, {}, None
        raise _unsupported()

    def _list(self, folder: ContactFolder, query: dict[str, str], prefer: dict[str, str], select: set[str] | None,
              expand: dict[str, set[str] | None], url: str) -> dict[str, Any]:
        from spokesync.sandbox.graph.server import _normal_prop_id

        try:
            top = int(query.get("$top") or prefer.get("odata.maxpagesize") or 10)
            skip = int(query.get("$skip") or 0)
        except ValueError:
            raise _error(400, "ErrorInvalidParameter", "The value of $top or $skip is not a number.") from None
        if not 1 <= top <= 1000:
            raise _error(400, "ErrorInvalidParameter", "The value of $top must be between 1 and 1000.")
        contacts = self.live(folder)
        if query.get("$filter"):
            match = _FILTER_EP.match(query["$filter"])
            if match is None:
                raise _error(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
            prop_id = _normal_prop_id(match.group(2)).lower()
            value = match.group(3).replace("''", "'")
            contacts = [c for c in contacts if any(p["id"].lower() == prop_id and p.get("value") == value
                                                   for p in c.props.get("singleValueExtendedProperties", []))]
        page = contacts[skip:skip + top]
        out: dict[str, Any] = {"value": [self.render(c, select, expand) for c in page]}
        if skip + top < len(contacts):
            rest = {k: v for k, v in query.items() if k != "$skip"}
            out["@odata.nextLink"] = f"{url}?{urllib.parse.urlencode({**rest, '$skip': skip + top})}"
        return out

    # ------------------------------------------------------------ delta
    def _issue(self, state: ContactDelta) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = state
        while len(self.tokens) > DELTA_TOKEN_CACHE:
            old, _ = self.tokens.popitem(last=False)
            self.dropped.add(old)
        return token

    def _changes(self, state: ContactDelta, since: int | None) -> list[dict[str, Any]]:
        select = {s.strip() for s in state.select.split(",")} if state.select else None
        if since is None:
            return [self.render(c, select) for c in self.live(state.folder)]
        ids = dict.fromkeys(cid for seq, fid, cid in self.log if seq > since and fid == state.folder.id)
        out = []
        for contact_id in ids:
            contact = self.contacts[contact_id]
            if contact.deleted:
                out.append({"@odata.type": "#microsoft.graph.contact", "id": contact.id,
                            "@removed": {"reason": "deleted"}})
            else:
                out.append(self.render(contact, select))
        return out

    def delta(self, folder: ContactFolder, query: dict[str, str], prefer: dict[str, str], base: str,
              mailbox: Mailbox) -> tuple[dict[str, Any], int]:
        page_size = DEFAULT_DELTA_PAGE
        if "odata.maxpagesize" in prefer:
            with suppress(ValueError):
                page_size = max(1, min(MAX_DELTA_PAGE, int(prefer["odata.maxpagesize"])))
        path = f"{base}/users/{mailbox.id}/contactFolders/{folder.id}/contacts/delta"
        token = query.get("$skiptoken") or query.get("$deltatoken")
        if token is not None:
            state = self.tokens.get(token)
            if state is None and token in self.dropped:
                raise _error(410, "syncStateNotFound", "The sync state generation is not found. The delta token is "
                                                       "expired and data must be synchronized again.")
            if state is None or state.folder is not folder:
                raise _error(410, "resyncRequired", "The delta token is no longer valid, and the app must reset the "
                                                    "sync state.", {"Location": path})
            if "$deltatoken" in query:
                state = ContactDelta(folder, self.seq, state.select, page_size,
                                     self._changes(state, state.seq))
        else:
            state = ContactDelta(folder, self.seq, query.get("$select", ""), page_size)
            state.pending = self._changes(state, None)
        pending = state.pending or []
        page, rest = pending[:state.page_size], pending[state.page_size:]
        out: dict[str, Any] = {"@odata.context": f"{base}/$metadata#Collection(contact)", "value": page}
        if rest:
            next_token = self._issue(ContactDelta(folder, state.seq, state.select, state.page_size, rest))
            out["@odata.nextLink"] = f"{path}?$skiptoken={next_token}"
        else:
            next_token = self._issue(ContactDelta(folder, state.seq, state.select, state.page_size))
            out["@odata.deltaLink"] = f"{path}?$deltatoken={next_token}"
        return out, state.page_size

    # ------------------------------------------------------------ response checks (strict mode)
    @staticmethod
    def check_response(path: str, method: str, out: Any) -> None:
        if not isinstance(out, dict):
            return
        if path.endswith("/childFolders") or path.endswith("/contactFolders"):
            for item in out.get("value", [out]):
                schema.validate(item, "microsoft.graph.contactFolder", request=False)
        elif path.endswith("/contacts") or path.endswith("/delta") or path.endswith("/delta()"):
            for item in out.get("value", [out]):
                if "@removed" not in item:
                    schema.validate(item, "microsoft.graph.contact", request=False)
        elif "/contacts/" in path and method != "DELETE":
            schema.validate(out, "microsoft.graph.contact", request=False)
        else:
            schema.validate(out, "microsoft.graph.contactFolder", request=False)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Exception:
    from spokesync.sandbox.graph.server import GraphError

    return GraphError(status, code, message, headers)


def _unsupported() -> Exception:
    return _error(405, "ErrorInvalidRequest", "The OData request is not supported.")
