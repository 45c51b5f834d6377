"""The in-memory spoke passes the SpokeConnector conformance suite, for calendars and for contacts."""

from __future__ import annotations

import pytest

from spokesync.connectors.memory import MemoryCalendar, MemoryConnector
from spokesync.model.contact import ALL_FIELDS as CONTACT_FIELDS
from spokesync.model.contact import SLOT_LIMITS_EXCHANGE
from tests.conformance.connector import ConnectorConformance
from tests.conformance.contacts import ContactsConformance


class TestMemoryConnector(ConnectorConformance):
    @pytest.fixture
    def connector(self) -> MemoryConnector:
        return MemoryConnector(MemoryCalendar("conformance"), batch_size=4)


class TestMemoryContactsConnector(ContactsConformance):
    @pytest.fixture
    def connector(self) -> MemoryConnector:
        return MemoryConnector(MemoryCalendar("contacts"), fields=CONTACT_FIELDS, batch_size=4)


class TestMemoryContactsWithFixedSlots(ContactsConformance):
    """Like an Exchange contacts folder: three e-mail and three address slots."""

    @pytest.fixture
    def connector(self) -> MemoryConnector:
        return MemoryConnector(MemoryCalendar("slots"), fields=CONTACT_FIELDS, batch_size=4,
                               limits=SLOT_LIMITS_EXCHANGE)
