"""The SpokeConnector conformance suite against the local Calendar API server."""

from __future__ import annotations

import pytest

from tests.conformance.connector import ConnectorConformance


class TestGoogleConformance(ConnectorConformance):
    @pytest.fixture
    def connector(self, make_connector, new_calendar):
        return make_connector(new_calendar())
