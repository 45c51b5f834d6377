"""The local EWS server on contacts, against Microsoft's schema and reference: indexed fields
(IndexedFieldURI on the EmailAddresses / PhoneNumbers / PhysicalAddresses dictionaries), the schema
refusing what Exchange refuses, read-only properties, ChangeKeys, element order, distribution lists.
Raw SOAP, so that what is tested is the server, not what exchangelib happens to send."""

from __future__ import annotations

import requests
from lxml import etree

from spokesync.sandbox.ews import EwsServer, schema
from spokesync.sandbox.ews.store import Folder
from tests.exchange.conftest import PASSWORD

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
T, M = schema.T, schema.M
NS = {"t": T, "m": M, "s": SOAP}
E = "http://schemas.microsoft.com/exchange/services/2006/errors"

# Microsoft's sample, "CreateItem operation (contact)" (docs/web-service-reference/createitem-operation-contact.md),
# with the stray space of `<t: CountryOrRegion>` removed (as published it is not well-formed XML).
MS_CONTACT = """<t:Contact>
          <t:FileAs>SampleContact</t:FileAs>
          <t:GivenName>Tanja</t:GivenName>
          <t:CompanyName>Blue Yonder Airlines</t:CompanyName>
          <t:EmailAddresses>
            <t:Entry Key="EmailAddress1">tplate@example.com</t:Entry>
          </t:EmailAddresses>
          <t:PhysicalAddresses>
            <t:Entry Key="Business">
              <t:Street>1234 56th Ave</t:Street>
              <t:City>La Habra</t:City>
              <t:State>CA</t:State>
              <t:CountryOrRegion>USA</t:CountryOrRegion>
            </t:Entry>
          </t:PhysicalAddresses>
          <t:PhoneNumbers>
            <t:Entry Key="BusinessPhone">4255550199</t:Entry>
          </t:PhoneNumbers>
          <t:JobTitle>Manager</t:JobTitle>
          <t:Surname>Plate</t:Surname>
        </t:Contact>"""


def call(ews: EwsServer, body: str) -> etree._Element:
    envelope = (f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:t="{T}" xmlns:m="{M}"><soap:Header>'
                '<t:RequestServerVersion Version="Exchange2016"/></soap:Header>'
                f"<soap:Body>{body}</soap:Body></soap:Envelope>")
    answer = requests.post(ews.url, data=envelope.encode(), auth=("sync", PASSWORD), timeout=10,
                           headers={"Content-Type": "text/xml; charset=utf-8"})
    assert b"sandbox bug" not in answer.content, answer.content  # the server's answer passed the schema
    return etree.fromstring(answer.content)


def fault_code(root: etree._Element) -> str:
    return root.findtext(f".//{{{E}}}ResponseCode") or ""


def codes(root: etree._Element) -> list[str]:
    return [c.text or "" for c in root.iterfind(".//m:ResponseCode", NS)]


def create(ews: EwsServer, folder: Folder, item_xml: str) -> tuple[str, str]:
    root = call(ews, f'<m:CreateItem><m:SavedItemFolderId><t:FolderId Id="{folder.id}"/></m:SavedItemFolderId>'
                     f"<m:Items>{item_xml}</m:Items></m:CreateItem>")
    assert codes(root) == ["NoError"], etree.tostring(root)
    ref = root.find(".//t:ItemId", NS)
    assert ref is not None
    return ref.get("Id") or "", ref.get("ChangeKey") or ""


def get(ews: EwsServer, item_id: str, props: str = "") -> etree._Element:
    shape = (f"<t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>{props}</t:AdditionalProperties>" if props
             else "<t:BaseShape>AllProperties</t:BaseShape>")
    root = call(ews, f'<m:GetItem><m:ItemShape>{shape}</m:ItemShape><m:ItemIds><t:ItemId Id="{item_id}"/>'
                     "</m:ItemIds></m:GetItem>")
    assert codes(root) == ["NoError"], etree.tostring(root)
    item = root.find(".//m:Items/*", NS)
    assert item is not None
    return item


def update(ews: EwsServer, item_id: str, changekey: str, updates: str) -> etree._Element:
    return call(ews, '<m:UpdateItem ConflictResolution="NeverOverwrite"><m:ItemChanges><t:ItemChange>'
                     f'<t:ItemId Id="{item_id}" ChangeKey="{changekey}"/><t:Updates>{updates}</t:Updates>'
                     "</t:ItemChange></m:ItemChanges></m:UpdateItem>")


def new_changekey(root: etree._Element) -> str:
    assert codes(root) == ["NoError"], etree.tostring(root)
    ref = root.find(".//m:Items//t:ItemId", NS)
    assert ref is not None
    return ref.get("ChangeKey") or ""


def entries(item: etree._Element, container: str) -> dict[str, str | list[tuple[str, str]]]:
    out: dict[str, str | list[tuple[str, str]]] = {}
    for entry in item.iterfind(f"t:{container}/t:Entry", NS):
        parts = [(etree.QName(c).localname, c.text or "") for c in entry]
        out[entry.get("Key") or ""] = parts if parts else (entry.text or "")
    return out


def contacts_folder(ews: EwsServer, name: str) -> Folder:
    return ews.mailbox_folder(name, folder_class="IPF.Contact")


def test_microsofts_contact_sample_is_stored_and_answered_in_schema_order(ews: EwsServer) -> None:
    folder = contacts_folder(ews, "ms-sample")
    item_id, changekey = create(ews, folder, MS_CONTACT)
    item = get(ews, item_id)
    names = [etree.QName(c).localname for c in item]
    order = schema.element_order("ContactItemType")
    assert names == sorted(names, key=order.index)  # ItemType's elements, then ContactItemType's, as the schema says
    assert names.index("EmailAddresses") < names.index("PhysicalAddresses") < names.index("PhoneNumbers")
    assert item.findtext("t:ItemClass", namespaces=NS) == "IPM.Contact"
    assert entries(item, "PhysicalAddresses") == {"Business": [("Street", "1234 56th Ave"), ("City", "La Habra"),
                                                               ("State", "CA"), ("CountryOrRegion", "USA")]}
    assert item.find("t:ItemId", NS).get("ChangeKey") == changekey  # type: ignore[union-attr]


def test_indexed_fields_are_set_and_deleted_entry_by_entry(ews: EwsServer) -> None:
    folder = contacts_folder(ews, "indexed")
    item_id, ck0 = create(ews, folder, MS_CONTACT)
    ck1 = new_changekey(update(ews, item_id, ck0,
        '<t:SetItemField><t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress2"/>'
        '<t:Contact><t:EmailAddresses><t:Entry Key="EmailAddress2">tanja@home.example</t:Entry></t:EmailAddresses>'
        "</t:Contact></t:SetItemField>"
        # a postal address built part by part, City before Street: stored in the schema's order
        '<t:SetItemField><t:IndexedFieldURI FieldURI="contacts:PhysicalAddress:City" FieldIndex="Home"/>'
        '<t:Contact><t:PhysicalAddresses><t:Entry Key="Home"><t:City>Whittier</t:City></t:Entry>'
        "</t:PhysicalAddresses></t:Contact></t:SetItemField>"
        '<t:SetItemField><t:IndexedFieldURI FieldURI="contacts:PhysicalAddress:Street" FieldIndex="Home"/>'
        '<t:Contact><t:PhysicalAddresses><t:Entry Key="Home"><t:Street>1 Main St</t:Street></t:Entry>'
        "</t:PhysicalAddresses></t:Contact></t:SetItemField>"
        '<t:SetItemField><t:IndexedFieldURI FieldURI="contacts:PhoneNumber" FieldIndex="BusinessPhone"/>'
        '<t:Contact><t:PhoneNumbers><t:Entry Key="BusinessPhone">4255550100</t:Entry></t:PhoneNumbers>'
        "</t:Contact></t:SetItemField>"
        '<t:DeleteItemField><t:IndexedFieldURI FieldURI="contacts:PhysicalAddress:Street" FieldIndex="Business"/>'
        "</t:DeleteItemField>"
        # deleting an entry that is not there is no error (exchangelib deletes every key it does not use)
        '<t:DeleteItemField><t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress3"/>'
        "</t:DeleteItemField>"))
    assert ck1 != ck0
    item = get(ews, item_id)
    assert entries(item, "EmailAddresses") == {"EmailAddress1": "tplate@example.com",
                                               "EmailAddress2": "tanja@home.example"}
    assert entries(item, "PhysicalAddresses") == {
        "Business": [("City", "La Habra"), ("State", "CA"), ("CountryOrRegion", "USA")],
        "Home": [("Street", "1 Main St"), ("City", "Whittier")]}
    assert entries(item, "PhoneNumbers") == {"BusinessPhone": "4255550100"}
    ck2 = new_changekey(update(ews, item_id, ck1,
        '<t:DeleteItemField><t:IndexedFieldURI FieldURI="contacts:PhoneNumber" FieldIndex="BusinessPhone"/>'
        "</t:DeleteItemField>"))
    assert ck2 not in (ck0, ck1)
    assert get(ews, item_id).find("t:PhoneNumbers", NS) is None  # the last entry gone: no empty dictionary
    # the old ChangeKey is refused, the item unchanged
    stale = update(ews, item_id, ck1, '<t:SetItemField><t:FieldURI FieldURI="contacts:JobTitle"/><t:Contact>'
                                      "<t:JobTitle>CEO</t:JobTitle></t:Contact></t:SetItemField>")
    assert codes(stale) == ["ErrorIrresolvableConflict"]
    assert get(ews, item_id).findtext("t:JobTitle", namespaces=NS) == "Manager"


def test_a_shape_asking_for_single_entries_gets_only_those(ews: EwsServer) -> None:
    folder = contacts_folder(ews, "shape")
    item_id, _ = create(ews, folder, MS_CONTACT)
    item = get(ews, item_id, '<t:IndexedFieldURI FieldURI="contacts:PhysicalAddress:City" FieldIndex="Business"/>'
                             '<t:IndexedFieldURI FieldURI="contacts:PhoneNumber" FieldIndex="HomePhone"/>'
                             '<t:FieldURI FieldURI="contacts:Surname"/>')
    assert [etree.QName(c).localname for c in item] == ["ItemId", "PhysicalAddresses", "Surname"]
    assert entries(item, "PhysicalAddresses") == {"Business": [("City", "La Habra")]}


def test_the_schema_refuses_what_exchange_refuses(ews: EwsServer) -> None:
    folder = contacts_folder(ews, "schema")
    item_id, ck = create(ews, folder, MS_CONTACT)
    refused = {
        # EmailAddressKeyType has EmailAddress1..3 only
        "a fourth e-mail key": '<t:SetItemField><t:IndexedFieldURI FieldURI="contacts:EmailAddress" '
        'FieldIndex="EmailAddress4"/><t:Contact><t:EmailAddresses><t:Entry Key="EmailAddress4">x@example.com'
        "</t:Entry></t:EmailAddresses></t:Contact></t:SetItemField>",
        # the dictionary's own URI is an unindexed field, not a DictionaryURIType
        "a dictionary as indexed URI": '<t:DeleteItemField><t:IndexedFieldURI FieldURI="contacts:EmailAddresses" '
        'FieldIndex="EmailAddress1"/></t:DeleteItemField>',
        # "contacts:PhysicalAddress:Country" is in Microsoft's IndexedFieldURI page, not in the schema
        "the documented Country URI": '<t:DeleteItemField><t:IndexedFieldURI '
        'FieldURI="contacts:PhysicalAddress:Country" FieldIndex="Home"/></t:DeleteItemField>',
        "a PO box part": '<t:SetItemField><t:IndexedFieldURI FieldURI="contacts:PhysicalAddress:Street" '
        'FieldIndex="Home"/><t:Contact><t:PhysicalAddresses><t:Entry Key="Home"><t:PostOfficeBox>12</t:PostOfficeBox>'
        "</t:Entry></t:PhysicalAddresses></t:Contact></t:SetItemField>",
        "a phone key Exchange does not have": '<t:SetItemField><t:IndexedFieldURI FieldURI="contacts:PhoneNumber" '
        'FieldIndex="WorkMobile"/><t:Contact><t:PhoneNumbers><t:Entry Key="WorkMobile">1</t:Entry></t:PhoneNumbers>'
        "</t:Contact></t:SetItemField>",
    }
    for what, updates in refused.items():
        root = update(ews, item_id, ck, updates)
        assert fault_code(root) == "ErrorSchemaValidation", what
    out_of_order = MS_CONTACT.replace("<t:FileAs>SampleContact</t:FileAs>", "").replace(
        "</t:Surname>", "</t:Surname><t:FileAs>SampleContact</t:FileAs>")
    root = call(ews, f'<m:CreateItem><m:SavedItemFolderId><t:FolderId Id="{folder.id}"/></m:SavedItemFolderId>'
                     f"<m:Items>{out_of_order}</m:Items></m:CreateItem>")
    assert fault_code(root) == "ErrorSchemaValidation"
    assert get(ews, item_id).find("t:ItemId", NS).get("ChangeKey") == ck  # type: ignore[union-attr]


def test_valid_but_wrong_updates_get_exchanges_errors(ews: EwsServer) -> None:
    folder = contacts_folder(ews, "wrong")
    item_id, ck = create(ews, folder, MS_CONTACT)
    cases = {
        "ErrorUpdatePropertyMismatch": '<t:SetItemField><t:IndexedFieldURI FieldURI="contacts:EmailAddress" '
        'FieldIndex="EmailAddress1"/><t:Contact><t:EmailAddresses><t:Entry Key="EmailAddress2">x@example.com'
        "</t:Entry></t:EmailAddresses></t:Contact></t:SetItemField>",
        "ErrorIncorrectUpdatePropertyCount": '<t:SetItemField><t:FieldURI FieldURI="contacts:JobTitle"/><t:Contact>'
        "<t:GivenName>T</t:GivenName><t:JobTitle>CEO</t:JobTitle></t:Contact></t:SetItemField>",
        "ErrorInvalidPropertySet": '<t:SetItemField><t:FieldURI FieldURI="contacts:CompleteName"/><t:Contact>'
        "<t:CompleteName><t:Title>Dr.</t:Title></t:CompleteName></t:Contact></t:SetItemField>",
        "ErrorInvalidPropertyRequest": '<t:DeleteItemField><t:IndexedFieldURI FieldURI="contacts:EmailAddress" '
        'FieldIndex="EmailAddress9"/></t:DeleteItemField>',
    }
    for code, updates in cases.items():
        root = update(ews, item_id, ck, updates)
        assert codes(root) == [code], (code, etree.tostring(root))
    item = get(ews, item_id)
    assert item.find("t:ItemId", NS).get("ChangeKey") == ck  # type: ignore[union-attr]
    assert entries(item, "EmailAddresses") == {"EmailAddress1": "tplate@example.com"}
    # a contact only goes into a contacts folder
    calendar = ews.mailbox_folder("not-contacts")
    root = call(ews, f'<m:CreateItem><m:SavedItemFolderId><t:FolderId Id="{calendar.id}"/></m:SavedItemFolderId>'
                     f"<m:Items>{MS_CONTACT}</m:Items></m:CreateItem>")
    assert codes(root) == ["ErrorCannotCreateContactInNonContactFolder"]


def test_contacts_folders_list_and_sync_contacts_and_distribution_lists(ews: EwsServer) -> None:
    folder = contacts_folder(ews, "listing")
    item_id, _ = create(ews, folder, MS_CONTACT)
    group = ews.user_item(folder, "<t:DistributionList><t:DisplayName>Team</t:DisplayName><t:Members><t:Member>"
                                  "<t:Mailbox><t:EmailAddress>a@example.com</t:EmailAddress></t:Mailbox>"
                                  "</t:Member></t:Members></t:DistributionList>")
    found = call(ews, '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
                      '<t:AdditionalProperties><t:FieldURI FieldURI="item:ItemClass"/></t:AdditionalProperties>'
                      f'</m:ItemShape><m:ParentFolderIds><t:FolderId Id="{folder.id}"/></m:ParentFolderIds></m:FindItem>')
    listed = {(etree.QName(i).localname, i.findtext("t:ItemClass", namespaces=NS))
              for i in found.iterfind(".//t:Items/*", NS)}
    assert listed == {("Contact", "IPM.Contact"), ("DistributionList", "IPM.DistList")}
    synced = call(ews, "<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>"
                       f'<m:SyncFolderId><t:FolderId Id="{folder.id}"/></m:SyncFolderId>'
                       "<m:MaxChangesReturned>100</m:MaxChangesReturned></m:SyncFolderItems>")
    created = {i.get("Id") for i in synced.iterfind(".//m:Changes/t:Create/*/t:ItemId", NS)}
    assert created == {item_id, group.id}


def test_contact_pictures_are_file_attachments(ews: EwsServer) -> None:
    folder = contacts_folder(ews, "pictures")
    item_id, ck0 = create(ews, folder, MS_CONTACT)
    assert get(ews, item_id).findtext("t:HasPicture", namespaces=NS) == "false"
    # Microsoft's sample request ("CreateAttachment operation"), as a contact picture
    made = call(ews, f'<m:CreateAttachment><m:ParentItemId Id="{item_id}" ChangeKey="{ck0}"/><m:Attachments>'
                     "<t:FileAttachment><t:Name>ContactPicture.jpg</t:Name><t:IsContactPhoto>true</t:IsContactPhoto>"
                     "<t:Content>AQIDBAU=</t:Content></t:FileAttachment></m:Attachments></m:CreateAttachment>")
    assert codes(made) == ["NoError"]
    ref = made.find(".//m:Attachments/t:FileAttachment/t:AttachmentId", NS)
    assert ref is not None and ref.get("RootItemId") == item_id
    ck1 = ref.get("RootItemChangeKey") or ""
    item = get(ews, item_id)
    assert item.find("t:ItemId", NS).get("ChangeKey") == ck1 != ck0  # type: ignore[union-attr]
    assert item.findtext("t:HasPicture", namespaces=NS) == "true"
    listed = item.find("t:Attachments/t:FileAttachment", NS)
    assert listed is not None and listed.find("t:Content", NS) is None  # GetItem lists, GetAttachment gives
    got = call(ews, f'<m:GetAttachment><m:AttachmentIds><t:AttachmentId Id="{ref.get("Id")}"/></m:AttachmentIds>'
                    "</m:GetAttachment>")
    assert got.findtext(".//t:FileAttachment/t:Content", namespaces=NS) == "AQIDBAU="
    # no name: refused as Microsoft's sample error response shows
    nameless = call(ews, f'<m:CreateAttachment><m:ParentItemId Id="{item_id}"/><m:Attachments><t:FileAttachment>'
                         "<t:Content>AQID</t:Content></t:FileAttachment></m:Attachments></m:CreateAttachment>")
    assert codes(nameless) == ["ErrorRequiredPropertyMissing"]
    assert nameless.find(".//m:MessageXml/t:ExceptionFieldURI", NS).get("FieldURI") == "attachment:Name"  # type: ignore[union-attr]
    gone = call(ews, f'<m:DeleteAttachment><m:AttachmentIds><t:AttachmentId Id="{ref.get("Id")}"/>'
                     "</m:AttachmentIds></m:DeleteAttachment>")
    root = gone.find(".//m:RootItemId", NS)
    assert codes(gone) == ["NoError"] and root is not None and root.get("RootItemChangeKey") not in (ck0, ck1)
    again = call(ews, f'<m:DeleteAttachment><m:AttachmentIds><t:AttachmentId Id="{ref.get("Id")}"/>'
                      "</m:AttachmentIds></m:DeleteAttachment>")
    assert codes(again) == ["ErrorInvalidAttachmentId"]
    assert get(ews, item_id).findtext("t:HasPicture", namespaces=NS) == "false"
