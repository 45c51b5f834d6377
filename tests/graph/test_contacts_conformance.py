"""The Graph contacts connector passes the contacts conformance suite against the local Graph server
(through GraphClient: msal for the token, requests over https, `$batch`), on a shared mailbox's
contact folder; every answer the server gave matched the published schema (conftest)."""

from __future__ import annotations

import pytest

from spokesync.connectors.graph.contacts import GraphContactsConnector
from tests.conformance.contacts import ContactsConformance


class TestSharedMailboxContacts(ContactsConformance):
    @pytest.fixture
    def connector(self, contacts_connector: GraphContactsConnector) -> GraphContactsConnector:
        return contacts_connector

    def test_declares_the_graph_slots(self, connector: GraphContactsConnector) -> None:
        assert dict(connector.capabilities.limits) == {"emails": 3, "addresses": 3, "websites": 1}
