"""Graph behaviours the connector depends on, against the local server: delta paging and expiry,
throttling inside and past the budget, the per-mailbox concurrency limit, batches, etags,
invitations never sent, requests refused by the published schema."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from spokesync.connectors.graph import connector as graph_connector
from spokesync.connectors.graph.connector import GraphConnector
from spokesync.model.event import Attendee, Event
from spokesync.ports import FullResyncRequired, ItemDelete, ItemUpdate, NewItem, Throttled
from spokesync.sandbox.graph import GraphServer
from tests.graph.conftest import SHARED

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2027, 1, 4, 9, 0, tzinfo=BERLIN)


def events(n: int) -> list[NewItem]:
    return [NewItem(f"hub{i:03d}", Event(title=f"E{i}", start=START + timedelta(days=i),
                                         end=START + timedelta(days=i, hours=1), timezone="Europe/Berlin"))
            for i in range(n)]


def test_writes_go_in_batches_of_twenty(connector: GraphConnector, graph: GraphServer) -> None:
    before = graph.requests["batch"]
    results = connector.create(events(45))
    assert all(r.status == "ok" for r in results)
    assert graph.requests["batch"] - before == 3  # 20 + 20 + 5


def test_delta_pages_and_an_expired_token(connector: GraphConnector, graph: GraphServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_connector, "DELTA_PAGE", 4)
    connector.create(events(10))
    listing = connector.changes(None)
    assert len(listing.items) == 10
    ids = [i.id for i in listing.items]
    graph.user_edit(ids[3], subject="Edited in Outlook")
    feed = connector.changes(listing.cursor)
    assert [(i.id, i.event.title) for i in feed.items] == [(ids[3], "Edited in Outlook")]
    graph.expire_delta_tokens()
    with pytest.raises(FullResyncRequired):
        connector.changes(feed.cursor)


def test_an_item_that_left_the_window_is_not_a_deletion(connector: GraphConnector, graph: GraphServer) -> None:
    created = connector.create(events(1))[0]
    cursor = connector.changes(None).cursor
    graph.user_edit(created.spoke_item_id, start={"dateTime": "2031-01-01T09:00:00", "timeZone": "UTC"},
                    end={"dateTime": "2031-01-01T10:00:00", "timeZone": "UTC"})
    feed = connector.changes(cursor)
    assert feed.deleted == []
    assert [i.id for i in feed.items] == [created.spoke_item_id]


def test_throttling_is_waited_out_inside_the_budget(connector: GraphConnector, graph: GraphServer) -> None:
    graph.throttle(times=2, status=429, retry_after=0.05)
    graph.throttle(times=1, status=503, retry_after=0.05)
    assert all(r.status == "ok" for r in connector.create(events(3)))
    assert connector.client.waited_s > 0


def test_throttling_past_the_budget_stops_the_run(connector: GraphConnector, graph: GraphServer) -> None:
    graph.throttle(times=1, status=429, retry_after=3600)
    with pytest.raises(Throttled) as info:
        connector.changes(None)
    assert info.value.retry_after_s == 3600
    graph.throttles.clear()


def test_at_most_four_requests_per_mailbox(make_connector, graph: GraphServer, connector: GraphConnector) -> None:
    ids = [r.spoke_item_id for r in connector.create(events(4))]
    graph.max_concurrency_seen.clear()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(5):
                assert len(connector.read(ids)) == 4
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert 1 <= max(graph.max_concurrency_seen.values()) <= 4


def test_attendees_are_never_invited(connector: GraphConnector, graph: GraphServer, new_calendar) -> None:
    before = graph.invitations[SHARED]
    meeting = Event(title="Review", start=START, end=START + timedelta(hours=1), timezone="Europe/Berlin",
                    attendees=(Attendee("ann@example.com", "Ann", "required", "accepted"),
                               Attendee("bob@example.com", "Bob", "optional", "tentative")))
    created = connector.create([NewItem("hub-meeting", meeting)])[0]
    updated = connector.update([ItemUpdate(created.spoke_item_id, created.version,
                                           replace(meeting, title="Review 2"), "hub-meeting")])[0]
    assert updated.status == "ok"
    item = connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert {a.email for a in item.event.attendees} == {"ann@example.com", "bob@example.com"}
    assert graph.invitations[SHARED] == before
    assert all(not e.props.get("attendees") for e in graph.events_in(new_calendar))


def test_a_meeting_with_real_attendees_is_left_alone(connector: GraphConnector, graph: GraphServer,
                                                     new_calendar) -> None:
    event_id = graph.user_create(new_calendar, {
        "subject": "Board", "start": {"dateTime": "2027-01-05T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2027-01-05T11:00:00", "timeZone": "UTC"},
        "attendees": [{"emailAddress": {"address": "cfo@example.com", "name": "CFO"}, "type": "required"}]})
    sent = graph.invitations[SHARED]  # the person's own invitation, sent by Outlook
    item = connector.read([event_id])[event_id]
    assert [a.email for a in item.event.attendees] == ["cfo@example.com"]
    upd = connector.update([ItemUpdate(event_id, item.version, replace(item.event, title="Board (moved)"), "hub-x")])
    rem = connector.delete([ItemDelete(event_id, item.version)])
    assert upd[0].status == "error" and "attendees" in upd[0].message
    assert rem[0].status == "error"
    assert graph.invitations[SHARED] == sent
    assert connector.read([event_id])[event_id].event.title == "Board"


def _raw(graph: GraphServer, connector: GraphConnector, method: str, path: str, body=None, headers=None):
    return connector.client.request(method, path, body, headers)


def test_the_server_refuses_what_graph_refuses(connector: GraphConnector, graph: GraphServer, new_calendar) -> None:
    path = f"users/{SHARED}/calendars/{new_calendar.id}"
    bad = _raw(graph, connector, "POST", f"{path}/events", {"subject": "x", "colour": "red",
                                                           "start": {"dateTime": "2027-01-01T10:00:00"},
                                                           "end": {"dateTime": "2027-01-01T11:00:00"}})
    assert bad.status == 400 and bad.code == "RequestBodyRead" and "'colour' does not exist" in bad.message
    wrong_enum = _raw(graph, connector, "POST", f"{path}/events", {"showAs": "sleeping"})
    assert wrong_enum.status == 400 and "sleeping" in wrong_enum.message
    no_window = _raw(graph, connector, "GET", f"{path}/calendarView/delta")
    assert no_window.status == 400 and no_window.code == "ErrorInvalidParameter"
    too_many = _raw(graph, connector, "POST", "$batch", {"requests": [
        {"id": str(i), "method": "GET", "url": f"/{path}"} for i in range(21)]})
    assert too_many.status == 400
    created = connector.create(events(1))[0]
    stale = _raw(graph, connector, "PATCH", f"users/{SHARED}/events/{created.spoke_item_id}", {"subject": "y"},
                 {"If-Match": 'W/"stale"'})
    assert stale.status == 412 and stale.code == "ErrorIrresolvableConflict"
    assert "error" in stale.body and set(stale.body["error"]) >= {"code", "message", "innerError"}


def test_transaction_id_suppresses_a_duplicate_create(connector: GraphConnector, graph: GraphServer,
                                                      new_calendar) -> None:
    item = events(1)[0]
    first = connector.create([item])[0]
    second = connector.create([item])[0]
    assert first.spoke_item_id == second.spoke_item_id
    assert len(graph.events_in(new_calendar)) == 1


def test_an_old_window_or_an_unreadable_cursor_asks_for_a_full_resync(make_connector, new_calendar) -> None:
    from datetime import UTC

    from spokesync.connectors.graph.connector import Target

    clock = {"now": datetime(2027, 1, 1, tzinfo=UTC)}
    connector = make_connector(Target("user", SHARED, new_calendar.id), now=lambda: clock["now"])
    cursor = connector.changes(None).cursor
    assert connector.changes(cursor).items == []
    clock["now"] += timedelta(days=8)  # the window was anchored a week ago: renew it
    with pytest.raises(FullResyncRequired, match="window"):
        connector.changes(cursor)
    with pytest.raises(FullResyncRequired):
        connector.changes(b"G1not-zlib")
    with pytest.raises(FullResyncRequired):
        connector.changes(b"S1" + b"x")


def test_every_request_asks_for_immutable_ids(connector: GraphConnector, graph: GraphServer) -> None:
    before = graph.without_immutable_ids
    created = connector.create(events(3))
    connector.update([ItemUpdate(created[0].spoke_item_id, created[0].version, events(1)[0].event, "hub000")])
    connector.changes(connector.changes(None).cursor)
    connector.delete([ItemDelete(created[1].spoke_item_id, created[1].version)])
    assert graph.without_immutable_ids == before


def test_answers_are_size_capped(graph: GraphServer, settings, new_calendar) -> None:
    from spokesync.connectors.graph import credential_for
    from spokesync.connectors.graph.client import GraphClient
    from spokesync.connectors.graph.connector import Target
    from spokesync.http_limits import ResponseTooLarge
    from tests.graph.conftest import SECRET, graph_config

    config = replace(graph_config(graph), max_response_bytes=64 << 10)
    small = GraphConnector(GraphClient(credential_for(settings, SECRET), config, SHARED),
                           Target("user", SHARED, new_calendar.id))
    for item in events(60):
        graph.user_create(new_calendar, {"subject": item.event.title + " " + "x" * 2000,
                                         "start": {"dateTime": "2027-01-04T09:00:00", "timeZone": "UTC"},
                                         "end": {"dateTime": "2027-01-04T10:00:00", "timeZone": "UTC"}})
    with pytest.raises(ResponseTooLarge, match=r"the server 127\.0\.0\.1 .*larger than"):
        small.changes(None)
