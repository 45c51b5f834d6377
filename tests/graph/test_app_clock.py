"""The Microsoft 365 connector's notion of "now" is the app's clock (Context.clock), not the system
clock: the date window it asks calendarView/delta for (startDateTime/endDateTime, which the change
feed is bound to) lies around the app's "now", and a window the app's clock has moved a week past is
renewed. With the system clock, a hub on a FakeClock decades ahead of or behind today would get a
window around today, and would never renew it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spokesync.bootstrap import build_context
from spokesync.connectors import graph as graph_kind
from spokesync.ports import FakeClock, FullResyncRequired
from spokesync.sandbox.graph import GraphServer
from spokesync.sandbox.graph.identity import App, Tenant
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore
from tests.graph.conftest import SECRET, graph_config

MAILBOX = "clock@contoso.com"


@pytest.mark.parametrize("now", [datetime(2096, 3, 1, 9, 0, tzinfo=UTC), datetime(2006, 3, 1, 9, 0, tzinfo=UTC)],
                         ids=["ahead", "behind"])
def test_the_graph_window_follows_the_app_clock(graph: GraphServer, tenant: Tenant, app: App, tmp_path: Path,
                                                now: datetime) -> None:
    mailbox = next((m for m in graph.mailboxes.values() if m.address == MAILBOX), None) or graph.add_mailbox(MAILBOX)
    calendar = graph.add_calendar(mailbox, f"clock-{now.year}")
    clock = FakeClock(now)
    ctx = build_context(replace(graph_config(graph), data_dir=str(tmp_path)), clock=clock,
                        store=SqliteHubStore(":memory:"))
    cred = graph_kind.save_credential(ctx, "M", {"tenant": tenant.id, "client_id": app.client_id}, SECRET,
                                      mailbox=MAILBOX)
    hub = hubs.create_hub(ctx, "Clock")
    spoke = hubs.add_spoke(ctx, hub.id, "g", "graph", {"kind": "user", "mailbox": MAILBOX, "calendar_id": calendar.id},
                           credential_id=cred.id, options={"days_past": 30, "days_future": 60})
    connector = ctx.connector(spoke)  # the registry's factory, given the context's clock
    cursor = connector.changes(None).cursor

    # the window Graph was asked for (the server's delta state for this calendar): the app's "now" ± the options
    windows = {s.window for s in graph.delta_states.values() if s.calendar is calendar}
    assert windows == {(now - timedelta(days=31), now + timedelta(days=61))}

    assert connector.changes(cursor).items == []
    clock.advance(8 * 86400)  # a week and a day later by the app's clock: the window is renewed
    with pytest.raises(FullResyncRequired, match="window"):
        connector.changes(cursor)
