"""Batch and page sizes Exchange accepts (docs/decisions/2026-12-01-exchange-batch-sizes.md).

The local EWS server caps a FindItem with a restriction at 250 results a page, as Exchange 2013+
and Exchange Online do ("EWS throttling in Exchange", EWSFindCountLimit); the connector's hub-id
lookup still finds every item behind such partial pages. With the default sizes, N new items cost
ceil(N / 500) CreateItem and a read of them ceil(N / 1000) GetItem operations.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from exchangelib.items import ID_ONLY, SHALLOW
from exchangelib.restriction import Q, Restriction

from spokesync.connectors.exchange import connector_for_folder
from spokesync.connectors.exchange.access import ExchangeSettings
from spokesync.connectors.exchange.connector import READ_BATCH, WRITE_BATCH, FindItem
from spokesync.model.event import Event
from spokesync.ports import NewItem
from spokesync.sandbox.ews import EwsServer
from tests.exchange.conftest import PASSWORD, local_config

START = datetime(2026, 6, 1, 8, tzinfo=UTC)


def _events(n: int) -> list[NewItem]:
    return [NewItem(f"hub-{i:05d}", Event(title=f"Batch {i}", start=START + timedelta(hours=i),
                                          end=START + timedelta(hours=i, minutes=30)))
            for i in range(n)]


@pytest.mark.slow
def test_default_batches_and_the_restricted_page_limit(ews: EwsServer, settings: ExchangeSettings) -> None:
    ews.clear_faults()
    folder = ews.public_folder("batch sizes")
    connector = connector_for_folder(settings, PASSWORD, local_config(), folder.id, public=True)
    assert (connector.batch_size, connector.read_batch) == (WRITE_BATCH, READ_BATCH) == (500, 1000)
    n = 1100
    items = _events(n)

    ews.reset_counts()
    results = connector.create(items)  # no listing in this run: the hub-id lookup runs first
    assert [r.status for r in results] == ["ok"] * n
    assert ews.requests["CreateItem"] == math.ceil(n / WRITE_BATCH) == 3
    lookups = ews.requests["FindItem"]
    assert lookups >= math.ceil(n / 200)  # 200 hub ids per restricted FindItem

    ews.reset_counts()
    read = connector.read([r.spoke_item_id for r in results if r.spoke_item_id])
    assert len(read) == n
    assert ews.requests["GetItem"] == math.ceil(n / READ_BATCH) == 2

    # a restricted FindItem asking for 1000 gets a partial page of 250 (IncludesLastItemInRange false),
    # and exchangelib's paging collects the rest: nothing is missed
    restriction = Restriction(Q(subject__contains="Batch"), folders=[connector.folder], applies_to=Restriction.ITEMS)
    ews.reset_counts()
    found = list(FindItem(account=connector.account, page_size=1000).call(
        folders=[connector.folder], additional_fields=None, restriction=restriction, order_fields=None,
        shape=ID_ONLY, query_string=None, depth=SHALLOW, calendar_view=None, max_items=None, offset=0))
    assert len(found) == n
    assert ews.requests["FindItem"] == math.ceil(n / 250) == 5

    # a second create of the same hub ids adopts every existing item behind the partial pages
    again = connector_for_folder(settings, PASSWORD, local_config(), folder.id, public=True)
    adopted = again.create(items)
    assert [r.status for r in adopted] == ["exists"] * n
    assert {r.spoke_item_id for r in adopted} == {r.spoke_item_id for r in results}
    assert len(ews.items(folder)) == n
