"""The SQLite hub store passes the HubStore conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from spokesync.stores.sqlite import SqliteHubStore
from tests.conformance.hub_store import HubStoreConformance


class TestSqliteHubStore(HubStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> SqliteHubStore:
        return SqliteHubStore(str(tmp_path / "hub.sqlite3"))
