"""The Exchange connector passes the SpokeConnector conformance suite against the local EWS
server, for a public folder (snapshot diff) and for a mailbox folder (SyncFolderItems)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from spokesync.connectors.exchange.connector import ExchangeConnector
from spokesync.model.event import Attendee, Event
from tests.conformance.connector import ConnectorConformance, sample_events


def exchange_sample_events() -> list[Event]:
    """The suite's samples, except that an attendee's response is the attendee's to give:
    Exchange sets it to Unknown on an item we write, so the sample carries no response."""
    events = sample_events()
    weekly = events[2]
    return [*events[:2], replace(weekly, attendees=(Attendee("a@example.com", "A", "required", "needs_action"),))]


class TestPublicFolder(ConnectorConformance):
    def sample_events(self) -> list[Event]:
        return exchange_sample_events()

    @pytest.fixture
    def connector(self, public_connector: ExchangeConnector) -> ExchangeConnector:
        return public_connector


class TestMailboxFolder(ConnectorConformance):
    def sample_events(self) -> list[Event]:
        return exchange_sample_events()

    @pytest.fixture
    def connector(self, mailbox_connector: ExchangeConnector) -> ExchangeConnector:
        return mailbox_connector
