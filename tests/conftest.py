"""Suite-wide settings.

In CI (the CI environment variable set) Hypothesis runs derandomized: the
same examples every time, so a red build always reproduces. Locally each run
explores new examples.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Every answer of the local EWS server is validated against Microsoft's schema in the tests
# (element order included); a violation is an HTTP 500 naming it, so the test that caused it fails.
from spokesync.sandbox.ews import EwsServer  # noqa: E402

EwsServer.check_responses_default = True


def pytest_addoption(parser):  # type: ignore[no-untyped-def]
    parser.addoption("--live", action="store_true", default=False,
                     help="also run the self-test against real accounts (tests/live; see docs/DEVELOPING.md)")
