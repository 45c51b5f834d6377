"""The Graph connector passes the SpokeConnector conformance suite against the local Graph server,
for a shared mailbox's calendar and for a Microsoft 365 group's calendar; no invitation is ever sent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spokesync.connectors.graph.connector import GraphConnector, Target
from spokesync.sandbox.graph import GraphServer
from tests.conformance.connector import ConnectorConformance
from tests.graph.conftest import SHARED


class TestSharedMailbox(ConnectorConformance):
    @pytest.fixture
    def connector(self, graph: GraphServer, make_connector, new_calendar) -> Iterator[GraphConnector]:
        before = graph.invitations[SHARED]
        yield make_connector(Target("user", SHARED, new_calendar.id))
        assert graph.invitations[SHARED] == before


class TestGroupCalendar(ConnectorConformance):
    @pytest.fixture
    def connector(self, graph: GraphServer, make_connector, request: pytest.FixtureRequest) -> Iterator[GraphConnector]:
        group = graph.add_mailbox(f"team-{len(graph.mailboxes)}@contoso.com", "Team", kind="group")
        yield make_connector(Target("group", group.id))
        assert graph.invitations[group.address] == 0
