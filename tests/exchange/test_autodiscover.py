"""Autodiscover only when asked.

Off (the default): validation, browsing and a sync send no Autodiscover request (counted on the
local server) and exchangelib's Autodiscovery is never even constructed.

On: the local server answers SOAP Autodiscover (GetUserSettings) as exchangelib asks for it.
exchangelib's first discovery for a domain tries https://<domain>/autodiscover/..., then
https://autodiscover.<domain>/..., http://autodiscover.<domain>/ and a DNS SRV record, always on
ports 443/80 and with dnspython querying the system's name servers directly; pointing that at
127.0.0.1 needs a DNS server and privileged ports, so these tests enter through exchangelib's
own per-domain cache of the Autodiscover endpoint (the path every later discovery takes) and
the first-contact steps stay untested (decision record)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from exchangelib import Configuration, Credentials
from exchangelib.autodiscover import AutodiscoverProtocol, autodiscover_cache
from exchangelib.errors import ErrorNonExistentMailbox

from spokesync.config import Config
from spokesync.connectors import exchange
from spokesync.connectors.exchange import guard
from spokesync.connectors.exchange.access import ExchangeSettings
from spokesync.model.event import Event
from spokesync.ports import ConnectorError, NewItem
from spokesync.sandbox.ews import EwsServer
from tests.exchange.conftest import PASSWORD, local_config

USER = "EXAMPLE\\sync"


def test_autodiscover_is_off_unless_the_credential_asks(ews: EwsServer, settings: ExchangeSettings,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import dns.resolver
    import exchangelib.account

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("autodiscover was attempted")

    monkeypatch.setattr(exchangelib.account, "Autodiscovery", forbidden)
    monkeypatch.setattr(dns.resolver.Resolver, "resolve", forbidden)
    parsed = ExchangeSettings.from_dict({"ews_url": ews.url, "username": USER, "mailbox": "shared@example.com"})
    assert parsed.autodiscover is False and "autodiscover" not in parsed.to_dict()
    ews.reset_counts()
    exchange.validate(parsed, PASSWORD, local_config())
    exchange.browse(parsed, PASSWORD, local_config())
    connector = exchange.connector_for_folder(parsed, PASSWORD, local_config(), ews.public_folder("ad-off").id,
                                              public=True)
    connector.create([NewItem("ad-off", Event(title="x", start=datetime(2026, 3, 2, 9, tzinfo=UTC),
                                              end=datetime(2026, 3, 2, 10, tzinfo=UTC)))])
    connector.changes(None)
    assert ews.paths["ews"] > 0 and ews.paths["autodiscover"] == 0 and ews.paths["other"] == 0


def test_without_autodiscover_the_ews_url_is_required() -> None:
    with pytest.raises(ConnectorError, match="needs the EWS URL"):
        ExchangeSettings.from_dict({"username": USER})
    assert ExchangeSettings.from_dict({"username": USER, "autodiscover": True, "mailbox": "a@b.example"}).autodiscover


def test_the_local_server_answers_soap_autodiscover(ews: EwsServer) -> None:
    guard.set_default_policy(local_config())  # the sandbox is on 127.0.0.1, reached through the guarded adapter
    guard.install()
    protocol = AutodiscoverProtocol(config=Configuration(service_endpoint=ews.autodiscover_url,
                                                         credentials=Credentials(USER, PASSWORD)))
    found = protocol.get_user_settings(user="shared@example.com")
    found.raise_errors()
    assert found.ews_url == ews.url and found.autodiscover_smtp_address == "shared@example.com"
    assert found.version is not None and found.version.api_version == "Exchange2016"
    with pytest.raises(ErrorNonExistentMailbox):
        protocol.get_user_settings(user="nobody@example.com").raise_errors()


@pytest.fixture
def cached_endpoint(ews: EwsServer) -> Iterator[None]:
    """exchangelib remembers each domain's Autodiscover endpoint; start from that memory."""
    key = ("example.com", Credentials(USER, PASSWORD))
    autodiscover_cache[key] = AutodiscoverProtocol(config=Configuration(service_endpoint=ews.autodiscover_url,
                                                                        credentials=Credentials(USER, PASSWORD)))
    try:
        yield
    finally:
        ews.autodiscover_ews_url = None
        if key in autodiscover_cache:
            del autodiscover_cache[key]


def test_autodiscover_when_asked_finds_the_ews_url(ews: EwsServer, cached_endpoint: None) -> None:
    settings = ExchangeSettings(ews_url="", username=USER, mailbox="shared@example.com", autodiscover=True)
    ews.reset_counts()
    result = exchange.validate(settings, PASSWORD, local_config())
    assert result.public_folders and ews.paths["autodiscover"] >= 1 and ews.paths["ews"] >= 1
    folder = ews.public_folder("ad-on")
    connector = exchange.connector_for_folder(settings, PASSWORD, local_config(), folder.id, public=True)
    assert connector.account.protocol.service_endpoint == ews.url
    assert connector.changes(None).items == []


def test_a_discovered_ews_url_passes_the_ssrf_guard(ews: EwsServer, cached_endpoint: None) -> None:
    ews.autodiscover_ews_url = "https://169.254.169.254/EWS/Exchange.asmx"
    settings = ExchangeSettings(ews_url="", username=USER, mailbox="shared@example.com", autodiscover=True)
    with pytest.raises(exchange.UrlRefused, match="link-local"):
        exchange.validate(settings, PASSWORD, local_config())
    ews.autodiscover_ews_url = None  # the sandbox's own http:// URL, while the administrator allows https only
    with pytest.raises(exchange.UrlRefused, match="EWS URL found by autodiscover must use https"):
        exchange.validate(settings, PASSWORD, Config(exchange_allowed_cidrs=("127.0.0.0/8",),
                                                     exchange_allow_http=False))
