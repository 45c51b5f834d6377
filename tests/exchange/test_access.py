"""Connecting: validation says precisely what is wrong, the SSRF guard, both auth schemes,
the folder browser, throttling within and past the run's budget, a folder that disappears."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spokesync.bootstrap import build_context
from spokesync.config import Config
from spokesync.connectors import exchange
from spokesync.connectors.exchange.access import ExchangeSettings, UrlRefused, check_url
from spokesync.model.event import Event
from spokesync.ports import ConnectorError, CredentialBroken, NewItem, Throttled
from spokesync.sandbox.ews import EwsServer
from tests.exchange.conftest import PASSWORD, local_config

KEY = "a2V5LWZvci10ZXN0cy1vbmx5LTMyLWJ5dGVzLWxvbmc="  # Fernet: 32 url-safe base64 bytes


def event(title: str = "Planning") -> Event:
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    return Event(title=title, start=start, end=start + timedelta(hours=1))


def test_validation_passes_and_reports_the_server(ews: EwsServer, settings: ExchangeSettings) -> None:
    result = exchange.validate(settings, PASSWORD, local_config())
    assert result.server_version.startswith("15.1") and result.public_folders


def test_basic_authentication_works_too(ews: EwsServer, settings: ExchangeSettings) -> None:
    result = exchange.validate(replace(settings, auth_type="basic"), PASSWORD, local_config())
    assert result.public_folders


@pytest.mark.parametrize("auth_type", ["NTLM", "basic"])
def test_wrong_password_is_a_broken_credential_not_a_timeout(ews: EwsServer, settings: ExchangeSettings,
                                                             auth_type: str) -> None:
    with pytest.raises(CredentialBroken, match="wrong user or password") as err:
        exchange.validate(replace(settings, auth_type=auth_type), "nope", local_config())
    assert "nope" not in str(err.value)


def test_wrong_version_is_named() -> None:
    with EwsServer(users={"sync": PASSWORD}, version="2010") as old:
        settings = ExchangeSettings(ews_url=old.url, username="sync", version="2016", mailbox=old.mailbox)
        with pytest.raises(ConnectorError, match="wrong version"):
            exchange.validate(settings, PASSWORD, local_config())
        assert exchange.validate(replace(settings, version="2010"), PASSWORD, local_config()).server_version.startswith("14.3")


def test_not_an_ews_endpoint(ews: EwsServer, settings: ExchangeSettings) -> None:
    # IIS's 404 closes the connection: exchangelib alone would call that "server busy" (throttling)
    with pytest.raises(ConnectorError, match="this server answers but is not EWS: .* HTTP 404") as err:
        exchange.validate(replace(settings, ews_url=ews.url.replace("/EWS/Exchange.asmx", "/owa/")), PASSWORD,
                          local_config())
    assert not isinstance(err.value, Throttled)


def test_host_unreachable() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    settings = ExchangeSettings(ews_url=f"http://127.0.0.1:{port}/EWS/Exchange.asmx", username="sync",
                                mailbox="shared@example.com")
    with pytest.raises(ConnectorError, match="host unreachable"):
        exchange.validate(settings, PASSWORD, local_config())


def test_ssrf_guard_refuses_the_same_url_without_the_allow_list(ews: EwsServer, settings: ExchangeSettings) -> None:
    with pytest.raises(UrlRefused, match="https"):
        exchange.validate(settings, PASSWORD, Config())
    https_url = settings.ews_url.replace("http://", "https://")
    with pytest.raises(UrlRefused, match="loopback"):
        check_url(https_url, Config())
    with pytest.raises(UrlRefused, match="link-local"):
        check_url("https://169.254.169.254/EWS/Exchange.asmx", Config())
    with pytest.raises(UrlRefused, match="private"):
        check_url("https://10.1.2.3/EWS/Exchange.asmx", Config())
    check_url("https://10.1.2.3/EWS/Exchange.asmx", Config(exchange_allowed_cidrs=("10.0.0.0/8",)))
    assert ews.calls() >= 0  # the guard refused before any request


def test_save_credential_saves_nothing_until_validation_passes(ews: EwsServer, settings: ExchangeSettings,
                                                               tmp_path: Path) -> None:
    ctx = build_context(local_config(data_dir=str(tmp_path), secret_key=KEY))
    raw = {"ews_url": settings.ews_url, "username": settings.username, "version": "2016", "auth_type": "NTLM",
           "mailbox": settings.mailbox}
    with pytest.raises(CredentialBroken, match="wrong user or password"):
        exchange.save_credential(ctx, "x", raw, "wrong")
    with EwsServer(users={"sync": PASSWORD}, version="2010") as old, \
            pytest.raises(ConnectorError, match="wrong version"):
        exchange.save_credential(ctx, "x", {**raw, "ews_url": old.url}, PASSWORD)
    guarded = build_context(Config(data_dir=str(tmp_path), secret_key=KEY), store=ctx.store, secrets=ctx.secrets)
    with pytest.raises(UrlRefused):
        exchange.save_credential(guarded, "x", raw, PASSWORD)
    assert ctx.store.list_credentials() == []
    saved = exchange.save_credential(ctx, "Exchange", raw, PASSWORD)
    assert ctx.secrets.get(saved.secret_name or "") == PASSWORD
    assert PASSWORD not in repr(saved.to_dict())
    assert [c.id for c in ctx.store.list_credentials()] == [saved.id]


def test_folder_browser_walks_public_folders_level_by_level(ews: EwsServer, settings: ExchangeSettings) -> None:
    top = ews.public_folder("Browse top", folder_class="IPF.Note")
    ews.public_folder("Browse calendar", top)
    ews.public_folder("Browse contacts", top, folder_class="IPF.Contact")
    ews.public_folder("Browse mail", top, folder_class="IPF.Note")
    level1 = exchange.browse(settings, PASSWORD, local_config())
    assert "Browse top" in [f.name for f in level1]
    before = ews.calls("FindFolder")
    level2 = exchange.browse(settings, PASSWORD, local_config(), parent=top.id)
    assert ews.calls("FindFolder") == before + 1
    assert sorted((f.name, f.kind) for f in level2) == [("Browse calendar", "calendar"), ("Browse contacts", "contacts")]
    mailbox = exchange.browse(settings, PASSWORD, local_config(), public=False)
    assert {"Calendar", "Contacts"} <= {f.name for f in mailbox} and "Inbox" not in {f.name for f in mailbox}


def test_server_busy_is_honoured_within_the_budget(ews: EwsServer, public_connector) -> None:  # type: ignore[no-untyped-def]
    ews.inject("server_busy", "CreateItem", times=2, back_off_ms=50)
    result = public_connector.create([NewItem("busy1", event())])[0]
    assert result.status == "ok"


def test_server_busy_past_the_budget_stops_cleanly(ews: EwsServer, public_connector) -> None:  # type: ignore[no-untyped-def]
    ews.inject("server_busy", "FindItem", times=1, back_off_ms=600_000)
    with pytest.raises(Throttled) as err:
        public_connector.changes(None)
    assert err.value.retry_after_s >= 600


def test_http_503_is_retried(ews: EwsServer, public_connector) -> None:  # type: ignore[no-untyped-def]
    public_connector.account.protocol.RETRY_WAIT = 0.05
    ews.inject("http503", "FindItem", times=1)
    assert public_connector.changes(None).items == []


def test_injected_conflict_and_not_found_are_per_item_results(ews: EwsServer, public_connector) -> None:  # type: ignore[no-untyped-def]
    from spokesync.ports import ItemUpdate

    created = public_connector.create([NewItem("inj", event())])[0]
    ews.inject("irresolvable_conflict", "UpdateItem")
    upd = public_connector.update([ItemUpdate(created.spoke_item_id, created.version, event("x"), "inj")])[0]
    assert upd.status == "conflict"
    ews.inject("item_not_found", "UpdateItem")
    upd = public_connector.update([ItemUpdate(created.spoke_item_id, created.version, event("x"), "inj")])[0]
    assert upd.status == "not_found"


def test_a_folder_that_disappears_is_reported(ews: EwsServer, settings: ExchangeSettings) -> None:
    folder = ews.public_folder("Doomed")
    connector = exchange.connector_for_folder(settings, PASSWORD, local_config(), folder.id, public=True)
    connector.changes(None)
    ews.remove_folder(folder)
    with pytest.raises(ConnectorError, match="no longer exists"):
        connector.changes(None)


def test_sync_folder_items_is_refused_on_public_folders_as_exchange_does(ews: EwsServer, settings: ExchangeSettings) -> None:
    from exchangelib.errors import ErrorInvalidOperation

    folder = ews.public_folder("No sync here")
    connector = exchange.connector_for_folder(settings, PASSWORD, local_config(), folder.id, public=False)
    # a public folder mistaken for a mailbox folder: the refusal falls back to listing, never breaks
    with pytest.raises((ConnectorError, ErrorInvalidOperation)):
        connector.changes(None)


def test_one_401_under_load_is_retried_on_a_fresh_connection(ews: EwsServer, settings: ExchangeSettings) -> None:
    ews.unauthorized_next = 1
    result = exchange.validate(settings, PASSWORD, local_config())
    assert result.server_version.startswith("15.") and ews.unauthorized_next <= 0


def test_two_401s_in_a_row_mark_the_credential_broken(ews: EwsServer, settings: ExchangeSettings) -> None:
    ews.unauthorized_next = 2
    try:
        with pytest.raises(CredentialBroken, match="wrong user or password"):
            exchange.validate(settings, PASSWORD, local_config())
    finally:
        ews.unauthorized_next = 0


def test_an_ntlm_authenticated_connection_stays_authenticated_as_on_iis(ews: EwsServer, public_connector) -> None:  # type: ignore[no-untyped-def]
    import http.client
    import urllib.parse

    public_connector.changes(None)  # the handshake happens here (or earlier, on a pooled connection)
    ews.reset_counts()
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    public_connector.create([NewItem(f"h{i}", Event(title=f"e{i}", start=start, end=start + timedelta(hours=1)))
                             for i in range(8)])
    public_connector.changes(None)
    assert ews.calls() >= 3 and ews.http_requests == ews.calls(), dict(ews.requests)  # one request each
    # a new connection without a handshake is refused, as IIS refuses it
    url = urllib.parse.urlsplit(ews.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("POST", url.path, body=b"<x/>", headers={"Content-Type": "text/xml"})
    answer = conn.getresponse()
    assert answer.status == 401 and "NTLM" in (answer.getheader("WWW-Authenticate") or "")
    conn.close()
