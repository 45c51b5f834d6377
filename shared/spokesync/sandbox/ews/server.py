"""The EWS sandbox's HTTP side: SOAP envelopes, authentication, fault injection.

`EwsServer` is what tests and the demo use: start it, create folders, make
edits as a user would (bypassing our connector), switch faults on, read the
request counter per operation.

Authentication is real: Basic (a wrong password gets a 401, not a dropped
connection) and NTLM through pyspnego's acceptor, handshaking per connection
exactly like IIS does; with `oauth_apps`, OAuth 2 bearer tokens issued by the
server's own token endpoint (`token_url`, see `identity.py`). `tls=` serves
https with a certificate from `tls.make_certificates`; `hostname=` is the name
put into `url` (tests resolve it to 127.0.0.1). A SOAP Autodiscover responder
answers GetUserSettings at `autodiscover_url`. `paths` counts requests by kind
("ews", "token", "autodiscover", "other").
"""

from __future__ import annotations

import base64
import collections
import os
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

from spokesync.sandbox.ews import operations as ops
from spokesync.sandbox.ews import schema
from spokesync.sandbox.ews.identity import TokenIssuer, user_settings_response
from spokesync.sandbox.ews.store import EwsError, Folder, Item, M, Store, T, fmt, t
from spokesync.sandbox.ews.tls import Certificates

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, remove_blank_text=True)
# Requests keep their whitespace: the line and position of a schema violation refer to the bytes sent.
_STRICT_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)

# Exchange builds, the newest RequestServerVersion each accepts, and the Version its ServerVersionInfo
# reports: real 2016 and 2019 servers answer "V2017_07_11", not "Exchange2016" (exchangelib's recorded
# response in its tests/test_protocol.py, test_version_guess).
_API_ORDER = ["Exchange2007", "Exchange2007_SP1", "Exchange2010", "Exchange2010_SP1", "Exchange2010_SP2",
              "Exchange2013", "Exchange2013_SP1", "Exchange2015", "Exchange2016", "Exchange2019"]
BUILDS = {
    "2010": ((14, 3, 123, 4), "Exchange2010_SP2", "Exchange2010_SP2"),
    "2013": ((15, 0, 1497, 2), "Exchange2013_SP1", "Exchange2013_SP1"),
    "2016": ((15, 1, 2507, 6), "Exchange2016", "V2017_07_11"),
    "2019": ((15, 2, 1118, 7), "Exchange2016", "V2017_07_11"),
}


@dataclass
class Fault:
    kind: str  # server_busy | http500 | http503 | item_not_found | irresolvable_conflict | drop
    operation: str | None  # None: any operation
    times: int
    back_off_ms: int = 0


@dataclass
class Users:
    """username -> password; usernames match case-insensitively with or without DOMAIN\\."""

    accounts: dict[str, str] = field(default_factory=dict)

    def check(self, username: str, password: str) -> bool:
        name = username.split("\\")[-1].lower()
        for user, secret in self.accounts.items():
            if user.split("\\")[-1].lower() == name and secret == password:
                return True
        return False


class EwsServer:
    """A stateful EWS endpoint on 127.0.0.1 (`url` is the full EWS URL)."""

    check_responses_default = False  # the test suite's conftest switches this on

    def __init__(self, *, users: dict[str, str] | None = None, auth: tuple[str, ...] = ("NTLM", "Basic"),
                 version: str = "2016", mailbox: str = "shared@example.com", host: str = "127.0.0.1",
                 port: int = 0, domain: str = "EXAMPLE", max_find_page: int = 1000,
                 tls: Certificates | None = None, hostname: str | None = None,
                 oauth_apps: dict[str, str] | None = None, tenant: str = "contoso-tenant",
                 token_lifetime_s: int = 3599, check_responses: bool | None = None,
                 extended_protection: bool | None = None, public_folder_mailboxes: bool = False) -> None:
        self.store = Store(mailbox)
        self.mailbox = mailbox
        self.users = Users(dict(users or {"sync": "Secret-1"}))
        self.issuer = TokenIssuer(tenant=tenant, apps=dict(oauth_apps or {}), lifetime_s=token_lifetime_s)
        self.auth = auth + ("Bearer",) if oauth_apps and "Bearer" not in auth else auth
        self.tls = tls
        # Extended Protection (on by default since Exchange 2019 CU14): NTLM over TLS must carry the channel
        # binding of this server's certificate (RFC 5929 tls-server-end-point), else the handshake fails
        self.extended_protection = tls is not None if extended_protection is None else extended_protection
        self.channel_binding = _tls_server_end_point(tls.cert_path) if tls is not None else None
        self.hostname = hostname
        # Several public-folder mailboxes (large on-premises deployments, Exchange Online): hierarchy and
        # content requests must name their mailbox in X-AnchorMailbox / X-PublicFolderMailbox.
        self.public_folder_mailboxes = public_folder_mailboxes
        self.pf_mailboxes: dict[str, str] = {}  # GUID -> SMTP address of each public-folder mailbox
        self.pf_hierarchy = ""  # the hierarchy mailbox's GUID
        if public_folder_mailboxes:
            self.pf_hierarchy = self.add_public_folder_mailbox("SharedPublicFolder@example.com")
        self.paths: collections.Counter[str] = collections.Counter()
        self.last_impersonation: str | None = None
        self.autodiscover_ews_url: str | None = None  # what Autodiscover answers (default: `url`)
        self.domain = domain
        self.version = version
        self.max_find_page = max_find_page
        self.requests: collections.Counter[str] = collections.Counter()
        # operations that addressed an occurrence by master id + InstanceIndex (tests check where the
        # connector relies on an index instead of the occurrence's own ItemId)
        self.occurrence_index_requests: collections.Counter[str] = collections.Counter()
        # (operation, violation) of every request refused with ErrorSchemaValidation
        self.schema_violations: list[tuple[str, str]] = []
        # tests: every answer is validated against the schema too; a violation becomes an HTTP 500
        self.check_responses = EwsServer.check_responses_default if check_responses is None else check_responses
        self.response_violations: list[tuple[str, str]] = []
        self.http_requests = 0
        self.faults: list[Fault] = []
        self._replays: dict[str, list[bytes]] = {}
        # answer the next n authenticated EWS requests with 401 (load). A refused request on a kept-alive
        # connection makes the client authenticate again on a new one: the 401 that counts is the one
        # after a completed handshake, the answer the client sees.
        self.unauthorized_next = 0
        self.auth_generation = 0  # bumped when a password changes (see set_password)
        self.last_headers: dict[str, str] = {}
        self._lock = threading.Lock()
        self._ntlm_file = self._write_ntlm_users()
        handler = type("Handler", (_Handler,), {"ews": self})
        self.httpd = _HTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert_path, tls.key_path)
            # the handshake happens in the handler's thread, on first read
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True,
                                                    do_handshake_on_connect=False)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        name = self.hostname or (host.decode() if isinstance(host, bytes) else str(host))
        return f"{'https' if self.tls else 'http'}://{name}:{port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/EWS/Exchange.asmx"

    @property
    def token_url(self) -> str:
        """Where the client-credentials grant is posted (Microsoft: login.microsoftonline.com/<tenant>/...)."""
        return f"{self.base_url}/{self.issuer.tenant}/oauth2/v2.0/token"

    @property
    def autodiscover_url(self) -> str:
        return f"{self.base_url}/autodiscover/autodiscover.svc"

    def start(self) -> EwsServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="ews-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        with suppress(OSError):
            os.unlink(self._ntlm_file)

    def __enter__(self) -> EwsServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _write_ntlm_users(self) -> str:
        fd, path = tempfile.mkstemp(prefix="ews-ntlm-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            for user, password in self.users.accounts.items():
                name = user.split(chr(92))[-1]
                # with and without the domain: clients send either form
                fh.write(f"{self.domain}:{name}:{password}\n:{name}:{password}\n")
        return path

    def set_password(self, username: str, password: str) -> None:
        # Connections NTLM authenticated before stop counting as authenticated: a run comes minutes
        # after the one before, past IIS's idle connection timeout (<limits connectionTimeout>,
        # 2 minutes by default), so it connects and authenticates afresh, with the new password.
        self.auth_generation += 1
        self.users.accounts[username] = password
        os.unlink(self._ntlm_file)
        self._ntlm_file = self._write_ntlm_users()

    # ---------------------------------------------------------- test API
    def add_public_folder_mailbox(self, smtp: str) -> str:
        """A public-folder mailbox; returns its GUID (its Autodiscover address is <GUID>@<domain>)."""
        import uuid

        guid = str(uuid.uuid5(uuid.NAMESPACE_DNS, smtp.lower()))
        self.pf_mailboxes[guid] = smtp
        self.store.mailboxes.add(smtp.lower())
        return guid

    def guid_address(self, guid: str) -> str:
        return f"{guid}@{self.mailbox.split('@')[-1]}"

    def public_folder(self, name: str, parent: str | Folder | None = None,
                      folder_class: str = "IPF.Appointment", content_mailbox: str | None = None) -> Folder:
        """`content_mailbox` (SMTP): the public-folder mailbox holding its items (default: the hierarchy's)."""
        parent_id = parent.id if isinstance(parent, Folder) else (parent or self.store.distinguished["publicfoldersroot"])
        folder = self.store.add_folder(name, folder_class, parent_id, public=True)
        if self.public_folder_mailboxes:
            folder.content_mailbox = self.add_public_folder_mailbox(content_mailbox) if content_mailbox \
                else self.pf_hierarchy
        return folder

    def mailbox_folder(self, name: str, parent: str | Folder | None = None,
                       folder_class: str = "IPF.Appointment") -> Folder:
        parent_id = parent.id if isinstance(parent, Folder) else (parent or self.store.distinguished["calendar"])
        return self.store.add_folder(name, folder_class, parent_id, public=False)

    def remove_folder(self, folder: str | Folder) -> None:
        """A folder that disappears (deleted by an administrator)."""
        self.store.remove_folder(folder.id if isinstance(folder, Folder) else folder)

    def items(self, folder: str | Folder) -> list[Item]:
        folder_id = folder.id if isinstance(folder, Folder) else folder
        with self.store.lock:
            return [i for i in self.store.items.values() if i.folder_id == folder_id and i.master_id is None]

    def item(self, item_id: str) -> Item:
        return self.store.get(item_id)

    def user_create(self, folder: str | Folder, subject: str, start: datetime | date, end: datetime | date, *,
                    location: str = "", body: str = "", tz: str = "UTC", recurrence_xml: str = "",
                    extra_xml: str = "", tz_xml: str = "") -> Item:
        """An item made in Outlook: it carries no hub id. `tz_xml`: the inside of StartTimeZone/EndTimeZone
        (Periods, TransitionsGroups, Transitions) for a zone given by definition, `tz` then its Id."""
        folder_id = folder.id if isinstance(folder, Folder) else folder
        all_day = not isinstance(start, datetime)
        if all_day:
            start_dt = datetime.combine(start, datetime.min.time(), UTC)
            end_dt = datetime.combine(end, datetime.min.time(), UTC)
        else:
            start_dt, end_dt = start, end  # type: ignore[assignment]
        # zones given by definition come with Name="" as on real servers (exchangelib issues #310, #255)
        zone_attrs = f' Name="" Id="{escape(tz)}"' if tz_xml else f' Id="{escape(tz)}"'
        xml = (f'<t:CalendarItem xmlns:t="{T}"><t:Subject>{escape(subject)}</t:Subject>'
               f'<t:Body BodyType="Text">{escape(body)}</t:Body>'
               f"<t:Start>{fmt(start_dt)}</t:Start><t:End>{fmt(end_dt)}</t:End>"
               f"<t:IsAllDayEvent>{'true' if all_day else 'false'}</t:IsAllDayEvent>"
               f"<t:LegacyFreeBusyStatus>Busy</t:LegacyFreeBusyStatus><t:Location>{escape(location)}</t:Location>"
               f"{recurrence_xml}{extra_xml}"
               f'<t:StartTimeZone{zone_attrs}>{tz_xml}</t:StartTimeZone>'
               f'<t:EndTimeZone{zone_attrs}>{tz_xml}</t:EndTimeZone></t:CalendarItem>')
        fields, extended = ops.item_fields(etree.fromstring(xml, _PARSER))
        return self.store.create(folder_id, "CalendarItem", fields, extended)

    def user_item(self, folder: str | Folder, xml: str) -> Item:
        """Any item made in Outlook, given as its `t:` element (a `t:Contact`, a `t:DistributionList`, ...)
        with the `t` prefix bound; it must pass the schema as a CreateItem's item would."""
        folder_id = folder.id if isinstance(folder, Folder) else folder
        elem = etree.fromstring(f'<m:CreateItem xmlns:m="{M}" xmlns:t="{T}"><m:Items>{xml}</m:Items></m:CreateItem>',
                                _PARSER)
        problems = schema.violations(elem)
        if problems:
            raise ValueError(f"not a valid item: {problems}")
        item_elem = elem[0][0]
        fields, extended = ops.item_fields(item_elem)
        return self.store.create(folder_id, etree.QName(item_elem).localname, fields, extended)

    def user_edit(self, item_id: str, xml: str) -> Item:
        """Outlook edits of any fields: `xml` holds the new `t:` elements (replacing those of the same name)."""
        with self.store.lock:
            item = self.store.get(item_id)
            holder = etree.fromstring(f'<t:Holder xmlns:t="{T}">{xml}</t:Holder>', _PARSER)
            fields, _ = ops.item_fields(holder)
            item.fields.update(fields)
            self.store.touch(item)
            return item

    def user_update(self, item_id: str, **changes: str | datetime) -> Item:
        """Outlook edits: subject=..., location=..., start=..., end=..., body=..."""
        with self.store.lock:
            item = self.store.get(item_id)
            names = {"subject": "Subject", "location": "Location", "start": "Start", "end": "End", "body": "Body"}
            for key, value in changes.items():
                elem = etree.Element(t(names[key]))
                elem.text = fmt(value) if isinstance(value, datetime) else str(value)
                if key == "body":
                    elem.set("BodyType", "Text")
                item.fields[names[key]] = elem
            self.store.touch(item)
            return item

    def user_delete(self, item_id: str) -> None:
        with self.store.lock:
            self.store.delete(self.store.get(item_id))

    def user_change_occurrence(self, master_id: str, index: int, *, cancel: bool = False,
                               location: str | None = None, start: datetime | None = None,
                               end: datetime | None = None) -> Item | None:
        """Outlook deletes one occurrence of a series (it becomes a DeletedOccurrence) or changes its
        location or moves it (it becomes an exception). `index`: 1-based, as an OccurrenceItemId counts."""
        with self.store.lock:
            occ = self.store.occurrence(self.store.get(master_id), index)
            if cancel:
                self.store.delete(occ)
                return None
            self.store.materialise(occ)
            for name, value in (("Location", location), ("Start", start), ("End", end)):
                if value is not None:
                    elem = etree.Element(t(name))
                    elem.text = fmt(value) if isinstance(value, datetime) else value
                    occ.fields[name] = elem
            self.store.touch(occ)
            return occ

    def inject(self, kind: str, operation: str | None = None, times: int = 1, back_off_ms: int = 0) -> None:
        """Make the next `times` matching requests fail: server_busy (with BackOffMilliseconds),
        http500, http503, item_not_found, irresolvable_conflict, access_denied (the first response
        message; the operation itself still runs), drop (close the connection)."""
        with self._lock:
            self.faults.append(Fault(kind, operation, times, back_off_ms))

    def replay(self, operation: str, payload: bytes) -> None:
        """Answer the next valid `operation` request with a recorded envelope, verbatim (fixtures from
        Microsoft's EWS reference and exchangelib's tests: `sandbox/ews/fixtures/`)."""
        with self._lock:
            self._replays.setdefault(operation, []).append(payload)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self._replays.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.occurrence_index_requests.clear()
            self.paths.clear()
            self.http_requests = 0

    def calls(self, *operations: str) -> int:
        return sum(self.requests[o] for o in operations) if operations else sum(self.requests.values())

    def _take_fault(self, operation: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.operation in (None, operation):
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # ------------------------------------------------------------- SOAP
    def handle_soap(self, body: bytes, anchor: str | None = None,
                    public_folder_mailbox: str | None = None) -> tuple[int, bytes]:
        """One EWS request; `anchor` and `public_folder_mailbox`: its X-AnchorMailbox and X-PublicFolderMailbox."""
        try:
            root = etree.fromstring(body, _STRICT_PARSER)
        except etree.XMLSyntaxError as exc:
            line, position = exc.position
            return 500, self._schema_fault("?", schema.Violation(line, position, exc.msg))
        soap_body = root.find(f"{{{SOAP}}}Body")
        header = root.find(f"{{{SOAP}}}Header")
        if soap_body is None or len(soap_body) == 0:
            return 500, self._fault("ErrorInvalidRequest", "The request is invalid.")
        request = soap_body[0]
        operation = etree.QName(request).localname
        with self._lock:
            self.requests[operation] += 1
            if request.find(f".//{{{T}}}OccurrenceItemId") is not None:
                self.occurrence_index_requests[operation] += 1
        requested = None
        if header is not None:
            rsv = header.find(f"{{{T}}}RequestServerVersion")
            requested = rsv.get("Version") if rsv is not None else None
            impersonated = header.find(f".//{{{T}}}ExchangeImpersonation//{{{T}}}PrimarySmtpAddress")
            with self._lock:
                self.last_impersonation = impersonated.text if impersonated is not None else None
            if impersonated is not None:
                try:
                    self.store.check_mailbox(impersonated.text or "")
                except EwsError as err:
                    return 500, self._fault(err.code, err.text)
        if anchor:
            try:
                self.store.check_mailbox(anchor)
            except EwsError as err:
                return 500, self._fault(err.code, err.text)
        _, newest, _ = BUILDS[self.version]
        if requested and (requested not in _API_ORDER or _API_ORDER.index(requested) > _API_ORDER.index(newest)):
            return 500, self._fault("ErrorInvalidServerVersion",
                                    "The specified server version is invalid.", code_only=True)
        # The requested version picks the schema; then Exchange validates the whole request against it
        # (messages.xsd/types.xsd; the sandbox has the Exchange2016 files for every version it plays).
        headers = [h for h in (header if header is not None else []) if isinstance(h.tag, str)
                   and etree.QName(h).namespace == T]
        violation = schema.check([*headers, request], body)
        if violation is not None:
            return 500, self._schema_fault(operation, violation)
        with self._lock:
            replayed = self._replays.get(operation)
            if replayed:
                return 200, replayed.pop(0)
        fault = self._take_fault(operation)
        if fault is not None:
            if fault.kind == "server_busy":
                return 500, self._fault("ErrorServerBusy", "The server cannot service this request right now. "
                                        "Try again later.", back_off_ms=fault.back_off_ms or 1)
            if fault.kind in ("http500", "http503"):
                return int(fault.kind[4:]), b"<html><body>Service Unavailable</body></html>"
            if fault.kind == "drop":
                return -1, b""
        if self.public_folder_mailboxes:
            refused = self._public_folder_routing(operation, request, anchor, public_folder_mailbox)
            if refused is not None:
                return 500, self._fault("ErrorPublicFolderOperationFailed", refused)
        handler = ops.OPERATIONS.get(operation)
        if handler is None and operation != "FindItem":
            return 500, self._fault("ErrorInvalidRequest", f"The operation {operation} is not supported here.")
        try:
            with self.store.lock:
                if operation == "FindItem":
                    messages = ops.find_item(self.store, request, self.max_find_page)
                else:
                    messages = handler(self.store, request)  # type: ignore[misc]
        except ops.SoapFault as sf:
            return 500, self._fault(sf.code, sf.text, back_off_ms=sf.back_off_ms)
        except EwsError as err:
            return 500, self._fault(err.code, err.text)
        if fault is not None and fault.kind in ("item_not_found", "irresolvable_conflict", "access_denied") and messages:
            code = {"item_not_found": "ErrorItemNotFound", "irresolvable_conflict": "ErrorIrresolvableConflict",
                    "access_denied": "ErrorAccessDenied"}[fault.kind]
            messages[0] = ops.message(operation, code, "Injected fault.")
        payload = self._envelope(operation, messages)
        if self.check_responses:
            problems = _response_violations(payload)
            if problems:
                with self._lock:
                    self.response_violations.extend((operation, p) for p in problems)
                return 500, ("<html><body>sandbox bug: the " + operation + " response fails Microsoft's schema: "
                             + escape("; ".join(problems)) + "</body></html>").encode()
        return 200, payload

    def _public_folder_routing(self, operation: str, request: etree._Element, anchor: str | None,
                               pf_mailbox: str | None) -> str | None:
        """Microsoft's "Route public folder hierarchy requests" / "Route public folder content requests":
        a hierarchy request (GetFolder, FindFolder on public folders) carries X-AnchorMailbox = the user's
        PublicFolderInformation and X-PublicFolderMailbox = InternalRpcClientServer (the hierarchy
        mailbox's GUID address); a content request carries, in both headers, the AutoDiscoverSMTPAddress of
        the mailbox holding the folder's content (PR_REPLICA_LIST). The error a real server gives for a
        request routed elsewhere is not documented; the sandbox answers ErrorPublicFolderOperationFailed."""
        with self.store.lock:
            folders: list[Folder] = []
            for ref in request.iter(f"{{{T}}}FolderId", f"{{{T}}}DistinguishedFolderId"):
                try:
                    folders.append(self.store.folder(ref.get("Id") or ""))
                except EwsError:
                    continue
            for ref in request.iter(f"{{{T}}}ItemId", f"{{{T}}}OccurrenceItemId"):
                item_id = ref.get("Id") or ref.get("RecurringMasterId") or ""
                try:
                    folders.append(self.store.folders[self.store.resolve(item_id).folder_id])
                except (EwsError, KeyError):
                    continue
        public = [f for f in folders if f.public]
        if not public:
            return None
        hierarchy = operation in ("GetFolder", "FindFolder", "CreateFolder", "DeleteFolder", "UpdateFolder",
                                  "MoveFolder", "CopyFolder")
        if hierarchy:
            want = (self.pf_mailboxes[self.pf_hierarchy], self.guid_address(self.pf_hierarchy))
        else:
            content = self.pf_mailboxes.get(public[0].content_mailbox or self.pf_hierarchy, "")
            want = (content, content)
        got = ((anchor or "").lower(), (pf_mailbox or "").lower())
        if got != (want[0].lower(), want[1].lower()):
            kind = "hierarchy" if hierarchy else "content"
            return (f"The public folder {kind} request was not routed to its public folder mailbox "
                    "(X-AnchorMailbox / X-PublicFolderMailbox).")
        return None

    def _server_version(self) -> str:
        (major, minor, build, rev), _, api = BUILDS[self.version]
        return (f'<h:ServerVersionInfo xmlns:h="{T}" MajorVersion="{major}" MinorVersion="{minor}" '
                f'MajorBuildNumber="{build}" MinorBuildNumber="{rev}" Version="{api}"/>')

    def _envelope(self, operation: str, messages: list[etree._Element]) -> bytes:
        if len(messages) == 1 and messages[0].tag == f"{{{M}}}{operation}Response":
            response = messages[0]  # an operation answering without ResponseMessages (PerformReminderAction)
        else:
            response = etree.Element(f"{{{M}}}{operation}Response", nsmap={"m": M, "t": T})
            container = etree.SubElement(response, f"{{{M}}}ResponseMessages")
            for msg in messages:
                container.append(msg)
        body = etree.tostring(response)
        return (b'<?xml version="1.0" encoding="utf-8"?>'
                b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>'
                + self._server_version().encode() + b"</s:Header><s:Body>" + body + b"</s:Body></s:Envelope>")

    def _schema_fault(self, operation: str, violation: schema.Violation) -> bytes:
        """The fault Exchange answers to an invalid request (Microsoft's EWS reference shows it, e.g. for
        GetServiceConfiguration and the IM-group operations): HTTP 500, faultcode a:ErrorSchemaValidation,
        the violation with its line and position in `t:MessageXml`."""
        with self._lock:
            self.schema_violations.append((operation, str(violation)))
        text = f"The request failed schema validation: {violation}"
        extra = (f'<t:MessageXml xmlns:t="{T}"><t:LineNumber>{violation.line}</t:LineNumber>'
                 f"<t:LinePosition>{violation.position}</t:LinePosition>"
                 f"<t:Violation>{escape(str(violation))}</t:Violation></t:MessageXml>")
        return self._fault("ErrorSchemaValidation", text, message="The request failed schema validation.",
                           extra=extra, code_only=True)

    def _fault(self, code: str, text: str, back_off_ms: int | None = None, code_only: bool = False,
               message: str | None = None, extra: str = "") -> bytes:
        if back_off_ms:
            extra = (f'<t:MessageXml xmlns:t="{T}"><t:Value Name="BackOffMilliseconds">{back_off_ms}</t:Value>'
                     "</t:MessageXml>")
        header = "" if code_only else f"<s:Header>{self._server_version()}</s:Header>"
        return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}">{header}<s:Body><s:Fault>'
                f'<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:{code}</faultcode>'
                f'<faultstring xml:lang="en-US">{escape(text)}</faultstring><detail>'
                f'<e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{code}</e:ResponseCode>'
                f'<e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{escape(message or text)}</e:Message>'
                f"{extra}</detail></s:Fault></s:Body></s:Envelope>").encode()


def _response_violations(payload: bytes) -> list[str]:
    """Schema violations of an envelope the sandbox is about to send (header and body)."""
    root = etree.fromstring(payload, _STRICT_PARSER)
    out: list[str] = []
    for part in (f"{{{SOAP}}}Header", f"{{{SOAP}}}Body"):
        container = root.find(part)
        for elem in container if container is not None else []:
            if isinstance(elem.tag, str) and etree.QName(elem).namespace in (T, M):
                out.extend(schema.violations(elem))
    return out


class _HTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError)):
            return  # a client that refused our certificate or hung up: not a server bug
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    ews: EwsServer
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    # Headers and body leave in one segment, sent at once: without this every response waits
    # ~40 ms for the client's delayed ACK (Nagle), and the sandbox measures itself, not us.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16
    _ntlm: Any = None
    # NTLM authenticates the connection, not the request: IIS keeps a kept-alive connection
    # authenticated after the handshake (windowsAuthentication authPersistSingleRequest="false",
    # the default: "IIS Configuration Reference, Windows Authentication <windowsAuthentication>"),
    # so a client sends its next requests without a new handshake. One handler per connection.
    _ntlm_user_ok = False
    _ntlm_generation = 0

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet, tests run many requests
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "text/xml; charset=utf-8") -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _challenge(self) -> dict[str, str]:
        return {"WWW-Authenticate": ", ".join(
            "Basic realm=\"exchange\"" if a == "Basic" else
            'Bearer client_id="00000002-0000-0ff1-ce00-000000000000"' if a == "Bearer" else a for a in self.ews.auth)}

    def do_GET(self) -> None:  # noqa: N802
        # Exchange answers a GET on the EWS URL after authentication; unauthenticated it is a 401.
        self._send(401, b"", self._challenge(), "text/html")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.lower().split("?")[0]
        kind = ("ews" if path.startswith("/ews/exchange.asmx") else "token" if path.endswith("/oauth2/v2.0/token")
                else "autodiscover" if path.startswith("/autodiscover/") else "other")
        with self.ews._lock:
            self.ews.http_requests += 1
            self.ews.paths[kind] += 1
            self.ews.last_headers = dict(self.headers.items())
        if kind == "token":
            status, payload = self.ews.issuer.handle(self.path.split("?")[0], body,
                                                     self.headers.get("Authorization", ""))
            self._send(status, payload, {"Cache-Control": "no-store"}, "application/json; charset=utf-8")
            return
        if kind == "autodiscover":
            if self._authenticated():
                self._autodiscover(body)
            return
        if kind != "ews":
            # IIS closes the connection after a 404 (exchangelib would read that as "server busy")
            self._send(404, b"<html><body>Not Found</body></html>", {"Connection": "close"}, content_type="text/html")
            self.close_connection = True
            return
        if not self._authenticated():
            return
        with self.ews._lock:
            unauthorized = self.ews.unauthorized_next > 0
            handshake = bool(self.headers.get("Authorization"))
            self.ews.unauthorized_next -= 1 if unauthorized and handshake else 0
        if unauthorized:
            # Exchange answers a good credential with 401 now and then when it wants clients to slow down
            # (exchangelib's FaultTolerance retries every 401 for that reason); the connection is closed
            self._send(401, b"", {**self._challenge(), "Connection": "close"}, "text/html")
            self.close_connection = True
            return
        status, payload = self.ews.handle_soap(body, self.headers.get("X-AnchorMailbox"),
                                               self.headers.get("X-PublicFolderMailbox"))
        if status == -1:
            self.close_connection = True
            self.connection.close()
            return
        self._send(status, payload, content_type="text/xml; charset=utf-8" if payload.startswith(b"<?xml") else "text/html")

    def _autodiscover(self, body: bytes) -> None:
        ans = "{http://schemas.microsoft.com/exchange/2010/Autodiscover}"
        try:
            root = etree.fromstring(body, _PARSER)
        except etree.XMLSyntaxError:
            self._send(400, b"<html><body>Bad Request</body></html>", content_type="text/html")
            return
        users = [e.text or "" for e in root.iter(f"{ans}Mailbox")]
        requested = [e.text or "" for e in root.iter(f"{ans}Setting")]
        _, api, _ = BUILDS[self.ews.version]
        ews_url = self.ews.autodiscover_ews_url or self.ews.url
        settings = {"ExternalEwsUrl": ews_url, "InternalEwsUrl": ews_url, "UserDisplayName": "Shared",
                    "CasVersion": "15.01.2507.006", "EwsSupportedSchemas": f"Exchange2013, {api}"}
        known = {self.ews.mailbox.lower(): self.ews.mailbox}
        if self.ews.public_folder_mailboxes:
            settings["PublicFolderInformation"] = self.ews.pf_mailboxes[self.ews.pf_hierarchy]
            settings["InternalRpcClientServer"] = self.ews.guid_address(self.ews.pf_hierarchy)
            known.update({self.ews.guid_address(g).lower(): smtp for g, smtp in self.ews.pf_mailboxes.items()})
        self._send(200, user_settings_response(users, requested, settings, known))

    def _authenticated(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and "Bearer" in self.ews.auth:
            if self.ews.issuer.valid(token.strip()):
                return True
            self._send(401, b"", {"WWW-Authenticate": 'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", '
                                  'token_types="app_asserted_user_v1 service_asserted_app_v1", '
                                  'error="invalid_token"'}, "text/html")
            return False
        if scheme == "basic" and "Basic" in self.ews.auth:
            try:
                user, _, password = base64.b64decode(token).decode("utf-8").partition(":")
            except Exception:
                user, password = "", ""
            if self.ews.users.check(user, password):
                return True
            self._send(401, b"", self._challenge(), "text/html")
            return False
        if scheme in ("ntlm", "negotiate") and "NTLM" in self.ews.auth:
            return self._ntlm_step(scheme, token)
        if (not header and self._ntlm_user_ok and self._ntlm_generation == self.ews.auth_generation
                and "NTLM" in self.ews.auth):
            return True  # this connection completed an NTLM handshake
        self._send(401, b"", self._challenge(), "text/html")
        return False

    def _ntlm_step(self, scheme: str, token: str) -> bool:
        import spnego

        raw = base64.b64decode(token)
        prefix = "NTLM" if scheme == "ntlm" else "Negotiate"
        if raw[8:12] == b"\x01\x00\x00\x00":  # NEGOTIATE_MESSAGE: a new handshake on this connection
            self._ntlm_user_ok = False
            bindings = None
            if self.ews.extended_protection and self.ews.channel_binding is not None:
                from spnego.channel_bindings import GssChannelBindings

                bindings = GssChannelBindings(application_data=b"tls-server-end-point:" + self.ews.channel_binding)
            with _ntlm_env(self.ews._ntlm_file):
                self._ntlm = spnego.server(protocol="ntlm", channel_bindings=bindings)
                challenge = self._ntlm.step(raw)
            self._send(401, b"", {"WWW-Authenticate": f"{prefix} {base64.b64encode(challenge or b'').decode()}"},
                       "text/html")
            return False
        if self._ntlm is None:
            self._send(401, b"", self._challenge(), "text/html")
            return False
        try:
            with _ntlm_env(self.ews._ntlm_file):
                self._ntlm.step(raw)
            ok = bool(self._ntlm.complete)
        except Exception:
            ok = False
        self._ntlm = None
        self._ntlm_user_ok = ok
        self._ntlm_generation = self.ews.auth_generation
        if not ok:
            self._send(401, b"", self._challenge(), "text/html")
        return ok


def _tls_server_end_point(cert_path: str) -> bytes:
    """RFC 5929's tls-server-end-point: the hash of the server certificate with its signature's hash
    algorithm (SHA-256 when that is MD5 or SHA-1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    with open(cert_path, "rb") as fh:
        cert = x509.load_pem_x509_certificates(fh.read())[0]
    algorithm = cert.signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(serialization.Encoding.DER))
    return digest.finalize()


_ENV_LOCK = threading.Lock()


@contextmanager
def _ntlm_env(path: str) -> Iterator[None]:
    """pyspnego's NTLM acceptor reads its users from NTLM_USER_FILE."""
    with _ENV_LOCK:
        old = os.environ.get("NTLM_USER_FILE")
        os.environ["NTLM_USER_FILE"] = path
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("NTLM_USER_FILE", None)
            else:
                os.environ["NTLM_USER_FILE"] = old


def serve(host: str = "127.0.0.1", port: int = 0, *, users: dict[str, str] | None = None,
          sample: bool = True, version: str = "2016") -> EwsServer:
    """Start a sandbox (the demo mode): a public-folder tree and a mailbox with sample events."""
    server = EwsServer(users=users, host=host, port=port, version=version).start()
    if sample:
        company = server.public_folder("Company", folder_class="IPF.Note")
        holidays = server.public_folder("Holidays", company)
        server.public_folder("Meeting rooms", company)
        server.public_folder("Contacts", company, folder_class="IPF.Contact")
        today = datetime.now(UTC).date()
        server.user_create(holidays, "Company holiday", today + timedelta(days=7), today + timedelta(days=8))
        start = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=9)
        server.user_create(holidays, "All hands", start, start + timedelta(hours=1), location="Main hall")
        server.mailbox_folder("Team calendar")
    return server
