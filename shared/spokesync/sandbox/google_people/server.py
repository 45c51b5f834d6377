"""The People API server: state, the resources spokesync uses, and the HTTP
front end. Every request is held to the discovery document first
(`discovery.PeopleValidator`); then the behaviours below, each with its source.

Sources (cited as [D] the discovery document people.v1.json, revision in its
`revision` field; [F] FACTS.md "Google"; [I] public issue threads quoting
Google's answers; [A] an assumption recorded in
docs/decisions/2026-12-01-google-contacts.md):

- connections.list: `personFields` required [D get/connections "returns a 400
  error if 'personFields' is not specified"]; `pageSize` 1..1000, default 100
  [D]; `requestSyncToken` → `nextSyncToken` on the last page only [D
  ListConnectionsResponse]; with `syncToken`, deleted contacts come back as a
  person with `metadata.deleted` [D]; "Sync tokens expire 7 days after the full
  sync" → 400 with ErrorInfo reason `EXPIRED_SYNC_TOKEN` [D], message as
  quoted in [I garrytan/gbrain#5127, xynehq/xyne#197]; with `pageToken` or
  `syncToken` "all other request parameters must match the first call" [D] →
  400 INVALID_ARGUMENT [A: the message].
- batchCreateContacts / batchUpdateContacts: "Allows up to 200 contacts in a
  single request" [D] → 400 INVALID_ARGUMENT beyond; batchDeleteContacts up to
  500 resource names [D]. A failed batch fails whole ("If not successful,
  returns ...ErrorDetails ... for each invalid contact" [D]).
- updateContact / batchUpdateContacts: the etag (`person.etag` or
  `person.metadata.sources.etag`) must be given [D "returns a 400 error if
  person.metadata.sources is not specified"] and current, else 400 with reason
  `failedPrecondition` and Google's message [D, I googleapis/google-api-go-
  client#1904, google-api-python-client#2417]; singletons (biographies,
  birthdays, genders, names) hold one entry [D]; updating memberships to none
  is refused [D].
- Output-only properties in a request (`names[].displayName`, `photos`,
  `metadata`, ...) are ignored, not stored (AIP-203 "output only" fields; the
  document marks them `readOnly`).
- memberships: only user groups, `myContacts` and `starred` can be added [D
  Membership, ModifyContactGroupMembersRequest]; a contact keeps at least one
  group [D ModifyContactGroupMembersResponse.canNotRemoveLastContactGroup...];
  a contact created without memberships is in `myContacts` [A].
- contactGroups.create: names unique, duplicate → 409 [D]; members.modify up to
  1000 names [D].
- photos: updateContactPhoto takes JPEG or PNG bytes only [D
  UpdateContactPhotoRequest]; a contact without a photo shows a default one
  (`default: true`) [D Photo.default]; the URL changes with the photo [A].
- A service account acting as itself (no domain-wide delegation subject) has
  no contacts: 403 PERMISSION_DENIED [F "writes for another user need a
  service account with domain-wide delegation"; A: the status for the
  account itself].
- "Mutate requests for the same user should be sent sequentially to avoid
  increased latency and failures" [D]: no error is documented for it, so none
  is invented; the server counts overlapping mutations per user
  (`stats_concurrent_mutations`) so that tests can hold the client to it.
- Not modelled: "Writes may have a propagation delay of several minutes for
  sync requests" [D] (would make every test wait), the extra quota of a full
  sync's first page [D] (no figure published; fault injection gives a 429).
"""

from __future__ import annotations

import argparse
import base64
import copy
import itertools
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from spokesync.sandbox.google_calendar import http
from spokesync.sandbox.google_calendar.common import ApiError, Fault, Stats, _rfc3339
from spokesync.sandbox.google_calendar.http import GoogleHandler, GoogleServer
from spokesync.sandbox.google_calendar.oauth import OAuthMixin
from spokesync.sandbox.google_calendar.state import SandboxState
from spokesync.sandbox.google_people.discovery import validator

SYNC_TOKEN_TTL = timedelta(days=7)  # [D connections.list]
MAX_BATCH_WRITE = 200  # [D BatchCreateContactsRequest / BatchUpdateContactsRequest]
MAX_BATCH_DELETE = 500  # [D BatchDeleteContactsRequest]
MAX_BATCH_GET = 200  # [D getBatchGet resourceNames "maximum of 200"]
MAX_GROUP_MODIFY = 1000  # [D ModifyContactGroupMembersRequest]
SINGLETONS = ("biographies", "birthdays", "genders", "names")  # [D createContact / updateContact]
SYSTEM_GROUPS = ("myContacts", "starred", "friends", "family", "coworkers", "chatBuddies", "all", "blocked")
ADDABLE_SYSTEM_GROUPS = ("myContacts", "starred")  # [D members.modify]
PHOTO_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")  # JPEG, PNG [D UpdateContactPhotoRequest]

# google.rpc.Code names by HTTP status (google/rpc/code.proto); People API errors carry them in error.status.
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
# The legacy errors[].reason Google still sends next to status (the Go client prints it: "…, failedPrecondition").
_LEGACY_REASON = {"INVALID_ARGUMENT": "badRequest", "FAILED_PRECONDITION": "failedPrecondition",
                  "UNAUTHENTICATED": "unauthorized", "PERMISSION_DENIED": "forbidden", "NOT_FOUND": "notFound",
                  "ALREADY_EXISTS": "conflict", "RESOURCE_EXHAUSTED": "rateLimitExceeded",
                  "INTERNAL": "backendError", "UNAVAILABLE": "backendError"}


class PeopleError(Exception):
    """Google's error body for the People API: `code`, `message`, `status`, the legacy
    `errors[]` and, with a reason, a google.rpc.ErrorInfo in `details`
    (cloud.google.com/apis/design/errors, linked from [D connections.list])."""

    def __init__(self, code: int, message: str, status: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _STATUS.get(code, "UNKNOWN")
        self.reason = reason

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code, "message": self.message, "status": self.status,
            "errors": [{"message": self.message, "domain": "global",
                        "reason": _LEGACY_REASON.get(self.status, "badRequest")}]}
        if self.reason:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": self.reason,
                                 "domain": "people.googleapis.com"}]
        return {"error": error}


def _from_calendar(exc: ApiError) -> PeopleError:
    return PeopleError(exc.status, exc.message)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Group:
    resource_name: str
    name: str
    group_type: str = "USER_CONTACT_GROUP"
    client_data: list[dict[str, Any]] = field(default_factory=list)
    etag: str = ""
    updated: str = ""
    deleted: bool = False


@dataclass
class Book:
    """One user's contacts and groups."""

    user: str
    people: dict[str, dict[str, Any]] = field(default_factory=dict)  # resource name -> stored person
    groups: dict[str, Group] = field(default_factory=dict)
    seq: int = 0
    epoch: int = 0  # bumped to invalidate every sync token issued so far


class GooglePeopleSandbox(OAuthMixin):
    """The server's state and its Python API (thread-safe)."""

    def __init__(self, *, check_responses: bool = False, oauth: OAuthMixin | None = None, **kwargs: Any) -> None:
        """`check_responses` (tests): every answer is held to the method's `response`
        schema too; one that does not fit is a 500 naming the property.
        `oauth`: another sandbox whose tokens this one accepts (the demo's Calendar
        sandbox: one Google sign-in for both APIs, as with Google)."""
        super().__init__(**kwargs)
        self.check_responses = check_responses
        self.oauth = oauth
        self.books: dict[str, Book] = {}
        self.photos: dict[str, tuple[bytes, str]] = {}  # photo id -> (bytes, content type)
        self._ids = itertools.count(int(time.time()) % 100000 * 1000 + 1)
        self._etag_seq = itertools.count(1)
        self.http_lock = threading.Lock()
        self.mutations_in_flight: dict[str, int] = {}
        self.stats_concurrent_mutations = 0

    # ---------------------------------------------------------------- setup API

    def add_user(self, email_address: str) -> Book:
        with self.lock:
            self.users.add(email_address)
            return self._book(email_address)

    def add_client(self, client_id: str, client_secret: str) -> None:
        with self.lock:
            self.clients[client_id] = client_secret

    def new_service_account_key(self, sa_email: str, domain_wide: bool = True) -> dict[str, Any]:
        """Register a service account and return its JSON key (as Google's console would)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        with self.lock:
            self.service_accounts[sa_email] = (load_pem_public_key(public), domain_wide)
        return {"type": "service_account", "project_id": "sandbox", "private_key_id": secrets.token_hex(8),
                "private_key": pem, "client_email": sa_email, "client_id": str(secrets.randbelow(10**20)),
                "token_uri": self.base_url + "token"}

    def inject(self, status: int, reason: str, count: int = 1, *, skip: int = 0, message: str = "",
               method: str | None = None, path_contains: str | None = None) -> Fault:
        fault = Fault(status, reason, message or reason, count, skip, method, path_contains, "api")
        with self.lock:
            self.faults.append(fault)
        return fault

    def expire_sync_tokens(self, user: str) -> None:
        """Every sync token issued so far for the user is refused from now on (as after 7 days)."""
        with self.lock:
            self._book(user).epoch += 1

    def user_create(self, user: str, person: dict[str, Any], groups: list[str] | None = None) -> dict[str, Any]:
        """The user adds a contact in Google Contacts (bypassing the API's client)."""
        with self.lock:
            book = self._book(user)
            body = copy.deepcopy(person)
            if groups is not None:
                body["memberships"] = [{"contactGroupMembership": {"contactGroupResourceName": g}} for g in groups]
            return self._view(book, self._create(book, body), None)

    def user_update(self, user: str, resource_name: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            book = self._book(user)
            stored = self._live(book, resource_name)
            for key, value in copy.deepcopy(changes).items():
                if value is None:
                    stored.pop(key, None)
                else:
                    stored[key] = value
            self._stamp(book, stored)
            return self._view(book, stored, None)

    def user_delete(self, user: str, resource_name: str) -> None:
        with self.lock:
            book = self._book(user)
            self._remove(book, self._live(book, resource_name))

    def user_set_groups(self, user: str, resource_name: str, groups: list[str]) -> None:
        with self.lock:
            book = self._book(user)
            stored = self._live(book, resource_name)
            stored["memberships"] = [{"contactGroupMembership": {"contactGroupResourceName": g}} for g in groups]
            self._stamp(book, stored)

    def user_set_photo(self, user: str, resource_name: str, data: bytes | None,
                       content_type: str = "image/png") -> None:
        """The user sets (or, with None, removes) the contact's photo in Google Contacts."""
        with self.lock:
            book = self._book(user)
            stored = self._live(book, resource_name)
            old = stored.pop("_photo", None)
            if old:
                self.photos.pop(old, None)
            if data is not None:
                photo_id = secrets.token_urlsafe(18)
                self.photos[photo_id] = (data, content_type)
                stored["_photo"] = photo_id
            self._stamp(book, stored)

    def user_create_group(self, user: str, name: str) -> str:
        with self.lock:
            return self._create_group(self._book(user), name).resource_name

    def live_people(self, user: str) -> list[dict[str, Any]]:
        with self.lock:
            book = self._book(user)
            return [self._view(book, p, None) for p in book.people.values() if not p.get("_deleted")]

    def person(self, user: str, resource_name: str) -> dict[str, Any] | None:
        with self.lock:
            book = self._book(user)
            stored = book.people.get(resource_name)
            return None if stored is None or stored.get("_deleted") else self._view(book, stored, None)

    # ---------------------------------------------------------------- state helpers

    def _book(self, user: str) -> Book:
        book = self.books.get(user)
        if book is None:
            book = Book(user)
            for name in SYSTEM_GROUPS:
                book.groups[f"contactGroups/{name}"] = Group(f"contactGroups/{name}", name, "SYSTEM_CONTACT_GROUP",
                                                             etag=self._etag(), updated=_rfc3339(self.clock()))
            self.books[user] = book
        return book

    def _etag(self) -> str:
        return "%" + _b64(f"EgcBAgkLLjc9GgQBAgUHIgx{next(self._etag_seq)}".encode() + secrets.token_bytes(6))

    def _stamp(self, book: Book, stored: dict[str, Any]) -> None:
        book.seq += 1
        stored["_seq"] = book.seq
        stored["etag"] = self._etag()
        stored["_updated"] = _rfc3339(self.clock())

    def _live(self, book: Book, resource_name: str) -> dict[str, Any]:
        stored = book.people.get(resource_name)
        if stored is None or stored.get("_deleted"):
            raise PeopleError(404, "Requested entity was not found.")
        return stored

    def _create_group(self, book: Book, name: str, client_data: list[dict[str, Any]] | None = None) -> Group:
        name = name.strip()
        if not name:
            raise PeopleError(400, "Contact group name must not be empty.")
        if any(g.name == name and not g.deleted for g in book.groups.values()):
            raise PeopleError(409, "Contact group name already exists.", "ALREADY_EXISTS")  # [D]
        group = Group(f"contactGroups/{next(self._ids):x}", name, client_data=list(client_data or []),
                      etag=self._etag(), updated=_rfc3339(self.clock()))
        book.groups[group.resource_name] = group
        return group

    # ---------------------------------------------------------------- people core

    _WRITABLE = ("addresses", "biographies", "birthdays", "calendarUrls", "clientData", "emailAddresses", "events",
                 "externalIds", "genders", "imClients", "interests", "locales", "locations", "memberships",
                 "miscKeywords", "names", "nicknames", "occupations", "organizations", "phoneNumbers", "relations",
                 "sipAddresses", "urls", "userDefined")

    def _clean_field(self, name: str, values: Any) -> list[dict[str, Any]]:
        """Drop what is output only ([D] `readOnly`), check singletons and memberships."""
        schema = validator().schemas
        items = values if isinstance(values, list) else []
        ref = schema["Person"]["properties"][name].get("items", {}).get("$ref")
        props = schema.get(ref, {}).get("properties", {}) if ref else {}
        out = []
        for item in items:
            if not isinstance(item, dict):
                continue
            clean = {k: copy.deepcopy(v) for k, v in item.items() if not props.get(k, {}).get("readOnly")
                     and k != "metadata"}
            out.append(clean)
        if name in SINGLETONS and len(out) > 1:
            raise PeopleError(400, f"Only one {name[:-1] if name != 'biographies' else 'biography'} is allowed "
                                   f"for a contact: {name} is a singleton field for contact sources.")
        return out

    def _check_memberships(self, book: Book, memberships: list[dict[str, Any]], *, adding: set[str]) -> None:
        for m in memberships:
            name = str((m.get("contactGroupMembership") or {}).get("contactGroupResourceName") or "")
            group = book.groups.get(name)
            if group is None or group.deleted:
                raise PeopleError(400, f"Contact group not found: {name or '(missing contactGroupResourceName)'}")
            if name in adding and group.group_type != "USER_CONTACT_GROUP" and \
                    name.split("/", 1)[1] not in ADDABLE_SYSTEM_GROUPS:
                raise PeopleError(400, f"Cannot add contacts to the system contact group {name}.")

    def _create(self, book: Book, body: dict[str, Any]) -> dict[str, Any]:
        stored: dict[str, Any] = {}
        for name in self._WRITABLE:
            if name in body:
                stored[name] = self._clean_field(name, body[name])
        memberships = stored.get("memberships") or []
        self._check_memberships(book, memberships, adding={
            str((m.get("contactGroupMembership") or {}).get("contactGroupResourceName")) for m in memberships})
        if not memberships:
            stored["memberships"] = [{"contactGroupMembership": {"contactGroupResourceName": "contactGroups/myContacts"}}]
        person_id = f"c{next(self._ids)}{secrets.randbelow(10**6):06d}"
        stored["resourceName"] = f"people/{person_id}"
        stored["_id"] = person_id
        self._stamp(book, stored)
        book.people[stored["resourceName"]] = stored
        return stored

    def _update(self, book: Book, resource_name: str, body: dict[str, Any], mask: list[str]) -> dict[str, Any]:
        stored = self._live(book, resource_name)
        etag = body.get("etag") or next((s.get("etag") for s in (body.get("metadata") or {}).get("sources") or []
                                         if s.get("type") == "CONTACT"), None)
        if not etag:
            raise PeopleError(400, "Request must set person.etag or person.metadata.sources.etag for the source "
                                   "that is being updated.")
        if etag != stored["etag"]:
            raise PeopleError(400, "Request person.etag is different than the current person.etag. Clear local "
                                   "cache and get the latest person.", "FAILED_PRECONDITION")
        changes: dict[str, Any] = {}
        for name in mask:
            changes[name] = self._clean_field(name, body.get(name) or [])
        if "memberships" in changes:
            memberships = changes["memberships"]
            if not memberships:  # [D updateContact]
                raise PeopleError(400, "Request must specify at least one contact group membership when updating "
                                       "memberships.")
            before = {str((m.get("contactGroupMembership") or {}).get("contactGroupResourceName"))
                      for m in stored.get("memberships") or []}
            after = {str((m.get("contactGroupMembership") or {}).get("contactGroupResourceName"))
                     for m in memberships}
            self._check_memberships(book, memberships, adding=after - before)
        return {"stored": stored, "changes": changes}

    @staticmethod
    def _apply(prepared: dict[str, Any]) -> None:
        stored = prepared["stored"]
        for name, value in prepared["changes"].items():
            if value:
                stored[name] = value
            else:
                stored.pop(name, None)

    def _remove(self, book: Book, stored: dict[str, Any]) -> None:
        photo = stored.pop("_photo", None)
        if photo:
            self.photos.pop(photo, None)
        for key in [k for k in stored if k not in ("resourceName", "_id")]:
            del stored[key]
        stored["_deleted"] = True
        self._stamp(book, stored)

    def _display_name(self, stored: dict[str, Any]) -> dict[str, Any] | None:
        names = stored.get("names") or []
        if not names:
            return None
        name = dict(names[0])
        if name.get("unstructuredName"):
            display = name["unstructuredName"]
        else:
            display = " ".join(str(name[k]) for k in ("honorificPrefix", "givenName", "middleName", "familyName",
                                                       "honorificSuffix") if name.get(k))
        if display:
            name["displayName"] = display
            last = ", ".join(p for p in (name.get("familyName", ""), " ".join(
                str(name[k]) for k in ("givenName", "middleName") if name.get(k))) if p)
            name["displayNameLastFirst"] = last or display
        return name

    def _view(self, book: Book, stored: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
        """The person as the API shows it, restricted to `fields` (None: everything)."""
        if stored.get("_deleted"):
            return {"resourceName": stored["resourceName"], "etag": stored["etag"], "metadata": {"deleted": True}}
        wanted = set(fields) if fields is not None else None
        source = {"type": "CONTACT", "id": stored["_id"]}
        out: dict[str, Any] = {"resourceName": stored["resourceName"], "etag": stored["etag"]}
        for name in self._WRITABLE:
            if (wanted is None or name in wanted) and stored.get(name):
                values = copy.deepcopy(stored[name])
                if name == "names":
                    values = [self._display_name(stored)]
                for n, value in enumerate(values):
                    meta: dict[str, Any] = {"source": dict(source)}
                    if n == 0:
                        meta["primary"] = True
                        meta["sourcePrimary"] = True
                    value["metadata"] = meta
                    if name == "memberships":
                        group_rn = value["contactGroupMembership"]["contactGroupResourceName"]
                        value["contactGroupMembership"]["contactGroupId"] = group_rn.split("/", 1)[1]
                    if name in ("emailAddresses", "phoneNumbers", "addresses", "urls", "events") and \
                            value.get("type"):
                        value["formattedType"] = str(value["type"])[:1].upper() + str(value["type"])[1:]
                out[name] = values
        if wanted is None or "photos" in wanted:
            photo = stored.get("_photo")
            if photo:
                out["photos"] = [{"metadata": {"primary": True, "source": dict(source)},
                                  "url": f"{self.base_url}photos/{photo}"}]
            else:
                out["photos"] = [{"metadata": {"primary": True, "source": {"type": "PROFILE", "id": stored["_id"]}},
                                  "url": f"{self.base_url}photos/default", "default": True}]
        if wanted is None or "metadata" in wanted:
            out["metadata"] = {"sources": [{**source, "etag": stored["etag"], "updateTime": stored["_updated"]}],
                               "objectType": "PERSON"}
        return out

    # ---------------------------------------------------------------- sync tokens

    def _token(self, book: Book, payload: dict[str, Any]) -> str:
        return _b64(json.dumps({**payload, "u": book.user, "e": book.epoch}, separators=(",", ":")).encode())

    def _read_token(self, book: Book, token: str, what: str) -> dict[str, Any]:
        try:
            payload = json.loads(_unb64(token))
        except ValueError:
            raise PeopleError(400, f"Invalid {what}.") from None
        if not isinstance(payload, dict) or payload.get("u") != book.user:
            raise PeopleError(400, f"Invalid {what}.")
        return payload

    # ---------------------------------------------------------------- API dispatch

    def _principal(self, headers: dict[str, str]) -> str:
        issuer = self.oauth or self
        try:
            user = issuer.user_for(headers.get("authorization"))
        except ApiError as exc:
            raise PeopleError(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                                   "login cookie or other valid authentication credential.",
                              reason="ACCESS_TOKEN_EXPIRED" if headers.get("authorization") else
                              "CREDENTIALS_MISSING") from exc
        if issuer.is_service_account(user):
            raise PeopleError(403, "The caller does not have permission")  # [A] see module doc
        return user

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        parsed = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        override = headers.get("x-http-method-override", "").upper()
        if method == "POST" and override:
            # Google's method override: a GET whose query is too long for a URL arrives as a
            # form-encoded POST (google-api-python-client does this past 2,000 characters).
            if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                err = PeopleError(400, "A method override needs a form-encoded body.")
                return 400, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(err.body()).encode()
            method = override
            query = {**query, **urllib.parse.parse_qs(body.decode(), keep_blank_values=True)}
            body = b""
        try:
            with self.lock:
                self.stats.api_calls += 1
                fault = self._fault(method, parsed.path, "api")
                if fault is not None:
                    raise PeopleError(fault.status, fault.message, reason=fault.reason)
                user = self._principal(headers)
                checker = validator()
                try:
                    found = checker.method_for(method, parsed.path)
                except ApiError as exc:
                    raise _from_calendar(exc) from exc
                if found is None:
                    raise PeopleError(404, "Requested entity was not found.")
                spec, groups = found
                try:
                    checker.check_path_params(spec, groups, parsed.path)
                    checker.check_parameters(spec, query)
                    payload: Any = None
                    if spec.spec.get("request") is not None:
                        try:
                            payload = json.loads(body or b"{}")
                        except ValueError as exc:
                            raise PeopleError(400, "Invalid JSON payload received.") from exc
                        checker.check_body(spec, payload)
                except ApiError as exc:
                    raise _from_calendar(exc) from exc
                self.stats.by_method[spec.name] = self.stats.by_method.get(spec.name, 0) + 1
                book = self._book(user)
                params = {k: v[-1] for k, v in query.items()}
                result = self._route(spec.name, book, parsed.path, params, query, payload or {})
                if self.check_responses:
                    try:
                        checker.check_response(spec, result)
                    except ApiError as exc:
                        raise PeopleError(500, f"sandbox answer does not fit the {spec.name} response schema: "
                                               f"{exc.message}") from exc
        except PeopleError as exc:
            return exc.code, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(exc.body()).encode()
        return 200, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(result).encode()

    def _fields(self, name: str, value: str | None, method_name: str) -> list[str]:
        if not value:
            raise PeopleError(400, f"{name} mask is required. Please specify one or more valid paths. Valid paths "
                                   f"are documented at https://developers.google.com/people/api/rest/v1/"
                                   f"{method_name.replace('.', '/')}.")
        spec = next(m for m in validator().methods if m.name == method_name)
        try:
            return validator().check_mask(spec, name, value)
        except ApiError as exc:
            raise _from_calendar(exc) from exc

    def _body_mask(self, method_name: str, name: str, value: Any) -> list[str]:
        spec = next(m for m in validator().methods if m.name == method_name)
        try:
            return validator().check_mask(spec, name, str(value or ""), in_body=True)
        except ApiError as exc:
            raise _from_calendar(exc) from exc

    def _route(self, name: str, book: Book, path: str, params: dict[str, str], query: dict[str, list[str]],
               body: dict[str, Any]) -> Any:
        resource = path[len("/v1/"):].split(":", 1)[0]
        fields: list[str] | None
        if name == "people.connections.list":
            if resource != "people/me/connections":
                raise PeopleError(400, "Only people/me is valid for connections.")  # [D resourceName]
            return self._connections(book, params, query)
        if name == "people.get":
            fields = self._fields("personFields", params.get("personFields"), "people.get")
            return self._view(book, self._live(book, resource), fields)
        if name == "people.getBatchGet":
            fields = self._fields("personFields", params.get("personFields"), "people.getBatchGet")
            names = query.get("resourceNames") or []
            if not names or len(names) > MAX_BATCH_GET:
                raise PeopleError(400, f"resourceNames must hold 1 to {MAX_BATCH_GET} resource names.")
            responses = []
            for rn in names:
                stored = book.people.get(rn)
                if stored is None or stored.get("_deleted"):
                    responses.append({"requestedResourceName": rn, "httpStatusCode": 404,
                                      "status": {"code": 5, "message": "Requested entity was not found."}})
                else:
                    responses.append({"requestedResourceName": rn, "httpStatusCode": 200, "status": {},
                                      "person": self._view(book, stored, fields)})
            return {"responses": responses}
        if name == "people.createContact":
            fields = self._fields("personFields", params.get("personFields"), "people.createContact") \
                if params.get("personFields") else None
            return self._view(book, self._create(book, body), fields)
        if name == "people.batchCreateContacts":
            contacts = body.get("contacts") or []
            if not contacts:
                raise PeopleError(400, "Request must contain at least one contact.")
            if len(contacts) > MAX_BATCH_WRITE:  # [D]
                raise PeopleError(400, f"Too many contacts in the request: {len(contacts)}; at most "
                                       f"{MAX_BATCH_WRITE} are allowed.")
            fields = self._body_mask(name, "readMask", body.get("readMask"))
            for c in contacts:  # all or nothing [D]: check every contact before creating any
                for single in SINGLETONS:
                    self._clean_field(single, (c.get("contactPerson") or {}).get(single))
                memberships = self._clean_field("memberships", (c.get("contactPerson") or {}).get("memberships"))
                self._check_memberships(book, memberships, adding={
                    str((m.get("contactGroupMembership") or {}).get("contactGroupResourceName"))
                    for m in memberships})
            created = [self._create(book, c.get("contactPerson") or {}) for c in contacts]
            if not fields:
                return {}
            return {"createdPeople": [{"requestedResourceName": p["resourceName"], "httpStatusCode": 200,
                                       "status": {}, "person": self._view(book, p, fields)} for p in created]}
        if name == "people.updateContact":
            mask = self._fields("updatePersonFields", params.get("updatePersonFields"), "people.updateContact")
            prepared = self._update(book, resource, body, mask)
            self._apply(prepared)
            self._stamp(book, prepared["stored"])
            fields = self._fields("personFields", params["personFields"], name) if params.get("personFields") \
                else None
            return self._view(book, prepared["stored"], fields)
        if name == "people.batchUpdateContacts":
            contacts = body.get("contacts") or {}
            if not contacts:
                raise PeopleError(400, "Request must contain at least one contact.")
            if len(contacts) > MAX_BATCH_WRITE:  # [D]
                raise PeopleError(400, f"Too many contacts in the request: {len(contacts)}; at most "
                                       f"{MAX_BATCH_WRITE} are allowed.")
            mask = self._body_mask(name, "updateMask", body.get("updateMask"))
            if not mask:
                raise PeopleError(400, "updateMask is required.")
            fields = self._body_mask(name, "readMask", body.get("readMask"))
            prepared_all = [self._update(book, rn, person, mask) for rn, person in contacts.items()]  # all or nothing
            result = {}
            for rn, prepared in zip(contacts, prepared_all, strict=True):
                self._apply(prepared)
                self._stamp(book, prepared["stored"])
                if fields:
                    result[rn] = {"requestedResourceName": rn, "httpStatusCode": 200, "status": {},
                                  "person": self._view(book, prepared["stored"], fields)}
            return {"updateResult": result} if fields else {}
        if name == "people.batchDeleteContacts":
            names = body.get("resourceNames") or []
            if not names:
                raise PeopleError(400, "resourceNames must not be empty.")
            if len(names) > MAX_BATCH_DELETE:  # [D]
                raise PeopleError(400, f"Too many resource names in the request: {len(names)}; at most "
                                       f"{MAX_BATCH_DELETE} are allowed.")
            targets = [self._live(book, rn) for rn in names]  # [A] an unknown name fails the whole request
            for stored in targets:
                self._remove(book, stored)
            return {}
        if name == "people.deleteContact":
            self._remove(book, self._live(book, resource))
            return {}
        if name == "people.updateContactPhoto":
            stored = self._live(book, resource)
            try:
                data = base64.b64decode(str(body.get("photoBytes") or ""), validate=False) if \
                    "-" not in str(body.get("photoBytes") or "") else _unb64(str(body["photoBytes"]))
            except ValueError:
                data = b""
            if not data or not data.startswith(PHOTO_MAGIC):  # [D] JPEG or PNG
                raise PeopleError(400, "Invalid photo bytes: the photo must be a JPEG or PNG image.")
            old = stored.get("_photo")
            if old:
                self.photos.pop(old, None)
            photo_id = secrets.token_urlsafe(18)  # a new URL for new bytes [A]
            self.photos[photo_id] = (data, "image/png" if data.startswith(PHOTO_MAGIC[1]) else "image/jpeg")
            stored["_photo"] = photo_id
            self._stamp(book, stored)
            fields = self._body_mask(name, "personFields", body.get("personFields"))
            return {"person": self._view(book, stored, fields)} if fields else {}
        if name == "people.deleteContactPhoto":
            stored = self._live(book, resource)
            old = stored.pop("_photo", None)
            if old:
                self.photos.pop(old, None)
                self._stamp(book, stored)
            fields = self._fields("personFields", params["personFields"], name) if params.get("personFields") \
                else None
            return {"person": self._view(book, stored, fields)} if fields else {}
        if name == "contactGroups.list":
            return self._groups_list(book, params)
        if name == "contactGroups.create":
            group_body = body.get("contactGroup") or {}
            group = self._create_group(book, str(group_body.get("name") or ""), group_body.get("clientData"))
            return self._group_json(book, group, None)
        if name == "contactGroups.get":
            found = book.groups.get(resource)
            if found is None or found.deleted:
                raise PeopleError(404, "Requested entity was not found.")
            return self._group_json(book, found, params)
        if name == "contactGroups.delete":
            found = book.groups.get(resource)
            if found is None or found.deleted:
                raise PeopleError(404, "Requested entity was not found.")
            if found.group_type != "USER_CONTACT_GROUP":
                raise PeopleError(400, "System contact groups cannot be deleted.")
            for person in list(book.people.values()):
                if person.get("_deleted") or not any(
                        (m.get("contactGroupMembership") or {}).get("contactGroupResourceName") == resource
                        for m in person.get("memberships") or []):
                    continue
                if params.get("deleteContacts") == "true":  # [D] "Set to true to also delete the contacts in the specified group."
                    self._remove(book, person)
                else:
                    person["memberships"] = [
                        m for m in person["memberships"]
                        if (m.get("contactGroupMembership") or {}).get("contactGroupResourceName") != resource
                    ] or [{"contactGroupMembership": {"contactGroupResourceName": "contactGroups/myContacts"}}]
                    self._stamp(book, person)
            found.deleted = True
            return {}
        if name == "contactGroups.members.modify":
            return self._modify_members(book, resource[: -len("/members")], body)
        raise PeopleError(404, "Method not found.")

    # ---------------------------------------------------------------- connections.list

    def _connections(self, book: Book, params: dict[str, str], query: dict[str, list[str]]) -> dict[str, Any]:
        fields = self._fields("personFields", params.get("personFields"), "people.connections.list")
        page_size = int(params.get("pageSize") or 0) or 100  # [D] default 100
        if not 1 <= page_size <= 1000:
            raise PeopleError(400, "pageSize must be between 1 and 1000.")
        signature = json.dumps([sorted(fields), sorted(query.get("sources") or []), params.get("sortOrder", ""),
                                params.get("requestSyncToken", "false")])
        now = self.clock()
        if params.get("pageToken"):
            state = self._read_token(book, params["pageToken"], "page token")
            if state.get("k") != "page":
                raise PeopleError(400, "Invalid page token.")
            if state["sig"] != signature:  # [D] "all other parameters must match the first call"
                raise PeopleError(400, "Parameters of a request with a page token must match the first call.")
        elif params.get("syncToken"):
            token = self._read_token(book, params["syncToken"], "sync token")
            if token.get("k") != "sync":
                raise PeopleError(400, "Invalid sync token.")
            if token["sig"] != signature:
                raise PeopleError(400, "Parameters of a request with a sync token must match the first call.")
            full_at = datetime.fromisoformat(token["t"])
            if token["e"] != book.epoch or now - full_at > SYNC_TOKEN_TTL:  # [D] 7 days after the full sync
                raise PeopleError(400, "Sync token is expired. Clear local cache and retry call without the "
                                       "sync token.", "FAILED_PRECONDITION", "EXPIRED_SYNC_TOKEN")
            state = {"since": token["s"], "upto": book.seq, "t": token["t"], "o": 0, "sig": signature}
        else:
            state = {"since": None, "upto": book.seq, "t": now.isoformat(), "o": 0, "sig": signature}
        if state["since"] is None:  # full listing: every live contact (paged by resource name)
            rows = [p for p in book.people.values() if not p.get("_deleted")]
        else:
            rows = [p for p in book.people.values() if state["since"] < p["_seq"] <= state["upto"]]
        order = params.get("sortOrder", "LAST_MODIFIED_ASCENDING")
        rows.sort(key=lambda p: p["resourceName"])
        if order == "LAST_MODIFIED_DESCENDING":
            rows.reverse()
        offset = int(state["o"])
        page = rows[offset: offset + page_size]
        out: dict[str, Any] = {"connections": [self._view(book, p, fields) for p in page],
                               "totalItems": len(rows), "totalPeople": len(rows)}
        if offset + page_size < len(rows):
            out["nextPageToken"] = self._token(book, {**state, "k": "page", "o": offset + page_size})
        elif params.get("requestSyncToken") == "true":  # [D] last page only, on request
            out["nextSyncToken"] = self._token(book, {"k": "sync", "s": state["upto"], "t": state["t"],
                                                      "sig": signature})
        if not out["connections"]:
            del out["connections"]
        return out

    # ---------------------------------------------------------------- contact groups

    def _member_names(self, book: Book, group: Group) -> list[str]:
        return [p["resourceName"] for p in book.people.values() if not p.get("_deleted") and any(
            (m.get("contactGroupMembership") or {}).get("contactGroupResourceName") == group.resource_name
            for m in p.get("memberships") or [])]

    def _group_json(self, book: Book, group: Group, params: dict[str, str] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"resourceName": group.resource_name, "etag": group.etag, "name": group.name,
                               "formattedName": group.name, "groupType": group.group_type,
                               "metadata": {"updateTime": group.updated}}
        members = self._member_names(book, group)
        out["memberCount"] = len(members)
        if group.client_data:
            out["clientData"] = copy.deepcopy(group.client_data)
        if params is not None and int(params.get("maxMembers") or 0) > 0:
            out["memberResourceNames"] = members[: int(params["maxMembers"])]
        return out

    def _groups_list(self, book: Book, params: dict[str, str]) -> dict[str, Any]:
        page_size = int(params.get("pageSize") or 0) or 30  # [D] default 30
        if not 1 <= page_size <= 1000:
            raise PeopleError(400, "pageSize must be between 1 and 1000.")
        groups = [g for g in book.groups.values() if not g.deleted]
        offset = 0
        if params.get("pageToken"):
            offset = int(self._read_token(book, params["pageToken"], "page token").get("o", 0))
        page = groups[offset: offset + page_size]
        out: dict[str, Any] = {"contactGroups": [self._group_json(book, g, None) for g in page],
                               "totalItems": len(groups)}
        if offset + page_size < len(groups):
            out["nextPageToken"] = self._token(book, {"k": "groups", "o": offset + page_size})
        else:
            out["nextSyncToken"] = self._token(book, {"k": "groups-sync", "s": book.seq})
        return out

    def _modify_members(self, book: Book, group_name: str, body: dict[str, Any]) -> dict[str, Any]:
        group = book.groups.get(group_name)
        if group is None or group.deleted:
            raise PeopleError(404, "Requested entity was not found.")
        add = list(body.get("resourceNamesToAdd") or [])
        remove = list(body.get("resourceNamesToRemove") or [])
        if len(add) + len(remove) > MAX_GROUP_MODIFY:  # [D]
            raise PeopleError(400, f"At most {MAX_GROUP_MODIFY} resource names can be added and removed in one "
                                   f"request.")
        if add and group.group_type != "USER_CONTACT_GROUP" and group_name.split("/", 1)[1] not in \
                ADDABLE_SYSTEM_GROUPS:
            raise PeopleError(400, f"Cannot add contacts to the system contact group {group_name}.")
        not_found: list[str] = []
        last_group: list[str] = []
        for rn in add:
            stored = book.people.get(rn)
            if stored is None or stored.get("_deleted"):
                not_found.append(rn)
                continue
            memberships = stored.setdefault("memberships", [])
            if not any((m.get("contactGroupMembership") or {}).get("contactGroupResourceName") == group_name
                       for m in memberships):
                memberships.append({"contactGroupMembership": {"contactGroupResourceName": group_name}})
                self._stamp(book, stored)
        for rn in remove:
            stored = book.people.get(rn)
            if stored is None or stored.get("_deleted"):
                not_found.append(rn)
                continue
            memberships = stored.get("memberships") or []
            kept = [m for m in memberships
                    if (m.get("contactGroupMembership") or {}).get("contactGroupResourceName") != group_name]
            if len(kept) == len(memberships):
                continue
            if not kept:
                last_group.append(rn)
                continue
            stored["memberships"] = kept
            self._stamp(book, stored)
        out: dict[str, Any] = {}
        if not_found:
            out["notFoundResourceNames"] = not_found
        if last_group:
            out["canNotRemoveLastContactGroupResourceNames"] = last_group
        return out


# ------------------------------------------------------------------ HTTP

_MUTATIONS = ("batchCreateContacts", "batchUpdateContacts", "batchDeleteContacts", "createContact", "updateContact",
              "deleteContact", "updateContactPhoto", "deleteContactPhoto", "members:modify")


class _Handler(GoogleHandler):
    server: GoogleServer

    def _dispatch(self) -> None:
        sandbox, body, headers, path = self._read()
        if path == "/token" and self.command == "POST":
            self._token(sandbox, body)
        elif path.startswith("/photos/") and self.command == "GET":
            photo_id = path[len("/photos/"):]
            with sandbox.lock:
                found = sandbox.photos.get(photo_id)
            if photo_id == "default":
                found = (_DEFAULT_PNG, "image/png")
            if found is None:
                self._send(404, {"Content-Type": "text/plain"}, b"Not Found")
            else:
                self._send(200, {"Content-Type": found[1]}, found[0])
        elif path == "/":
            self._send(200, {"Content-Type": "text/plain"}, b"Google People API sandbox\n")
        else:
            mutation = self.command in ("DELETE", "PATCH", "PUT") or any(path.endswith(m) for m in _MUTATIONS) or (
                self.command == "POST" and path == "/v1/contactGroups")
            key = headers.get("authorization", "")
            if mutation:
                with sandbox.http_lock:
                    sandbox.mutations_in_flight[key] = sandbox.mutations_in_flight.get(key, 0) + 1
                    if sandbox.mutations_in_flight[key] > 1:
                        sandbox.stats_concurrent_mutations += 1
            try:
                self._send(*sandbox.handle(self.command, self.path, headers, body))
            finally:
                if mutation:
                    with sandbox.http_lock:
                        sandbox.mutations_in_flight[key] -= 1

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


# A 1×1 PNG: the generated letter avatar Google shows for a contact without a photo.
_DEFAULT_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@dataclass
class Running(http.Running):
    """A started server: its state (`sandbox`), its `url`, and `close()`."""

    sandbox: GooglePeopleSandbox


def serve(port: int = 0, sandbox: GooglePeopleSandbox | None = None, host: str = "127.0.0.1") -> Running:
    """Start the server in a background thread (port 0: a free port)."""
    sandbox = sandbox or GooglePeopleSandbox()
    server = GoogleServer((host, port), _Handler, sandbox)
    return Running(sandbox, server, http.start(server, "people-sandbox"))


def add_demo_data(sandbox: GooglePeopleSandbox, user: str = "demo@example.com",
                  client_id: str = "spokesync-demo", client_secret: str = "demo-secret") -> None:  # noqa: S107
    """A "Company contacts" group with a few contacts, and an OAuth client."""
    sandbox.add_client(client_id, client_secret)
    sandbox.add_user(user)
    group = sandbox.user_create_group(user, "Company contacts")
    sandbox.user_create(user, {"names": [{"givenName": "Ada", "familyName": "Lovelace"}],
                               "emailAddresses": [{"value": "ada@example.com", "type": "work"}],
                               "organizations": [{"name": "Analytical Engines", "title": "Analyst"}]},
                        [group, "contactGroups/myContacts"])
    sandbox.user_create(user, {"names": [{"unstructuredName": "Reception"}],
                               "phoneNumbers": [{"value": "+1 555 0100", "type": "main"}]}, [group])
    sandbox.user_create(user, {"names": [{"givenName": "Private", "familyName": "Friend"}]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local Google People API sandbox")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--demo", action="store_true", help="create a sample contact group and an OAuth client")
    parser.add_argument("--no-auth", action="store_true", help="accept requests without a bearer token")
    args = parser.parse_args(argv)
    sandbox = GooglePeopleSandbox(require_auth=not args.no_auth)
    running = serve(args.port, sandbox)
    if args.demo:
        add_demo_data(sandbox)
    print(f"Google People API sandbox on {running.url} (token endpoint {running.token_uri})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        running.close()
    return 0


__all__ = ["GooglePeopleSandbox", "PeopleError", "Running", "SandboxState", "Stats", "add_demo_data", "main", "serve"]
