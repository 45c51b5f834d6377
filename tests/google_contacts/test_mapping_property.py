"""Every field the connector declares round-trips through the People API server, for
contacts drawn from fixed lists (indices into sorted lists: the same examples every run)."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spokesync.connectors.google.contacts import FIELDS
from spokesync.model.contact import (
    ADDRESS_TYPES,
    EMAIL_TYPES,
    PHONE_TYPES,
    Address,
    Contact,
    Email,
    PartialDate,
    Phone,
    content_hash,
)
from spokesync.ports import NewItem

TEXTS = sorted(["", "Ada", "Zoë", "O'Brien", "van der Berg", "株式会社", "Line one\nLine two", "A & B <c>"])
CATEGORIES = sorted(["Board", "Clients", "Research", "Suppliers"])
LABELS = sorted(["", "boat", "club"])

_ids = itertools.count()


def text() -> st.SearchStrategy[str]:
    return st.sampled_from(TEXTS)


def emails() -> st.SearchStrategy[tuple[Email, ...]]:
    one = st.builds(lambda n, t, name, lab: Email(f"p{n}@example.com", t, name, lab if t == "other" else ""),
                    st.integers(0, 50), st.sampled_from(EMAIL_TYPES), text(), st.sampled_from(LABELS))
    return st.lists(one, max_size=4, unique_by=lambda e: e.address).map(tuple)


def phones() -> st.SearchStrategy[tuple[Phone, ...]]:
    one = st.builds(lambda n, t, lab: Phone(f"+49 30 {n:06d}", t, lab if t == "other" else ""),
                    st.integers(0, 999), st.sampled_from(PHONE_TYPES), st.sampled_from(LABELS))
    return st.lists(one, max_size=4, unique_by=lambda p: (p.number, p.type)).map(tuple)


def addresses() -> st.SearchStrategy[tuple[Address, ...]]:
    one = st.builds(lambda t, street, city: Address(t, street, city, "", "10115", "Germany"),
                    st.sampled_from(ADDRESS_TYPES), text(), text())
    return st.lists(one, max_size=4).map(tuple)


def dates() -> st.SearchStrategy[PartialDate | None]:
    return st.one_of(st.none(), st.builds(PartialDate, st.integers(1, 12), st.integers(1, 28),
                                          st.one_of(st.none(), st.integers(1900, 2030))))


contacts = st.builds(
    Contact, display_name=text(), given_name=text(), middle_name=text(), family_name=text(), prefix=text(),
    suffix=text(), nickname=text(), emails=emails(), phones=phones(), addresses=addresses(), company=text(),
    department=text(), job_title=text(), manager=text(), assistant=text(),
    websites=st.lists(st.sampled_from(["https://a.example", "https://b.example/x"]), unique=True).map(tuple),
    birthday=dates(), anniversary=dates(), notes=text(),
    categories=st.lists(st.sampled_from(CATEGORIES), unique=True).map(tuple),
).filter(lambda c: c.display_name or not any((c.given_name, c.middle_name, c.family_name, c.prefix, c.suffix)))
# Google always shows a display name: one with name parts but none of its own gets Google's (decision record).


def test_declared_fields_round_trip(make_connector) -> None:
    connector = make_connector("Property")
    ran: list[int] = []

    @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(contacts)
    def check(contact: Contact) -> None:
        ran.append(1)
        made = connector.create([NewItem(f"hub{next(_ids)}", contact)])[0]
        assert made.status == "ok", made
        back = connector.read([made.spoke_item_id])[made.spoke_item_id].event
        assert content_hash(back, FIELDS) == content_hash(contact, FIELDS), (contact, back)

    check()
    assert len(ran) >= 40
