"""The canonical contact: what counts as a change, and a lossless round trip."""

import json
from datetime import UTC, datetime

import pytest

from spokesync.model.contact import (
    PHOTO_BYTES_MAX,
    SLOT_LIMITS_EXCHANGE,
    Address,
    Contact,
    Email,
    PartialDate,
    Phone,
    Photo,
    contact_from_dict,
    contact_to_dict,
    content_hash,
    fit,
    keep_overflow,
    label,
)

FULL = Contact(
    display_name="Ada Lovelace", given_name="Ada", family_name="Lovelace", prefix="Countess", nickname="Ada",
    emails=(Email("Ada@Example.com", "work", "Ada L."), Email("ada@home.example", "home")),
    phones=(Phone("+44 20 7946 0018", "work"), Phone("+44 7700 900123", "mobile")),
    addresses=(Address("work", "12 St James's Square", "London", "", "SW1Y 4LB", "United Kingdom"),),
    company="Analytical Engines Ltd", department="Research", job_title="Analyst", manager="C. Babbage",
    websites=("https://example.com/ada",), birthday=PartialDate(12, 10, 1815), anniversary=PartialDate(7, 8),
    notes="First programmer.", categories=("Research", "Board"), photo=Photo.of(b"\x89PNG fake", "image/png"),
    modified=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
)


def test_round_trip_keeps_every_field() -> None:
    assert contact_from_dict(contact_to_dict(FULL)) == FULL


def test_what_servers_rewrite_is_no_change() -> None:
    rewritten = FULL.__class__(
        **{**FULL.__dict__,
           "emails": (Email("ada@example.com", "work", "Ada L."), Email("ADA@home.example", "home")),
           "phones": (Phone("+44 (20) 7946-0018", "work"), Phone("+447700900123", "mobile")),
           "categories": ("Board", "Research"), "notes": "", "notes_html": "<p>First  programmer.</p>",
           "modified": None},
    )
    assert content_hash(rewritten) == content_hash(FULL)


@pytest.mark.parametrize("change", [
    {"emails": (Email("ada@home.example", "home"), Email("ada@example.com", "work", "Ada L."))},  # primary swapped
    {"phones": (Phone("+44 20 7946 0019", "work"), Phone("+44 7700 900123", "mobile"))},
    {"birthday": PartialDate(12, 10)},  # year forgotten
    {"photo": Photo.of(b"other")},
    {"job_title": "Chief Analyst"},
])
def test_a_real_edit_is_a_change(change: dict[str, object]) -> None:
    assert content_hash(Contact(**{**FULL.__dict__, **change})) != content_hash(FULL)  # type: ignore[arg-type]


def test_fixed_slots_never_erase_what_does_not_fit() -> None:
    four = Contact(emails=tuple(Email(f"a{i}@example.com") for i in range(4)))
    held = fit(four, SLOT_LIMITS_EXCHANGE)
    assert [e.address for e in held.emails] == ["a0@example.com", "a1@example.com", "a2@example.com"]
    edited = Contact(emails=(Email("new@example.com"),) + held.emails[1:])
    merged = keep_overflow(four, edited, SLOT_LIMITS_EXCHANGE)
    assert [e.address for e in merged.emails] == ["new@example.com", "a1@example.com", "a2@example.com",
                                                  "a3@example.com"]


def test_partial_dates() -> None:
    assert PartialDate.parse("--04-02") == PartialDate(4, 2)
    assert PartialDate.parse("1990-04-02").iso() == "1990-04-02"
    with pytest.raises(ValueError):
        PartialDate(13, 1)


def test_label_names_the_person() -> None:
    assert label(FULL) == "Ada Lovelace\tAda@Example.com"
    assert Contact(emails=(Email("x@example.com"),)).name == "x@example.com"


def test_a_photo_too_large_for_the_hub_keeps_its_hash_only() -> None:
    """A hub item must fit a Firestore document (1 MiB): bytes over PHOTO_BYTES_MAX are not kept."""
    small, large = Photo.of(b"\x89PNG" + b"s" * 1000), Photo.of(b"\x89PNG" + b"l" * PHOTO_BYTES_MAX)
    kept = contact_from_dict(contact_to_dict(Contact(display_name="Small", photo=small)))
    assert kept.photo == small
    raw = contact_to_dict(Contact(display_name="Large", photo=large))
    back = contact_from_dict(raw)
    assert back.photo is not None and back.photo.hash == large.hash and back.photo.data == b""
    assert len(json.dumps(raw)) < 10_000


def test_a_spoke_without_the_picture_does_not_erase_a_photo_the_hub_holds_as_a_hash_only() -> None:
    from spokesync.engine.kinds import CONTACTS

    names = frozenset({"display_name", "photo"})
    large = Photo(Photo.of(b"l" * (PHOTO_BYTES_MAX + 1)).hash)  # as the hub stores it: hash, no bytes
    small = Photo.of(b"small")
    no_picture = Contact(display_name="Ada")
    kept = CONTACTS.merge_inbound(Contact(display_name="Ada", photo=large), no_picture, names)
    assert kept.photo == large  # type: ignore[union-attr]
    # a photo the hub holds whole was given to the spoke: its absence there is a removal
    removed = CONTACTS.merge_inbound(Contact(display_name="Ada", photo=small), no_picture, names)
    assert removed.photo is None  # type: ignore[union-attr]
