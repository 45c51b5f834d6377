"""Every form marks the field a refusal is about (aria-invalid, described by the message,
focused) and keeps what the person typed (never a secret): Google service account, Microsoft
365 app, the hub and spoke names, the sync options. The messages are plain words."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from spokesync.demo import DEMO_GRAPH_CLIENT_ID, DEMO_GRAPH_MAILBOX, DEMO_GRAPH_TENANT
from spokesync.service import hubs
from tests.ui.conftest import ADMIN_TOKEN, LocalSpokesync, start_local

LEAKS = ("Traceback", "Expecting value", "JSONDecodeError", "(option ", "must be in (0", "Errno", "Error(")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSpokesync]:
    running = start_local(Path(tmp_path_factory.mktemp("spokesync-fields")))
    yield running
    running.close()


class Browser:
    """A signed-in session posting forms as the pages do (same-origin, with the CSRF token)."""

    def __init__(self, server: LocalSpokesync) -> None:
        self.url = server.url
        self.s = requests.Session()
        login = self.s.get(self.url + "/setup/login").text
        found = re.search(r'name="csrf_token" value="([^"]+)"', login)
        assert found
        self.csrf = found.group(1)
        self.s.post(self.url + "/setup/login", data={"csrf_token": self.csrf, "token": ADMIN_TOKEN})

    def post(self, path: str, **form: str) -> Page:
        resp = self.s.post(self.url + path, data={"csrf_token": self.csrf, **form}, headers={"Origin": self.url},
                           timeout=60)
        return Page(resp.status_code, resp.text)


class Page:
    def __init__(self, status_code: int, html: str) -> None:
        self.status_code = status_code
        self.text = html.replace("&#39;", "'").replace("&#34;", '"').replace("&amp;", "&")


def tag(html: str, name: str, element: str = "input") -> str:
    found = re.search(rf'<{element}\b[^>]*\bname="{name}"[^>]*>', html)
    assert found, f"no {element} {name}"
    return found.group(0)


def form_of(html: str, action: str) -> str:
    start = html.index(f'action="{action}"')
    return html[start:html.index("</form>", start)]


def marked(html: str, name: str, element: str = "input") -> bool:
    return 'aria-invalid="true"' in tag(html, name, element)


def only_marked(html: str, name: str) -> None:
    assert html.count('aria-invalid="true"') == 1, "exactly one field is marked"
    assert 'autofocus' in re.search(rf'<(input|textarea|select)\b[^>]*\bname="{name}"[^>]*>', html).group(0)  # type: ignore[union-attr]
    for leak in LEAKS:
        assert leak not in html, leak


@pytest.fixture(scope="module")
def browser(server: LocalSpokesync) -> Browser:
    return Browser(server)


def test_google_service_account_form(browser: Browser) -> None:
    page = browser.post("/setup/new/credentials/google/service-account", source="google", label="Workspace",
                        key="this is not json", subject="boss@example.com")
    assert page.status_code == 400
    assert "The key was not accepted: This is not a service account's JSON key." in page.text
    assert "Keys → Add key → JSON" in page.text
    assert marked(page.text, "key", "textarea") and 'aria-describedby="sa-error"' in tag(page.text, "key", "textarea")
    only_marked(page.text, "key")
    sa = form_of(page.text, "/setup/new/credentials/google/service-account")
    assert 'value="Workspace"' in tag(sa, "label") and 'value="boss@example.com"' in tag(sa, "subject")

    page = browser.post("/setup/new/credentials/google/service-account", source="google", label="Workspace",
                        key='{"type": "service_account", "private_key": "x", "client_email": "a@b.iam"}',
                        subject="not an address")
    assert page.status_code == 400 and "“Act as” must be the e-mail address of a Workspace user" in page.text
    assert marked(page.text, "subject") and 'value="not an address"' in tag(page.text, "subject")
    only_marked(page.text, "subject")


def test_microsoft_365_form(browser: Browser) -> None:
    form = {"source": "m365", "label": "M365", "tenant": DEMO_GRAPH_TENANT, "client_id": DEMO_GRAPH_CLIENT_ID,
            "auth": "secret", "mailbox": DEMO_GRAPH_MAILBOX, "mailbox_kind": "user"}
    page = browser.post("/setup/new/credentials/graph", **form, secret="")
    assert page.status_code == 400 and "Enter the client secret (its Value, not its Secret ID)." in page.text
    assert marked(page.text, "secret")
    only_marked(page.text, "secret")
    assert f'value="{DEMO_GRAPH_TENANT}"' in tag(page.text, "tenant")
    assert f'value="{DEMO_GRAPH_CLIENT_ID}"' in tag(page.text, "client_id")

    page = browser.post("/setup/new/credentials/graph", **form, secret="wrong secret")
    assert page.status_code == 422 and "AADSTS7000215" in page.text and "wrong client secret" in page.text
    assert marked(page.text, "secret") and 'value=' not in tag(page.text, "secret")  # a secret is never sent back
    only_marked(page.text, "secret")

    page = browser.post("/setup/new/credentials/graph", **{**form, "client_id": ""}, secret="s")
    assert page.status_code == 400 and "Enter the Application (client) ID" in page.text
    only_marked(page.text, "client_id")


def test_hub_and_spoke_names(server: LocalSpokesync, browser: Browser) -> None:
    hub = hubs.create_hub(server.ctx, "Taken")
    hubs.add_spoke(server.ctx, hub.id, "Board", "memory", {"calendar": "board"})
    create = {"source": "exchange_public", "credential": "", "folder_id": "f1", "name": "Rooms"}
    page = browser.post("/setup/new/create", **create, hub_id="__new__", hub_name="Taken")
    assert page.status_code == 400 and "A hub named 'Taken' already exists: choose another name." in page.text
    assert marked(page.text, "hub_name") and 'value="Taken"' in tag(page.text, "hub_name")
    only_marked(page.text, "hub_name")
    assert 'value="Rooms"' in tag(page.text, "name")

    page = browser.post("/setup/new/create", **{**create, "name": "board"}, hub_id=hub.id)
    assert page.status_code == 400 and "already has a spoke named 'Board': choose another name" in page.text
    assert marked(page.text, "name") and 'value="board"' in tag(page.text, "name")
    only_marked(page.text, "name")


def test_the_options_form(server: LocalSpokesync, browser: Browser) -> None:
    hub = hubs.create_hub(server.ctx, "Options")
    spoke = hubs.add_spoke(server.ctx, hub.id, "Desk", "memory", {"calendar": "desk"})
    path = f"/setup/spokes/{spoke.id}/options"
    form = {"max_delete_percent": "25", "max_delete_count": "10", "deletion_window_h": "24", "poll_minutes": "5",
            "deletions": "propagate", "conflict_policy": "latest", "privacy_mode": "as_is"}

    page = browser.post(path, **form, days_past="soon", days_future="30", two_way="1", exclude_all_day="1")
    assert page.status_code == 400
    assert "checked" in tag(page.text, "two_way") and "checked" in tag(page.text, "exclude_all_day")  # kept as ticked
    assert "checked" not in tag(page.text, "exclude_private")
    options_form = re.search(r'<form [^>]*id="options-form"[^>]*>', page.text)
    assert options_form and "to-hub-only" not in options_form.group(0)  # the two-way options stay shown
    assert "“soon” is not a whole number: Days in the past takes a whole number." in page.text
    assert marked(page.text, "days_past") and 'value="soon"' in tag(page.text, "days_past")
    assert 'value="30"' in tag(page.text, "days_future")  # what was typed is kept
    only_marked(page.text, "days_past")
    assert "<details open>" in page.text  # the advanced settings are open to show the field

    page = browser.post(path, **{**form, "max_delete_percent": "0"}, days_future="30")
    assert page.status_code == 400 and "The share of items must be more than 0 % and at most 100 %." in page.text
    assert marked(page.text, "max_delete_percent") and 'value="0"' in tag(page.text, "max_delete_percent")
    assert 'value="30"' in tag(page.text, "days_future")
    only_marked(page.text, "max_delete_percent")

    page = browser.post(path, **{**form, "poll_minutes": "0.1"})
    assert page.status_code == 400 and "Checks for changes must be at least 30 seconds (half a minute) apart." \
        in page.text
    only_marked(page.text, "poll_minutes")
    assert hubs.get_spoke(server.ctx, spoke.id).options.max_delete_share == 0.25  # nothing was saved
