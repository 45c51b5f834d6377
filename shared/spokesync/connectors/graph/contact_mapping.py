"""Canonical contacts to and from Microsoft Graph's `contact` (v1.0).

The fields are those of the "contact resource type" (microsoft-graph-docs) and of
`microsoft.graph.contact` in msgraph-metadata's CSDL; the decision record
docs/decisions/2026-12-01-graph-contact-fields.md says why each one maps the way it does. In short:

- names: displayName, givenName, middleName, surname, title (prefix), generation (suffix),
  nickName, fileAs; organisation: companyName, department, jobTitle, manager, assistantName;
  businessHomePage (one website); personalNotes (plain text); categories; birthday.
- `emailAddresses` holds address and name, no type: at most three are written (the Exchange
  store behind it has three e-mail slots); phones go to `businessPhones`, `homePhones` and the one
  `mobilePhone`; addresses to the three fixed `businessAddress` / `homeAddress` / `otherAddress`.
- What Graph has no room for (e-mail and phone types, the order across the phone lists, an
  address's type when it sits in another type's slot, its PO box, the anniversary) travels in one
  PublicStrings extended property next to the hub id, and is used on reading only for entries
  still present: an entry changed or added in Outlook reads with its slot's type.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from spokesync.connectors.graph.mapping import HUB_ID_PROP, PS_PUBLIC_STRINGS, extended
from spokesync.model.contact import (
    Address,
    Contact,
    Email,
    PartialDate,
    Phone,
    fit,
    normalise_phone,
)

META_PROP = f"String {PS_PUBLIC_STRINGS} Name spokesync-contact"
# PidLidBirthdayLocal (MS-OXOCNTC, PSETID_Address, 0x80DE): "the birthday of the contact, at 0:00 in the
# client's local time zone", saved without time zone conversion. Outlook writes it next to the UTC
# `birthday`; read first when it agrees with `birthday` to within a day.
BIRTHDAY_LOCAL_PROP = "SystemTime {00062004-0000-0000-C000-000000000046} Id 0x80DE"
FIELDS = frozenset({
    "display_name", "given_name", "middle_name", "family_name", "prefix", "suffix", "nickname", "file_as",
    "emails", "phones", "addresses", "company", "department", "job_title", "manager", "assistant", "websites",
    "birthday", "anniversary", "notes", "categories",
})
LIMITS = {"emails": 3, "addresses": 3, "websites": 1}
# A birthday without a year is written in this year (a leap year, so 29 February fits) and read back
# as yearless: Graph's birthday is an Edm.DateTimeOffset and has no way to leave the year out.
NO_YEAR = 1604
ADDRESS_SLOTS = ("businessAddress", "homeAddress", "otherAddress")
_SLOT_OF_TYPE = {"work": "businessAddress", "home": "homeAddress", "other": "otherAddress"}
_TYPE_OF_SLOT = {"businessAddress": "work", "homeAddress": "home", "otherAddress": "other",
                 "businessPhones": "work", "homePhones": "home", "mobilePhone": "mobile"}
_HOME_PHONES = {"home", "home_fax"}
SELECT = ",".join((
    "displayName", "givenName", "middleName", "surname", "title", "generation", "nickName", "fileAs",
    "emailAddresses", "businessPhones", "homePhones", "mobilePhone", "businessAddress", "homeAddress",
    "otherAddress", "companyName", "department", "jobTitle", "manager", "assistantName", "businessHomePage",
    "birthday", "personalNotes", "categories", "lastModifiedDateTime",
))
EXPAND = (f"singleValueExtendedProperties($filter=id eq '{HUB_ID_PROP}' or id eq '{META_PROP}' "
          f"or id eq '{BIRTHDAY_LOCAL_PROP}')")


def _text(value: str) -> str | None:
    return value or None


def _date_out(value: PartialDate | None) -> str | None:
    if value is None:
        return None
    return f"{value.year if value.year is not None else NO_YEAR:04d}-{value.month:02d}-{value.day:02d}T00:00:00Z"


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def _date_in(text: str | None, local: str | None = None) -> PartialDate | None:
    """The birthday's date. The UTC `birthday` is a local midnight converted to UTC (PR_BIRTHDAY
    depends on the writer's zone) or 11:59 (MS-ASCNTC: "the time portion ... might be 11:59 and
    SHOULD be ignored"): rounded to the nearest midnight, unless PidLidBirthdayLocal says the date."""
    value = _parse(text)
    if value is None:
        return None
    if value.hour >= 12:  # midnight of a zone east of UTC, stored as the evening before
        value += timedelta(hours=12)
    exact = _parse(local)
    if exact is not None and abs((exact.date() - value.date()).days) <= 1:
        value = exact
    return PartialDate(value.month, value.day, None if value.year == NO_YEAR else value.year)


def _place_addresses(addresses: tuple[Address, ...]) -> list[tuple[str, Address]]:
    """Each address in its type's slot, or (a second address of a type) in a free one, "other" first."""
    taken: dict[str, Address] = {}
    order: list[tuple[str, Address]] = []
    for address in addresses[:len(ADDRESS_SLOTS)]:
        slot = _SLOT_OF_TYPE.get(address.type, "otherAddress")
        if slot in taken:  # "other" first: the slot that claims no type
            slot = next(s for s in reversed(ADDRESS_SLOTS) if s not in taken)
        taken[slot] = address
        order.append((slot, address))
    return order


def _phone_slot(phone: Phone, mobile_taken: bool) -> str:
    if phone.type == "mobile" and not mobile_taken:
        return "mobilePhone"
    return "homePhones" if phone.type in _HOME_PHONES else "businessPhones"


# canonical fields -> the contact resource's keys / extended properties that hold them (`without_kept`);
# the anniversary travels in META_PROP, spokesync's own side data
KEPT_KEYS: dict[str, tuple[str, ...]] = {"notes": ("personalNotes",), "notes_html": ("personalNotes",),
                                         "birthday": ("birthday",)}
KEPT_PROPS: dict[str, tuple[str, ...]] = {"birthday": (BIRTHDAY_LOCAL_PROP,)}


def contact_to_graph(contact: Contact, hub_id: str) -> dict[str, Any]:
    """The whole writable state (empty values clear what Outlook holds), hub id and side data included."""
    c = fit(contact, LIMITS)
    business: list[str] = []
    home: list[str] = []
    mobile: str | None = None
    phone_meta: list[list[str]] = []
    for phone in c.phones:
        slot = _phone_slot(phone, mobile is not None)
        if slot == "mobilePhone":
            mobile = phone.number
        else:
            (home if slot == "homePhones" else business).append(phone.number)
        phone_meta.append([slot, normalise_phone(phone.number), phone.type, phone.label])
    placed = _place_addresses(c.addresses)
    body: dict[str, Any] = {
        "displayName": c.display_name, "givenName": _text(c.given_name), "middleName": _text(c.middle_name),
        "surname": _text(c.family_name), "title": _text(c.prefix), "generation": _text(c.suffix),
        "nickName": _text(c.nickname), "fileAs": _text(c.file_as),
        "emailAddresses": [{"address": e.address, "name": e.name or e.address} for e in c.emails],
        "businessPhones": business, "homePhones": home, "mobilePhone": mobile,
        "companyName": _text(c.company), "department": _text(c.department), "jobTitle": _text(c.job_title),
        "manager": _text(c.manager), "assistantName": _text(c.assistant),
        "businessHomePage": c.websites[0] if c.websites else None,
        "birthday": _date_out(c.birthday), "personalNotes": _notes(c), "categories": list(c.categories),
    }
    by_slot = dict(placed)
    for slot in ADDRESS_SLOTS:
        address = by_slot.get(slot)
        body[slot] = {} if address is None else {
            "street": address.street, "city": address.city, "state": address.region,
            "postalCode": address.postal_code, "countryOrRegion": address.country}
    meta = {
        "e": [[e.address.strip().lower(), e.type, e.label] for e in c.emails],
        "p": phone_meta,
        "a": [[slot, a.type, a.label, a.po_box] for slot, a in placed],
        "anniversary": c.anniversary.iso() if c.anniversary else None,
    }
    body["singleValueExtendedProperties"] = [
        {"id": HUB_ID_PROP, "value": hub_id},
        {"id": META_PROP, "value": json.dumps(meta, separators=(",", ":"))},
    ]
    if body["birthday"]:
        body["singleValueExtendedProperties"].append({"id": BIRTHDAY_LOCAL_PROP, "value": body["birthday"]})
    return body


def _notes(contact: Contact) -> str | None:
    from spokesync.model.contact import notes_text

    return notes_text(contact) or None


def hub_id_of(raw: dict[str, Any]) -> str | None:
    return extended(raw, HUB_ID_PROP) or None


def keep_anniversary(body: dict[str, Any], raw: dict[str, Any]) -> None:
    """An update body that keeps the anniversary the contact `raw` holds (in spokesync's side data:
    Graph's contact has no anniversary property), for a spoke that keeps birthdays out of the sync."""
    for prop in body.get("singleValueExtendedProperties") or []:
        if prop.get("id") == META_PROP:
            meta = json.loads(prop["value"])
            meta["anniversary"] = _meta(raw).get("anniversary")
            prop["value"] = json.dumps(meta, separators=(",", ":"))


def _meta(raw: dict[str, Any]) -> dict[str, Any]:
    text = extended(raw, META_PROP)
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _emails(raw: dict[str, Any], meta: dict[str, Any]) -> tuple[Email, ...]:
    known = {str(m[0]): m for m in meta.get("e") or [] if isinstance(m, list) and len(m) == 3}
    out = []
    for entry in raw.get("emailAddresses") or []:
        address = str(entry.get("address") or "").strip()
        if not address:
            continue
        name = str(entry.get("name") or "")
        if name.strip().lower() == address.lower():
            name = ""  # Outlook shows the address itself when no name was given
        m = known.get(address.lower())
        out.append(Email(address, str(m[1]) if m else "work", name, str(m[2]) if m else ""))
    return tuple(out)


def _phones(raw: dict[str, Any], meta: dict[str, Any]) -> tuple[Phone, ...]:
    present: list[tuple[str, str]] = [("businessPhones", str(n)) for n in raw.get("businessPhones") or [] if n]
    present += [("homePhones", str(n)) for n in raw.get("homePhones") or [] if n]
    if raw.get("mobilePhone"):
        present.append(("mobilePhone", str(raw["mobilePhone"])))
    unused = list(present)
    out: list[Phone] = []
    for m in meta.get("p") or []:
        if not (isinstance(m, list) and len(m) == 4):
            continue
        match = next((p for p in unused if p[0] == m[0] and normalise_phone(p[1]) == m[1]), None)
        if match is not None:
            unused.remove(match)
            out.append(Phone(match[1], str(m[2]), str(m[3])))
    out.extend(Phone(number, _TYPE_OF_SLOT[slot]) for slot, number in unused)
    return tuple(out)


def _addresses(raw: dict[str, Any], meta: dict[str, Any]) -> tuple[Address, ...]:
    def of(slot: str, kind: str, label: str = "", po_box: str = "") -> Address | None:
        value = raw.get(slot) or {}
        parts = [str(value.get(k) or "") for k in ("street", "city", "state", "postalCode", "countryOrRegion")]
        if not any(p.strip() for p in parts):
            return None
        street, city, region, postal_code, country = parts
        return Address(kind, street, city, region, postal_code, country, po_box=po_box, label=label)

    out: list[Address] = []
    seen: set[str] = set()
    for m in meta.get("a") or []:
        if isinstance(m, list) and len(m) == 4 and m[0] in ADDRESS_SLOTS and m[0] not in seen:
            address = of(str(m[0]), str(m[1]), str(m[2]), str(m[3]))
            seen.add(str(m[0]))
            if address is not None:
                out.append(address)
    for slot in ADDRESS_SLOTS:
        if slot not in seen:
            address = of(slot, _TYPE_OF_SLOT[slot])
            if address is not None:
                out.append(address)
    return tuple(out)


def graph_to_contact(raw: dict[str, Any]) -> Contact:
    meta = _meta(raw)
    anniversary = None
    if meta.get("anniversary"):
        try:
            anniversary = PartialDate.parse(str(meta["anniversary"]))
        except ValueError:
            anniversary = None
    modified = None
    if raw.get("lastModifiedDateTime"):
        try:
            modified = datetime.fromisoformat(str(raw["lastModifiedDateTime"]).replace("Z", "+00:00"))
        except ValueError:
            modified = None
    homepage = str(raw.get("businessHomePage") or "").strip()
    return Contact(
        display_name=str(raw.get("displayName") or ""), given_name=str(raw.get("givenName") or ""),
        middle_name=str(raw.get("middleName") or ""), family_name=str(raw.get("surname") or ""),
        prefix=str(raw.get("title") or ""), suffix=str(raw.get("generation") or ""),
        nickname=str(raw.get("nickName") or ""), file_as=str(raw.get("fileAs") or ""),
        emails=_emails(raw, meta), phones=_phones(raw, meta), addresses=_addresses(raw, meta),
        company=str(raw.get("companyName") or ""), department=str(raw.get("department") or ""),
        job_title=str(raw.get("jobTitle") or ""), manager=str(raw.get("manager") or ""),
        assistant=str(raw.get("assistantName") or ""), websites=(homepage,) if homepage else (),
        birthday=_date_in(raw.get("birthday"), extended(raw, BIRTHDAY_LOCAL_PROP)), anniversary=anniversary,
        notes=str(raw.get("personalNotes") or ""), categories=tuple(str(c) for c in raw.get("categories") or []),
        modified=modified,
    )
