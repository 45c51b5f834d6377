"""Exchange contacts through the connector on the strict local server: fixed slots without loss
(a second mobile, a fourth address), names incl. the Outlook title, a birthday without a year,
what a person changes in Outlook, and distribution lists left alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from spokesync.connectors import registry
from spokesync.connectors.exchange.access import ExchangeSettings
from spokesync.connectors.exchange.contact_mapping import LIMITS
from spokesync.connectors.exchange.contacts import ExchangeContactsConnector, connector_for_folder
from spokesync.model.contact import (
    ALL_FIELDS,
    Address,
    Contact,
    Email,
    PartialDate,
    Phone,
    Photo,
    content_hash,
    fit,
    keep_overflow,
)
from spokesync.model.hub import CredentialRef, Spoke
from spokesync.ports import ConnectorError, ItemDelete, ItemUpdate, NewItem, SystemClock
from spokesync.sandbox.ews import EwsServer, attachments
from spokesync.sandbox.ews.store import Folder, Item
from spokesync.secrets.local import LocalSecretStore
from tests.exchange.conftest import PASSWORD, local_config


@pytest.fixture
def folder(ews: EwsServer, request: pytest.FixtureRequest) -> Folder:
    ews.clear_faults()
    return ews.public_folder(f"pfm-{request.node.name}", folder_class="IPF.Contact")


@pytest.fixture
def connector(ews: EwsServer, settings: ExchangeSettings, folder: Folder) -> ExchangeContactsConnector:
    return connector_for_folder(settings, PASSWORD, local_config(), folder.id, public=True, batch_size=4)


def keys(item: Item, container: str) -> list[str]:
    elem = item.fields.get(container)
    return [] if elem is None else [e.get("Key") or "" for e in elem]


def round_trip(connector: ExchangeContactsConnector, contact: Contact) -> tuple[str, Contact]:
    created = connector.create([NewItem("hub-rt", contact)])[0]
    assert created.status == "ok", created
    return created.spoke_item_id, connector.read([created.spoke_item_id])[created.spoke_item_id].event


FULL = Contact(
    display_name="Dr. Ada King", given_name="Ada", middle_name="Augusta", family_name="King", prefix="Dr.",
    suffix="Jr.", nickname="Ada", file_as="King, Ada",
    emails=(Email("ada@home.example", "home", "Ada (home)"), Email("ada@example.com", "work")),
    phones=(Phone("+44 7700 900123", "mobile"), Phone("+44 7700 900999", "mobile"), Phone("+44 20 1", "work"),
            Phone("+44 20 2", "work"), Phone("+44 20 3", "work"), Phone("+44 20 9", "work_fax")),
    addresses=(Address("home", "1 Lane\nFlat 2", "London", "", "N1", "United Kingdom", po_box="PO 12"),
               Address("work", "12 Square", "London", "Greater London", "SW1", "United Kingdom"),
               Address("work", "Lab 3", "Cambridge", "", "CB1", "United Kingdom")),
    company="Analytical Engines", department="Research", job_title="Analyst", manager="C. Babbage",
    assistant="M. Somerville", websites=("https://example.com/ada",),
    birthday=PartialDate(12, 10), anniversary=PartialDate(7, 8, 1835),
    notes_html="<p>First <b>programmer</b>.</p>", categories=("Research", "VIP"),
    photo=Photo.of(b"\xff\xd8\xff\xe0 not really a JPEG: Ada"),
)


def test_every_held_field_round_trips(ews: EwsServer, connector: ExchangeContactsConnector) -> None:
    item_id, back = round_trip(connector, FULL)
    fields = connector.capabilities.fields
    assert fields == ALL_FIELDS
    for name in sorted(fields):
        assert content_hash(back, {name}) == content_hash(FULL, {name}), (name, getattr(back, name))
    stored = ews.item(item_id)
    # a second mobile and a third work number take free keys; the layout remembers what they were
    assert keys(stored, "PhoneNumbers") == ["MobilePhone", "OtherTelephone", "BusinessPhone", "BusinessPhone2",
                                            "HomePhone2", "BusinessFax"]
    # two work addresses: the second in the free key
    assert sorted(keys(stored, "PhysicalAddresses")) == ["Business", "Home", "Other"]
    # a birthday without a year is stored in 1604 (Exchange needs a year), read back without one
    assert (stored.text("Birthday") or "").startswith("1604-12-10")
    assert back.birthday == PartialDate(12, 10) and back.anniversary == PartialDate(7, 8, 1835)


def test_yearless_29_february_fits(connector: ExchangeContactsConnector) -> None:
    _, back = round_trip(connector, Contact(display_name="Leap", birthday=PartialDate(2, 29)))
    assert back.birthday == PartialDate(2, 29)


def test_what_does_not_fit_stays_in_the_hub(connector: ExchangeContactsConnector) -> None:
    """A fourth e-mail address and a fourth postal address: the spoke declares three slots; the
    engine writes what fits and keeps the rest (model.contact.fit / keep_overflow)."""
    assert connector.capabilities.limits == LIMITS
    assert LIMITS["emails"] == 3 and LIMITS["addresses"] == 3
    hub = Contact(display_name="Many",
                  emails=tuple(Email(f"m{i}@example.com", "work") for i in range(4)),
                  addresses=tuple(Address("home", f"{i} Road") for i in range(4)),
                  websites=("https://a.example", "https://b.example"))
    _, back = round_trip(connector, fit(hub, dict(connector.capabilities.limits)))
    assert [e.address for e in back.emails] == [f"m{i}@example.com" for i in range(3)]
    assert [a.street for a in back.addresses] == [f"{i} Road" for i in range(3)]
    assert back.websites == ("https://a.example",)
    restored = keep_overflow(hub, back, dict(connector.capabilities.limits))
    for name in ("emails", "addresses", "websites"):
        assert content_hash(restored, {name}) == content_hash(hub, {name}), name


def test_what_a_person_changes_in_outlook_is_read_as_meant(ews: EwsServer, connector: ExchangeContactsConnector) -> None:
    item_id, _ = round_trip(connector, FULL)
    cursor = connector.changes(None).cursor
    stored = ews.item(item_id)
    phones = "".join(f'<t:Entry Key="{e.get("Key")}">{e.text}</t:Entry>' for e in stored.fields["PhoneNumbers"]
                     if e.get("Key") != "OtherTelephone")  # the second mobile removed in Outlook
    ews.user_edit(item_id, f'<t:PhoneNumbers>{phones}<t:Entry Key="HomePhone">+44 20 777</t:Entry></t:PhoneNumbers>'
                           '<t:EmailAddresses><t:Entry Key="EmailAddress1">ada@new.example</t:Entry>'
                           '<t:Entry Key="EmailAddress2">ada@example.com</t:Entry></t:EmailAddresses>'
                           "<t:JobTitle>Countess</t:JobTitle>")
    feed = connector.changes(cursor)
    (changed,) = feed.items
    contact = changed.event
    assert contact.job_title == "Countess"
    assert [(p.number, p.type) for p in contact.phones] == [
        ("+44 7700 900123", "mobile"), ("+44 20 1", "work"), ("+44 20 2", "work"), ("+44 20 3", "work"),
        ("+44 20 9", "work_fax"), ("+44 20 777", "home")]
    # a changed address is not the one remembered: no remembered type or name for it
    assert contact.emails == (Email("ada@new.example", "other"), Email("ada@example.com", "work"))
    assert changed.hub_id == "hub-rt"


def test_a_contact_made_in_outlook_reads_with_its_keys_types(ews: EwsServer, folder: Folder,
                                                             connector: ExchangeContactsConnector) -> None:
    ews.user_item(folder, "<t:Contact><t:DisplayName>Reception</t:DisplayName>"
                          '<t:EmailAddresses><t:Entry Key="EmailAddress1">desk@example.com</t:Entry></t:EmailAddresses>'
                          '<t:PhysicalAddresses><t:Entry Key="Home"><t:City>Bonn</t:City></t:Entry></t:PhysicalAddresses>'
                          '<t:PhoneNumbers><t:Entry Key="CompanyMainPhone">+49 228 1</t:Entry>'
                          '<t:Entry Key="MobilePhone">+49 170 1</t:Entry></t:PhoneNumbers>'
                          "<t:Birthday>1990-04-02T11:59:00Z</t:Birthday></t:Contact>")
    (item,) = connector.changes(None).items
    contact = item.event
    assert item.hub_id is None
    assert contact.emails == (Email("desk@example.com", "other"),)
    assert {(p.number, p.type) for p in contact.phones} == {("+49 228 1", "company"), ("+49 170 1", "mobile")}
    assert contact.addresses == (Address("home", city="Bonn"),)
    assert contact.birthday == PartialDate(4, 2, 1990)


def test_clearing_fields_deletes_them_in_exchange(ews: EwsServer, connector: ExchangeContactsConnector) -> None:
    item_id, _ = round_trip(connector, FULL)
    version = connector.read([item_id])[item_id].version
    bare = Contact(display_name="Ada", emails=(Email("ada@example.com", "work"),))
    result = connector.update([ItemUpdate(item_id, version, bare, "hub-rt")])[0]
    assert result.status == "ok", result
    back = connector.read([item_id])[item_id].event
    assert content_hash(back, connector.capabilities.fields) == content_hash(bare, connector.capabilities.fields)
    stored = ews.item(item_id)
    assert keys(stored, "EmailAddresses") == ["EmailAddress1"]
    assert "PhoneNumbers" not in stored.fields and "PhysicalAddresses" not in stored.fields
    assert "Birthday" not in stored.fields and "Body" not in stored.fields


@pytest.mark.parametrize("public", [True, False], ids=["public-folder", "mailbox-folder"])
def test_distribution_lists_are_left_alone(ews: EwsServer, settings: ExchangeSettings, public: bool,
                                           request: pytest.FixtureRequest) -> None:
    make = ews.public_folder if public else ews.mailbox_folder
    folder = make(f"dl-{request.node.name}", folder_class="IPF.Contact")
    connector = connector_for_folder(settings, PASSWORD, local_config(), folder.id, public=public, batch_size=4)
    group = ews.user_item(folder, "<t:DistributionList><t:DisplayName>Team</t:DisplayName><t:Members><t:Member>"
                                  "<t:Mailbox><t:EmailAddress>a@example.com</t:EmailAddress></t:Mailbox>"
                                  "</t:Member></t:Members></t:DistributionList>")
    changekey = group.changekey
    created = connector.create([NewItem("hub-1", Contact(display_name="Grace", emails=(Email("g@example.com"),)))])[0]
    listing = connector.changes(None)
    assert [i.id for i in listing.items] == [created.spoke_item_id] and listing.full
    assert connector.skipped_lists == {group.id}
    # a later feed with the list changed in Outlook still reports nothing for it
    ews.user_edit(group.id, "<t:DisplayName>Team 2</t:DisplayName>")
    changekey = ews.item(group.id).changekey
    feed = connector.changes(listing.cursor)
    assert feed.items == [] and feed.deleted == []
    assert connector.read([group.id]) == {}  # never read as a contact
    # our own writes in the folder leave it as it is
    updated = connector.update([ItemUpdate(created.spoke_item_id, created.version, Contact(display_name="G"), "hub-1")])
    connector.delete([ItemDelete(created.spoke_item_id, updated[0].version)])
    assert connector.changes(None).items == []
    assert ews.item(group.id).text("DisplayName") == "Team 2" and ews.item(group.id).changekey == changekey


def test_updates_write_one_item_per_change_in_batches(ews: EwsServer, connector: ExchangeContactsConnector) -> None:
    contacts = [replace(FULL, display_name=f"P{i}") for i in range(9)]
    created = connector.create([NewItem(f"hb{i}", c) for i, c in enumerate(contacts)])
    ews.reset_counts()
    results = connector.update([ItemUpdate(r.spoke_item_id, r.version, replace(c, job_title="New"), f"hb{i}")
                                for i, (r, c) in enumerate(zip(created, contacts, strict=True))])
    assert [r.status for r in results] == ["ok"] * 9
    assert ews.calls("UpdateItem") == 3  # batch_size 4: 4 + 4 + 1


def test_the_registry_builds_the_kind_from_an_exchange_credential(ews: EwsServer, settings: ExchangeSettings,
                                                                  folder: Folder, tmp_path: Path) -> None:
    secrets = LocalSecretStore.open(str(tmp_path / "secrets.json"))
    name = secrets.put("exchange-cred-1", PASSWORD)
    credential = CredentialRef(id="cred-1", kind="exchange", label="Exchange", secret_name=name,
                               settings=settings.to_dict())
    spoke = Spoke(id="s1", hub_id="h1", name="Company contacts", kind="exchange_contacts", credential_id="cred-1",
                  address={"folder_id": folder.id, "public": True})
    connector = registry.connector_for(spoke, credential, secrets, local_config(), SystemClock())
    assert isinstance(connector, ExchangeContactsConnector) and connector.public
    assert connector.check() == folder.name
    assert connector.changes(None).full


def test_a_folder_that_is_not_a_contacts_folder_is_refused_in_words(ews: EwsServer, settings: ExchangeSettings) -> None:
    calendar = ews.public_folder("Company calendar")
    connector = connector_for_folder(settings, PASSWORD, local_config(), calendar.id, public=True)
    with pytest.raises(ConnectorError) as refused:
        connector.check()
    assert refused.value.code == "not_a_contacts_folder"
    assert str(refused.value) == ("'Company calendar' is not a contacts folder (it holds IPF.Appointment): "
                                  "pick a contacts folder")


def test_photos_are_attachments_and_move_only_when_changed(ews: EwsServer, connector: ExchangeContactsConnector) -> None:
    first, second = Photo.of(b"picture one"), Photo.of(b"picture two", "image/png")
    created = connector.create([NewItem("hub-p", Contact(display_name="Pic", photo=first))])[0]
    stored = ews.item(created.spoke_item_id)
    (attachment,) = stored.attachments
    assert attachment.is_contact_photo and attachment.content == b"picture one" and attachment.name == "ContactPicture.jpg"
    ews.reset_counts()
    listing = connector.changes(None)
    (item,) = listing.items
    assert item.version == created.version  # the version after the attachment: no echo
    assert item.event.photo is not None and item.event.photo.hash == first.hash
    assert ews.calls("GetAttachment") == 0  # our own picture: its hash is in its ContentId, no bytes read
    # an update with the same picture touches no attachment
    ews.reset_counts()
    same = connector.update([ItemUpdate(item.id, item.version, replace(item.event, job_title="X", photo=first),
                                        "hub-p")])[0]
    assert same.status == "ok" and ews.calls("CreateAttachment", "DeleteAttachment", "GetItem") == 0
    assert connector.changes(listing.cursor).items[0].version == same.version
    # another picture replaces it; no picture removes it
    swapped = connector.update([ItemUpdate(item.id, same.version, Contact(display_name="Pic", photo=second),
                                           "hub-p")])[0]
    (attachment,) = ews.item(item.id).attachments
    assert attachment.content == b"picture two" and attachment.content_type == "image/png"
    assert connector.read([item.id])[item.id].version == swapped.version
    removed = connector.update([ItemUpdate(item.id, swapped.version, Contact(display_name="Pic"), "hub-p")])[0]
    assert removed.status == "ok" and ews.item(item.id).attachments == []
    back = connector.read([item.id])[item.id]
    assert back.event.photo is None and back.version == removed.version


def test_a_picture_set_in_outlook_is_read_once_with_its_bytes(ews: EwsServer, folder: Folder,
                                                              connector: ExchangeContactsConnector) -> None:
    made = ews.user_item(folder, "<t:Contact><t:DisplayName>Outlook</t:DisplayName></t:Contact>")
    other = ews.user_item(folder, "<t:Contact><t:DisplayName>Other</t:DisplayName></t:Contact>")
    attachments.add(ews.store, made, "ContactPicture.jpg", b"from outlook")
    attachments.add(ews.store, other, "ContactPicture.jpg", b"from outlook too")
    attachments.add(ews.store, other, "notes.txt", b"not a picture", content_type="text/plain", is_contact_photo=False)
    ews.reset_counts()
    read = {i.id: i.event for i in connector.changes(None).items}
    assert ews.calls("GetAttachment") == 1  # one call for the batch
    assert read[made.id].photo == Photo.of(b"from outlook")
    assert read[other.id].photo == Photo.of(b"from outlook too")


def test_numbers_under_keys_exchangelib_does_not_know_are_left_as_they_are(ews: EwsServer, folder: Folder,
                                                                          connector: ExchangeContactsConnector) -> None:
    made = ews.user_item(folder, '<t:Contact><t:DisplayName>B</t:DisplayName><t:PhoneNumbers>'
                                 '<t:Entry Key="BusinessMobile">+1 555 0102</t:Entry>'
                                 '<t:Entry Key="MobilePhone">+1 555 0103</t:Entry></t:PhoneNumbers></t:Contact>')
    (item,) = connector.changes(None).items
    assert item.event.phones == (Phone("+1 555 0103", "mobile"),)  # exchangelib does not read BusinessMobile
    result = connector.update([ItemUpdate(item.id, item.version, Contact(display_name="B"), "hub-b")])[0]
    assert result.status == "ok"
    assert keys(ews.item(made.id), "PhoneNumbers") == ["BusinessMobile"]  # ours cleared, that one untouched
