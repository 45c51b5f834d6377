"""Behaviours the local server shows because Microsoft documents them, and the connector's answers:
DayOfMonth 29-31 / 29 February (dayofmonth.md), ErrorOccurrenceCrossingBoundary and
ErrorNonExistentMailbox (responsecode.md); the fall-back hour, UNTIL and EXDATE on the connector side.
The oracle for the Exchange side is an expansion with Exchange's rule (a day past a month's end is its
last day), written here independently of both the server and the connector."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from exchangelib import EWSDateTime
from exchangelib.folders import FolderCollection

from spokesync.connectors import registry
from spokesync.connectors.exchange import connector_for_folder, validate
from spokesync.connectors.exchange.access import ExchangeSettings
from spokesync.connectors.exchange.connector import ExchangeConnector
from spokesync.model.event import Event, Override
from spokesync.model.hub import CredentialRef, Spoke
from spokesync.ports import ConnectorError, FakeClock, NewItem
from spokesync.sandbox.ews import EwsServer
from spokesync.sandbox.ews.schema import M, T
from spokesync.secrets.local import LocalSecretStore
from tests.exchange.conftest import PASSWORD, local_config

BERLIN = ZoneInfo("Europe/Berlin")


def exchange_monthly(first: date, day: int, count: int, every: int = 1) -> list[date]:
    """Exchange's monthly 'day N': the N-th, or the last day of a shorter month."""
    out, year, month = [], first.year, first.month
    while len(out) < count:
        out.append(date(year, month, min(day, calendar.monthrange(year, month)[1])))
        month += every
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return out


def view_days(connector: ExchangeConnector, lo: datetime, hi: datetime) -> list[date]:
    view = FolderCollection(account=connector.account, folders=[connector.folder]).view(
        start=EWSDateTime.from_datetime(lo), end=EWSDateTime.from_datetime(hi))
    starts = [datetime.fromtimestamp(o.start.timestamp(), UTC) for o in view]
    return sorted(s.astimezone(BERLIN).date() for s in starts)


@pytest.mark.parametrize("day", [29, 30, 31])
def test_monthly_day_29_to_31_falls_on_the_last_day_of_shorter_months(public_connector: ExchangeConnector,
                                                                      day: int) -> None:
    start = datetime(2027, 1, day, 9, 0, tzinfo=BERLIN)  # 2027: February has 28 days
    rule = {29: "RRULE:FREQ=MONTHLY;BYMONTHDAY=28,29;BYSETPOS=-1;COUNT=12",
            30: "RRULE:FREQ=MONTHLY;BYMONTHDAY=28,29,30;BYSETPOS=-1;COUNT=12",
            31: "RRULE:FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=12"}[day]
    event = Event(title=f"Day {day}", start=start, end=start + timedelta(hours=1), timezone="Europe/Berlin",
                  recurrence=(rule,))
    created = public_connector.create([NewItem(f"d{day}", event)])[0]
    assert created.status == "ok", created
    expected = exchange_monthly(start.date(), day, 12)
    assert view_days(public_connector, start - timedelta(days=1), start + timedelta(days=400)) == expected
    read = public_connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert read.event.recurrence == (rule,)  # read back exactly as written: nothing to write back


def test_a_rule_that_skips_short_months_is_refused_in_plain_words(public_connector: ExchangeConnector) -> None:
    start = datetime(2027, 1, 31, 9, 0, tzinfo=BERLIN)
    event = Event(title="31st", start=start, end=start + timedelta(hours=1), timezone="Europe/Berlin",
                  recurrence=("RRULE:FREQ=MONTHLY;BYMONTHDAY=31",))
    result = public_connector.create([NewItem("skip31", event)])[0]
    assert result.status == "error" and "last day of the month" in result.message


def test_yearly_29_february_falls_on_28_february_and_an_override_addresses_the_right_occurrence(
        public_connector: ExchangeConnector) -> None:
    start = datetime(2028, 2, 29, 9, 0, tzinfo=BERLIN)
    moved_from = datetime(2029, 2, 28, 9, 0, tzinfo=BERLIN)  # the second occurrence, on Exchange's rule
    moved = Event(title="Leap (moved)", start=moved_from + timedelta(hours=3),
                  end=moved_from + timedelta(hours=4), timezone="Europe/Berlin")
    event = Event(title="Leap", start=start, end=start + timedelta(hours=1), timezone="Europe/Berlin",
                  recurrence=("RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1;COUNT=5",),
                  overrides=(Override(moved_from, moved),))
    created = public_connector.create([NewItem("leap", event)])[0]
    assert created.status == "ok", created
    days = view_days(public_connector, start - timedelta(days=1), start + timedelta(days=5 * 366))
    assert days == [date(2028, 2, 29), date(2029, 2, 28), date(2030, 2, 28), date(2031, 2, 28), date(2032, 2, 29)]
    read = public_connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert [o.original_start for o in read.event.overrides] == [moved_from]
    assert read.event.overrides[0].event.start == moved.start


def test_an_occurrence_moved_past_its_neighbour_is_one_items_error(public_connector: ExchangeConnector) -> None:
    start = datetime(2027, 3, 1, 9, 0, tzinfo=BERLIN)
    bad_from = datetime(2027, 3, 2, 9, 0, tzinfo=BERLIN)
    bad = Event(title="moved onto the next day", start=bad_from + timedelta(days=1),
                end=bad_from + timedelta(days=1, hours=1), timezone="Europe/Berlin")
    series = Event(title="Daily", start=start, end=start + timedelta(hours=1), timezone="Europe/Berlin",
                   recurrence=("RRULE:FREQ=DAILY;COUNT=5",), overrides=(Override(bad_from, bad),))
    fine = Event(title="Single", start=start, end=start + timedelta(hours=1), timezone="Europe/Berlin")
    results = public_connector.create([NewItem("cross", series), NewItem("fine", fine)])
    assert results[0].status == "error" and "neighbouring occurrence" in results[0].message
    assert results[1].status == "ok"


def test_exdates_become_deleted_occurrences(public_connector: ExchangeConnector) -> None:
    start = datetime(2027, 3, 1, 9, 0, tzinfo=BERLIN)
    event = Event(title="With EXDATE", start=start, end=start + timedelta(hours=1), timezone="Europe/Berlin",
                  recurrence=("RRULE:FREQ=DAILY;COUNT=5", "EXDATE;TZID=Europe/Berlin:20270302T090000,20270304T090000"))
    created = public_connector.create([NewItem("exdate", event)])[0]
    assert created.status == "ok", created
    assert view_days(public_connector, start, start + timedelta(days=6)) == [
        date(2027, 3, 1), date(2027, 3, 3), date(2027, 3, 5)]
    read = public_connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert sorted(read.event.cancelled) == [datetime(2027, 3, 2, 9, tzinfo=BERLIN), datetime(2027, 3, 4, 9, tzinfo=BERLIN)]


@pytest.mark.parametrize("until", ["20270303T070000Z", "20270303T080000Z", "20270303T225959Z"])
def test_until_keeps_its_instant(public_connector: ExchangeConnector, until: str) -> None:
    start = datetime(2027, 3, 1, 9, 0, tzinfo=BERLIN)  # 08:00Z each day
    event = Event(title="Until", start=start, end=start + timedelta(hours=1), timezone="Europe/Berlin",
                  recurrence=(f"RRULE:FREQ=DAILY;UNTIL={until}",))
    created = public_connector.create([NewItem(f"until{until}", event)])[0]
    last = date(2027, 3, 2) if until == "20270303T070000Z" else date(2027, 3, 3)
    days = view_days(public_connector, start, start + timedelta(days=10))
    assert days[-1] == last and created.status == "ok"


def test_the_fall_back_hour_keeps_its_instant(public_connector: ExchangeConnector) -> None:
    second = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)  # 02:00 CET, the second 02:00 in Berlin
    event = Event(title="Fall back", start=second, end=second + timedelta(minutes=30), timezone="Europe/Berlin")
    created = public_connector.create([NewItem("fold", event)])[0]
    read = public_connector.read([created.spoke_item_id])[created.spoke_item_id]
    # (aware datetimes with fold=1 compare unequal across zones: compare the instants)
    assert read.event.start.astimezone(UTC) == second  # type: ignore[union-attr]


def test_an_unknown_mailbox_is_error_non_existent_mailbox_named_plainly(ews: EwsServer) -> None:
    settings = ExchangeSettings(ews_url=ews.url, username="sync", mailbox="nobody@example.com")
    with pytest.raises(ConnectorError, match="no such mailbox: .* nobody@example.com; enter the mailbox's primary"):
        validate(settings, PASSWORD, local_config())


def test_the_mailbox_address_is_never_guessed_from_the_user_and_host(ews: EwsServer) -> None:
    with pytest.raises(ConnectorError, match="primary SMTP address"):
        ExchangeSettings.from_dict({"ews_url": ews.url, "username": "EXAMPLE\\sync"})
    upn = ExchangeSettings.from_dict({"ews_url": ews.url, "username": "shared@example.com"})
    assert upn.smtp_address == "shared@example.com"
    folder = ews.public_folder("mailbox-address")
    connector = connector_for_folder(upn, PASSWORD, local_config(), folder.id, public=True)
    assert connector.account.primary_smtp_address == "shared@example.com"


def _dismiss(ews: EwsServer, item_id: str, changekey: str) -> bytes:
    body = f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="{M}" xmlns:t="{T}">
<s:Header><t:RequestServerVersion Version="Exchange2013"/></s:Header><s:Body><m:PerformReminderAction>
<m:ReminderItemActions><t:ReminderItemAction><t:ActionType>Dismiss</t:ActionType>
<t:ItemId Id="{item_id}" ChangeKey="{changekey}"/></t:ReminderItemAction></m:ReminderItemActions>
</m:PerformReminderAction></s:Body></s:Envelope>""".encode()
    answer = requests.post(ews.url, data=body, auth=("sync", PASSWORD), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.content


def test_a_dismissed_reminder_is_not_a_removed_reminder(ews: EwsServer, mailbox_connector: ExchangeConnector) -> None:
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)  # the 15-minute reminder has fired
    later = soon + timedelta(days=2)  # its reminder has not fired yet
    first = mailbox_connector.changes(None)
    created = mailbox_connector.create([
        NewItem("soon", Event(title="Soon", start=soon, end=soon + timedelta(hours=1), reminders=(15,))),
        NewItem("off", Event(title="No reminder", start=later, end=later + timedelta(hours=1), reminders=None))])
    assert [c.status for c in created] == ["ok", "ok"]
    cursor = mailbox_connector.changes(first.cursor).cursor
    answer = _dismiss(ews, created[0].spoke_item_id, created[0].version or "")
    assert b"<m:UpdatedItemIds>" in answer
    assert ews.item(created[0].spoke_item_id).text("ReminderIsSet") == "false"  # Dismiss clears ReminderIsSet
    changes = mailbox_connector.changes(cursor)
    (changed,) = [i for i in changes.items if i.id == created[0].spoke_item_id]
    assert changed.event.reminders == (15,)  # still the event's reminder for every other spoke
    off = mailbox_connector.read([created[1].spoke_item_id])[created[1].spoke_item_id]
    assert off.event.reminders is None


@pytest.mark.parametrize(("start", "now", "reminders"), [
    (datetime(2051, 6, 1, 10, 0, tzinfo=UTC), datetime(2096, 3, 1, 9, 0, tzinfo=UTC), (15,)),
    (datetime(2016, 6, 1, 10, 0, tzinfo=UTC), datetime(2006, 3, 1, 9, 0, tzinfo=UTC), None),
], ids=["fired-by-the-app-clock", "not-yet-by-the-app-clock"])
def test_whether_a_reminder_has_fired_is_asked_of_the_app_clock(ews: EwsServer, settings: ExchangeSettings,
                                                               tmp_path: Path, start: datetime, now: datetime,
                                                               reminders: tuple[int, ...] | None) -> None:
    """A cleared ReminderIsSet is a dismissed reminder when ReminderDueBy is past, a switched-off one
    otherwise; "past" is by the app's clock (Context.clock, given to the registry's factory). With the
    system clock the 2051 reminder would not have fired and the 2016 one would have."""
    secrets = LocalSecretStore.open(str(tmp_path / "secrets.json"))
    credential = CredentialRef(id="c", kind="exchange", label="Exchange", secret_name=secrets.put("ex", PASSWORD),
                               settings=settings.to_dict())
    folder = ews.mailbox_folder(f"clock-{now.year}")
    spoke = Spoke(id="s", hub_id="h", name="Clock", kind="exchange", credential_id="c",
                  address={"folder_id": folder.id})
    connector = registry.connector_for(spoke, credential, secrets, local_config(), FakeClock(now))
    (created,) = connector.create([NewItem("x", Event(title="Review", start=start, end=start + timedelta(hours=1),
                                                      reminders=(15,)))])
    assert b"<m:UpdatedItemIds>" in _dismiss(ews, created.spoke_item_id, created.version or "")
    assert ews.item(created.spoke_item_id).text("ReminderIsSet") == "false"
    assert connector.read([created.spoke_item_id])[created.spoke_item_id].event.reminders == reminders


def _definition(name: str) -> str:
    """The inside of a recorded zone element (Periods, TransitionsGroups, Transitions)."""
    from lxml import etree

    from spokesync.sandbox.ews import schema

    root = etree.parse(str(schema.SCHEMA_DIR.parent / "fixtures" / "timezones" / name)).getroot()
    return "".join(etree.tostring(child).decode() for child in root)


@pytest.mark.parametrize("zone_id", ["Customized Time Zone", "", "(UTC+01:00) Amsterdam, Berlin, Bern, Rom"])
def test_a_zone_given_by_definition_is_expanded_by_it_and_read_as_the_iana_zone_with_its_rules(
        ews: EwsServer, public_connector: ExchangeConnector, zone_id: str) -> None:
    # Central European rules under a non-Windows id (exchangelib issue #310's definition), weekly across
    # the March change: 09:00 local is 08:00Z before it and 07:00Z after it
    start = datetime(2027, 3, 15, 9, 0, tzinfo=BERLIN)
    recurrence = ("<t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Monday</t:DaysOfWeek>"
                  "</t:WeeklyRecurrence><t:NumberedRecurrence><t:StartDate>2027-03-15</t:StartDate>"
                  "<t:NumberOfOccurrences>4</t:NumberOfOccurrences></t:NumberedRecurrence></t:Recurrence>")
    item = ews.user_create(public_connector.folder_id, "Custom zone", start, start + timedelta(hours=1),
                           tz=zone_id, tz_xml=_definition("customized-time-zone.xml"), recurrence_xml=recurrence)
    view = FolderCollection(account=public_connector.account, folders=[public_connector.folder]).view(
        start=EWSDateTime.from_datetime(start - timedelta(days=1)),
        end=EWSDateTime.from_datetime(start + timedelta(days=30)))
    instants = sorted(datetime.fromtimestamp(o.start.timestamp(), UTC) for o in view)
    assert instants == [datetime(2027, 3, 15, 8, tzinfo=UTC), datetime(2027, 3, 22, 8, tzinfo=UTC),
                        datetime(2027, 3, 29, 7, tzinfo=UTC), datetime(2027, 4, 5, 7, tzinfo=UTC)]
    read = public_connector.read([item.id])[item.id]
    assert read.event.timezone == "Europe/Berlin"  # not UTC
    assert read.event.start == start
    assert read.event.recurrence == ("RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4",)
    assert ews.item(item.id).fields["StartTimeZone"].get("Id") == zone_id  # reading wrote nothing back


def test_a_utc_definition_reads_as_utc(ews: EwsServer, public_connector: ExchangeConnector) -> None:
    start = datetime(2027, 5, 3, 9, 0, tzinfo=UTC)
    item = ews.user_create(public_connector.folder_id, "UTC zone", start, start + timedelta(hours=1),
                           tz="tzone://Microsoft/Utc", tz_xml=_definition("tzone-microsoft-utc.xml"))
    read = public_connector.read([item.id])[item.id]
    assert read.event.timezone in ("UTC", "Etc/UTC") and read.event.start == start


def test_a_secondary_address_is_resolved_to_the_primary_one_at_validation(ews: EwsServer, tmp_path) -> None:
    """ResolveNames (Microsoft's reference: an address with "smtp:" matches proxy addresses too): the
    credential keeps the mailbox's primary SMTP address, which the later requests need."""
    from spokesync.bootstrap import build_context
    from spokesync.connectors.exchange import save_credential

    ews.store.add_mailbox("team-calendar@example.com", "Team calendar", proxies=("calendar@example.com",))
    settings = ExchangeSettings(ews_url=ews.url, username="sync", mailbox="calendar@example.com")
    ews.reset_counts()
    result = validate(settings, PASSWORD, local_config())
    assert result.mailbox == "team-calendar@example.com"
    assert ews.calls("ResolveNames") == 2  # as entered (primary addresses only), then as smtp:
    ctx = build_context(local_config(data_dir=str(tmp_path), secret_key="a2V5LWZvci10ZXN0cy1vbmx5LTMyLWJ5dGVzLWxvbmc="))
    ref = save_credential(ctx, "team", settings.to_dict(), PASSWORD)
    assert ref.settings["mailbox"] == "team-calendar@example.com"


def test_an_address_matching_several_mailboxes_is_refused_in_words(ews: EwsServer) -> None:
    ews.store.add_mailbox("sales-emea@example.com", "Sales EMEA", proxies=("sales@example.com.de",))
    ews.store.add_mailbox("sales-apac@example.com", "Sales APAC", proxies=("sales@example.com.au",))
    settings = ExchangeSettings(ews_url=ews.url, username="sync", mailbox="sales@example.com")
    with pytest.raises(ConnectorError, match="matches several mailboxes .*sales-apac@example.com, "
                                             "sales-emea@example.com.*enter the primary SMTP address"):
        validate(settings, PASSWORD, local_config())


def test_resolve_names_answers_as_microsofts_reference_shows(ews: EwsServer) -> None:
    from exchangelib.errors import ErrorNameResolutionNoResults

    connector_settings = ExchangeSettings(ews_url=ews.url, username="sync", mailbox="shared@example.com")
    from spokesync.connectors.exchange.access import make_account

    protocol = make_account(connector_settings, PASSWORD, local_config()).protocol
    [none] = protocol.resolve_names(["nobody-at-all@example.com"])
    assert isinstance(none, ErrorNameResolutionNoResults)
    [one] = protocol.resolve_names(["shared@example.com"])
    assert (one.email_address, one.mailbox_type, one.routing_type) == ("shared@example.com", "Mailbox", "SMTP")
