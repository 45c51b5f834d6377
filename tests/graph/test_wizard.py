"""The wizard's Microsoft 365 source, over HTTP against the local server (demo mode) with the local
Graph server behind it: app registration steps on the page, validation with specific messages
(nothing saved when refused), the calendar picker, a Graph spoke created; no secret on any page."""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.graph.conftest import SECRET, SHARED
from tests.ui.conftest import ADMIN_TOKEN, LocalSpokesync, start_local

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSpokesync]:
    running = start_local(Path(tmp_path_factory.mktemp("spokesync-m365")), graph_authority_host=graph.authority_host,
                          graph_api_root=graph.graph_url, graph_ca_bundle=graph.ca_path)
    yield running
    running.close()


def csrf_of(text: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert match
    return match.group(1)


def test_a_microsoft_365_spoke_through_the_wizard(server: LocalSpokesync, settings, shared_mailbox) -> None:
    s = requests.Session()
    token = csrf_of(s.get(server.url + "/setup/login").text)
    s.post(server.url + "/setup/login", data={"csrf_token": token, "token": ADMIN_TOKEN})
    pages: list[str] = []
    source = s.get(server.url + "/setup/new/source").text
    assert "Microsoft 365 (Exchange Online)" in source and 'value="m365"' in source
    creds = s.get(server.url + "/setup/new/credentials?source=m365").text
    pages.append(creds)
    assert "Grant admin consent" in html.unescape(creds) and "Calendars.ReadWrite" in creds
    assert "New-ApplicationAccessPolicy" in creds
    form = {"csrf_token": csrf_of(creds), "source": "m365", "label": "M365", "tenant": settings.tenant,
            "client_id": settings.client_id, "auth": "secret", "mailbox": SHARED, "mailbox_kind": "user"}
    wrong = s.post(server.url + "/setup/new/credentials/graph", data={**form, "secret": "Wrong-Secret-3"})
    pages.append(wrong.text)
    assert wrong.status_code == 422 and "wrong client secret" in wrong.text
    assert server.ctx.store.list_credentials() == [] or all(c.kind != "graph" for c in server.ctx.store.list_credentials())
    outside = s.post(server.url + "/setup/new/credentials/graph", data={**form, "secret": SECRET,
                                                                       "mailbox": "nobody@contoso.com"})
    pages.append(outside.text)
    assert outside.status_code == 422 and "does not exist in this tenant" in outside.text
    ok = s.post(server.url + "/setup/new/credentials/graph", data={**form, "secret": SECRET})
    pages.append(ok.text)
    assert ok.status_code == 200 and "Connection validated" in ok.text
    [cred] = [c for c in server.ctx.store.list_credentials() if c.kind == "graph"]
    target = s.get(server.url + "/setup/new/target?" + urllib.parse.urlencode(
        {"source": "m365", "credential": cred.id, "mailbox": SHARED, "mailbox_kind": "user"})).text
    pages.append(target)
    assert 'id="calendar-picker"' in target
    calendar_id = re.search(r'name="calendar_id" value="([^"]+)"', target).group(1)  # type: ignore[union-attr]
    create = s.get(server.url + "/setup/new/create?" + urllib.parse.urlencode(
        {"source": "m365", "credential": cred.id, "mailbox": SHARED, "mailbox_kind": "user",
         "calendar_id": calendar_id})).text
    pages.append(create)
    done = s.post(server.url + "/setup/new/create", data={
        "csrf_token": csrf_of(create), "source": "m365", "credential": cred.id, "mailbox": SHARED,
        "mailbox_kind": "user", "calendar_id": calendar_id, "name": "Shared calendar", "hub_id": "__new__",
        "hub_name": "Team"})
    pages.append(done.text)
    assert done.status_code == 200 and "created" in done.text
    [spoke] = [sp for sp in server.ctx.store.list_spokes() if sp.kind == "graph"]
    assert spoke.address == {"kind": "user", "mailbox": SHARED, "calendar_id": calendar_id}
    assert not any(SECRET in p for p in pages)


def test_the_ews_path_for_exchange_online_points_to_graph(server: LocalSpokesync) -> None:
    s = requests.Session()
    token = csrf_of(s.get(server.url + "/setup/login").text)
    s.post(server.url + "/setup/login", data={"csrf_token": token, "token": ADMIN_TOKEN})
    text = html.unescape(s.get(server.url + "/setup/new/credentials?source=exchange_public").text)
    assert "1 April 2027" in text and "EWSAllowedAppIDs" in text and "source=m365" in text
