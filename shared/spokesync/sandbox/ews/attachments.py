"""File attachments in the EWS sandbox (CreateAttachment, GetAttachment, DeleteAttachment), as far as
contact photos need them: Outlook and OWA keep a contact's picture as a file attachment with
`IsContactPhoto` true, and `HasPicture` then reads true (types.xsd `FileAttachmentType`,
`ContactItemType/HasPicture`; exchangelib, items/contact.py: "OWA adds photos as FileAttachments on the
contact item (with 'is_contact_photo=True'), which automatically flips the 'has_picture' field").

From Microsoft's reference (docs/web-service-reference/createattachment-operation.md and the
GetAttachment / DeleteAttachment pages):
- one response message per attachment; each carries the attachment id with the root item's id and
  its new ChangeKey ("the RootItemChangeKey in the last response message is the one that represents
  the new change key of the item");
- an attachment without a Name is refused: ErrorRequiredPropertyMissing, MessageXml
  `<t:ExceptionFieldURI FieldURI="attachment:Name"/>`, an empty `m:Attachments`;
- DeleteAttachment answers the root item's id and new ChangeKey (`RootItemIdType`);
- an unknown attachment id: ErrorInvalidAttachmentId.
GetItem lists an item's attachments without their content (`t:Attachments`), GetAttachment gives it.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from spokesync.sandbox.ews.store import EwsError, Item, M, Store, fmt, t, utc_now

_COUNTER = itertools.count(1)


def m(name: str) -> str:
    return f"{{{M}}}{name}"


@dataclass
class Attachment:
    id: str
    name: str
    content_type: str
    content: bytes
    content_id: str
    is_inline: bool
    is_contact_photo: bool
    modified: datetime


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    elem = etree.SubElement(parent, tag, attrs)
    if text is not None:
        elem.text = text
    return elem


def render(attachment: Attachment, *, content: bool, root: Item | None = None) -> etree._Element:
    """A `t:FileAttachment` in AttachmentType's then FileAttachmentType's element order."""
    elem = etree.Element(t("FileAttachment"))
    ids = {"Id": attachment.id}
    if root is not None:
        ids |= {"RootItemId": root.id, "RootItemChangeKey": root.changekey}
    _sub(elem, t("AttachmentId"), **ids)
    _sub(elem, t("Name"), attachment.name)
    _sub(elem, t("ContentType"), attachment.content_type)
    if attachment.content_id:
        _sub(elem, t("ContentId"), attachment.content_id)
    _sub(elem, t("Size"), str(len(attachment.content)))
    _sub(elem, t("LastModifiedTime"), fmt(attachment.modified))
    _sub(elem, t("IsInline"), "true" if attachment.is_inline else "false")
    _sub(elem, t("IsContactPhoto"), "true" if attachment.is_contact_photo else "false")
    if content:
        _sub(elem, t("Content"), base64.b64encode(attachment.content).decode())
    return elem


def item_parts(item: Item, names: set[str] | None) -> dict[str, list[etree._Element]]:
    """The computed attachment properties of an item (GetItem, FindItem, SyncFolderItems)."""
    parts: dict[str, list[etree._Element]] = {}
    wanted = (lambda n: True) if names is None else (lambda n: n in names)  # noqa: E731
    if item.attachments and wanted("Attachments"):
        holder = etree.Element(t("Attachments"))
        for attachment in item.attachments:
            holder.append(render(attachment, content=False))
        parts["Attachments"] = [holder]
    if (item.attachments or item.tag == "Contact") and wanted("HasAttachments"):
        flag = etree.Element(t("HasAttachments"))
        flag.text = "true" if any(not a.is_contact_photo for a in item.attachments) else "false"
        parts["HasAttachments"] = [flag]
    if item.tag == "Contact" and wanted("HasPicture"):
        flag = etree.Element(t("HasPicture"))
        flag.text = "true" if any(a.is_contact_photo for a in item.attachments) else "false"
        parts["HasPicture"] = [flag]
    return parts


def add(store: Store, item: Item, name: str, content: bytes, *, content_type: str = "image/jpeg",
        is_contact_photo: bool = True, content_id: str = "") -> Attachment:
    """An attachment added as a person would (Outlook's "Add picture" on a contact)."""
    with store.lock:
        attachment = Attachment(base64.b64encode(f"ATT:{item.id}:{next(_COUNTER)}".encode()).decode(), name,
                                content_type, content, content_id, False, is_contact_photo, utc_now())
        item.attachments.append(attachment)
        store.touch(item)
        return attachment


def _message(op: str, code: str = "NoError", text: str = "", *, attachments: bool = False) -> etree._Element:
    """A response message (operations.message); `attachments`: with the `m:Attachments` an
    AttachmentInfoResponseMessageType requires, empty on an error."""
    from spokesync.sandbox.ews.operations import message  # (operations imports this module)

    msg = message(op, code, text)
    if attachments:
        _sub(msg, m("Attachments"))
    return msg


def _find(store: Store, attachment_id: str) -> tuple[Item, Attachment]:
    for item in store.items.values():
        for attachment in item.attachments:
            if attachment.id == attachment_id:
                return item, attachment
    raise EwsError("ErrorInvalidAttachmentId", "The attachment ID is invalid.")


def create_attachment(store: Store, req: etree._Element) -> list[etree._Element]:
    parent = req.find(m("ParentItemId"))
    container = req.find(m("Attachments"))
    sent = [c for c in (container if container is not None else []) if isinstance(c.tag, str)]
    try:
        item = store.get(parent.get("Id") or "" if parent is not None else "")
    except EwsError as err:
        return [_message("CreateAttachment", err.code, err.text, attachments=True) for _ in sent]
    out = []
    for elem in sent:
        if etree.QName(elem).localname != "FileAttachment":
            out.append(_message("CreateAttachment", "ErrorInvalidOperation", "Only file attachments are supported here.",
                                attachments=True))
            continue
        name = elem.findtext(t("Name"))
        if not name:
            msg = _message("CreateAttachment", "ErrorRequiredPropertyMissing", "Required property is missing.")
            _sub(_sub(msg, m("MessageXml")), t("ExceptionFieldURI"), FieldURI="attachment:Name")  # after the link key
            _sub(msg, m("Attachments"))
            out.append(msg)
            continue
        attachment = add(store, item, name, base64.b64decode(elem.findtext(t("Content")) or ""),
                         content_type=elem.findtext(t("ContentType")) or "application/octet-stream",
                         is_contact_photo=(elem.findtext(t("IsContactPhoto")) or "").strip() in ("true", "1"),
                         content_id=elem.findtext(t("ContentId")) or "")
        attachment.is_inline = (elem.findtext(t("IsInline")) or "").strip() in ("true", "1")
        msg = _message("CreateAttachment", attachments=True)
        created = _sub(msg[-1], t("FileAttachment"))
        _sub(created, t("AttachmentId"), Id=attachment.id, RootItemId=item.id, RootItemChangeKey=item.changekey)
        out.append(msg)
    return out


def _each(store: Store, req: etree._Element, op: str) -> list[tuple[Item, Attachment] | etree._Element]:
    """The attachments an AttachmentIds list names, or the error message for an unknown one."""
    ids = req.find(m("AttachmentIds"))
    out: list[tuple[Item, Attachment] | etree._Element] = []
    for ref in ids if ids is not None else []:
        if isinstance(ref.tag, str):
            try:
                out.append(_find(store, ref.get("Id") or ""))
            except EwsError as err:
                out.append(_message(op, err.code, err.text, attachments=op == "GetAttachment"))
    return out


def get_attachment(store: Store, req: etree._Element) -> list[etree._Element]:
    out = []
    for found in _each(store, req, "GetAttachment"):
        if isinstance(found, etree._Element):
            out.append(found)
            continue
        msg = _message("GetAttachment", attachments=True)
        msg[-1].append(render(found[1], content=True))
        out.append(msg)
    return out


def delete_attachment(store: Store, req: etree._Element) -> list[etree._Element]:
    out = []
    for found in _each(store, req, "DeleteAttachment"):
        if isinstance(found, etree._Element):
            out.append(found)
            continue
        item, attachment = found
        item.attachments.remove(attachment)
        store.touch(item)
        msg = _message("DeleteAttachment")
        _sub(msg, m("RootItemId"), RootItemId=item.id, RootItemChangeKey=item.changekey)
        out.append(msg)
    return out


OPERATIONS = {"CreateAttachment": create_attachment, "GetAttachment": get_attachment,
              "DeleteAttachment": delete_attachment}
