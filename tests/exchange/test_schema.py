"""The local EWS server holds requests to Microsoft's published schema, answers invalid ones with the
fault real Exchange sends, and its own answers pass the same schema (checked for every answer in the
suite: tests/conftest.py switches `EwsServer.check_responses_default` on). Published samples from
Microsoft's EWS reference and exchangelib's recorded responses are validated, sent and replayed."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from exchangelib import CalendarItem
from exchangelib import errors as ews_errors
from exchangelib.fields import FieldPath
from exchangelib.properties import ItemId
from exchangelib.services import GetItem
from lxml import etree

from spokesync.connectors.exchange.access import ExchangeSettings, make_account
from spokesync.connectors.exchange.connector import ExchangeConnector
from spokesync.sandbox.ews import EwsServer, schema
from spokesync.sandbox.ews.server import _response_violations
from tests.exchange.conftest import PASSWORD, local_config

FIXTURES = Path(schema.__file__).with_name("fixtures")
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
T, M = schema.T, schema.M
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
# git object ids of jamesiarmes/php-ews src/assets/{messages,types}.xsd (`git ls-tree`)
PUBLISHED_MESSAGES = "de89495f70e6ecc46804be9cdeb6b8611e804ce2"
PUBLISHED_TYPES = "52f4f189606373a0467412899d075358d28bcc4f"
# Hand-written samples in Microsoft's reference that do not pass Microsoft's own schema.
DOC_ERRORS = {
    "getreminders-operation-2-response.xml",  # an error response without m:Reminders
    "performreminderaction-operation-1-response.xml",  # m:ItemId where the schema has t:ItemId
    "performreminderaction-operation-2-response.xml",  # an empty m:UpdatedItemIds
}
SAMPLES = sorted((FIXTURES / "msdocs").glob("*.xml"))


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's object id


def _reverted_types() -> bytes:
    """types.xsd with the recorded local change undone."""
    text = (schema.SCHEMA_DIR / "types.xsd").read_bytes().decode("utf-8")
    start = text.index("        <!-- spokesync local change")
    end = text.index("-->", start) + len("-->\n")
    text = text[:start] + text[end:]
    one = '            <xs:element ref="t:Transition" minOccurs="0" maxOccurs="unbounded" />\n'
    published = "".join(f'            <xs:element ref="t:{n}" minOccurs="0" maxOccurs="unbounded" />\n'
                        for n in ("AbsoluteDateTransition", "RecurringDayTransition", "RecurringDateTransition",
                                  "Transition"))
    anchor = '    <xs:complexType name="ArrayOfTransitionsType">\n        <xs:sequence>\n'
    assert text.count(anchor + one) == 1
    return text.replace(anchor + one, anchor + published).encode("utf-8")


def test_vendored_schema_is_microsofts_with_the_one_recorded_change() -> None:
    assert git_blob_sha((schema.SCHEMA_DIR / "messages.xsd").read_bytes()) == PUBLISHED_MESSAGES
    assert git_blob_sha(_reverted_types()) == PUBLISHED_TYPES


def test_changed_transitions_type_accepts_what_real_servers_send() -> None:
    # time-zone definitions real servers sent (exchangelib issues #310 and #255)
    for name in ("customized-time-zone.xml", "tzone-microsoft-utc.xml"):
        zone = etree.parse(str(FIXTURES / "timezones" / name)).getroot()
        create = etree.fromstring(f'<m:CreateItem xmlns:m="{M}" xmlns:t="{T}"><m:Items><t:CalendarItem>'
                                  "<t:Start>2026-03-02T09:00:00Z</t:Start><t:End>2026-03-02T10:00:00Z</t:End>"
                                  "</t:CalendarItem></m:Items></m:CreateItem>")
        create[0][0].append(zone)
        assert schema.violations(create) == [], name
    # the published sequence would refuse Transition before a dated transition; the local change accepts it
    group = etree.fromstring(f'<m:CreateItem xmlns:m="{M}" xmlns:t="{T}"><m:Items><t:CalendarItem>'
                             '<t:StartTimeZone Id="x"><t:Periods><t:Period Bias="PT0H" Name="S" Id="p"/></t:Periods>'
                             '<t:TransitionsGroups><t:TransitionsGroup Id="0"><t:Transition><t:To Kind="Period">p'
                             "</t:To></t:Transition><t:AbsoluteDateTransition><t:To Kind=\"Period\">p</t:To>"
                             "<t:DateTime>2026-01-01T00:00:00</t:DateTime></t:AbsoluteDateTransition>"
                             "</t:TransitionsGroup></t:TransitionsGroups></t:StartTimeZone>"
                             "</t:CalendarItem></m:Items></m:CreateItem>")
    assert schema.violations(group) == []


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_microsofts_published_samples_pass_the_schema_unless_known_wrong(sample: Path) -> None:
    root = etree.parse(str(sample)).getroot()
    problems = []
    for part in ("Header", "Body"):
        for elem in root.find(f"{{{SOAP}}}{part}") if root.find(f"{{{SOAP}}}{part}") is not None else []:
            if isinstance(elem.tag, str) and etree.QName(elem).namespace in (T, M):
                problems.extend(schema.violations(elem))
    assert bool(problems) == (sample.name in DOC_ERRORS), problems


@pytest.mark.parametrize("sample", [p for p in SAMPLES if p.name.endswith("-request.xml")],
                         ids=lambda p: p.name)
def test_the_server_accepts_every_request_microsoft_documents(ews: EwsServer, sample: Path) -> None:
    answer = requests.post(ews.url, data=sample.read_bytes(), auth=("sync", PASSWORD), timeout=10,
                           headers={"Content-Type": "text/xml; charset=utf-8"})
    assert b"ErrorSchemaValidation" not in answer.content
    assert b"sandbox bug" not in answer.content  # the answer passed the schema too
    assert answer.status_code in (200, 500)


def _fault(body: bytes) -> dict[str, str]:
    root = etree.fromstring(body)
    fault = root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None
    xml = fault.find(f"detail/{{{T}}}MessageXml")
    assert xml is not None
    return {"faultcode": fault.findtext("faultcode") or "", "faultstring": fault.findtext("faultstring") or "",
            "code": fault.findtext(f"detail/{{{E}}}ResponseCode") or "",
            "message": fault.findtext(f"detail/{{{E}}}Message") or "",
            "line": xml.findtext(f"{{{T}}}LineNumber") or "", "position": xml.findtext(f"{{{T}}}LinePosition") or "",
            "violation": xml.findtext(f"{{{T}}}Violation") or ""}


INVALID_GET_ITEM = f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="{SOAP}" xmlns:m="{M}" xmlns:t="{T}"><s:Header><t:RequestServerVersion Version="Exchange2016"/>
</s:Header><s:Body><m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>
  <t:FieldURI FieldURI="item:Subject"/><t:FieldURI FieldURI="item:ChangeKey"/>
</t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="AAMk"/></m:ItemIds></m:GetItem></s:Body></s:Envelope>
""".encode()


def test_an_invalid_request_gets_exchanges_schema_fault_with_line_and_position(ews: EwsServer) -> None:
    before = len(ews.schema_violations)
    answer = requests.post(ews.url, data=INVALID_GET_ITEM, auth=("sync", PASSWORD), timeout=10)
    assert answer.status_code == 500
    fault = _fault(answer.content)
    # the shape of Microsoft's documented fault (EWS reference, e.g. GetServiceConfiguration's error example)
    assert fault["faultcode"] == "a:ErrorSchemaValidation" and fault["code"] == "ErrorSchemaValidation"
    assert fault["message"] == "The request failed schema validation."
    assert fault["faultstring"].startswith("The request failed schema validation: ")
    line = INVALID_GET_ITEM.split(b"\n")[3]
    assert fault["line"] == "4"
    assert fault["position"] == str(line.index(b'<t:FieldURI FieldURI="item:ChangeKey"') + 2)
    assert "item:ChangeKey" in fault["violation"] and "Line 4, position" in fault["violation"]
    assert ews.schema_violations[before:] == [("GetItem", fault["violation"])]


def test_malformed_xml_is_a_schema_fault_with_its_position(ews: EwsServer) -> None:
    body = INVALID_GET_ITEM.replace(b"item:Subject", b"item:Sub&ject")
    fault = _fault(requests.post(ews.url, data=body, auth=("sync", PASSWORD), timeout=10).content)
    assert fault["code"] == "ErrorSchemaValidation" and fault["line"] == "4" and int(fault["position"]) > 1


def test_element_order_is_enforced(ews: EwsServer) -> None:
    body = f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="{SOAP}" xmlns:m="{M}" xmlns:t="{T}"><s:Body><m:CreateItem SendMeetingInvitations="SendToNone">
<m:Items><t:CalendarItem><t:End>2026-03-02T10:00:00Z</t:End><t:Start>2026-03-02T09:00:00Z</t:Start></t:CalendarItem>
</m:Items></m:CreateItem></s:Body></s:Envelope>""".encode()
    fault = _fault(requests.post(ews.url, data=body, auth=("sync", PASSWORD), timeout=10).content)
    assert fault["line"] == "3" and "Start" in fault["violation"]


def test_exchangelib_reports_the_fault_with_line_and_position(ews: EwsServer) -> None:
    settings = ExchangeSettings(ews_url=ews.url, username="sync", mailbox=ews.mailbox)
    account = make_account(settings, PASSWORD, local_config())
    changekey = FieldPath(field=CalendarItem.get_field_by_fieldname("changekey"))
    with pytest.raises(ews_errors.ErrorSchemaValidation, match=r"ChangeKey.*\(line: \d+ position: \d+\)"):
        list(GetItem(account=account).call(items=[ItemId("AAMk")], additional_fields={changekey}, shape="IdOnly"))


def test_a_response_out_of_schema_order_is_caught() -> None:
    envelope = (f'<s:Envelope xmlns:s="{SOAP}" xmlns:m="{M}" xmlns:t="{T}"><s:Body><m:GetItemResponse>'
                '<m:ResponseMessages><m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError'
                "</m:ResponseCode><m:Items><t:CalendarItem>{}</t:CalendarItem></m:Items></m:GetItemResponseMessage>"
                "</m:ResponseMessages></m:GetItemResponse></s:Body></s:Envelope>")
    good = '<t:ItemId Id="a" ChangeKey="b"/><t:Subject>x</t:Subject><t:Start>2026-01-01T00:00:00Z</t:Start>'
    bad = '<t:ItemId Id="a" ChangeKey="b"/><t:Start>2026-01-01T00:00:00Z</t:Start><t:Subject>x</t:Subject>'
    assert _response_violations(envelope.format(good).encode()) == []
    assert _response_violations(envelope.format(bad).encode())


def test_a_recorded_calendar_item_from_microsofts_reference_reaches_the_hub_model(
        ews: EwsServer, public_connector: ExchangeConnector) -> None:
    ews.replay("GetItem", (FIXTURES / "msdocs" / "getitem-operation-calendar-item-3-response.xml").read_bytes())
    item = public_connector.read(["ASUAdT"])["ASUAdT"]
    assert item.version == "otlIqB=="
    assert item.event.start == datetime(2006, 6, 16, 0, 30, tzinfo=UTC)
    assert item.event.end == datetime(2006, 6, 16, 1, 0, tzinfo=UTC)
    assert item.event.reminders == (15,) and item.event.show_as == "busy"
    assert item.event.organizer is not None and item.event.organizer.email == "someone@example.com"


def test_a_2016_server_reports_v2017_07_11_and_validation_accepts_it() -> None:
    recorded = (FIXTURES / "exchangelib" / "convertid-error-V2017_07_11.xml").read_bytes()
    info = etree.fromstring(recorded).find(f"{{{SOAP}}}Header/{{{T}}}ServerVersionInfo")
    assert info is not None and info.get("Version") == "V2017_07_11"
    assert schema.violations(info) == []
    from spokesync.connectors.exchange import validate

    for version in ("2016", "2019"):
        with EwsServer(users={"sync": PASSWORD}, version=version) as server:
            settings = ExchangeSettings(ews_url=server.url, username="sync", mailbox=server.mailbox)
            answer = requests.post(server.url, data=INVALID_GET_ITEM.replace(b"item:ChangeKey", b"item:Subject"),
                                   auth=("sync", PASSWORD), timeout=10)
            assert b'Version="V2017_07_11"' in answer.content
            result = validate(settings, PASSWORD, local_config())
            assert result.server_version.startswith("15.")
