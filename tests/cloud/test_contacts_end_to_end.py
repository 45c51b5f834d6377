"""Contacts in the cloud deployment, end to end, on one machine.

A contacts hub with three spokes — Google Contacts (People API, one contact
group), an Exchange public contacts folder (EWS) and a Microsoft 365 contacts
folder (Graph) — set up through the setup API and synced by the functions
(functions-framework processes) with the cloud backends: the Firestore
emulator, the in-repository Secret Manager server and gcloud-tasks-emulator.
Every spoke is two-way. The same person already on two sides is matched, not
copied; edits and deletions travel to every side; nothing is duplicated.
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from spokesync.config import Config
from spokesync.sandbox.ews import EwsServer
from spokesync.sandbox.google_calendar import GoogleCalendarSandbox
from spokesync.sandbox.google_calendar import Running as CalendarRunning
from spokesync.sandbox.google_calendar import serve as serve_calendar
from spokesync.sandbox.google_people import GooglePeopleSandbox
from spokesync.sandbox.google_people import Running as PeopleRunning
from spokesync.sandbox.google_people import serve as serve_people
from spokesync.sandbox.graph import GraphServer
from spokesync.sandbox.secret_manager import SecretManagerServer
from spokesync.stores.firestore import FirestoreHubStore, from_config
from tests.cloud.conftest import PROJECT, FirestoreEmulator, FunctionServer, TasksEmulator, cloud_env
from tests.helpers import free_port, wait_for

ADMIN = "admin-token-contacts"
TASK = "task-token-contacts"
EWS_PASSWORD = "Pf-Secret-43"
GRAPH_SECRET = "Graph~Secret.8"
USER = "owner@example.com"
SHARED = "shared@contoso.com"
CLIENT_ID, CLIENT_SECRET = "spokesync-contacts", "client-secret-contacts"
GROUP = "Company contacts"

pytestmark = pytest.mark.slow


@dataclass
class Deployment:
    setup: FunctionServer
    sync: FunctionServer
    store: FirestoreHubStore
    google: CalendarRunning  # the sign-in (one Google sign-in for both APIs, as with Google)
    people: PeopleRunning
    ews: EwsServer
    ews_folder: Any
    graph: GraphServer
    graph_folder: Any
    graph_tenant: Any
    graph_app: Any

    def api(self, method: str, path: str, body: Any = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {ADMIN}", "X-Spokesync-Client": "tests"}
        return requests.request(method, self.setup.url + "api" + path, json=body, headers=headers, timeout=60)

    # what each side holds, as a person would read it there
    def google_people(self) -> dict[str, dict[str, Any]]:
        book = self.people.sandbox.books[USER]
        group = next(r for r, g in book.groups.items() if g.name == GROUP and not g.deleted)
        out = {}
        for person in self.people.sandbox.live_people(USER):
            if any(m.get("contactGroupMembership", {}).get("contactGroupResourceName") == group
                   for m in person.get("memberships", ())):
                out[person["names"][0].get("displayName") or person["names"][0].get("unstructuredName", "")] = person
        return out

    def exchange_people(self) -> dict[str, Any]:
        return {i.text("DisplayName") or "": i for i in self.ews.items(self.ews_folder) if i.tag == "Contact"}

    def graph_people(self) -> dict[str, Any]:
        return {c.props.get("displayName", ""): c for c in self.graph.contacts_in(self.graph_folder)}

    def names(self) -> tuple[list[str], list[str], list[str]]:
        return sorted(self.google_people()), sorted(self.exchange_people()), sorted(self.graph_people())

    def counts(self) -> tuple[int, int, int]:
        """Entries on each side, duplicates included (the names above would hide them)."""
        book = self.people.sandbox.books[USER]
        group = next(r for r, g in book.groups.items() if g.name == GROUP and not g.deleted)
        google = sum(1 for p in self.people.sandbox.live_people(USER)
                     if any(m.get("contactGroupMembership", {}).get("contactGroupResourceName") == group
                            for m in p.get("memberships", ())))
        exchange = sum(1 for i in self.ews.items(self.ews_folder) if i.tag == "Contact")
        return google, exchange, len(self.graph.contacts_in(self.graph_folder))


@pytest.fixture(scope="module")
def deployment(firestore_emulator: FirestoreEmulator, secret_manager_server: SecretManagerServer,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    log_dir: Path = tmp_path_factory.mktemp("contacts-function-logs")
    google = serve_calendar(0, GoogleCalendarSandbox())
    google.sandbox.add_client(CLIENT_ID, CLIENT_SECRET)
    google.sandbox.add_user(USER)
    people = serve_people(0, GooglePeopleSandbox(oauth=google.sandbox, check_responses=True))
    people.sandbox.add_user(USER)
    group = people.sandbox.user_create_group(USER, GROUP)
    ews = EwsServer(users={"sync": EWS_PASSWORD}).start()
    ews_folder = ews.public_folder("Company contacts", folder_class="IPF.Contact")
    graph = GraphServer().start()
    tenant = graph.add_tenant("contoso.onmicrosoft.com")
    app = graph.add_app(tenant, secret=GRAPH_SECRET, roles=("Contacts.ReadWrite",))
    mailbox = graph.add_mailbox(SHARED, "Shared contacts")
    graph_folder = graph.add_contact_folder(mailbox, "Company contacts")
    # what each side holds before spokesync: Ada is in Google and in Exchange already (one person)
    people.sandbox.user_create(USER, {"names": [{"givenName": "Ada", "familyName": "Lovelace",
                                                  "unstructuredName": "Ada Lovelace"}],
                                      "emailAddresses": [{"value": "ada@example.com", "type": "work"}]}, [group])
    ews.user_item(ews_folder, "<t:Contact><t:DisplayName>Ada Lovelace</t:DisplayName>"
                              "<t:CompanyName>Analytical Engines</t:CompanyName><t:EmailAddresses>"
                              '<t:Entry Key="EmailAddress1">ADA@example.com</t:Entry></t:EmailAddresses></t:Contact>')
    ews.user_item(ews_folder, "<t:Contact><t:DisplayName>Grace Hopper</t:DisplayName><t:EmailAddresses>"
                              '<t:Entry Key="EmailAddress1">grace@example.com</t:Entry></t:EmailAddresses></t:Contact>')
    graph.user_create_contact(graph_folder, {"displayName": "Reception", "businessPhones": ["+1 555 0100"],
                                             "companyName": "Example Corp"})
    graph.user_create_contact(graph_folder, {"displayName": "Alan Turing",
                                             "emailAddresses": [{"address": "alan@example.com"}]})
    queue = f"projects/{PROJECT}/locations/us-central1/queues/contacts"
    tasks = TasksEmulator(queue, max_retries=3).start()
    prefix = f"c{uuid.uuid4().hex[:6]}_"
    ports = {name: free_port() for name in ("setup", "sync")}
    env = cloud_env(
        firestore_emulator, secret_manager_server.endpoint, tasks.endpoint, queue, prefix, ADMIN, TASK,
        tasks_coalesce_s="0.5",
        sync_url=f"http://127.0.0.1:{ports['sync']}/",
        public_url=f"http://127.0.0.1:{ports['setup']}/",
        run_budget_s="60",
        google_api_root=google.url,
        google_people_api_root=people.url,
        google_oauth_auth_uri=google.auth_uri,
        google_oauth_token_uri=google.token_uri,
        google_client_id=CLIENT_ID,
        google_client_secret=CLIENT_SECRET,
        google_backoff_s="0.05",
        exchange_allow_http="true",
        exchange_allowed_cidrs="127.0.0.0/8",
        graph_authority_host=graph.authority_host,
        graph_api_root=graph.graph_url,
        graph_ca_bundle=graph.ca_path,
        graph_retry_budget_s="20",
    )
    setup = FunctionServer("setup", "functions/setup/main.py", env, log_dir / "setup.log", ports["setup"])
    sync = FunctionServer("sync_spoke", "functions/sync_spoke/main.py", env, log_dir / "sync.log", ports["sync"])
    try:
        setup.start()
        sync.start()
        store = from_config(Config(backend="cloud", gcp_project=PROJECT, firestore_prefix=prefix))
        yield Deployment(setup, sync, store, google, people, ews, ews_folder, graph, graph_folder, tenant, app)
    finally:
        setup.stop()
        sync.stop()
        tasks.stop()
        ews.stop()
        graph.stop()
        people.close()
        google.close()


@pytest.fixture(scope="module")
def hub(deployment: Deployment) -> dict[str, Any]:
    d = deployment
    # Google: the consent flow for contacts (the People API scope), as the wizard runs it
    redirect = d.setup.url + "oauth/callback"
    start = d.api("POST", "/credentials/google/oauth/start",
                  {"redirect_uri": redirect, "login_hint": USER, "object_type": "contacts"})
    assert start.status_code == 200, start.text
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(start.json()["url"]).query))
    assert "https://www.googleapis.com/auth/contacts" in params["scope"].split()
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(d.google.sandbox.authorize(params)).query))["code"]
    resp = d.api("POST", "/credentials/google/oauth/finish", {"code": code, "redirect_uri": redirect,
                                                              "label": "Owner", "account": USER})
    assert resp.status_code == 201, resp.text
    google_cred = resp.json()["id"]
    resp = d.api("POST", "/credentials/exchange", {
        "label": "Public folders", "password": EWS_PASSWORD, "require_public_folders": True,
        "settings": {"ews_url": d.ews.url, "username": "EXAMPLE\\sync", "version": "2016", "auth_type": "NTLM",
                     "mailbox": "shared@example.com"}})
    assert resp.status_code == 201, resp.text
    exchange_cred = resp.json()["id"]
    resp = d.api("POST", "/credentials/graph", {
        "label": "Microsoft 365", "settings": {"tenant": d.graph_tenant.id, "client_id": d.graph_app.client_id},
        "secret": GRAPH_SECRET, "mailbox": SHARED, "object_type": "contacts"})
    assert resp.status_code == 201, resp.text
    graph_cred = resp.json()["id"]
    # the folder browsers of a contacts hub
    folders = d.api("POST", f"/credentials/{exchange_cred}/folders", {"public": True}).json()["folders"]
    ews_folder = next(f for f in folders if f["name"] == "Company contacts")
    assert ews_folder["kind"] == "contacts"
    picked = d.api("POST", f"/credentials/{graph_cred}/graph-contact-folders", {"mailbox": SHARED})
    assert picked.status_code == 200, picked.text
    graph_folder = next(f for f in picked.json()["folders"] if f["name"] == "Company contacts")

    resp = d.api("POST", "/hubs", {"name": "Company contacts", "object_type": "contacts"})
    assert resp.status_code == 201, resp.text
    hub_id = resp.json()["id"]
    spokes = {}
    for key, body in {
        "google": {"name": "Contacts (Google)", "kind": "google_contacts", "credential_id": google_cred,
                   "address": {"group": GROUP}},
        "exchange": {"name": "Contacts (public folder)", "kind": "exchange_contacts", "credential_id": exchange_cred,
                     "address": {"folder_id": ews_folder["id"], "public": True}},
        "graph": {"name": "Contacts (Microsoft 365)", "kind": "graph_contacts", "credential_id": graph_cred,
                  "address": {"mailbox": SHARED, "folder_id": graph_folder["id"]}},
    }.items():
        resp = d.api("POST", f"/hubs/{hub_id}/spokes", body)
        assert resp.status_code == 201, resp.text
        spokes[key] = resp.json()["id"]
        resp = d.api("PATCH", f"/spokes/{spokes[key]}/options", {"direction": "two_way"})
        assert resp.status_code == 200 and resp.json()["two_way"], resp.text
    # a spoke of the other object type is refused in words
    wrong = d.api("POST", f"/hubs/{hub_id}/spokes", {"name": "A calendar", "kind": "exchange",
                                                      "credential_id": exchange_cred,
                                                      "address": {"folder_id": ews_folder["id"], "public": True}})
    assert wrong.status_code in (400, 409, 422) and wrong.json()["code"] == "object_type_mismatch", wrong.text
    return {"id": hub_id, **spokes}


def _sync_all(d: Deployment, hub: dict[str, Any]) -> None:
    for key in ("google", "exchange", "graph"):
        assert d.api("POST", f"/spokes/{hub[key]}/sync").status_code == 202


def _settled(d: Deployment, hub: dict[str, Any]) -> bool:
    runs = d.api("GET", f"/hubs/{hub['id']}/runs").json()["runs"]
    spokes = d.api("GET", f"/hubs/{hub['id']}").json()["spokes"]
    return bool(runs) and not any(s["running"] for s in spokes)


EVERYONE = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Reception"]


def test_every_side_gets_every_person_once(deployment: Deployment, hub: dict[str, Any]) -> None:
    d = deployment
    _sync_all(d, hub)
    wait_for(lambda: d.names() == (EVERYONE, EVERYONE, EVERYONE), timeout=120, what="three sides to converge")
    wait_for(lambda: _settled(d, hub), what="the runs to settle")
    _sync_all(d, hub)  # a second round (the later spokes' items reach the first ones)
    wait_for(lambda: _settled(d, hub), what="the second round to settle")
    assert d.counts() == (4, 4, 4), "a person was duplicated somewhere"
    status = d.api("GET", f"/hubs/{hub['id']}").json()
    assert status["items"] == 4  # Ada, in Google and Exchange before, is one hub item
    # what one side knew about Ada reached the others: Exchange's company, Google's given name
    assert d.graph_people()["Ada Lovelace"].props.get("companyName") == "Analytical Engines"
    assert d.graph_people()["Ada Lovelace"].props.get("givenName") == "Ada"


def test_edits_and_deletions_reach_every_side(deployment: Deployment, hub: dict[str, Any]) -> None:
    d = deployment
    # Google: Grace gets a job title; Microsoft 365: Reception is deleted
    grace = d.google_people()["Grace Hopper"]
    d.people.sandbox.user_update(USER, grace["resourceName"], {"organizations": [{"title": "Rear Admiral"}]})
    reception = d.graph_people()["Reception"]
    d.graph.user_delete_contact(reception.id)
    _sync_all(d, hub)
    rest = ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    wait_for(lambda: d.names() == (rest, rest, rest)
             and d.exchange_people()["Grace Hopper"].text("JobTitle") == "Rear Admiral"
             and d.graph_people()["Grace Hopper"].props.get("jobTitle") == "Rear Admiral",
             timeout=120, what="the edit and the deletion to reach every side")
    wait_for(lambda: _settled(d, hub), what="the runs to settle")
    assert d.counts() == (3, 3, 3)
    history = d.api("GET", f"/hubs/{hub['id']}/runs").json()["runs"]
    assert all(r["status"] in ("ok", "skipped") or r["status"].endswith("skipped") for r in history), history
