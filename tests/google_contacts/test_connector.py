"""The google_contacts connector on the local People API server: group
membership as the spoke's content, sync-token expiry, etag conflicts, batch
splitting, the field mapping, photos by hash, credentials."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from spokesync.connectors.google.contacts import FIELDS, HUB_KEY
from spokesync.model.contact import (
    Address,
    Contact,
    Email,
    PartialDate,
    Phone,
    Photo,
    content_hash,
)
from spokesync.ports import ConnectorError, FullResyncRequired, ItemDelete, ItemUpdate, NewItem
from spokesync.sandbox.google_people import Running
from tests.google_contacts.conftest import USER

PNG_1 = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
PNG_2 = PNG_1 + b"\x00"  # other bytes, still a PNG by its signature


def rich() -> Contact:
    return Contact(
        display_name="Dr. Ada King", given_name="Ada", middle_name="Augusta", family_name="King", prefix="Dr.",
        suffix="Countess", nickname="Ada",
        emails=(Email("ada@example.com", "work", "Ada at work"), Email("ada@home.example", "home"),
                Email("ada@club.example", "other", label="club")),
        phones=(Phone("+44 20 7946 0018", "work"), Phone("+44 7700 900123", "mobile"), Phone("+44 1", "work_fax"),
                Phone("+44 2", "car"), Phone("+44 3", "other", "boat")),
        addresses=(Address("work", "12 St James's Square\nFloor 2", "London", "Greater London", "SW1Y 4LB",
                           "United Kingdom", "PO 7"), Address("home", "Ockham Park", "Ockham")),
        company="Analytical Engines", department="Research", job_title="Analyst", manager="Charles Babbage",
        assistant="Mary Somerville", websites=("https://example.com/ada", "https://example.org"),
        birthday=PartialDate(12, 10), anniversary=PartialDate(7, 8, 1835), notes="First programmer.\nSecond line.",
        categories=("Mathematicians", "Research"))


def test_every_declared_field_round_trips(make_connector, pserver: Running) -> None:
    connector = make_connector("Team")
    contact = rich()
    created = connector.create([NewItem("hub1", contact)])[0]
    assert created.status == "ok"
    back = connector.read([created.spoke_item_id])[created.spoke_item_id]
    assert back.hub_id == "hub1"
    assert content_hash(back.event, FIELDS) == content_hash(contact, FIELDS), back.event
    assert back.event.birthday == PartialDate(12, 10) and back.event.birthday.year is None
    # as Google holds it: typed lists, the anniversary an event, categories as labels (contact groups)
    person = pserver.sandbox.person(USER, created.spoke_item_id)
    assert person is not None
    assert [e["type"] for e in person["emailAddresses"]] == ["work", "home", "club"]
    assert [p["type"] for p in person["phoneNumbers"]] == ["work", "mobile", "workFax", "car", "boat"]
    assert person["events"][0]["type"] == "anniversary"
    assert person["birthdays"] == [{"date": {"month": 12, "day": 10}, "metadata": person["birthdays"][0]["metadata"]}]
    groups = {g.name: rn for rn, g in pserver.sandbox.books[USER].groups.items()}
    members = {m["contactGroupMembership"]["contactGroupResourceName"] for m in person["memberships"]}
    assert members == {groups["Team"], groups["Mathematicians"], groups["Research"], "contactGroups/myContacts"}
    assert {"key": HUB_KEY, "value": "hub1"} in [{k: c[k] for k in ("key", "value")} for c in person["clientData"]]
    assert "file_as" not in connector.capabilities.fields  # fileAses is not updatable in the People API


def test_what_only_google_holds_survives_an_update(make_connector, pserver: Running) -> None:
    connector = make_connector("Team")
    created = connector.create([NewItem("hub1", Contact(display_name="Grace"))])[0]
    pserver.sandbox.user_update(USER, created.spoke_item_id, {
        "events": [{"type": "graduation", "date": {"year": 1934, "month": 6, "day": 1}}],
        "relations": [{"person": "Vincent", "type": "spouse"}],
        "clientData": [{"key": "other.app", "value": "42"}, {"key": HUB_KEY, "value": "hub1"}]})
    pserver.sandbox.user_set_groups(USER, created.spoke_item_id, [connector.group, "contactGroups/myContacts",
                                                                  "contactGroups/starred"])
    current = connector.read([created.spoke_item_id])[created.spoke_item_id]
    done = connector.update([ItemUpdate(created.spoke_item_id, current.version,
                                        Contact(display_name="Grace Hopper", anniversary=PartialDate(6, 15)),
                                        "hub1")])[0]
    assert done.status == "ok"
    person = pserver.sandbox.person(USER, created.spoke_item_id)
    assert person is not None
    assert {e["type"] for e in person["events"]} == {"graduation", "anniversary"}
    assert person["relations"][0]["person"] == "Vincent"
    assert {c["key"] for c in person["clientData"]} == {"other.app", HUB_KEY}
    assert "contactGroups/starred" in {m["contactGroupMembership"]["contactGroupResourceName"]
                                       for m in person["memberships"]}


def test_the_group_is_the_spokes_content(make_connector, pserver: Running) -> None:
    connector = make_connector("Company contacts")
    sandbox = pserver.sandbox
    outsider = sandbox.user_create(USER, {"names": [{"givenName": "Private"}]})
    full = connector.changes(None)
    assert full.full and full.items == []  # the user's other contacts are not this spoke's
    group = connector.group
    member = sandbox.user_create(USER, {"names": [{"givenName": "Joined"}]}, [group])
    feed = connector.changes(full.cursor)
    assert [(i.id, i.hub_id, i.event.given_name) for i in feed.items] == [(member["resourceName"], None, "Joined")]
    # leaving the group is a deletion for this spoke, never a deletion in Google
    sandbox.user_set_groups(USER, member["resourceName"], ["contactGroups/myContacts"])
    feed2 = connector.changes(feed.cursor)
    assert feed2.items == [] and feed2.deleted == [member["resourceName"]]
    assert sandbox.person(USER, member["resourceName"]) is not None
    assert connector.read([member["resourceName"], outsider["resourceName"]]) == {}
    upd = connector.update([ItemUpdate(member["resourceName"], "", Contact(display_name="x"), "h")])[0]
    assert upd.status == "not_found"


def test_group_by_name_is_created_once_and_group_id_must_exist(make_connector, pserver: Running) -> None:
    first = make_connector("Shared contacts")
    group = first.group
    second = make_connector("Shared contacts")
    assert second.group == group
    names = [g.name for g in pserver.sandbox.books[USER].groups.values()]
    assert names.count("Shared contacts") == 1
    assert make_connector(group_id=group).group == group
    missing = make_connector(group_id="contactGroups/gone")
    with pytest.raises(ConnectorError, match="no longer exists"):
        missing.changes(None)


def test_expired_sync_token_asks_for_a_full_resync(make_connector, pserver: Running) -> None:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    pserver.sandbox.clock = lambda: start
    connector = make_connector("Team")
    connector.create([NewItem("hub1", Contact(display_name="Ada"))])
    full = connector.changes(None)
    pserver.sandbox.clock = lambda: start + timedelta(days=7, minutes=1)
    with pytest.raises(FullResyncRequired):
        connector.changes(full.cursor)
    again = connector.changes(None)
    assert again.full and [i.hub_id for i in again.items] == ["hub1"]
    assert connector.changes(again.cursor).items == []


def test_a_stale_etag_is_a_conflict_even_when_the_change_lands_between_read_and_write(
        make_connector, pserver: Running, monkeypatch) -> None:
    connector = make_connector("Team")
    made = connector.create([NewItem(f"hub{i}", Contact(display_name=f"P{i}")) for i in range(3)])
    items = [ItemUpdate(r.spoke_item_id, r.version, Contact(display_name=f"New {i}"), f"hub{i}")
             for i, r in enumerate(made)]
    real_get = connector._get

    def get_then_user_edits(ids, fields):
        found = real_get(ids, fields)
        pserver.sandbox.user_update(USER, made[1].spoke_item_id, {"nicknames": [{"value": "edited"}]})
        return found

    monkeypatch.setattr(connector, "_get", get_then_user_edits)
    results = connector.update(items)
    assert [r.status for r in results] == ["ok", "conflict", "ok"]
    monkeypatch.undo()
    now = connector.read([r.spoke_item_id for r in made])
    assert [now[r.spoke_item_id].event.display_name for r in made] == ["New 0", "P1", "New 2"]
    assert now[made[1].spoke_item_id].event.nickname == "edited"


def test_bulk_writes_are_split_and_sequential(make_connector, pserver: Running) -> None:
    connector = make_connector("Team")
    stats = pserver.sandbox.stats
    stats.reset()
    made = connector.create([NewItem(f"h{i:04d}", Contact(display_name=f"Person {i}")) for i in range(450)])
    assert [r.status for r in made] == ["ok"] * 450
    assert stats.by_method["people.batchCreateContacts"] == 3  # 200 + 200 + 50
    stats.reset()
    done = connector.update([ItemUpdate(r.spoke_item_id, r.version, Contact(display_name=f"Renamed {i}"), f"h{i:04d}")
                             for i, r in enumerate(made[:250])])
    assert [r.status for r in done] == ["ok"] * 250
    assert stats.by_method["people.batchUpdateContacts"] == 2
    stats.reset()
    gone = connector.delete([ItemDelete(r.spoke_item_id, r.version) for r in done] +
                            [ItemDelete(r.spoke_item_id, r.version) for r in made[250:]])
    assert [r.status for r in gone] == ["ok"] * 450
    assert stats.by_method["people.batchDeleteContacts"] == 1  # up to 500 a call
    assert pserver.sandbox.stats_concurrent_mutations == 0
    assert connector.changes(None).items == []


def test_photo_moves_by_hash(make_connector, pserver: Running) -> None:
    connector = make_connector("Team")
    stats = pserver.sandbox.stats
    created = connector.create([NewItem("hub1", Contact(display_name="Ada", photo=Photo.of(PNG_1, "image/png")))])[0]
    assert created.status == "ok" and connector.photo_uploads == 1
    listed = connector.changes(None)
    assert listed.items[0].event.photo.hash == Photo.of(PNG_1).hash
    assert listed.items[0].version == created.version  # the stamp write's etag is the version handed back
    assert connector.photo_downloads == 0  # the stamp names the URL we wrote: no download
    stats.reset()
    same = connector.update([ItemUpdate(created.spoke_item_id, created.version,
                                        Contact(display_name="Ada L", photo=Photo(Photo.of(PNG_1).hash)), "hub1")])[0]
    assert same.status == "ok" and connector.photo_uploads == 1
    assert "people.updateContactPhoto" not in stats.by_method
    # the user replaces the photo in Google: the new bytes are read once
    pserver.sandbox.user_set_photo(USER, created.spoke_item_id, PNG_2)
    feed = connector.changes(listed.cursor)
    assert feed.items[0].event.photo == Photo.of(PNG_2, "image/png")
    assert connector.photo_downloads == 1
    # the hub removes it
    gone = connector.update([ItemUpdate(created.spoke_item_id, feed.items[0].version, Contact(display_name="Ada L"),
                                        "hub1")])[0]
    assert gone.status == "ok"
    assert connector.read([created.spoke_item_id])[created.spoke_item_id].event.photo is None


def test_service_account_credentials(make_connector, pserver: Running, secret_store) -> None:
    from spokesync.connectors.google.auth import save_service_account_credential
    from spokesync.stores.sqlite import SqliteHubStore

    store = SqliteHubStore(":memory:")
    key = pserver.sandbox.new_service_account_key("sync@project.iam.gserviceaccount.com")
    acting = save_service_account_credential(store, secret_store, "sa1", "Workspace", key, subject=USER)
    connector = make_connector("Team", credential=acting)
    assert connector.create([NewItem("hub1", Contact(display_name="Ada"))])[0].status == "ok"
    assert [p["names"][0]["displayName"] for p in pserver.sandbox.live_people(USER)] == ["Ada"]
    alone = save_service_account_credential(store, secret_store, "sa2", "No delegation", key)
    with pytest.raises(ConnectorError) as info:
        make_connector("Team", credential=alone).changes(None)
    assert info.value.code == "permission_denied"
    assert "domain-wide delegation" in str(info.value)


def test_rate_limits_are_retried(make_connector, pserver: Running) -> None:
    connector = make_connector("Team")
    connector.changes(None)
    pserver.sandbox.inject(429, "RATE_LIMIT_EXCEEDED", 2, path_contains="batchCreateContacts")
    assert connector.create([NewItem("hub1", Contact(display_name="Ada"))])[0].status == "ok"
    assert len(pserver.sandbox.live_people(USER)) == 1


def test_a_create_retried_by_a_later_run_finds_the_person(make_connector, pserver: Running) -> None:
    first = make_connector("Team")
    made = first.create([NewItem("hub1", Contact(display_name="Ada"))])[0]
    later = make_connector("Team")  # a new run: a new connector instance
    pserver.sandbox.stats.reset()
    listing = later.changes(None)
    again = later.create([NewItem("hub1", Contact(display_name="Ada")), NewItem("hub2", Contact(display_name="Bo"))])
    assert [r.status for r in again] == ["exists", "ok"] and again[0].spoke_item_id == made.spoke_item_id
    assert again[0].item is not None and again[0].item.hub_id == "hub1"
    # the run's own full listing told it the hub ids: no second listing for the create
    assert pserver.sandbox.stats.by_method["people.connections.list"] == 1
    assert len(listing.items) == 1 and len(later.changes(None).items) == 2


def test_photos_are_fetched_from_https_or_the_configured_local_server_only(make_connector, pserver: Running) -> None:
    connector = make_connector("Team")
    assert connector.plain_http_root == pserver.url
    with pytest.raises(ConnectorError, match="not https"):
        connector._download("http://169.254.169.254/latest/meta-data")


def test_check_names_the_group_and_creates_nothing(make_connector, pserver: Running, secret_store) -> None:
    from spokesync.connectors.google.auth import save_service_account_credential
    from spokesync.stores.sqlite import SqliteHubStore

    groups_before = len(pserver.sandbox.books[USER].groups)
    assert make_connector("Company").check() == "Company (a new label, created at the first sync)"
    assert len(pserver.sandbox.books[USER].groups) == groups_before
    existing = pserver.sandbox.user_create_group(USER, "Board")
    assert make_connector("Board").check() == "Board"
    assert make_connector(group_id=existing).check() == "Board"
    with pytest.raises(ConnectorError, match="no contact group"):
        make_connector(group_id="contactGroups/nope").check()
    key = pserver.sandbox.new_service_account_key("sync@project.iam.gserviceaccount.com")
    alone = save_service_account_credential(SqliteHubStore(":memory:"), secret_store, "sa", "SA", key)
    with pytest.raises(ConnectorError) as info:
        make_connector("Company", credential=alone).check()
    assert info.value.code == "permission_denied"
