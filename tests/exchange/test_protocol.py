"""Protocol-level checks of the local EWS server through the real exchangelib: CalendarView
expands a recurring series (with a modified and a deleted occurrence), and a dropped
connection reaches the administrator as a connection problem, quickly, not as a hang."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from exchangelib import EWSDateTime
from exchangelib.folders import FolderCollection

from spokesync.connectors import exchange
from spokesync.connectors.exchange.access import ExchangeSettings
from spokesync.connectors.exchange.connector import ExchangeConnector
from spokesync.model.event import Event, Override
from spokesync.ports import ConnectorError, NewItem
from spokesync.sandbox.ews import EwsServer
from tests.exchange.conftest import PASSWORD, local_config


def _utc(value: datetime) -> EWSDateTime:
    return EWSDateTime.from_datetime(value.astimezone(UTC))


def _plain(value: datetime) -> datetime:
    """exchangelib's EWSDateTime as a plain aware datetime in UTC."""
    return datetime.fromtimestamp(value.timestamp(), UTC)


@pytest.mark.parametrize("which", ["public", "mailbox"])
def test_calendar_view_expands_a_series_with_a_modified_and_a_deleted_occurrence(
        ews: EwsServer, public_connector: ExchangeConnector, mailbox_connector: ExchangeConnector, which: str) -> None:
    connector = public_connector if which == "public" else mailbox_connector
    tz = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 16, 9, 0, tzinfo=tz)  # weekly on Mondays, across the March DST change
    moved_from = datetime(2026, 3, 30, 9, 0, tzinfo=tz)
    moved = Event(title="Standup (moved)", start=moved_from + timedelta(hours=2),
                  end=moved_from + timedelta(hours=2, minutes=30), timezone="Europe/Berlin", location="Room 9")
    deleted = datetime(2026, 4, 6, 9, 0, tzinfo=tz)
    series = Event(title="Standup", start=start, end=start + timedelta(minutes=30), timezone="Europe/Berlin",
                   recurrence=("RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6",), overrides=(Override(moved_from, moved),),
                   cancelled=(deleted,))
    single = Event(title="One-off", start=datetime(2026, 3, 25, 14, tzinfo=UTC),
                   end=datetime(2026, 3, 25, 15, tzinfo=UTC))
    outside = Event(title="Later", start=datetime(2026, 6, 1, 9, tzinfo=UTC), end=datetime(2026, 6, 1, 10, tzinfo=UTC))
    results = connector.create([NewItem("cv-series", series), NewItem("cv-single", single),
                                NewItem("cv-outside", outside)])
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    before = ews.calls("FindItem")

    view = FolderCollection(account=connector.account, folders=[connector.folder]).view(
        start=_utc(datetime(2026, 3, 1, tzinfo=UTC)), end=_utc(datetime(2026, 5, 1, tzinfo=UTC)))
    got = sorted(((_plain(i.start), i.subject, i.type) for i in view), key=lambda t: t[0])

    assert ews.calls("FindItem") == before + 1  # one FindItem with a CalendarView
    expected = [
        (datetime(2026, 3, 16, 8, tzinfo=UTC), "Standup", "Occurrence"),  # CET
        (datetime(2026, 3, 23, 8, tzinfo=UTC), "Standup", "Occurrence"),
        (datetime(2026, 3, 25, 14, tzinfo=UTC), "One-off", "Single"),
        (datetime(2026, 3, 30, 9, tzinfo=UTC), "Standup (moved)", "Exception"),  # CEST, moved by two hours
        # 2026-04-06 was deleted
        (datetime(2026, 4, 13, 7, tzinfo=UTC), "Standup", "Occurrence"),  # CEST
        (datetime(2026, 4, 20, 7, tzinfo=UTC), "Standup", "Occurrence"),
    ]
    assert got == expected

    # a window inside the series returns only the occurrences that overlap it
    narrow = FolderCollection(account=connector.account, folders=[connector.folder]).view(
        start=_utc(datetime(2026, 4, 1, tzinfo=UTC)), end=_utc(datetime(2026, 4, 14, tzinfo=UTC)))
    assert [(_plain(i.start), i.type) for i in narrow] == [(datetime(2026, 4, 13, 7, tzinfo=UTC), "Occurrence")]


def test_a_dropped_connection_is_a_connection_problem_not_a_hang(ews: EwsServer, settings: ExchangeSettings) -> None:
    ews.clear_faults()
    ews.inject("drop", "GetFolder", times=50)  # every attempt is dropped
    began = time.monotonic()
    try:
        with pytest.raises(ConnectorError, match="connection problem") as err:
            exchange.validate(settings, PASSWORD, local_config())
    finally:
        ews.clear_faults()
    assert time.monotonic() - began < 5
    assert "closed the connection without answering" in str(err.value) and PASSWORD not in str(err.value)


def test_a_dropped_connection_during_a_sync_stops_the_run(ews: EwsServer, public_connector: ExchangeConnector) -> None:
    public_connector.create([NewItem("drop-1", Event(title="x", start=datetime(2026, 3, 2, 9, tzinfo=UTC),
                                                     end=datetime(2026, 3, 2, 10, tzinfo=UTC)))])
    ews.inject("drop", "FindItem", times=50)
    began = time.monotonic()
    try:
        with pytest.raises(ConnectorError, match="connection problem"):
            public_connector.changes(None)
    finally:
        ews.clear_faults()
    assert time.monotonic() - began < 5
    assert len(public_connector.changes(None).items) == 1  # the next run works again
