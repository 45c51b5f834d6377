"""schemathesis against the setup API's own OpenAPI description: no server errors.

The description is the one the API serves at /api/openapi.json
(`setup_api.openapi()`). Requests go over HTTP to the local server (the setup
function mounted by the one-machine app) with the demo's Google and EWS
servers behind it, so credential, picker and folder-browser operations reach
real (local) services. Every generated request, valid or not, must get an
answer below 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from spokesync.service import setup_api
from tests.ui.conftest import ADMIN_TOKEN, LocalSpokesync, start_local

schema = schemathesis.openapi.from_dict(setup_api.openapi())
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Spokesync-Client": "schemathesis"}


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSpokesync]:
    running = start_local(Path(tmp_path_factory.mktemp("spokesync-api")))
    # something to find: a hub with an in-memory spoke, so ids in paths can hit real objects too
    hub = requests.post(running.url + "/api/hubs", json={"name": "Fuzz"}, headers=AUTH, timeout=10).json()
    requests.post(running.url + f"/api/hubs/{hub['id']}/spokes", headers=AUTH, timeout=10,
                  json={"name": "M", "kind": "memory", "address": {"calendar": "fuzz"}})
    yield running
    running.close()


def test_the_served_description_is_the_one_tested(api_server: LocalSpokesync) -> None:
    resp = requests.get(api_server.url + "/api/openapi.json", headers=AUTH, timeout=10)
    assert resp.status_code == 200 and resp.json() == setup_api.openapi()
    assert requests.get(api_server.url + "/api/openapi.json", timeout=10).status_code == 401


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_setup_api_fail(case: schemathesis.Case, api_server: LocalSpokesync) -> None:
    case.call_and_validate(base_url=api_server.url, headers=AUTH, checks=[not_a_server_error], timeout=30)
