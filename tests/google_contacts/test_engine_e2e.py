"""A contacts hub through the real engine: the Google contacts spoke on the local People API
server and an in-memory contacts folder. Contacts flow both ways, our own writes do not come
back as edits, leaving the group is a deletion for the hub (under its rules) while the person
stays in Google, an expired sync token is a full resync that changes nothing, and options that
keep notes or photos out never erase Google's."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spokesync.bootstrap import Context, build_context
from spokesync.connectors import memory_registry
from spokesync.connectors.google.auth import save_oauth_credential
from spokesync.connectors.memory import MemoryCalendar
from spokesync.engine.runner import Runner
from spokesync.model.contact import Contact, Email, PartialDate, Photo
from spokesync.model.hub import Hub, Spoke
from spokesync.ports import FakeClock
from spokesync.queue.local import LocalTaskQueue
from spokesync.sandbox.google_people import Running
from spokesync.service import hubs
from spokesync.stores.sqlite import SqliteHubStore
from tests.google_contacts.conftest import USER

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


class World:
    def __init__(self, pserver: Running, pconfig: Any, secret_store: Any) -> None:
        memory_registry.FOLDERS.clear()
        self.server = pserver
        self.clock = FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
        pserver.sandbox.clock = self.clock.now
        queue = LocalTaskQueue()
        self.ctx: Context = build_context(pconfig, clock=self.clock, store=SqliteHubStore(":memory:"),
                                          secrets=secret_store, queue=queue)
        queue.handler = self.ctx.run_task
        self.queue = queue
        token = pserver.sandbox.issue_refresh_token(USER, pconfig.google_client_id)
        save_oauth_credential(self.ctx.store, self.ctx.secrets, "g", "Google", token, account=USER)
        self.hub: Hub = hubs.create_hub(self.ctx, "People", "contacts")

    def google(self, group: str = "Company contacts", **options: Any) -> Spoke:
        options.setdefault("direction", "two_way")
        return hubs.add_spoke(self.ctx, self.hub.id, "Google", "google_contacts", {"group": group},
                              credential_id="g", options=options)

    def folder(self, name: str = "Exchange") -> tuple[Spoke, MemoryCalendar]:
        spoke = hubs.add_spoke(self.ctx, self.hub.id, name, "memory_contacts", {"folder": name},
                               options={"direction": "two_way"})
        return spoke, memory_registry.folder(name)

    def settle(self) -> None:
        for _ in range(3):
            for spoke in self.ctx.store.list_spokes(self.hub.id):
                Runner(self.ctx).sync(spoke.id)
            self.queue.drain()

    def group_members(self, group: str = "Company contacts") -> list[dict[str, Any]]:
        book = self.server.sandbox.books[USER]
        rn = next(r for r, g in book.groups.items() if g.name == group and not g.deleted)
        return [p for p in self.server.sandbox.live_people(USER)
                if any(m["contactGroupMembership"]["contactGroupResourceName"] == rn for m in p["memberships"])]

    def live_hub(self) -> list[Contact]:
        return [i.event for i in self.ctx.store.list_hub_items(self.hub.id)]  # type: ignore[misc]


@pytest.fixture
def world(pserver: Running, pconfig, secret_store) -> World:
    return World(pserver, pconfig, secret_store)


def test_contacts_flow_both_ways_and_settle(world: World) -> None:
    google = world.google()
    _, folder = world.folder()
    folder.user_create(Contact(display_name="Ada Lovelace", given_name="Ada", family_name="Lovelace",
                               emails=(Email("ada@example.com"),), birthday=PartialDate(12, 10),
                               categories=("Research",), photo=Photo.of(PNG, "image/png")))
    group = world.server.sandbox.user_create_group(USER, "Company contacts")
    world.server.sandbox.user_create(USER, {"names": [{"unstructuredName": "Reception"}],
                                            "phoneNumbers": [{"value": "+1 555 0100", "type": "main"}]}, [group])
    world.server.sandbox.user_create(USER, {"names": [{"unstructuredName": "Private friend"}]})  # not in the group
    world.settle()
    assert sorted(c.name for c in world.live_hub()) == ["Ada Lovelace", "Reception"]
    assert sorted(c.name for c in folder.events()) == ["Ada Lovelace", "Reception"]
    members = {p["names"][0]["displayName"]: p for p in world.group_members()}
    assert sorted(members) == ["Ada Lovelace", "Reception"]
    ada = members["Ada Lovelace"]
    assert ada["birthdays"][0]["date"] == {"month": 12, "day": 10}
    assert "default" not in ada["photos"][0]
    # settled: another round writes nothing anywhere
    stats = world.server.sandbox.stats
    stats.reset()
    writes = folder.writes
    world.settle()
    assert not {m for m in stats.by_method if "batch" in m and "Get" not in m} and folder.writes == writes
    # an edit in Google reaches the folder
    world.server.sandbox.user_update(USER, ada["resourceName"], {"nicknames": [{"value": "Countess"}]})
    world.settle()
    assert [c.nickname for c in folder.events() if c.name == "Ada Lovelace"] == ["Countess"]
    assert world.ctx.store.get_spoke(google.id) is not None


def test_leaving_the_group_deletes_from_the_hub_not_from_google(world: World) -> None:
    world.google()
    _, folder = world.folder()
    for name in ("Ada", "Grace", "Hedy", "Joan", "Katherine"):
        folder.user_create(Contact(display_name=name))
    world.settle()
    leaving = next(p for p in world.group_members() if p["names"][0]["displayName"] == "Grace")
    world.server.sandbox.user_set_groups(USER, leaving["resourceName"], ["contactGroups/myContacts"])
    world.settle()
    assert sorted(c.name for c in folder.events()) == ["Ada", "Hedy", "Joan", "Katherine"]
    assert world.server.sandbox.person(USER, leaving["resourceName"]) is not None  # still in Google


def test_an_expired_sync_token_is_a_full_resync_that_changes_nothing(world: World) -> None:
    from spokesync.connectors.registry import connector_for
    from spokesync.ports import FullResyncRequired

    google = world.google()
    _, folder = world.folder()
    folder.user_create(Contact(display_name="Ada"))
    world.settle()
    world.clock.advance(timedelta(days=8).total_seconds())

    def connector() -> Any:
        spoke = world.ctx.store.get_spoke(google.id)
        assert spoke is not None
        return connector_for(spoke, world.ctx.store.get_credential("g"), world.ctx.secrets, world.ctx.config,
                             world.ctx.clock)

    with pytest.raises(FullResyncRequired):  # the stored token is past Google's 7 days
        connector().changes(world.ctx.store.get_cursor(google.id))
    hub_before = [(i.id, i.version) for i in world.ctx.store.list_hub_items(world.hub.id)]
    world.settle()
    runs = world.ctx.store.list_runs(spoke_id=google.id, limit=1)
    assert runs[0].status == "ok" and not runs[0].errors, runs[0]
    assert [(i.id, i.version) for i in world.ctx.store.list_hub_items(world.hub.id)] == hub_before
    assert [c.name for c in folder.events()] == ["Ada"] and len(world.group_members()) == 1
    connector().changes(world.ctx.store.get_cursor(google.id))  # a fresh token was stored


def test_options_that_keep_notes_and_photos_out_never_erase_googles(world: World) -> None:
    world.google(sync_notes=False, sync_photo=False)
    _, folder = world.folder()
    folder.user_create(Contact(display_name="Ada"))
    world.settle()
    [ada] = world.group_members()
    world.server.sandbox.user_update(USER, ada["resourceName"], {"biographies": [{"value": "Google's note"}]})
    world.server.sandbox.user_set_photo(USER, ada["resourceName"], PNG)
    [item] = folder.items.values()
    folder.user_update(item.id, Contact(display_name="Ada", nickname="edited in the folder"))
    world.settle()
    [after] = world.group_members()
    assert after["nicknames"][0]["value"] == "edited in the folder"
    assert after["biographies"][0]["value"] == "Google's note"
    assert "default" not in after["photos"][0]
