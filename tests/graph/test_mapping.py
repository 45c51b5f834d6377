"""The Graph mapping's pure parts: the hub id property is the EWS connector's named property,
zone names both ways, and the recurrence conversion."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from exchangelib import ExtendedProperty

from spokesync.connectors.exchange.mapping import HubIdProperty
from spokesync.connectors.graph import mapping
from spokesync.model.event import Event


def test_the_hub_id_is_the_ews_connectors_named_property() -> None:
    guid = ExtendedProperty.DISTINGUISHED_SET_NAME_TO_ID_MAP[HubIdProperty.distinguished_property_set_id]
    # Graph names a named MAPI property "<type> {<property set GUID>} Name <name>"
    assert mapping.HUB_ID_PROP.lower() == f"string {{{guid}}} name {HubIdProperty.property_name}".lower()
    assert HubIdProperty.property_type == "String"


def test_zone_names() -> None:
    assert mapping.iana("W. Europe Standard Time") == "Europe/Berlin"
    assert mapping.iana("Europe/Berlin") == "Europe/Berlin"
    assert mapping.iana("Not/AZone") is None and mapping.iana("Nowhere Standard Time") is None
    assert mapping.windows("America/New_York") == "Eastern Standard Time"
    assert mapping.windows("UTC") == "UTC"


def test_recurrence_both_ways() -> None:
    start = datetime(2027, 1, 4, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    event = Event(title="x", start=start, end=start, timezone="Europe/Berlin",
                  recurrence=("RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=5",))
    graph = mapping.recurrence_to_graph(event, "Europe/Berlin")
    assert graph == {"pattern": {"type": "relativeMonthly", "interval": 1,
                                 "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                                 "index": "last"},
                     "range": {"startDate": "2027-01-04", "recurrenceTimeZone": "W. Europe Standard Time",
                               "type": "numbered", "numberOfOccurrences": 5}}
    back = mapping.recurrence_from_graph(graph, start, ZoneInfo("Europe/Berlin"))
    assert sorted(back.split(":")[1].split(";")) == sorted("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=5"
                                                          .split(";"))
    yearly = mapping.recurrence_to_graph(
        Event(start=date(2027, 3, 1), end=date(2027, 3, 2), recurrence=("RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=1",)),
        "UTC")
    assert yearly is not None and yearly["pattern"] == {"type": "absoluteYearly", "interval": 1, "dayOfMonth": 1,
                                                        "month": 3}
    assert yearly["range"]["type"] == "noEnd"
