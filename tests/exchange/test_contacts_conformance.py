"""The Exchange contacts connector passes the contacts conformance suite against the strict local EWS
server (every request validated against Microsoft's schema, every answer too), for a public contacts
folder (listing diff) and a mailbox contacts folder (SyncFolderItems)."""

from __future__ import annotations

import pytest

from spokesync.connectors.exchange.access import ExchangeSettings
from spokesync.connectors.exchange.contacts import ExchangeContactsConnector, connector_for_folder
from spokesync.sandbox.ews import EwsServer
from tests.conformance.contacts import ContactsConformance
from tests.exchange.conftest import PASSWORD, local_config


@pytest.fixture
def public_contacts(ews: EwsServer, settings: ExchangeSettings, request: pytest.FixtureRequest) -> ExchangeContactsConnector:
    ews.clear_faults()
    folder = ews.public_folder(f"pfc-{request.node.name}", folder_class="IPF.Contact")
    return connector_for_folder(settings, PASSWORD, local_config(), folder.id, public=True, batch_size=4)


@pytest.fixture
def mailbox_contacts(ews: EwsServer, settings: ExchangeSettings, request: pytest.FixtureRequest) -> ExchangeContactsConnector:
    ews.clear_faults()
    folder = ews.mailbox_folder(f"mbc-{request.node.name}", folder_class="IPF.Contact")
    return connector_for_folder(settings, PASSWORD, local_config(), folder.id, public=False, batch_size=4)


class TestPublicContactsFolder(ContactsConformance):
    @pytest.fixture
    def connector(self, public_contacts: ExchangeContactsConnector) -> ExchangeContactsConnector:
        return public_contacts


class TestMailboxContactsFolder(ContactsConformance):
    @pytest.fixture
    def connector(self, mailbox_contacts: ExchangeContactsConnector) -> ExchangeContactsConnector:
        return mailbox_contacts
