"""Fixtures: a local Microsoft Graph server (https, its own CA) and connectors talking to it through
the real msal and requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from spokesync.config import Config
from spokesync.connectors.graph import GraphSettings, credential_for
from spokesync.connectors.graph.client import GraphClient
from spokesync.connectors.graph.connector import GraphConnector, Target
from spokesync.connectors.graph.contacts import ContactsTarget, GraphContactsConnector
from spokesync.sandbox.graph import GraphServer
from spokesync.sandbox.graph.contacts import ContactFolder
from spokesync.sandbox.graph.identity import App, Tenant

SECRET = "Graph~Secret.7"
SHARED = "shared@contoso.com"


def graph_config(server: GraphServer, **kw) -> Config:
    return Config(graph_authority_host=server.authority_host, graph_api_root=server.graph_url,
                  graph_ca_bundle=server.ca_path, graph_retry_budget_s=kw.pop("graph_retry_budget_s", 20.0), **kw)


@pytest.fixture(scope="session")
def graph() -> Iterator[GraphServer]:
    server = GraphServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tenant(graph: GraphServer) -> Tenant:
    return graph.add_tenant("contoso.onmicrosoft.com")


@pytest.fixture(scope="session")
def app(graph: GraphServer, tenant: Tenant) -> App:
    return graph.add_app(tenant, secret=SECRET, roles=("Calendars.ReadWrite", "Group.ReadWrite.All"))


@pytest.fixture(scope="session")
def shared_mailbox(graph: GraphServer):
    return graph.add_mailbox(SHARED, "Shared calendar")


@pytest.fixture
def settings(tenant: Tenant, app: App) -> GraphSettings:
    return GraphSettings(tenant.id, app.client_id, "secret")


@pytest.fixture
def make_connector(graph: GraphServer, settings: GraphSettings) -> Callable[..., GraphConnector]:
    def make(target: Target, secret: str = SECRET, **kw) -> GraphConnector:
        client = GraphClient(credential_for(settings, secret), graph_config(graph), target.mailbox)
        return GraphConnector(client, target, **kw)
    return make


@pytest.fixture
def new_calendar(graph: GraphServer, shared_mailbox, request: pytest.FixtureRequest):
    graph.throttles.clear()
    return graph.add_calendar(shared_mailbox, f"cal-{request.node.name}")


@pytest.fixture
def connector(make_connector, new_calendar) -> GraphConnector:
    return make_connector(Target("user", SHARED, new_calendar.id))


@pytest.fixture(autouse=True)
def _responses_match_the_published_schema(graph: GraphServer) -> Iterator[None]:
    """Every answer the sandbox gave during the test matched Graph's published description."""
    graph.response_violations.clear()
    yield
    assert graph.response_violations == []


# ------------------------------------------------------------------ contacts


@pytest.fixture(scope="session")
def contacts_app(graph: GraphServer, tenant: Tenant) -> App:
    return graph.add_app(tenant, secret=SECRET, roles=("Contacts.ReadWrite",))


@pytest.fixture
def make_contacts_connector(graph: GraphServer, tenant: Tenant,
                            contacts_app: App) -> Callable[..., GraphContactsConnector]:
    def make(target: ContactsTarget, secret: str = SECRET) -> GraphContactsConnector:
        settings = GraphSettings(tenant.id, contacts_app.client_id, "secret")
        client = GraphClient(credential_for(settings, secret), graph_config(graph), target.mailbox)
        return GraphContactsConnector(client, target)
    return make


@pytest.fixture
def contact_folder(graph: GraphServer, shared_mailbox, request: pytest.FixtureRequest) -> ContactFolder:
    graph.throttles.clear()
    return graph.add_contact_folder(shared_mailbox, f"contacts-{request.node.name}")


@pytest.fixture
def contacts_connector(make_contacts_connector, contact_folder: ContactFolder) -> GraphContactsConnector:
    return make_contacts_connector(ContactsTarget(SHARED, contact_folder.id))
