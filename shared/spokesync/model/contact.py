"""The canonical contact as the hub keeps it, and its stable content hash.

Plain data, no I/O, the counterpart of `model.event` for contacts hubs.
Connectors map their wire formats (EWS `Contact`, Graph `contact`, People API
`Person`) to and from `Contact`; the engine compares contacts only through
`content_hash` over a chosen set of fields, so what servers rewrite (etags,
phone formatting, e-mail case, list order where order carries no meaning,
HTML wrappers around notes) never looks like a change.

Lists are typed and ordered: `emails[0]` is the primary address. A spoke that
holds fewer entries than the hub (Exchange has three e-mail slots, fixed phone
and address keys) declares its limits (see `SLOT_LIMITS`); the engine keeps
what does not fit in the hub and never erases it on that spoke's behalf.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from typing import Any

from spokesync.model.event import html_to_text, normalise_text

# Types used across services. Connectors map their own keys onto these and
# back; an unknown wire type becomes "other" with the wire word in `label`.
EMAIL_TYPES = ("work", "home", "other")
PHONE_TYPES = (
    "mobile", "work", "home", "main", "work_fax", "home_fax", "other_fax", "pager",
    "assistant", "car", "company", "callback", "isdn", "radio", "telex", "tty", "other",
)
ADDRESS_TYPES = ("work", "home", "other")


@dataclass(frozen=True)
class Email:
    address: str
    type: str = "work"  # one of EMAIL_TYPES
    name: str = ""  # display name shown with the address (Exchange's "Display as")
    label: str = ""  # the service's own word for an unknown type


@dataclass(frozen=True)
class Phone:
    number: str
    type: str = "work"  # one of PHONE_TYPES
    label: str = ""


@dataclass(frozen=True)
class Address:
    type: str = "work"  # one of ADDRESS_TYPES
    street: str = ""  # may hold several lines
    city: str = ""
    region: str = ""  # state / province
    postal_code: str = ""
    country: str = ""
    po_box: str = ""
    label: str = ""


@dataclass(frozen=True)
class PartialDate:
    """A birthday or anniversary; the year may be unknown (People API allows it)."""

    month: int
    day: int
    year: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1 <= self.day <= 31:
            raise ValueError(f"not a calendar date: month {self.month}, day {self.day}")

    def iso(self) -> str:
        """`1990-04-02`, or `--04-02` (ISO 8601 / vCard) without a year."""
        return (f"{self.year:04d}" if self.year is not None else "-") + f"-{self.month:02d}-{self.day:02d}"

    @classmethod
    def parse(cls, text: str) -> PartialDate:
        if text.startswith("--"):
            month, day = text[2:].split("-")
            return cls(int(month), int(day))
        value = date.fromisoformat(text[:10])
        return cls(value.month, value.day, value.year)


@dataclass(frozen=True)
class Photo:
    """A contact photo. `hash` identifies the bytes; `data` may be empty when a
    connector read only the hash (bytes are moved only when the hash changed)."""

    hash: str
    content_type: str = "image/jpeg"
    data: bytes = b""

    @classmethod
    def of(cls, data: bytes, content_type: str = "image/jpeg") -> Photo:
        return cls(photo_hash(data), content_type, data)


# Photo bytes the hub keeps (as hex, twice the size): a hub item stays well under Firestore's
# 1 MiB document limit. A larger photo keeps its hash only: spokes that have it keep it, the others
# keep their own picture (every connector leaves a picture alone when only the hash travelled).
PHOTO_BYTES_MAX = 256 * 1024


def photo_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True)
class Contact:
    display_name: str = ""
    given_name: str = ""
    middle_name: str = ""
    family_name: str = ""
    prefix: str = ""  # "Dr."
    suffix: str = ""  # "Jr."
    nickname: str = ""
    file_as: str = ""
    emails: tuple[Email, ...] = ()  # ordered: the first is the primary address
    phones: tuple[Phone, ...] = ()
    addresses: tuple[Address, ...] = ()
    company: str = ""
    department: str = ""
    job_title: str = ""
    manager: str = ""
    assistant: str = ""
    websites: tuple[str, ...] = ()
    birthday: PartialDate | None = None
    anniversary: PartialDate | None = None
    notes: str = ""
    notes_html: str = ""  # formatting only; compared through `notes`
    categories: tuple[str, ...] = ()  # Exchange categories / Google contact group names
    photo: Photo | None = None
    # The source's modification time: used for "most recent change wins", never hashed.
    modified: datetime | None = None

    @property
    def name(self) -> str:
        """The name a person reads: display name, else the parts, else the first e-mail."""
        if self.display_name.strip():
            return self.display_name.strip()
        parts = " ".join(p for p in (self.given_name, self.middle_name, self.family_name) if p.strip())
        if parts:
            return parts
        if self.company:
            return self.company
        return self.emails[0].address if self.emails else ""


ALL_FIELDS = frozenset(f.name for f in fields(Contact)) - {"modified"}
NAME_FIELDS = frozenset({
    "display_name", "given_name", "middle_name", "family_name", "prefix", "suffix", "nickname", "file_as",
})
# Fields a sync option can switch off per spoke ("which fields travel").
OPTIONAL_FIELDS = {
    "notes": frozenset({"notes", "notes_html"}),
    "birthday": frozenset({"birthday", "anniversary"}),
    "photo": frozenset({"photo"}),
}
# How many entries a list field can hold on a spoke that has fixed slots:
# Exchange's EmailAddressKeyType has EmailAddress1..3 and PhysicalAddressKeyType
# Business/Home/Other (types.xsd). Spokes with open lists declare no limit.
SLOT_LIMITS_EXCHANGE = {"emails": 3, "addresses": 3}


# ---------------------------------------------------------------- normalising

_PHONE_NOISE = re.compile(r"[\s\-().\u00a0/]")


def normalise_phone(number: str) -> str:
    """The digits (and a leading +) of a phone number: servers reformat the rest."""
    text = _PHONE_NOISE.sub("", number.strip())
    return text


def notes_text(contact: Contact) -> str:
    if contact.notes:
        return normalise_text(contact.notes)
    return normalise_text(html_to_text(contact.notes_html))


def normalise(contact: Contact) -> Contact:
    """Fold equivalent representations into one: e-mail case, duplicate entries,
    category order. The order of e-mails, phones and addresses is kept (the
    first is the primary one)."""
    seen: set[str] = set()
    emails: list[Email] = []
    for email in contact.emails:
        address = email.address.strip().lower()
        if address and address not in seen:
            seen.add(address)
            emails.append(replace(email, address=address))
    phones: list[Phone] = []
    seen_phones: set[tuple[str, str]] = set()
    for phone in contact.phones:
        key = (phone.type, normalise_phone(phone.number))
        if key[1] and key not in seen_phones:
            seen_phones.add(key)
            phones.append(phone)
    return replace(
        contact,
        emails=tuple(emails),
        phones=tuple(phones),
        websites=tuple(dict.fromkeys(w.strip() for w in contact.websites if w.strip())),
        categories=tuple(sorted(set(contact.categories))),
    )


def _field_value(contact: Contact, name: str) -> Any:
    value = getattr(contact, name)
    if name == "notes":
        return notes_text(contact)
    if name == "notes_html":
        return None
    if name == "emails":
        return [[e.address, e.type, normalise_text(e.name)] for e in value]
    if name == "phones":
        return [[normalise_phone(p.number), p.type] for p in value]
    if name == "addresses":
        return [[a.type, normalise_text(a.street), normalise_text(a.city), normalise_text(a.region),
                 normalise_text(a.postal_code), normalise_text(a.country), normalise_text(a.po_box)]
                for a in value]
    if name in ("birthday", "anniversary"):
        return None if value is None else value.iso()
    if name == "photo":
        return None if value is None else value.hash
    if isinstance(value, str):
        return normalise_text(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def content_hash(contact: Contact, names: Iterable[str] = ALL_FIELDS) -> str:
    """A hash of the contact's meaning over `names`, stable across round trips.
    (Hub items keep these hashes with the fields they cover: a change of what a hash means for
    the same item must bump `model.hub.HASH_SCHEME`.)"""
    normal = normalise(contact)
    payload = json.dumps({n: _field_value(normal, n) for n in sorted(set(names))},
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def restrict(contact: Contact, base: Contact, names: Iterable[str]) -> Contact:
    """`base` with the fields in `names` taken from `contact`."""
    wanted = set(names)
    changes = {f.name: getattr(contact, f.name) for f in fields(Contact) if f.name in wanted}
    if "notes" in wanted:
        changes["notes_html"] = contact.notes_html
    return replace(base, **changes)


def fit(contact: Contact, limits: dict[str, int]) -> Contact:
    """The contact as a spoke with fixed slots can hold it (the first entries)."""
    changes: dict[str, Any] = {}
    for name, limit in limits.items():
        value = getattr(contact, name)
        if len(value) > limit:
            changes[name] = value[:limit]
    return replace(contact, **changes) if changes else contact


def keep_overflow(hub: Contact, spoke: Contact, limits: dict[str, int]) -> Contact:
    """`spoke`'s lists with the hub's entries beyond the spoke's slots appended,
    so a spoke that can hold three addresses never erases a fourth."""
    changes: dict[str, Any] = {}
    for name, limit in limits.items():
        extra = getattr(hub, name)[limit:]
        if extra:
            changes[name] = tuple(getattr(spoke, name)) + tuple(extra)
    return replace(spoke, **changes) if changes else spoke


def label(contact: Contact) -> str:
    """What a person reads to recognise the contact: name and first e-mail."""
    email = contact.emails[0].address if contact.emails else ""
    return f"{contact.name}\t{email}"


# --------------------------------------------------------------- serialising


def _date_json(value: PartialDate | None) -> str | None:
    return None if value is None else value.iso()


def contact_to_dict(contact: Contact) -> dict[str, Any]:
    return {
        "display_name": contact.display_name,
        "given_name": contact.given_name,
        "middle_name": contact.middle_name,
        "family_name": contact.family_name,
        "prefix": contact.prefix,
        "suffix": contact.suffix,
        "nickname": contact.nickname,
        "file_as": contact.file_as,
        "emails": [{"address": e.address, "type": e.type, "name": e.name, "label": e.label} for e in contact.emails],
        "phones": [{"number": p.number, "type": p.type, "label": p.label} for p in contact.phones],
        "addresses": [
            {"type": a.type, "street": a.street, "city": a.city, "region": a.region, "postal_code": a.postal_code,
             "country": a.country, "po_box": a.po_box, "label": a.label}
            for a in contact.addresses
        ],
        "company": contact.company,
        "department": contact.department,
        "job_title": contact.job_title,
        "manager": contact.manager,
        "assistant": contact.assistant,
        "websites": list(contact.websites),
        "birthday": _date_json(contact.birthday),
        "anniversary": _date_json(contact.anniversary),
        "notes": contact.notes,
        "notes_html": contact.notes_html,
        "categories": list(contact.categories),
        "photo": None if contact.photo is None else {
            "hash": contact.photo.hash, "content_type": contact.photo.content_type,
            "data": contact.photo.data.hex() if 0 < len(contact.photo.data) <= PHOTO_BYTES_MAX else ""},
        "modified": None if contact.modified is None else contact.modified.isoformat(),
    }


def contact_from_dict(raw: dict[str, Any]) -> Contact:
    photo = raw.get("photo")
    modified = raw.get("modified")
    return Contact(
        display_name=raw.get("display_name", ""),
        given_name=raw.get("given_name", ""),
        middle_name=raw.get("middle_name", ""),
        family_name=raw.get("family_name", ""),
        prefix=raw.get("prefix", ""),
        suffix=raw.get("suffix", ""),
        nickname=raw.get("nickname", ""),
        file_as=raw.get("file_as", ""),
        emails=tuple(Email(e["address"], e.get("type", "work"), e.get("name", ""), e.get("label", ""))
                     for e in raw.get("emails", ())),
        phones=tuple(Phone(p["number"], p.get("type", "work"), p.get("label", "")) for p in raw.get("phones", ())),
        addresses=tuple(
            Address(a.get("type", "work"), a.get("street", ""), a.get("city", ""), a.get("region", ""),
                    a.get("postal_code", ""), a.get("country", ""), a.get("po_box", ""), a.get("label", ""))
            for a in raw.get("addresses", ())
        ),
        company=raw.get("company", ""),
        department=raw.get("department", ""),
        job_title=raw.get("job_title", ""),
        manager=raw.get("manager", ""),
        assistant=raw.get("assistant", ""),
        websites=tuple(raw.get("websites", ())),
        birthday=None if not raw.get("birthday") else PartialDate.parse(raw["birthday"]),
        anniversary=None if not raw.get("anniversary") else PartialDate.parse(raw["anniversary"]),
        notes=raw.get("notes", ""),
        notes_html=raw.get("notes_html", ""),
        categories=tuple(raw.get("categories", ())),
        photo=None if not photo else Photo(photo["hash"], photo.get("content_type", "image/jpeg"),
                                           bytes.fromhex(photo.get("data", ""))),
        modified=None if not modified else datetime.fromisoformat(modified),
    )
