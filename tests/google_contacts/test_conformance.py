"""The contacts conformance suite against the Google contacts connector on the local People API server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spokesync.sandbox.google_people import Running
from tests.conformance.contacts import ContactsConformance
from tests.google_contacts.conftest import USER


class TestGoogleContactsConformance(ContactsConformance):
    @pytest.fixture
    def connector(self, make_connector, pserver: Running) -> Iterator[object]:
        connector = make_connector()
        yield connector
        # Google asks for sequential mutations per user: the connector never overlapped two.
        assert pserver.sandbox.stats_concurrent_mutations == 0
        assert USER in pserver.sandbox.books
