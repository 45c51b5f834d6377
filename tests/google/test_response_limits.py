"""A hostile Calendar API endpoint cannot exhaust memory (issue 11).

google-api-python-client over httplib2, pointed (`SPOKESYNC_GOOGLE_API_ROOT`) at the hostile server
of tests/hostile.py: a 1 MB gzip bomb (1 GiB inflated), a 300 MB body without a length, and a body
that announces 300 MB. Each attempt runs in a fresh interpreter that reports its peak resident
memory; the bound asserted is memory, not time.
"""

from __future__ import annotations

import pytest

from tests.hostile import HostileServer, run_measured

GROWTH_MB = 200

LIST = """
from spokesync.config import Config
from spokesync.connectors.google.client import GoogleClient
client = GoogleClient(None, Config(google_api_root="{url}/"), retry_budget_s=0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    client.execute(client.service.calendarList().list(), "the calendar list")
    error = None
except Exception as exc:
    error = str(exc)
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["bomb", "huge", "announced"])
def test_a_hostile_calendar_endpoint_cannot_exhaust_memory(mode: str) -> None:
    server = HostileServer(mode)
    try:
        result = run_measured(LIST.format(url=server.url))
    finally:
        server.close()
    assert result["error"] and "Google (127.0.0.1)" in result["error"], result
    assert "larger than the 32 MB spokesync reads" in result["error"]
    if mode == "announced":
        assert "announced a 300 MB answer" in result["error"]
    assert result["peak"] - result["before"] < GROWTH_MB, result
