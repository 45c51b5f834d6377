"""The Graph contacts connector against the local Graph server: what Graph cannot hold and how it
travels, edits made in Outlook, delta paging and dead tokens, batching, throttling, retried creates,
the registry's factory and its messages."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from spokesync.connectors import registry
from spokesync.connectors.graph import contact_mapping as cm
from spokesync.connectors.graph import contacts as graph_contacts
from spokesync.connectors.graph.contacts import ContactsTarget, GraphContactsConnector, list_folders
from spokesync.model.contact import Address, Contact, Email, PartialDate, Phone, content_hash, fit
from spokesync.model.hub import CredentialRef, Spoke
from spokesync.ports import ConnectorError, CredentialBroken, FullResyncRequired, ItemUpdate, NewItem, SystemClock
from spokesync.sandbox.graph import GraphServer
from spokesync.sandbox.graph.contacts import ContactFolder
from spokesync.secrets.local import LocalSecretStore
from tests.graph.conftest import SECRET, SHARED, graph_config

RICH = Contact(
    display_name="Ada Lovelace", given_name="Ada", middle_name="King", family_name="Lovelace", prefix="Countess",
    suffix="I", nickname="Ada", file_as="Lovelace, Ada",
    emails=(Email("ada@example.com", "home", "Ada L."), Email("ada@work.example", "work"),
            Email("a@other.example", "other", label="old")),
    phones=(Phone("+44 7700 900123", "mobile"), Phone("+44 20 7946 0018", "work"), Phone("+44 20 7946 0019", "main"),
            Phone("+44 20 1234 5678", "home"), Phone("+44 20 7946 0099", "work_fax"), Phone("+44 7700 900999", "mobile")),
    addresses=(Address("work", "12 St James's Square", "London", "", "SW1Y 4LB", "United Kingdom", po_box="PO 7"),
               Address("work", "1 Lab Road", "Cambridge", "Cambs", "CB1", "United Kingdom", label="lab")),
    company="Analytical Engines", department="Research", job_title="Analyst", manager="Charles Babbage",
    assistant="Mary", websites=("https://ada.example",), birthday=PartialDate(12, 10), anniversary=PartialDate(7, 8, 1835),
    notes="First programmer.\nSecond line.", categories=("Research", "VIP"),
)


def test_what_graph_cannot_hold_round_trips_through_the_side_property(contacts_connector: GraphContactsConnector,
                                                                      graph: GraphServer,
                                                                      contact_folder: ContactFolder) -> None:
    created = contacts_connector.create([NewItem("hub-rich", RICH)])[0]
    assert created.status == "ok", created
    [stored] = graph.contacts_in(contact_folder)
    # what Outlook shows: the three fixed slots, the phone lists and the one mobile number
    assert stored.props["mobilePhone"] == "+44 7700 900123"
    assert stored.props["businessPhones"] == ["+44 20 7946 0018", "+44 20 7946 0019", "+44 20 7946 0099",
                                              "+44 7700 900999"]
    assert stored.props["homePhones"] == ["+44 20 1234 5678"]
    assert stored.props["businessAddress"]["city"] == "London" and stored.props["otherAddress"]["city"] == "Cambridge"
    assert stored.props["birthday"] == "1604-12-10T00:00:00Z"  # no year: the leap year 1604 stands for it
    back = contacts_connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert back.hub_id == "hub-rich"
    assert back.event == replace(RICH, modified=back.event.modified)
    assert content_hash(back.event, cm.FIELDS) == content_hash(RICH, cm.FIELDS)


def test_only_the_slots_graph_has_are_written(contacts_connector: GraphContactsConnector, graph: GraphServer,
                                              contact_folder: ContactFolder) -> None:
    many = Contact(display_name="Many", emails=tuple(Email(f"m{i}@example.com") for i in range(5)),
                   websites=("https://a.example", "https://b.example"),
                   addresses=tuple(Address(t, f"{i} Road") for i, t in enumerate(("home", "home", "work", "other"))))
    created = contacts_connector.create([NewItem("hub-many", many)])[0]
    [stored] = graph.contacts_in(contact_folder)
    assert [e["address"] for e in stored.props["emailAddresses"]] == ["m0@example.com", "m1@example.com",
                                                                      "m2@example.com"]
    assert stored.props["businessHomePage"] == "https://a.example"
    back = contacts_connector.read([created.spoke_item_id])[created.spoke_item_id].event
    # the engine keeps the rest in the hub (Capabilities.limits); what Graph holds reads back exactly
    assert content_hash(back, cm.FIELDS) == content_hash(fit(many, cm.LIMITS), cm.FIELDS)
    assert [(a.type, a.street) for a in back.addresses] == [("home", "0 Road"), ("home", "1 Road"), ("work", "2 Road")]


def test_edits_made_in_outlook_read_with_their_slot_types(contacts_connector: GraphContactsConnector,
                                                          graph: GraphServer, contact_folder: ContactFolder) -> None:
    made = graph.user_create_contact(contact_folder, {
        "displayName": "From Outlook", "emailAddresses": [{"address": "o@example.com", "name": "o@example.com"}],
        "businessPhones": ["+1 555 0100"], "homePhones": ["+1 555 0101"], "mobilePhone": "+1 555 0102",
        "homeAddress": {"street": "Main St 1", "city": "Springfield"}, "birthday": "1990-04-01T22:00:00Z"})
    listing = contacts_connector.changes(None)
    [item] = listing.items
    assert item.id == made and item.hub_id is None
    contact = item.event
    assert contact.emails == (Email("o@example.com", "work"),)
    assert [(p.number, p.type) for p in contact.phones] == [("+1 555 0100", "work"), ("+1 555 0101", "home"),
                                                            ("+1 555 0102", "mobile")]
    assert contact.addresses == (Address("home", "Main St 1", "Springfield"),)
    assert contact.birthday == PartialDate(4, 2, 1990)  # local midnight east of UTC, stored the evening before
    local = graph.user_create_contact(contact_folder, {
        "displayName": "Far east", "birthday": "1990-04-01T11:00:00Z",  # midnight in UTC+13 (Tonga)
        "singleValueExtendedProperties": [{"id": cm.BIRTHDAY_LOCAL_PROP, "value": "1990-04-02T00:00:00Z"}]})
    stale = graph.user_create_contact(contact_folder, {
        "displayName": "Stale local", "birthday": "1990-06-01T11:59:00Z",  # 11:59: ActiveSync's time of day
        "singleValueExtendedProperties": [{"id": cm.BIRTHDAY_LOCAL_PROP, "value": "1988-04-02T00:00:00Z"}]})
    read = contacts_connector.read([local, stale])
    assert read[local].event.birthday == PartialDate(4, 2, 1990)  # PidLidBirthdayLocal gives the date
    assert read[stale].event.birthday == PartialDate(6, 1, 1990)  # one that disagrees is ignored
    # a number the hub wrote and Outlook then changed reads with its slot's type
    written = contacts_connector.create([NewItem("hub-o", Contact(display_name="P", phones=(Phone("+1 1", "main"),)))])[0]
    graph.user_edit_contact(written.spoke_item_id, businessPhones=["+1 2"])
    feed = contacts_connector.changes(listing.cursor)
    changed = {i.id: i.event for i in feed.items}
    assert changed[written.spoke_item_id].phones == (Phone("+1 2", "work"),)


def test_listing_and_delta_page_and_a_dead_token_asks_for_a_full_resync(contacts_connector: GraphContactsConnector,
                                                             graph: GraphServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_contacts, "DELTA_PAGE", 3)
    monkeypatch.setattr(graph_contacts, "LIST_PAGE", 3)
    results = contacts_connector.create([NewItem(f"hub{i}", Contact(display_name=f"C{i}")) for i in range(8)])
    ids = [r.spoke_item_id for r in results]
    before = graph.requests["graph"]
    listing = contacts_connector.changes(None)
    assert sorted(i.id for i in listing.items) == sorted(ids) and listing.full
    assert graph.requests["graph"] - before == 3 + 3  # delta pages of 3, then listing pages of 3
    for contact_id in ids[:5]:
        graph.user_edit_contact(contact_id, jobTitle="Edited")
    graph.user_delete_contact(ids[6])
    feed = contacts_connector.changes(listing.cursor)
    assert sorted(i.id for i in feed.items) == sorted(ids[:5])
    assert all(i.event.job_title == "Edited" for i in feed.items)
    assert feed.deleted == [ids[6]] and not feed.full
    graph.expire_delta_tokens()
    with pytest.raises(FullResyncRequired):
        contacts_connector.changes(feed.cursor)
    with pytest.raises(FullResyncRequired):
        contacts_connector.changes(b"garbage")


def test_the_feed_read_as_etags_names_own_writes_without_reading_them(contacts_connector: GraphContactsConnector,
                                                                      graph: GraphServer) -> None:
    """`change_versions` (ports.VersionFeed): the delta round's ids and etags, no contact read
    again; the etags are the ones the writes returned, a user's edit shows as another etag."""
    listing = contacts_connector.changes(None)
    results = contacts_connector.create([NewItem(f"v{i}", Contact(display_name=f"V{i}")) for i in range(4)])
    before = graph.requests["batch"]
    changed, deleted, cursor = contacts_connector.change_versions(listing.cursor)
    assert changed == {r.spoke_item_id: r.version for r in results} and deleted == []
    assert graph.requests["batch"] == before  # nothing read in batches
    graph.user_edit_contact(results[1].spoke_item_id, jobTitle="Edited")
    graph.user_delete_contact(results[2].spoke_item_id)
    changed, deleted, after = contacts_connector.change_versions(cursor)
    assert list(changed) == [results[1].spoke_item_id] and changed[results[1].spoke_item_id] != results[1].version
    assert deleted == [results[2].spoke_item_id]
    # the cursor is the one `changes` would have given: from it, nothing more
    assert contacts_connector.changes(after).items == [] and contacts_connector.change_versions(after)[:2] == ({}, [])
    with pytest.raises(FullResyncRequired):
        contacts_connector.change_versions(b"garbage")


def test_writes_go_in_batches_of_twenty(contacts_connector: GraphContactsConnector, graph: GraphServer) -> None:
    before = graph.requests["batch"]
    results = contacts_connector.create([NewItem(f"b{i:03d}", Contact(display_name=f"B{i}")) for i in range(45)])
    assert [r.status for r in results] == ["ok"] * 45
    assert graph.requests["batch"] - before == 6  # 3 look-ups for the hub ids (20 + 20 + 5), then 3 creates
    before = graph.requests["batch"]
    updates = [ItemUpdate(r.spoke_item_id, r.version, Contact(display_name=f"U{i}"), f"b{i:03d}")
               for i, r in enumerate(results)]
    assert [r.status for r in contacts_connector.update(updates)] == ["ok"] * 45
    assert graph.requests["batch"] - before == 3


def test_a_retried_create_finds_the_first_contact_and_writes_nothing(contacts_connector: GraphContactsConnector,
                                                                     graph: GraphServer,
                                                                     contact_folder: ContactFolder) -> None:
    first = contacts_connector.create([NewItem("hub-once", RICH)])[0]
    writes = graph.contacts.writes
    again = contacts_connector.create([NewItem("hub-once", RICH), NewItem("hub-new", Contact(display_name="N"))])
    assert again[0].status == "exists" and again[0].spoke_item_id == first.spoke_item_id
    assert again[0].version == first.version and again[0].item is not None and again[0].item.hub_id == "hub-once"
    assert again[1].status == "ok"
    assert graph.contacts.writes == writes + 1
    assert len(graph.contacts_in(contact_folder)) == 2


def test_throttled_batch_members_are_sent_again(contacts_connector: GraphContactsConnector, graph: GraphServer) -> None:
    graph.throttle(times=2, status=429, retry_after=0.05, path_part="/contacts")
    results = contacts_connector.create([NewItem(f"t{i}", Contact(display_name=f"T{i}")) for i in range(3)])
    assert [r.status for r in results] == ["ok"] * 3
    assert contacts_connector.client.waited_s > 0


def _spoke(address: dict, credential_id: str = "cred-1") -> Spoke:
    return Spoke(id="s1", hub_id="h1", name="M365 contacts", kind="graph_contacts", credential_id=credential_id,
                 address=address)


def test_the_registry_builds_the_connector_from_a_saved_credential(graph: GraphServer, tenant, contacts_app,
                                                                  contact_folder: ContactFolder,
                                                                  tmp_path: Path) -> None:
    secrets = LocalSecretStore.open(str(tmp_path / "s.enc"), key_file=str(tmp_path / "s.key"))
    name = secrets.put("graph-cred-1", SECRET)
    credential = CredentialRef(id="cred-1", kind="graph", label="M365", secret_name=name,
                               settings={"tenant": tenant.id, "client_id": contacts_app.client_id, "auth": "secret"})
    config = graph_config(graph)
    connector = registry.connector_for(_spoke({"mailbox": SHARED, "folder_id": contact_folder.id}), credential,
                                       secrets, config, SystemClock())
    assert isinstance(connector, GraphContactsConnector)
    assert connector.changes(None).items == []
    with pytest.raises(ConnectorError, match="needs a contacts folder"):
        registry.connector_for(_spoke({"mailbox": SHARED}), credential, secrets, config, SystemClock())
    with pytest.raises(ConnectorError, match="has no Microsoft 365 credential"):
        registry.connector_for(_spoke({"mailbox": SHARED, "folder_id": contact_folder.id}), None, secrets, config,
                               SystemClock())


def test_missing_consent_and_a_deleted_folder_say_what_to_do(make_connector, contacts_connector: GraphContactsConnector,
                                                            contact_folder: ContactFolder) -> None:
    from spokesync.connectors.graph.connector import Target

    calendar_only = make_connector(Target("user", SHARED)).client  # no Contacts.ReadWrite
    connector = GraphContactsConnector(calendar_only, ContactsTarget(SHARED, contact_folder.id))
    with pytest.raises(CredentialBroken) as info:
        connector.changes(None)
    assert "Contacts.ReadWrite" in str(info.value) and "Grant admin consent" in str(info.value)
    gone = GraphContactsConnector(contacts_connector.client, ContactsTarget(SHARED, "AAMkAGnone"))
    with pytest.raises(ConnectorError, match="contacts folder was not found"):
        gone.changes(None)


def test_the_folder_browser_lists_nested_folders(contacts_connector: GraphContactsConnector, graph: GraphServer,
                                                 contact_folder: ContactFolder, shared_mailbox) -> None:
    child = graph.add_contact_folder(shared_mailbox, "Customers", parent=contact_folder)
    folders = {f.id: f for f in list_folders(contacts_connector.client, SHARED)}
    assert folders[contact_folder.id].path == contact_folder.name
    assert folders[child.id].path == f"{contact_folder.name} / Customers"
    assert folders[child.id].parent_id == contact_folder.id


def test_the_setup_folder_browser_checks_the_permission_first(graph: GraphServer, tenant, app, contacts_app,
                                                             contact_folder: ContactFolder) -> None:
    from spokesync.connectors.graph import GraphSettings, list_contact_folders

    config = graph_config(graph)
    folders = list_contact_folders(GraphSettings(tenant.id, contacts_app.client_id), SECRET, config, SHARED)
    assert contact_folder.id in {f.id for f in folders}
    with pytest.raises(CredentialBroken) as info:
        list_contact_folders({"tenant": tenant.id, "client_id": app.client_id}, SECRET, config, SHARED)
    assert "has no Contacts.ReadWrite application permission (it has Calendars.ReadWrite, Group.ReadWrite.All)" \
        in str(info.value)


def test_a_contacts_only_app_is_saved_and_repaired_against_contact_folders(graph: GraphServer, tenant, contacts_app,
                                                                          contact_folder: ContactFolder,
                                                                          tmp_path: Path) -> None:
    from spokesync.bootstrap import build_context
    from spokesync.connectors import graph as graph_kind
    from spokesync.service import credentials
    from spokesync.stores.sqlite import SqliteHubStore

    secrets = LocalSecretStore.open(str(tmp_path / "s.enc"), key_file=str(tmp_path / "s.key"))
    ctx = build_context(graph_config(graph), store=SqliteHubStore(":memory:"), secrets=secrets)
    settings = {"tenant": tenant.id, "client_id": contacts_app.client_id}
    with pytest.raises(CredentialBroken, match="Calendars.ReadWrite"):  # checked against calendars by default
        graph_kind.save_credential(ctx, "M", settings, SECRET, mailbox=SHARED)
    cred = graph_kind.save_credential(ctx, "M", settings, SECRET, mailbox=SHARED, object_type="contacts")
    ctx.store.put_spoke(_spoke({"mailbox": SHARED, "folder_id": contact_folder.id}, cred.id))
    contacts_app.secrets.add("Second~Secret.9")
    try:
        repaired, _ = credentials.repair_graph(ctx, cred.id, "Second~Secret.9")
        assert ctx.secrets.get(repaired.secret_name or "") == "Second~Secret.9"
    finally:
        contacts_app.secrets.discard("Second~Secret.9")
