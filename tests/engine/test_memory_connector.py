"""The in-memory spoke passes the SpokeConnector conformance suite."""

from __future__ import annotations

import pytest

from spokesync.connectors.memory import MemoryCalendar, MemoryConnector
from tests.conformance.connector import ConnectorConformance


class TestMemoryConnector(ConnectorConformance):
    @pytest.fixture
    def connector(self) -> MemoryConnector:
        return MemoryConnector(MemoryCalendar("conformance"), batch_size=4)
