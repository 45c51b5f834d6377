"""The SpokeConnector conformance suite for contacts spokes.

Subclass `ContactsConformance` and provide a `connector` fixture yielding a
contacts connector on a fresh, empty folder or group. The same checks as for
calendars (round trip, own versions, no duplicate on a retried create,
incremental feed, preconditions, bulk order), over contacts, plus the contact
rules: typed lists keep their order, and a spoke's fixed slots are declared.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from spokesync.model.contact import (
    ALL_FIELDS,
    OPTIONAL_FIELDS,
    Address,
    Contact,
    Email,
    PartialDate,
    Phone,
    Photo,
    content_hash,
)
from spokesync.ports import NewItem, SpokeConnector
from tests.conformance.connector import ConnectorConformance

# a 1x1 PNG (the smallest valid picture)
PNG_PIXEL = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                          "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4f90000000049454e44ae426082")


def sample_contacts() -> list[Contact]:
    return [
        Contact(display_name="Ada Lovelace", given_name="Ada", family_name="Lovelace",
                emails=(Email("ada@example.com", "work"), Email("ada@home.example", "home")),
                phones=(Phone("+44 20 7946 0018", "work"), Phone("+44 7700 900123", "mobile")),
                addresses=(Address("work", "12 St James's Square", "London", "", "SW1Y 4LB", "United Kingdom"),),
                company="Analytical Engines", department="Research", job_title="Analyst",
                birthday=PartialDate(12, 10, 1815), notes="First programmer.", categories=("Research",)),
        Contact(display_name="Grace Hopper", given_name="Grace", family_name="Hopper",
                emails=(Email("grace@example.com", "work"),), company="Navy", job_title="Rear Admiral"),
        Contact(display_name="Reception", phones=(Phone("+1 555 0100", "main"),), company="Example Corp"),
    ]


class ContactsConformance(ConnectorConformance):
    def sample_events(self) -> list[Any]:
        return list(sample_contacts())

    def item_hash(self, item: Any, names: frozenset[str]) -> str:
        return content_hash(item, names)

    def renamed(self, item: Any, text: str) -> Any:
        return replace(item, display_name=text)

    def title_of(self, item: Any) -> str:
        return str(item.display_name)

    def relocated(self, item: Any, text: str) -> Any:
        return replace(item, job_title=text)

    def location_of(self, item: Any) -> str:
        return str(item.job_title)

    def kept_case(self) -> tuple[frozenset[str], Any, Any]:
        kept = OPTIONAL_FIELDS["notes"] | OPTIONAL_FIELDS["birthday"] | OPTIONAL_FIELDS["photo"]
        item = Contact(display_name="Own fields", given_name="Own", family_name="Fields",
                       emails=(Email("own.fields@example.com", "work"),), notes="Typed in this address book",
                       birthday=PartialDate(3, 7), anniversary=PartialDate(9, 1, 2001), photo=Photo.of(PNG_PIXEL))
        return kept, item, replace(item, display_name="Renamed in the hub", notes="", birthday=None, anniversary=None,
                                   photo=None)

    def test_declares_contact_fields(self, connector: SpokeConnector) -> None:
        fields = connector.capabilities.fields
        assert fields and fields <= ALL_FIELDS
        assert {"display_name", "emails", "phones"} <= fields

    def test_typed_lists_keep_their_order_within_the_slots(self, connector: SpokeConnector) -> None:
        limits = dict(connector.capabilities.limits)
        emails = tuple(Email(f"p{i}@example.com", t) for i, t in enumerate(("home", "work", "other")))
        contact = Contact(display_name="Ordered", emails=emails[: limits.get("emails", 3)])
        created = connector.create([NewItem("hubord", contact)])[0]
        assert created.status == "ok", created
        back = connector.read([created.spoke_item_id])[created.spoke_item_id].event
        assert [e.address for e in back.emails] == [e.address for e in contact.emails]
