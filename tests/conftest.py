"""Suite-wide settings.

Hypothesis runs derandomized everywhere (CI, ./test.sh, a plain pytest): the
same examples every time, so a red build always reproduces and nothing is
flaky. SPOKESYNC_EXPLORE=1 explores new random examples instead (run it when
changing the engine or a connector, and pin what it finds as a test).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile("explore" if os.environ.get("SPOKESYNC_EXPLORE") else "ci")

# Every answer of the local EWS server is validated against Microsoft's schema in the tests
# (element order included); a violation is an HTTP 500 naming it, so the test that caused it fails.
from spokesync.sandbox.ews import EwsServer  # noqa: E402

EwsServer.check_responses_default = True


def pytest_addoption(parser):  # type: ignore[no-untyped-def]
    parser.addoption("--live", action="store_true", default=False,
                     help="also run the self-test against real accounts (tests/live; see docs/DEVELOPING.md)")


from spokesync.engine import runner as _runner  # noqa: E402

_HUB_PAGE = _runner.HUB_PAGE


@pytest.fixture(autouse=True)
def _hub_page_size_restored():  # type: ignore[no-untyped-def]
    """State machines read the hub in small pages (`runner.HUB_PAGE`); every test after them
    runs with the default again, whatever a machine left behind."""
    yield
    _runner.HUB_PAGE = _HUB_PAGE
