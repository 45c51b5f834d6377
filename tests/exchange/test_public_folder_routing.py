"""Several public-folder mailboxes (Microsoft's "Route public folder hierarchy/content requests"): the
sandbox refuses content requests without the X-AnchorMailbox / X-PublicFolderMailbox of the mailbox
holding the folder's content; the connector finds them (Autodiscover PublicFolderInformation, the folder's
PR_REPLICA_LIST, Autodiscover for the content mailbox's GUID address) and sends them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from spokesync.connectors.exchange import browse, connector_for_folder
from spokesync.connectors.exchange.access import ExchangeSettings
from spokesync.model.event import Event
from spokesync.ports import ConnectorError, ItemDelete, ItemUpdate, NewItem
from spokesync.sandbox.ews import EwsServer
from tests.exchange.conftest import PASSWORD, local_config


@pytest.fixture(scope="module")
def routed() -> Iterator[EwsServer]:
    server = EwsServer(users={"sync": PASSWORD}, public_folder_mailboxes=True).start()
    yield server
    server.stop()


def _settings(server: EwsServer, mode: bool = True) -> ExchangeSettings:
    return ExchangeSettings(ews_url=server.url, username="sync", mailbox=server.mailbox,
                            public_folder_mailboxes=mode)


def test_content_requests_are_routed_to_the_folders_public_folder_mailbox(routed: EwsServer) -> None:
    folder = routed.public_folder("Routed calendar", content_mailbox="PFContent2@example.com")
    connector = connector_for_folder(_settings(routed), PASSWORD, local_config(), folder.id, public=True)
    start = datetime(2027, 6, 1, 9, tzinfo=UTC)
    event = Event(title="Routed", start=start, end=start + timedelta(hours=1))
    created = connector.create([NewItem("routed-1", event)])[0]
    assert created.status == "ok", created
    assert routed.last_headers.get("X-PublicFolderMailbox") == "PFContent2@example.com"
    assert routed.last_headers.get("X-AnchorMailbox") == "PFContent2@example.com"
    changes = connector.changes(None)
    assert [i.id for i in changes.items] == [created.spoke_item_id]
    updated = connector.update([ItemUpdate(created.spoke_item_id, created.version or "",
                                           replace(event, title="Routed (edited)"), "routed-1")])[0]
    assert updated.status == "ok", updated
    assert connector.delete([ItemDelete(created.spoke_item_id, updated.version or "")])[0].status == "ok"


def test_without_the_routing_headers_the_content_request_is_refused(routed: EwsServer) -> None:
    folder = routed.public_folder("Unrouted calendar", content_mailbox="PFContent3@example.com")
    connector = connector_for_folder(_settings(routed, mode=False), PASSWORD, local_config(), folder.id, public=True)
    with pytest.raises(ConnectorError, match="public folder mailbox"):
        connector.changes(None)


def test_hierarchy_requests_are_routed_to_the_hierarchy_mailbox(routed: EwsServer) -> None:
    routed.public_folder("Hierarchy calendar")
    found = browse(_settings(routed), PASSWORD, local_config(), public=True)
    assert "Hierarchy calendar" in {f.name for f in found}
    assert routed.last_headers.get("X-AnchorMailbox") == "SharedPublicFolder@example.com"
    with pytest.raises(ConnectorError, match="public folder mailbox"):
        browse(_settings(routed, mode=False), PASSWORD, local_config(), public=True)


def test_validation_routes_the_public_folder_probe(routed: EwsServer) -> None:
    from spokesync.connectors.exchange import validate

    assert validate(_settings(routed), PASSWORD, local_config()).public_folders
    unrouted = validate(_settings(routed, mode=False), PASSWORD, local_config())
    assert not unrouted.public_folders and "several-public-folder-mailboxes" in unrouted.public_folders_reason
