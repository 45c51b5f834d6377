"""Fixtures: a real local EWS server on 127.0.0.1 and connectors talking to it through exchangelib."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spokesync.config import Config
from spokesync.connectors.exchange import connector_for_folder
from spokesync.connectors.exchange.access import ExchangeSettings
from spokesync.connectors.exchange.connector import ExchangeConnector
from spokesync.sandbox.ews import EwsServer

PASSWORD = "Secret-1"


def local_config(**kw) -> Config:
    """The SSRF guard refuses 127.0.0.1 and http unless the administrator allows them: tests do."""
    return Config(exchange_allow_http=True, exchange_allowed_cidrs=("127.0.0.0/8",), run_budget_s=20.0, **kw)


@pytest.fixture(scope="session")
def ews() -> Iterator[EwsServer]:
    server = EwsServer(users={"sync": PASSWORD}).start()
    yield server
    server.stop()


@pytest.fixture
def settings(ews: EwsServer) -> ExchangeSettings:
    return ExchangeSettings(ews_url=ews.url, username="EXAMPLE\\sync", version="2016", auth_type="NTLM",
                            mailbox="shared@example.com")


@pytest.fixture
def public_connector(ews: EwsServer, settings: ExchangeSettings, request: pytest.FixtureRequest) -> ExchangeConnector:
    ews.clear_faults()
    folder = ews.public_folder(f"pf-{request.node.name}")
    return connector_for_folder(settings, PASSWORD, local_config(), folder.id, public=True, batch_size=4)


@pytest.fixture
def mailbox_connector(ews: EwsServer, settings: ExchangeSettings, request: pytest.FixtureRequest) -> ExchangeConnector:
    ews.clear_faults()
    folder = ews.mailbox_folder(f"mb-{request.node.name}")
    return connector_for_folder(settings, PASSWORD, local_config(), folder.id, public=False, batch_size=4)
