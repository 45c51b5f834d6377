"""The EWS operations the sandbox answers, as functions of (store, request element).

Each returns the list of `m:<Op>ResponseMessage` elements (or raises a
`SoapFault`). Per-item failures are ResponseClass="Error" messages, exactly
as Exchange reports them, so exchangelib returns them as exception objects.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from lxml import etree

from spokesync.sandbox.ews import attachments, contacts, schema
from spokesync.sandbox.ews.store import EwsError, Folder, Item, M, Store, extended_key, fmt, parse_dt, t, utc_now


class SoapFault(Exception):
    def __init__(self, code: str, text: str, back_off_ms: int | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.back_off_ms = back_off_ms


def m(name: str) -> str:
    return f"{{{M}}}{name}"


def sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    elem = etree.SubElement(parent, tag, {k: v for k, v in attrs.items()})
    if text is not None:
        elem.text = text
    return elem


def message(op: str, code: str = "NoError", text: str = "") -> etree._Element:
    msg = etree.Element(m(f"{op}ResponseMessage"), ResponseClass="Success" if code == "NoError" else "Error")
    if code != "NoError":
        sub(msg, m("MessageText"), text or code)
    sub(msg, m("ResponseCode"), code)
    if code != "NoError":
        sub(msg, m("DescriptiveLinkKey"), "0")
        if op in _ITEM_INFO:  # ItemInfoResponseMessageType requires Items, empty on an error
            sub(msg, m("Items"))
    return msg


_ITEM_TYPES = {"Contact": "ContactItemType"}
_ITEM_INFO = {"GetItem", "CreateItem", "UpdateItem", "CopyItem", "MoveItem"}


def kids(elem: etree._Element | None) -> list[etree._Element]:
    return [] if elem is None else [c for c in elem if isinstance(c.tag, str)]


def error_message(op: str, err: EwsError) -> etree._Element:
    return message(op, err.code, err.text)


# ------------------------------------------------------------------ rendering

_ITEM_CLASS = {"CalendarItem": "IPM.Appointment", "Contact": "IPM.Contact", "Message": "IPM.Note",
               "DistributionList": "IPM.DistList"}


def _computed(store: Store, item: Item, name: str) -> etree._Element | None:
    elem: etree._Element
    if name == "ItemClass":
        elem = etree.Element(t(name))
        elem.text = _ITEM_CLASS.get(item.tag, "IPM.Item")
    elif name in ("DateTimeCreated", "DateTimeReceived", "DateTimeSent"):
        elem = etree.Element(t(name))
        elem.text = fmt(item.created)
    elif name == "LastModifiedTime":
        elem = etree.Element(t(name))
        elem.text = fmt(item.modified)
    elif name == "UID" and item.tag == "CalendarItem":
        elem = etree.Element(t(name))
        elem.text = item.uid
    elif name == "ParentFolderId":
        folder = store.folders.get(item.folder_id)
        elem = etree.Element(t(name), Id=item.folder_id, ChangeKey=folder.changekey if folder else "")
    elif name == "ReminderDueBy" and "ReminderDueBy" not in item.fields and item.text("Start"):
        # when the reminder fires: the start minus ReminderMinutesBeforeStart (Exchange's default is 15)
        minutes = int(item.text("ReminderMinutesBeforeStart") or "15")
        elem = etree.Element(t(name))
        elem.text = fmt(parse_dt(item.text("Start") or "") - timedelta(minutes=minutes))
    elif item.tag != "CalendarItem":
        return None
    elif name == "CalendarItemType":
        elem = etree.Element(t(name))
        if item.master_id:
            elem.text = "Exception" if item.id in store.items else "Occurrence"
        else:
            elem.text = "RecurringMaster" if "Recurrence" in item.fields else "Single"
    elif name == "IsRecurring":
        elem = etree.Element(t(name))
        elem.text = "true" if item.master_id else "false"
    elif name == "OriginalStart" and item.original_start is not None:
        elem = etree.Element(t(name))
        elem.text = fmt(item.original_start)
    elif name == "IsMeeting":
        elem = etree.Element(t(name))
        elem.text = "true" if any(k in item.fields for k in ("RequiredAttendees", "OptionalAttendees", "Resources")) else "false"
    elif name == "MyResponseType":
        elem = etree.Element(t(name))
        elem.text = "Organizer"
    elif name == "Organizer" and "Organizer" not in item.fields:
        elem = etree.Element(t(name))
        mailbox = sub(elem, t("Mailbox"))
        sub(mailbox, t("Name"), store.mailbox.split("@")[0])
        sub(mailbox, t("EmailAddress"), store.mailbox)
        sub(mailbox, t("RoutingType"), "SMTP")
    elif name == "ModifiedOccurrences" and item.exceptions:
        elem = etree.Element(t(name))
        for original, exc_id in sorted(item.exceptions.items()):
            exc = store.items[exc_id]
            occ = sub(elem, t("Occurrence"))
            sub(occ, t("ItemId"), Id=exc.id, ChangeKey=exc.changekey)
            sub(occ, t("Start"), exc.text("Start") or fmt(original))
            sub(occ, t("End"), exc.text("End") or fmt(original))
            sub(occ, t("OriginalStart"), fmt(original))
    elif name == "DeletedOccurrences" and item.deleted_occurrences:
        elem = etree.Element(t(name))
        for original in sorted(item.deleted_occurrences):
            occ = sub(elem, t("DeletedOccurrence"))
            sub(occ, t("Start"), fmt(original))
    elif name in ("FirstOccurrence", "LastOccurrence") and "Recurrence" in item.fields and not item.master_id:
        starts = store.occurrences(item)
        if not starts:
            return None
        original = starts[0] if name == "FirstOccurrence" else starts[-1]
        occ_item = store.virtual_occurrence(item, original)
        elem = etree.Element(t(name))
        sub(elem, t("ItemId"), Id=occ_item.id, ChangeKey=item.changekey)
        sub(elem, t("Start"), fmt(original))
        sub(elem, t("End"), fmt(original + store.duration(item)))
        sub(elem, t("OriginalStart"), fmt(original))
    else:
        return None
    return elem


_COMPUTED = ("ParentFolderId", "ItemClass", "DateTimeReceived", "DateTimeCreated", "ReminderDueBy", "LastModifiedTime",
             "UID",
             "Organizer", "IsMeeting", "IsRecurring", "MyResponseType", "CalendarItemType", "OriginalStart",
             "FirstOccurrence", "LastOccurrence", "ModifiedOccurrences", "DeletedOccurrences")


class Shape:
    """Which fields a response carries (BaseShape + AdditionalProperties)."""

    def __init__(self, elem: etree._Element | None) -> None:
        self.base = "AllProperties"
        self.fields: set[str] = set()
        # dictionaries asked for entry by entry (IndexedFieldURI): element -> {(key, part or None)}
        self.indexed: dict[str, set[tuple[str, str | None]]] = {}
        self.extended: list[etree._Element] = []
        self.body_type = "Best"
        if elem is None:
            return
        base = elem.find(t("BaseShape"))
        self.base = base.text if base is not None and base.text else "IdOnly"
        body_type = elem.find(t("BodyType"))
        if body_type is not None and body_type.text:
            self.body_type = body_type.text
        props = elem.find(t("AdditionalProperties"))
        if props is not None:
            for uri in props:
                local = etree.QName(uri).localname
                if local == "IndexedFieldURI" and uri.get("FieldURI") in contacts.DICTIONARIES:
                    container, key, part = contacts.target(uri)
                    self.indexed.setdefault(container, set()).add((key, part))
                elif local in ("FieldURI", "IndexedFieldURI"):
                    self.fields.add((uri.get("FieldURI") or "").split(":")[-1])
                elif local == "ExtendedFieldURI":
                    self.extended.append(uri)


def render_item(store: Store, item: Item, shape: Shape) -> etree._Element:
    """An item with the fields the shape asks for, in the element order of the schema's item type."""
    elem = etree.Element(t(item.tag))
    everything = shape.base in ("AllProperties", "Default")
    names = None if everything else shape.fields
    parts: dict[str, list[etree._Element]] = {"ItemId": [etree.Element(t("ItemId"), Id=item.id,
                                                                       ChangeKey=item.changekey)]}
    for name in _COMPUTED:
        if names is None or name in names:
            value = _computed(store, item, name)
            if value is not None:
                parts[name] = [value]
    parts.update(attachments.item_parts(item, names))
    for name, value in item.fields.items():
        if (names is None or name in names) and name not in parts:
            parts[name] = [copy.deepcopy(value)]
        elif names is not None and name in shape.indexed and name not in parts:
            entries = contacts.restrict(value, shape.indexed[name])
            if entries is not None:
                parts[name] = [entries]
    # extended properties are returned only when asked for, as in Exchange
    extended = [copy.deepcopy(p) for p in (item.extended.get(extended_key(uri)) for uri in shape.extended)
                if p is not None]
    if extended:
        parts["ExtendedProperty"] = extended
    # the schema type of each item element (types.xsd: t:Contact is a ContactItemType; "ContactType" is another type)
    for name in schema.element_order(_ITEM_TYPES.get(item.tag, f"{item.tag}Type")):
        for value in parts.get(name, ()):
            elem.append(value)
    return elem


def render_folder(store: Store, folder: Folder, shape: Shape | None = None) -> etree._Element:
    tag = {"IPF.Appointment": "CalendarFolder", "IPF.Contact": "ContactsFolder"}.get(folder.folder_class, "Folder")
    elem = etree.Element(t(tag))
    sub(elem, t("FolderId"), Id=folder.id, ChangeKey=folder.changekey)
    if folder.parent_id:
        parent = store.folders.get(folder.parent_id)
        sub(elem, t("ParentFolderId"), Id=folder.parent_id, ChangeKey=parent.changekey if parent else "")
    sub(elem, t("FolderClass"), folder.folder_class)
    sub(elem, t("DisplayName"), folder.name)
    sub(elem, t("TotalCount"), str(store.count(folder.id)))
    sub(elem, t("ChildFolderCount"), str(len(store.children(folder.id))))
    for uri in shape.extended if shape is not None else []:
        # PR_REPLICA_LIST (0x6698): the GUID of the public-folder mailbox holding the folder's content
        # ("Route public folder content requests": cast as a GUID, ASCII)
        if uri.get("PropertyTag") in ("26264", "0x6698") and folder.public and folder.content_mailbox:
            prop = sub(elem, t("ExtendedProperty"))
            sub(prop, t("ExtendedFieldURI"), PropertyTag=uri.get("PropertyTag") or "", PropertyType="Binary")
            sub(prop, t("Value"), base64.b64encode(folder.content_mailbox.encode("ascii")).decode())
    if tag == "Folder":
        sub(elem, t("UnreadCount"), "0")
    return elem


# ------------------------------------------------------------------- helpers


def folder_ref(store: Store, elem: etree._Element) -> Folder:
    local = etree.QName(elem).localname
    if local == "DistinguishedFolderId":
        address = elem.findtext(f"{t('Mailbox')}/{t('EmailAddress')}")
        if address is not None:
            store.check_mailbox(address)
        return store.folder(elem.get("Id") or "")
    return store.folder(elem.get("Id") or "")


def item_fields(elem: etree._Element) -> tuple[dict[str, etree._Element], dict[Any, etree._Element]]:
    fields: dict[str, etree._Element] = {}
    extended: dict[Any, etree._Element] = {}
    for child in elem:
        if not isinstance(child.tag, str):
            continue
        local = etree.QName(child).localname
        if local == "ExtendedProperty":
            uri = child.find(t("ExtendedFieldURI"))
            if uri is not None:
                extended[extended_key(uri)] = copy.deepcopy(child)
        elif local in ("ItemId", "ParentFolderId"):
            continue
        else:
            fields[local] = copy.deepcopy(child)
    return fields, extended


_BOOLEANS = {"IsAllDayEvent", "ReminderIsSet", "IsResponseRequested", "AllowNewTimeProposal", "IsDraft", "IsRead",
             "IsOnlineMeeting", "IsReadReceiptRequested", "IsDeliveryReceiptRequested"}


def _normalise_times(fields: dict[str, etree._Element]) -> None:
    """Exchange stores Start/End in UTC and answers booleans as true/false."""
    for name in _BOOLEANS & fields.keys():
        value = fields[name]
        value.text = "true" if (value.text or "").strip().lower() in ("1", "true") else "false"
    for name in ("Start", "End"):
        value = fields.get(name)
        if value is not None and value.text:
            value.text = fmt(parse_dt(value.text))


def _field_value(item: Item, uri: etree._Element) -> str | None:
    local = etree.QName(uri).localname
    if local == "ExtendedFieldURI":
        prop = item.extended.get(extended_key(uri))
        if prop is None:
            return None
        value = prop.find(t("Value"))
        return value.text if value is not None else None
    name = (uri.get("FieldURI") or "").split(":")[-1]
    if name == "ItemClass":
        return _ITEM_CLASS.get(item.tag)
    return item.text(name)


def compile_restriction(expr: etree._Element) -> Callable[[Item], bool]:
    """A predicate for a Restriction; an Or of IsEqualTo on one property becomes a set lookup
    (the hub-id lookup of a whole batch), everything else is evaluated per item."""
    node = expr
    while etree.QName(node).localname == "Restriction" and len(node):
        node = node[0]
    if etree.QName(node).localname in ("Or", "IsEqualTo"):
        terms = list(node) if etree.QName(node).localname == "Or" else [node]
        uris, values = [], set()
        for term in terms:
            if etree.QName(term).localname != "IsEqualTo" or len(term) < 2:
                break
            constant = term[1].find(t("Constant"))
            if constant is None:
                break
            uris.append(term[0])
            values.add(constant.get("Value", ""))
        else:
            keys = {etree.tostring(u) for u in uris}
            if len(keys) == 1:
                uri = uris[0]
                return lambda item: _field_value(item, uri) in values
    return lambda item: matches(item, expr)


def matches(item: Item, expr: etree._Element) -> bool:
    local = etree.QName(expr).localname
    kids = [c for c in expr if isinstance(c.tag, str)]
    if local == "Restriction":
        return matches(item, kids[0])
    if local == "And":
        return all(matches(item, k) for k in kids)
    if local == "Or":
        return any(matches(item, k) for k in kids)
    if local == "Not":
        return not matches(item, kids[0])
    if local == "Exists":
        return _field_value(item, kids[0]) is not None
    value = _field_value(item, kids[0])
    constant = kids[1].find(t("Constant")) if len(kids) > 1 else None
    wanted = constant.get("Value", "") if constant is not None else ""
    if local == "Contains":
        constant = expr.find(t("Constant"))
        wanted = constant.get("Value", "") if constant is not None else ""
        return value is not None and wanted.lower() in value.lower()
    if value is None:
        return local == "IsNotEqualTo"
    left: Any = value
    right: Any = wanted
    if "T" in value and value[:4].isdigit() and "T" in wanted:
        left, right = parse_dt(value), parse_dt(wanted)
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "IsEqualTo": lambda a, b: a == b, "IsNotEqualTo": lambda a, b: a != b,
        "IsGreaterThan": lambda a, b: a > b, "IsGreaterThanOrEqualTo": lambda a, b: a >= b,
        "IsLessThan": lambda a, b: a < b, "IsLessThanOrEqualTo": lambda a, b: a <= b,
    }
    if local not in ops:
        raise SoapFault("ErrorInvalidRestriction", f"Restriction {local} is not supported by this server.")
    return ops[local](left, right)


# --------------------------------------------------------------- operations


def get_folder(store: Store, req: etree._Element) -> list[etree._Element]:
    out = []
    shape = Shape(req.find(m("FolderShape")))
    for ref in kids(req.find(m("FolderIds"))):
        try:
            folder = folder_ref(store, ref)
        except EwsError as err:
            out.append(error_message("GetFolder", err))
            continue
        msg = message("GetFolder")
        sub(msg, m("Folders")).append(render_folder(store, folder, shape))
        out.append(msg)
    return out


def find_folder(store: Store, req: etree._Element) -> list[etree._Element]:
    traversal = req.get("Traversal", "Shallow")
    view = req.find(m("IndexedPageFolderView"))
    page = int(view.get("MaxEntriesReturned", "1000")) if view is not None else 1000
    offset = int(view.get("Offset", "0")) if view is not None else 0
    out = []
    for ref in kids(req.find(m("ParentFolderIds"))):
        try:
            parent = folder_ref(store, ref)
        except EwsError as err:
            out.append(error_message("FindFolder", err))
            continue
        if traversal != "Shallow" and parent.public:
            out.append(message("FindFolder", "ErrorInvalidOperation",
                               "Deep traversal is not supported for public folders."))
            continue
        found = store.children(parent.id)
        if traversal == "Deep":
            stack, found = list(found), []
            while stack:
                folder = stack.pop(0)
                found.append(folder)
                stack.extend(store.children(folder.id))
        chunk = found[offset:offset + page]
        msg = message("FindFolder")
        root = sub(msg, m("RootFolder"), IndexedPagingOffset=str(offset + len(chunk)),
                   TotalItemsInView=str(len(found)),
                   IncludesLastItemInRange="true" if offset + len(chunk) >= len(found) else "false")
        folders = sub(root, t("Folders"))
        for folder in chunk:
            folders.append(render_folder(store, folder, Shape(req.find(m("FolderShape")))))
        out.append(msg)
    return out


RESTRICTED_FIND_LIMIT = 250


def find_item(store: Store, req: etree._Element, max_page: int) -> list[etree._Element]:
    shape = Shape(req.find(m("ItemShape")))
    restriction = req.find(m("Restriction"))
    out = []
    for ref in kids(req.find(m("ParentFolderIds"))):
        try:
            folder = folder_ref(store, ref)
        except EwsError as err:
            out.append(error_message("FindItem", err))
            continue
        calendar_view = req.find(m("CalendarView"))
        if calendar_view is not None:
            found = _calendar_view(store, folder, calendar_view)
            offset, page = 0, int(calendar_view.get("MaxEntriesReturned", str(max_page)))
        else:
            found = [i for i in store.items.values() if i.folder_id == folder.id and i.master_id is None]
            view = req.find(m("IndexedPageItemView"))
            page = int(view.get("MaxEntriesReturned", str(max_page))) if view is not None else max_page
            offset = int(view.get("Offset", "0")) if view is not None else 0
        if restriction is not None:
            predicate = compile_restriction(restriction)
            found = [i for i in found if predicate(i)]
        page = min(page, max_page)
        if restriction is not None:
            # "the EWSFindCountLimit for AQS search and any Exchange search with a restriction is 250
            # results" (Exchange 2013+, Exchange Online): a partial page, IncludesLastItemInRange false.
            # Source: MicrosoftDocs/office-developer-exchange-docs, ews-throttling-in-exchange.md, table 1.
            page = min(page, RESTRICTED_FIND_LIMIT)
        chunk = found[offset:offset + page]
        msg = message("FindItem")
        last = offset + len(chunk) >= len(found)
        root = sub(msg, m("RootFolder"), IndexedPagingOffset=str(offset + len(chunk)),
                   TotalItemsInView=str(len(found)), IncludesLastItemInRange="true" if last else "false")
        items = sub(root, t("Items"))
        for item in chunk:
            items.append(render_item(store, item, shape))
        out.append(msg)
    return out


def _calendar_view(store: Store, folder: Folder, view: etree._Element) -> list[Item]:
    lo, hi = parse_dt(view.get("StartDate", "")), parse_dt(view.get("EndDate", ""))
    found: list[tuple[datetime, Item]] = []
    for item in list(store.items.values()):
        if item.folder_id != folder.id or item.master_id is not None or item.tag != "CalendarItem":
            continue
        if "Recurrence" not in item.fields:
            start, end = parse_dt(item.text("Start") or ""), parse_dt(item.text("End") or "")
            if start < hi and end > lo:
                found.append((start, item))
            continue
        duration = store.duration(item)
        for original in store.occurrences(item, until=hi):
            if original in item.deleted_occurrences:
                continue
            occ = store.items[item.exceptions[original]] if original in item.exceptions else \
                store.virtual_occurrence(item, original)
            start, end = parse_dt(occ.text("Start") or fmt(original)), parse_dt(occ.text("End") or fmt(original + duration))
            if start < hi and end > lo:
                found.append((start, occ))
    found.sort(key=lambda pair: pair[0])
    return [item for _, item in found]


def _item_refs(store: Store, container: etree._Element | None) -> list[tuple[etree._Element, Item | EwsError]]:
    refs: list[tuple[etree._Element, Item | EwsError]] = []
    for ref in container if container is not None else []:
        if not isinstance(ref.tag, str):
            continue
        local = etree.QName(ref).localname
        try:
            if local == "OccurrenceItemId":
                master = store.get(ref.get("RecurringMasterId") or "")
                refs.append((ref, store.occurrence(master, int(ref.get("InstanceIndex") or "0"))))
            elif local == "RecurringMasterItemId":
                occ = store.resolve(ref.get("OccurrenceId") or "")
                refs.append((ref, store.master(occ)))
            else:
                refs.append((ref, store.resolve(ref.get("Id") or "")))
        except EwsError as err:
            refs.append((ref, err))
    return refs


def get_item(store: Store, req: etree._Element) -> list[etree._Element]:
    shape = Shape(req.find(m("ItemShape")))
    out = []
    for _, found in _item_refs(store, req.find(m("ItemIds"))):
        if isinstance(found, EwsError):
            out.append(error_message("GetItem", found))
            continue
        msg = message("GetItem")
        sub(msg, m("Items")).append(render_item(store, found, shape))
        out.append(msg)
    return out


def create_item(store: Store, req: etree._Element) -> list[etree._Element]:
    saved = req.find(m("SavedItemFolderId"))
    out = []
    try:
        folder = folder_ref(store, saved[0]) if saved is not None and len(saved) else store.folder("calendar")
    except EwsError as err:
        items = req.find(m("Items"))
        return [error_message("CreateItem", err) for _ in (items if items is not None else [])]
    for elem in kids(req.find(m("Items"))):
        if not isinstance(elem.tag, str):
            continue
        fields, extended = item_fields(elem)
        _normalise_times(fields)
        _reset_responses(fields)
        try:
            _validate_item(fields)
            contacts.check_create(etree.QName(elem).localname, folder.folder_class, fields)
            item = store.create(folder.id, etree.QName(elem).localname, fields, extended)
        except EwsError as err:
            out.append(error_message("CreateItem", err))
            continue
        msg = message("CreateItem")
        created = sub(sub(msg, m("Items")), t(item.tag))
        sub(created, t("ItemId"), Id=item.id, ChangeKey=item.changekey)
        out.append(msg)
    return out


def _reset_responses(fields: dict[str, etree._Element]) -> None:
    """An attendee's response is the attendee's to give: a new item's attendees have not answered."""
    for name in ("RequiredAttendees", "OptionalAttendees", "Resources"):
        for attendee in kids(fields.get(name)):
            response = attendee.find(t("ResponseType"))
            if response is None:
                response = etree.SubElement(attendee, t("ResponseType"))
            response.text = "Unknown"


def _validate_item(fields: dict[str, etree._Element]) -> None:
    start, end = fields.get("Start"), fields.get("End")
    if start is not None and end is not None and start.text and end.text and parse_dt(end.text) < parse_dt(start.text):
        raise EwsError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate")


def update_item(store: Store, req: etree._Element) -> list[etree._Element]:
    resolution = req.get("ConflictResolution", "AutoResolve")
    out = []
    for change in kids(req.find(m("ItemChanges"))):
        if not isinstance(change.tag, str):
            continue
        refs = _item_refs(store, change)
        ref, found = refs[0] if refs else (None, EwsError("ErrorInvalidIdEmpty", "Id is empty"))
        if isinstance(found, EwsError):
            out.append(error_message("UpdateItem", found))
            continue
        item = found
        sent_ck = ref.get("ChangeKey") if ref is not None and etree.QName(ref).localname == "ItemId" else None
        if resolution == "NeverOverwrite":
            if not sent_ck:
                out.append(message("UpdateItem", "ErrorChangeKeyRequiredForWriteOperations",
                                   "When making a write request, ChangeKey is required."))
                continue
            if sent_ck != item.changekey:
                out.append(message("UpdateItem", "ErrorIrresolvableConflict",
                                   "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item."))
                continue
        with store.lock:
            before = {k: copy.deepcopy(v) for k, v in item.fields.items()}
            # a refused update leaves the series as it was (a new pattern drops the exceptions)
            kept = (dict(item.exceptions), set(item.deleted_occurrences),
                    {i: store.items[i] for i in item.exceptions.values() if i in store.items})
            try:
                _apply_updates(store, item, change.find(t("Updates")))
                _validate_item(item.fields)
                if item.master_id:
                    _check_boundaries(store, item)
            except EwsError as err:
                item.fields = before
                item.exceptions, item.deleted_occurrences = kept[0], kept[1]
                store.items.update(kept[2])
                out.append(error_message("UpdateItem", err))
                continue
            if item.master_id and item.id not in store.items:
                store.materialise(item)
            store.touch(item)
        msg = message("UpdateItem")
        updated = sub(sub(msg, m("Items")), t(item.tag))
        sub(updated, t("ItemId"), Id=item.id, ChangeKey=item.changekey)
        sub(sub(msg, m("ConflictResults")), t("Count"), "0")
        out.append(msg)
    return out


def _apply_updates(store: Store, item: Item, updates: etree._Element | None) -> None:
    for update in updates if updates is not None else []:
        if not isinstance(update.tag, str):
            continue
        kind = etree.QName(update).localname
        uri = next(c for c in update if isinstance(c.tag, str))
        uri_kind = etree.QName(uri).localname
        if uri_kind == "ExtendedFieldURI":
            key = extended_key(uri)
            if kind == "DeleteItemField":
                item.extended.pop(key, None)
            else:
                value_item = update[list(update).index(uri) + 1]
                prop = value_item.find(t("ExtendedProperty"))
                if prop is not None:
                    item.extended[key] = copy.deepcopy(prop)
            continue
        name = (uri.get("FieldURI") or "").split(":")[-1]
        if name in ("Start", "End", "IsAllDayEvent") or name == "Recurrence":
            pass
        if uri_kind == "IndexedFieldURI" and uri.get("FieldURI") in contacts.DICTIONARIES:
            following = [c for c in update if isinstance(c.tag, str) and c is not uri]
            contacts.apply_indexed(item, kind, uri, following[0] if following else None)
            continue
        if item.tag in contacts.CONTACT_TAGS:
            contacts.check_writable([name], item.tag)
            if kind != "DeleteItemField":
                contacts.check_single(name, update[list(update).index(uri) + 1])
        if uri_kind == "IndexedFieldURI":
            container = item.fields.get(name)
            index = uri.get("FieldIndex")
            if container is not None:
                for entry in list(container):
                    if entry.get("Key") == index:
                        container.remove(entry)
            if kind != "DeleteItemField":
                value_item = update[list(update).index(uri) + 1]
                new_container = value_item.find(t(name))
                if new_container is not None:
                    if container is None:
                        container = etree.Element(t(name))
                        item.fields[name] = container
                    for entry in new_container:
                        container.append(copy.deepcopy(entry))
            continue
        if kind == "DeleteItemField":
            item.fields.pop(name, None)
            if name == "Recurrence":
                store.drop_exceptions(item)
            continue
        value_item = update[list(update).index(uri) + 1]
        for child in value_item:
            if isinstance(child.tag, str):
                local = etree.QName(child).localname
                item.fields[local] = copy.deepcopy(child)
                _normalise_times(item.fields)
        if name == "Recurrence" and item.master_id is None:
            # A new pattern drops the old exceptions, as Outlook and Exchange do.
            store.drop_exceptions(item)


def _check_boundaries(store: Store, occ: Item) -> None:
    """ErrorOccurrenceCrossingBoundary (Microsoft's ResponseCode reference: "the Start or End time of an
    occurrence is updated so that the occurrence is scheduled to happen earlier or later than the
    corresponding previous or next occurrence"); Outlook's rule, applied here: an occurrence may move
    within the days strictly between its neighbours' days (series time zone), not onto or past them."""
    master = store.get(occ.master_id or "")
    starts = store.occurrences(master)
    if occ.original_start not in starts or not occ.text("Start"):
        return
    tz = store.start_tz(master)
    index = starts.index(occ.original_start)
    new_day = parse_dt(occ.text("Start") or "").astimezone(tz).date()

    def effective(original: datetime) -> datetime:
        exc_id = master.exceptions.get(original)
        exc = store.items.get(exc_id) if exc_id else None
        return parse_dt(exc.text("Start") or "") if exc is not None and exc.text("Start") else original

    neighbours = [starts[i] for i in (index - 1, index + 1) if 0 <= i < len(starts)
                  and starts[i] not in master.deleted_occurrences]
    for original in neighbours:
        day = effective(original).astimezone(tz).date()
        if (original < occ.original_start and new_day <= day) or (original > occ.original_start and new_day >= day):
            raise EwsError("ErrorOccurrenceCrossingBoundary",
                           "The modified occurrence is crossing or overlapping adjacent occurrence.")


def delete_item(store: Store, req: etree._Element) -> list[etree._Element]:
    out = []
    for _, found in _item_refs(store, req.find(m("ItemIds"))):
        if isinstance(found, EwsError):
            out.append(error_message("DeleteItem", found))
            continue
        folder = store.folders.get(found.folder_id)
        if folder is not None and folder.public and req.get("SendMeetingCancellations") not in (None, "SendToNone") \
                and any(k in found.fields for k in ("RequiredAttendees", "OptionalAttendees", "Resources")):
            out.append(message("DeleteItem", "ErrorInvalidOperation",
                               "Meeting cancellations cannot be sent from a public folder."))
            continue
        if found.master_id and found.id not in store.items:
            store.materialise(found)
        store.delete(found)
        out.append(message("DeleteItem"))
    return out


def sync_folder_items(store: Store, req: etree._Element) -> list[etree._Element]:
    shape = Shape(req.find(m("ItemShape")))
    sync_folder = req.find(m("SyncFolderId"))
    try:
        folder = folder_ref(store, sync_folder[0]) if sync_folder is not None else store.folder("")
    except EwsError as err:
        return [error_message("SyncFolderItems", err)]
    if folder.public:
        return [message("SyncFolderItems", "ErrorInvalidOperation",
                        "SyncFolderItems is not supported for public folders.")]
    state_elem = req.find(m("SyncState"))
    try:
        since = store.parse_sync_state(folder.id, state_elem.text) if state_elem is not None and state_elem.text else 0
    except EwsError as err:
        return [error_message("SyncFolderItems", err)]
    max_changes = int((req.findtext(m("MaxChangesReturned")) or "100").strip())
    max_changes = max(1, min(max_changes, 512))
    touched: dict[str, int] = {}
    for seq, item_id in store.log[folder.id]:
        if seq > since:
            # A calendar folder's sync reports recurring masters and single items only: a change of an
            # exception is a change of its master (which Exchange re-stamps), never an item of its own
            # ("Recurrence patterns and time zones in EWS": exceptions are reached through the master).
            current = store.items.get(item_id)
            if current is not None and current.master_id:
                continue
            touched[item_id] = seq
    ordered = sorted(touched.items(), key=lambda kv: kv[1])
    changes: list[tuple[str, str, int]] = []  # (kind, item id, seq)
    for item_id, seq in ordered:
        if item_id in store.items:
            kind = "Create" if store.items[item_id].created_seq > since else "Update"
        else:
            _, created_seq, _ = store.tombstones.get(item_id, (folder.id, 0, seq))
            if created_seq > since:
                continue  # created and deleted since the last sync: nothing to report
            kind = "Delete"
        changes.append((kind, item_id, seq))
    chunk = changes[:max_changes]
    last = len(chunk) == len(changes)
    new_seq = chunk[-1][2] if chunk and not last else max([since] + [s for s, _ in store.log[folder.id]])
    msg = message("SyncFolderItems")
    sub(msg, m("SyncState"), store.sync_state(folder.id, new_seq))
    sub(msg, m("IncludesLastItemInRange"), "true" if last else "false")
    container = sub(msg, m("Changes"))
    for kind, item_id, _ in chunk:
        change = sub(container, t(kind))
        if kind == "Delete":
            sub(change, t("ItemId"), Id=item_id, ChangeKey="")
        else:
            change.append(render_item(store, store.items[item_id], shape))
    return [msg]


def perform_reminder_action(store: Store, req: etree._Element) -> list[etree._Element]:
    """Dismiss clears ReminderIsSet (as Outlook's Dismiss does); Snooze sets ReminderNextTime
    (docs/web-service-reference/performreminderaction-operation.md). The answer is one
    PerformReminderActionResponse with the updated ids, not a list of response messages."""
    updated = []
    for action in kids(req.find(m("ReminderItemActions"))):
        kind = action.findtext(t("ActionType")) or ""
        ref = action.find(t("ItemId"))
        item = store.resolve(ref.get("Id") or "") if ref is not None else None
        if item is None:
            raise EwsError("ErrorInvalidIdEmpty", "Id is empty.")
        if item.master_id and item.id not in store.items:
            store.materialise(item)
        if kind == "Dismiss":
            flag = etree.Element(t("ReminderIsSet"))
            flag.text = "false"
            item.fields["ReminderIsSet"] = flag
        elif kind == "Snooze":
            when = etree.Element(t("ReminderNextTime"))
            when.text = fmt(parse_dt(action.findtext(t("NewReminderTime")) or ""))
            item.fields["ReminderNextTime"] = when
        store.touch(item)
        updated.append(item)
    response = etree.Element(m("PerformReminderActionResponse"), ResponseClass="Success")
    sub(response, m("ResponseCode"), "NoError")
    ids = sub(response, m("UpdatedItemIds"))
    for item in updated:
        sub(ids, t("ItemId"), Id=item.id, ChangeKey=item.changekey)
    return [response]


def convert_id(store: Store, req: etree._Element) -> list[etree._Element]:
    out = []
    for alt in kids(req.find(m("SourceIds"))):
        out.append(message("ConvertId", "ErrorInvalidIdMalformed", "Id is malformed."))
        del alt
    return out


def create_folder(store: Store, req: etree._Element) -> list[etree._Element]:
    """Microsoft's CreateFolder operation reference: one response message per folder; a name already used
    under the parent is ErrorFolderExists ("A folder with the specified name already exists.")."""
    parent_ref = kids(req.find(m("ParentFolderId")))
    out = []
    try:
        parent = folder_ref(store, parent_ref[0]) if parent_ref else None
    except EwsError as err:
        return [error_message("CreateFolder", err) for _ in kids(req.find(m("Folders")))]
    for spec in kids(req.find(m("Folders"))):
        assert parent is not None  # the schema requires ParentFolderId
        name = spec.findtext(t("DisplayName")) or ""
        kind = etree.QName(spec).localname
        folder_class = spec.findtext(t("FolderClass")) or {"CalendarFolder": "IPF.Appointment",
                                                            "ContactsFolder": "IPF.Contact"}.get(kind, "IPF.Note")
        if any(c.name.lower() == name.lower() for c in store.children(parent.id)):
            out.append(message("CreateFolder", "ErrorFolderExists", "A folder with the specified name already exists."))
            continue
        folder = store.add_folder(name, folder_class, parent.id, public=parent.public)
        folder.content_mailbox = parent.content_mailbox
        msg = message("CreateFolder")
        created = sub(sub(msg, m("Folders")), t({"IPF.Appointment": "CalendarFolder",
                                                 "IPF.Contact": "ContactsFolder"}.get(folder_class, "Folder")))
        sub(created, t("FolderId"), Id=folder.id, ChangeKey=folder.changekey)
        out.append(msg)
    return out


def delete_folder(store: Store, req: etree._Element) -> list[etree._Element]:
    """Microsoft's DeleteFolder operation reference; a distinguished folder is
    ErrorDeleteDistinguishedFolder ("Distinguished folders cannot be deleted.")."""
    out = []
    for ref in kids(req.find(m("FolderIds"))):
        try:
            folder = folder_ref(store, ref)
            if folder.distinguished:
                raise EwsError("ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted.")
            store.remove_folder(folder.id)
        except EwsError as err:
            out.append(error_message("DeleteFolder", err))
            continue
        out.append(message("DeleteFolder"))
    return out


def resolve_names(store: Store, req: etree._Element) -> list[etree._Element]:
    """Microsoft's ResolveNames operation reference (docs/web-service-reference/resolvenames-operation.md):
    one entry per request; no match: ResponseClass Error, ErrorNameResolutionNoResults "No results were
    found."; one: Success; several: ResponseClass Warning, ErrorNameResolutionMultipleResults "Multiple
    results were found." with the candidates (at most 100). Directory entries only (no Contacts folder)."""
    entry = req.find(m("UnresolvedEntry"))
    found = store.resolve_names(entry.text or "" if entry is not None else "")[:100]
    if not found:
        return [message("ResolveNames", "ErrorNameResolutionNoResults", "No results were found.")]
    msg = message("ResolveNames")
    if len(found) > 1:
        msg = etree.Element(m("ResolveNamesResponseMessage"), ResponseClass="Warning")
        sub(msg, m("MessageText"), "Multiple results were found.")
        sub(msg, m("ResponseCode"), "ErrorNameResolutionMultipleResults")
        sub(msg, m("DescriptiveLinkKey"), "0")
    resolutions = sub(msg, m("ResolutionSet"))
    resolutions.set("TotalItemsInView", str(len(found)))
    resolutions.set("IncludesLastItemInRange", "true")
    for name, primary in found:
        box = sub(sub(resolutions, t("Resolution")), t("Mailbox"))
        sub(box, t("Name"), name)
        sub(box, t("EmailAddress"), primary)
        sub(box, t("RoutingType"), "SMTP")
        sub(box, t("MailboxType"), "Mailbox")
    return [msg]


OPERATIONS: dict[str, Callable[..., list[etree._Element]]] = {
    "GetFolder": get_folder,
    "FindFolder": find_folder,
    "GetItem": get_item,
    "CreateItem": create_item,
    "UpdateItem": update_item,
    "DeleteItem": delete_item,
    "SyncFolderItems": sync_folder_items,
    "ConvertId": convert_id,
    "PerformReminderAction": perform_reminder_action,
    "ResolveNames": resolve_names,
    "CreateFolder": create_folder,
    "DeleteFolder": delete_folder,
    **attachments.OPERATIONS,
}

__all__ = ["OPERATIONS", "SoapFault", "find_item", "utc_now"]
