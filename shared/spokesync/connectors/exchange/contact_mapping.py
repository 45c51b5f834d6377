"""Exchange `Contact` items ⇄ the canonical `Contact` (pure, exchangelib value objects only).

Exchange keeps a contact's lists in fixed slots (types.xsd): three e-mail addresses
(EmailAddress1..3, no type), postal addresses under Business/Home/Other (one each), and
phone numbers under 19 keys (exchangelib's PhoneNumber labels: BusinessPhone, BusinessPhone2,
MobilePhone, ...). The canonical contact has ordered, typed lists. So that a round trip through
Exchange changes nothing, every item we write carries a layout (a PublicStrings property): the
order of the entries and the canonical type/label/name each slot held. Read back, a slot that still
holds what we wrote gets its remembered type and position; anything a person added in Outlook is
appended with the type its key means. A second "mobile" goes to a free key (OtherTelephone first)
and is remembered as "mobile"; a fourth e-mail address or address does not fit and stays in the
hub (`Capabilities.limits`, docs/decisions/2026-12-01-contact-fields.md).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from exchangelib import Contact as EwsContact
from exchangelib import ExtendedProperty
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress
from exchangelib.properties import Body, HTMLBody

from spokesync.connectors.exchange.mapping import HubIdProperty
from spokesync.connectors.exchange.mapping import _body as body_parts
from spokesync.model.contact import (
    ALL_FIELDS,
    SLOT_LIMITS_EXCHANGE,
    Address,
    Contact,
    Email,
    PartialDate,
    Phone,
    normalise_phone,
)

LAYOUT_PROPERTY = "spokesync-contact-layout"
# Outlook's "Title" (Dr., Ms.): CompleteName/Title is read-only in EWS, the MAPI property behind it
# is PidTagDisplayNamePrefix (0x3A45, PT_UNICODE; [MS-OXOCNTC] 2.2.1.1.3), writable as an extended property.
PREFIX_TAG = 0x3A45
# Exchange requires a year; a date without one is written with the year 1604 (a leap year, so
# 29 February fits; the placeholder Apple's Contacts uses for such dates, which reaches Exchange
# through ActiveSync) and read back without a year (decision record).
NO_YEAR = 1604


class LayoutProperty(ExtendedProperty):
    """The canonical order/types of the slots we wrote (JSON)."""

    distinguished_property_set_id = "PublicStrings"
    property_name = LAYOUT_PROPERTY
    property_type = "String"


class PrefixProperty(ExtendedProperty):
    property_tag = PREFIX_TAG
    property_type = "String"


def register() -> None:
    names = {f.name for f in EwsContact.FIELDS}
    for name, cls in (("spokesync_hub_id", HubIdProperty), ("spokesync_layout", LayoutProperty),
                      ("spokesync_prefix", PrefixProperty)):
        if name not in names:
            EwsContact.register(name, cls)


EMAIL_SLOTS = EmailAddress.LABEL_CHOICES  # EmailAddress1..3
ADDRESS_KEYS = {"work": "Business", "home": "Home", "other": "Other"}
ADDRESS_TYPES = {v: k for k, v in ADDRESS_KEYS.items()}
# canonical phone type -> the keys that mean it, in order of preference
PHONE_KEYS: dict[str, tuple[str, ...]] = {
    "mobile": ("MobilePhone",), "work": ("BusinessPhone", "BusinessPhone2"), "home": ("HomePhone", "HomePhone2"),
    "main": ("PrimaryPhone",), "work_fax": ("BusinessFax",), "home_fax": ("HomeFax",), "other_fax": ("OtherFax",),
    "pager": ("Pager",), "assistant": ("AssistantPhone",), "car": ("CarPhone",), "company": ("CompanyMainPhone",),
    "callback": ("Callback",), "isdn": ("Isdn",), "radio": ("RadioPhone",), "telex": ("Telex",),
    "tty": ("TtyTddPhone",), "other": ("OtherTelephone",),
}
PHONE_TYPES = {key: kind for kind, keys in PHONE_KEYS.items() for key in keys}
# where a number goes whose own keys are taken (a second mobile): the least specific keys first
PHONE_SPARE = ("OtherTelephone", "BusinessPhone2", "HomePhone2", "Callback", "CarPhone", "RadioPhone", "Pager",
               "AssistantPhone", "CompanyMainPhone", "PrimaryPhone", "Isdn", "Telex", "TtyTddPhone", "OtherFax",
               "BusinessFax", "HomeFax", "BusinessPhone", "HomePhone", "MobilePhone")
assert set(PHONE_SPARE) == set(PhoneNumber.LABEL_CHOICES) == set(PHONE_TYPES)

# The slots this spoke has: what does not fit stays in the hub (the engine keeps the overflow).
LIMITS = {**SLOT_LIMITS_EXCHANGE, "phones": len(PHONE_SPARE), "websites": 1}

# Fields Exchange holds faithfully: all of them (the photo as a file attachment, contacts.py).
FIELDS = ALL_FIELDS

READ_FIELDS = (
    "display_name", "given_name", "middle_name", "surname", "generation", "nickname", "file_as", "email_addresses",
    "phone_numbers", "physical_addresses", "company_name", "department", "job_title", "manager", "assistant_name",
    "business_homepage", "birthday", "wedding_anniversary", "body", "categories", "last_modified_time",
    "spokesync_hub_id", "spokesync_layout", "spokesync_prefix", "attachments",
)
WRITE_FIELDS = [f for f in READ_FIELDS if f not in ("last_modified_time", "spokesync_hub_id", "attachments")]
# canonical fields -> the WRITE_FIELDS that hold them (a spoke's switched-off fields are left out of updates;
# the photo is an attachment, left alone by contacts.py)
KEPT_FIELDNAMES: dict[str, tuple[str, ...]] = {
    "notes": ("body",), "notes_html": ("body",), "birthday": ("birthday",), "anniversary": ("wedding_anniversary",),
}


def _place(wanted: list[tuple[str, ...]], spare: tuple[str, ...]) -> list[str | None]:
    """Keys for entries that prefer `wanted[i]` (in order); taken keys fall back to `spare`."""
    taken: set[str] = set()
    out: list[str | None] = []
    for prefs in wanted:
        key = next((k for k in prefs if k not in taken), None)
        if key is not None:
            taken.add(key)
        out.append(key)
    for i, key in enumerate(out):
        if key is None:
            key = next((k for k in spare if k not in taken), None)
            if key is not None:
                taken.add(key)
            out[i] = key
    return out


def _partial(value: PartialDate | None) -> date | None:
    if value is None:
        return None
    return date(value.year if value.year is not None else NO_YEAR, value.month, value.day)


def _from_date(value: Any) -> PartialDate | None:
    if not isinstance(value, date):
        return None
    return PartialDate(value.month, value.day, None if value.year == NO_YEAR else value.year)


def item_values(contact: Contact) -> dict[str, Any]:
    """exchangelib Contact field values (every WRITE_FIELDS name: None clears a field)."""
    emails = contact.emails[: len(EMAIL_SLOTS)]
    phone_keys = _place([PHONE_KEYS.get(p.type, ("OtherTelephone",)) for p in contact.phones], PHONE_SPARE)
    address_keys = _place([(ADDRESS_KEYS.get(a.type, "Other"),) for a in contact.addresses], ("Other", "Home", "Business"))
    layout = {
        "e": [[slot, e.type, e.label, e.name, e.address.strip().lower()] for slot, e in zip(EMAIL_SLOTS, emails, strict=False)],
        "p": [[key, p.type, p.label, normalise_phone(p.number)] for key, p in zip(phone_keys, contact.phones, strict=True) if key],
        "a": [[key, a.type, a.label, a.po_box] for key, a in zip(address_keys, contact.addresses, strict=True) if key],
    }
    if contact.notes_html:
        body: Any = HTMLBody(contact.notes_html)
    else:
        body = Body(contact.notes) if contact.notes else None
    return {
        "display_name": contact.display_name,
        "given_name": contact.given_name or None,
        "middle_name": contact.middle_name or None,
        "surname": contact.family_name or None,
        "generation": contact.suffix or None,
        "nickname": contact.nickname or None,
        "file_as": contact.file_as or None,
        "email_addresses": [EmailAddress(label=slot, email=e.address) for slot, e in zip(EMAIL_SLOTS, emails, strict=False)] or None,
        "phone_numbers": [PhoneNumber(label=key, phone_number=p.number)
                          for key, p in zip(phone_keys, contact.phones, strict=True) if key] or None,
        "physical_addresses": [
            PhysicalAddress(label=key, street=a.street or None, city=a.city or None, state=a.region or None,
                            country=a.country or None, zipcode=a.postal_code or None)
            for key, a in zip(address_keys, contact.addresses, strict=True) if key] or None,
        "company_name": contact.company or None,
        "department": contact.department or None,
        "job_title": contact.job_title or None,
        "manager": contact.manager or None,
        "assistant_name": contact.assistant or None,
        "business_homepage": contact.websites[0] if contact.websites else None,
        "birthday": _partial(contact.birthday),
        "wedding_anniversary": _partial(contact.anniversary),
        "body": body,
        "categories": list(contact.categories) or None,
        "spokesync_layout": json.dumps(layout, separators=(",", ":")),
        "spokesync_prefix": contact.prefix or None,
    }


def _layout(item: EwsContact) -> dict[str, list[list[Any]]]:
    try:
        raw = json.loads(item.spokesync_layout or "{}")
        return raw if isinstance(raw, dict) else {}
    except (TypeError, ValueError):
        return {}


def _ordered(entries: dict[str, Any], remembered: list[list[Any]], order: tuple[str, ...]) -> list[tuple[str, Any, list[Any] | None]]:
    """(key, value, remembered row or None): the remembered slots first in their order, then the rest."""
    out: list[tuple[str, Any, list[Any] | None]] = []
    seen: set[str] = set()
    for row in remembered:
        if isinstance(row, list) and row and row[0] in entries and row[0] not in seen:
            seen.add(row[0])
            out.append((row[0], entries[row[0]], row))
    for key in order:
        if key in entries and key not in seen:
            seen.add(key)
            out.append((key, entries[key], None))
    for key, value in entries.items():  # any other key (exchangelib yields only the labels it knows)
        if key not in seen:
            out.append((key, value, None))
    return out


def item_to_contact(item: EwsContact) -> Contact:
    layout = _layout(item)
    emails: list[Email] = []
    found = {e.label: e.email for e in (item.email_addresses or ()) if e.email}
    for _, address, row in _ordered(found, layout.get("e", []), EMAIL_SLOTS):
        if row is not None and len(row) >= 5 and str(row[4]) == address.strip().lower():
            emails.append(Email(address, str(row[1]), str(row[3]), str(row[2])))
        else:
            emails.append(Email(address, "other"))
    phones: list[Phone] = []
    numbers = {p.label: p.phone_number for p in (item.phone_numbers or ()) if p.phone_number}
    for key, number, row in _ordered(numbers, layout.get("p", []), PhoneNumber.LABEL_CHOICES):
        if row is not None and len(row) >= 4 and str(row[3]) == normalise_phone(number):
            phones.append(Phone(number, str(row[1]), str(row[2])))
        elif key in PHONE_TYPES:
            phones.append(Phone(number, PHONE_TYPES[key]))
        else:
            phones.append(Phone(number, "other", key))
    addresses: list[Address] = []
    places = {a.label: a for a in (item.physical_addresses or ())
              if any((a.street, a.city, a.state, a.country, a.zipcode))}
    for key, place, row in _ordered(places, layout.get("a", []), PhysicalAddress.LABEL_CHOICES):
        kind, label, po_box = (str(row[1]), str(row[2]), str(row[3])) if row is not None and len(row) >= 4 \
            else (ADDRESS_TYPES.get(key, "other"), "", "")
        addresses.append(Address(kind, place.street or "", place.city or "", place.state or "",
                                 str(place.zipcode or ""), place.country or "", po_box, label))
    text, markup = body_parts(item)
    return Contact(
        display_name=item.display_name or "",
        given_name=item.given_name or "",
        middle_name=item.middle_name or "",
        family_name=item.surname or "",
        prefix=item.spokesync_prefix or "",
        suffix=item.generation or "",
        nickname=item.nickname or "",
        file_as=item.file_as or "",
        emails=tuple(emails),
        phones=tuple(phones),
        addresses=tuple(addresses),
        company=item.company_name or "",
        department=item.department or "",
        job_title=item.job_title or "",
        manager=item.manager or "",
        assistant=item.assistant_name or "",
        websites=(str(item.business_homepage),) if item.business_homepage else (),
        birthday=_from_date(item.birthday),
        anniversary=_from_date(item.wedding_anniversary),
        notes=text,
        notes_html=markup,
        categories=tuple(item.categories or ()),
        modified=item.last_modified_time,
    )

