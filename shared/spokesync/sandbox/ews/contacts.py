"""Contact items in the EWS sandbox: the dictionaries (indexed fields) and what Exchange refuses.

A contact's e-mail addresses, phone numbers, postal addresses and IM addresses are dictionaries
(types.xsd: `EmailAddressDictionaryType`, `PhoneNumberDictionaryType`, `PhysicalAddressDictionaryType`,
`ImAddressDictionaryType`), one `Entry` per key. Clients address one entry with
`<t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress2"/>` and, for postal
addresses, one part of one entry (`contacts:PhysicalAddress:Street` + `FieldIndex="Home"`)
(Microsoft's EWS reference, docs/web-service-reference/indexedfielduri.md; the URIs are types.xsd's
`DictionaryURIType`). The keys are the schema's enumerations (EmailAddressKeyType EmailAddress1..3,
PhoneNumberKeyType, PhysicalAddressKeyType Business/Home/Other), read from the vendored types.xsd.

Modelled behaviours and where they come from:
- a `SetItemField` carries exactly one property, the one its path names (ResponseCode reference,
  docs/web-service-reference/responsecode.md: ErrorIncorrectUpdatePropertyCount; "EWS property-related
  errors", docs/exchange-web-services/ews-property-related-errors.md: ErrorUpdatePropertyMismatch when
  the change description does not match the property to update); for a dictionary that is one
  `Entry` whose Key is the FieldIndex (and for a postal address, one part);
- the properties inside `CompleteName` are read-only ("CreateItem operation (contact)", Remarks:
  "All properties within the CompleteName container are read-only and cannot be set on a contact
  item"), as are the other server-computed ones (exchangelib marks them `is_read_only`); setting one
  is ErrorInvalidPropertySet ("EWS property-related errors": "Set a read-only property");
  `contacts:Notes` and `contacts:Photo` are refused with ErrorInvalidPropertyRequest
  (exchangelib, items/contact.py: "Writing to it raises ErrorInvalidPropertyRequest");
- a contact can only be created in a contacts folder: ErrorCannotCreateContactInNonContactFolder,
  "Cannot create a contact in a non-contact Folder." (the error response sample of "CreateItem
  operation (contact)");
- distribution lists (`t:DistributionList`, ItemClass IPM.DistList) live in contacts folders next
  to contacts and are listed by FindItem and SyncFolderItems like them.
"""

from __future__ import annotations

import copy
import functools

from lxml import etree

from spokesync.sandbox.ews import schema
from spokesync.sandbox.ews.store import EwsError, Item, t

XS = schema.XS

# DictionaryURIType -> (the dictionary's element, the schema type of its keys)
DICTIONARIES = {
    "contacts:EmailAddress": ("EmailAddresses", "EmailAddressKeyType"),
    "contacts:PhoneNumber": ("PhoneNumbers", "PhoneNumberKeyType"),
    "contacts:ImAddress": ("ImAddresses", "ImAddressKeyType"),
}
# PhysicalAddressDictionaryEntryType's parts, in schema order; the reference's URI names
# "contacts:PhysicalAddress:Country" while the schema's DictionaryURIType has ...:CountryOrRegion.
ADDRESS_PARTS = ("Street", "City", "State", "CountryOrRegion", "PostalCode")
for _part in ADDRESS_PARTS:
    DICTIONARIES[f"contacts:PhysicalAddress:{_part}"] = ("PhysicalAddresses", "PhysicalAddressKeyType")
CONTAINERS = {container for container, _ in DICTIONARIES.values()}

CONTACT_TAGS = ("Contact", "DistributionList")
READ_ONLY = frozenset({
    "CompleteName", "ContactSource", "HasPicture", "PhoneticFullName", "PhoneticFirstName", "PhoneticLastName",
    "Alias", "UserSMIMECertificate", "MSExchangeCertificate", "DirectoryId", "ManagerMailbox", "DirectReports",
})
REFUSED = frozenset({"Notes", "Photo"})


@functools.cache
def keys(type_name: str) -> tuple[str, ...]:
    """The enumeration values of a simple type in the vendored types.xsd."""
    found = schema._types_doc().find(f"{{{XS}}}simpleType[@name='{type_name}']")
    if found is None:
        raise KeyError(type_name)
    return tuple(e.get("value") or "" for e in found.iter(f"{{{XS}}}enumeration"))


def target(uri: etree._Element) -> tuple[str, str, str | None]:
    """(dictionary element, key, part or None) of an IndexedFieldURI; ErrorInvalidPropertyRequest
    for a FieldIndex that is not a key of that dictionary (FieldIndex is a plain xs:string in the
    schema, so it passes validation; the real server's code for it is not documented)."""
    field_uri = uri.get("FieldURI") or ""
    container, key_type = DICTIONARIES.get(field_uri, ("", ""))
    if not container:
        raise EwsError("ErrorInvalidPropertyRequest", "The property is not valid for this object type.")
    key = uri.get("FieldIndex") or ""
    if key not in keys(key_type):
        raise EwsError("ErrorInvalidPropertyRequest",
                       f"The index '{key}' is not valid for the dictionary {field_uri}.")
    part = field_uri.split(":")[2] if field_uri.startswith("contacts:PhysicalAddress:") else None
    return container, key, part


def _kids(elem: etree._Element | None) -> list[etree._Element]:
    return [] if elem is None else [c for c in elem if isinstance(c.tag, str)]


def _mismatch() -> EwsError:
    return EwsError("ErrorUpdatePropertyMismatch",
                    "The property in the change description does not match the property being updated.")


def check_writable(names: list[str] | set[str], tag: str) -> None:
    if tag not in CONTACT_TAGS:
        return
    for name in names:
        if name in REFUSED:
            raise EwsError("ErrorInvalidPropertyRequest", f"The property {name} cannot be set.")
        if name in READ_ONLY:
            raise EwsError("ErrorInvalidPropertySet", f"The property {name} is read-only and cannot be set.")


def check_create(tag: str, folder_class: str, fields: dict[str, etree._Element]) -> None:
    if tag == "Contact" and not folder_class.startswith("IPF.Contact"):
        raise EwsError("ErrorCannotCreateContactInNonContactFolder", "Cannot create a contact in a non-contact Folder.")
    check_writable(list(fields), tag)


def check_single(uri_name: str, value_item: etree._Element) -> etree._Element:
    """The one property a SetItemField carries (ErrorIncorrectUpdatePropertyCount otherwise), named
    as its path says (ErrorUpdatePropertyMismatch otherwise)."""
    props = _kids(value_item)
    if len(props) != 1:
        raise EwsError("ErrorIncorrectUpdatePropertyCount",
                       "An object within a change description must contain one and only one property to modify.")
    if etree.QName(props[0]).localname != uri_name:
        raise _mismatch()
    return props[0]


def apply_indexed(item: Item, kind: str, uri: etree._Element, value_item: etree._Element | None) -> None:
    """SetItemField / AppendToItemField / DeleteItemField on one entry (or one part of a postal entry)."""
    container_name, key, part = target(uri)
    container = item.fields.get(container_name)
    entry = next((e for e in _kids(container) if e.get("Key") == key), None)
    if kind == "DeleteItemField":
        if entry is None or container is None:
            return  # deleting what is not there is not an error (exchangelib deletes every unused key)
        if part is None:
            container.remove(entry)
        else:
            for child in _kids(entry):
                if etree.QName(child).localname == part:
                    entry.remove(child)
            if not _kids(entry):
                container.remove(entry)
        if not _kids(container):
            del item.fields[container_name]
        return
    if value_item is None:
        raise EwsError("ErrorIncorrectUpdatePropertyCount",
                       "An object within a change description must contain one and only one property to modify.")
    sent = check_single(container_name, value_item)
    entries = _kids(sent)
    if len(entries) != 1 or entries[0].get("Key") != key:
        raise _mismatch()
    new = entries[0]
    if container is None:
        container = etree.Element(t(container_name))
        item.fields[container_name] = container
    if part is None:
        if entry is not None:
            container.replace(entry, copy.deepcopy(new))
        else:
            container.append(copy.deepcopy(new))
        return
    parts = _kids(new)
    if len(parts) != 1 or etree.QName(parts[0]).localname != part:
        raise _mismatch()
    if entry is None:
        entry = etree.SubElement(container, t("Entry"), Key=key)
    current = {etree.QName(c).localname: c for c in _kids(entry)}
    current[part] = copy.deepcopy(parts[0])
    for child in _kids(entry):
        entry.remove(child)
    for name in ADDRESS_PARTS:  # the schema's order, whatever order the parts were set in
        if name in current:
            entry.append(current[name])


def restrict(container: etree._Element, wanted: set[tuple[str, str | None]]) -> etree._Element | None:
    """A dictionary as a response carries it when the shape asked for some entries (or parts) only."""
    out = etree.Element(container.tag)
    for entry in _kids(container):
        key = entry.get("Key") or ""
        if (key, None) in wanted:
            out.append(copy.deepcopy(entry))
            continue
        parts = [c for c in _kids(entry) if (key, etree.QName(c).localname) in wanted]
        if parts:
            kept = etree.SubElement(out, entry.tag, dict(entry.attrib))
            for child in parts:
                kept.append(copy.deepcopy(child))
    return out if len(out) else None
