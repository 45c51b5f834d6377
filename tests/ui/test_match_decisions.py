"""Deciding ambiguous matches (issue 15, docs/decisions/2026-12-01-matching.md): a contacts spoke
joins a hub that holds two cards with the joining card's address, so the real engine leaves it
unlinked; the administrator decides through the setup API (POST /spokes/{id}/matches, errors in
words with stable codes) or on the dashboard ("Same person" next to one candidate, "Different
people"), and the next run applies it: linked, not copied, or copied as a new contact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from spokesync.connectors import memory_registry
from spokesync.model.contact import Contact, Email
from spokesync.service import setup_api
from tests.helpers import wait_for
from tests.ui.conftest import ADMIN_TOKEN, LocalSpokesync, axe_violations, start_local

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Spokesync-Client": "tests"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSpokesync]:
    running = start_local(Path(tmp_path_factory.mktemp("spokesync-matches")))
    yield running
    running.close()


def call(server: LocalSpokesync, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    resp = requests.request(method, server.url + "/api" + path, json=body, headers=AUTH, timeout=30)
    return resp.status_code, resp.json()


def ambiguous_situation(server: LocalSpokesync, prefix: str) -> dict[str, Any]:
    """Hub "PREFIX people" holds Ada (work) and Ada (home), both with ada@example.com (from spoke
    "office"); spoke "team" then joins holding its own Ada with that address, and Grace, who is new."""
    office, team = memory_registry.folder(f"{prefix}-office"), memory_registry.folder(f"{prefix}-team")
    office.items.clear()
    team.items.clear()
    office.user_create(Contact(display_name="Ada (work)", emails=(Email("ada@example.com"),)))
    office.user_create(Contact(display_name="Ada (home)", emails=(Email("ada@example.com"),
                                                                   Email("ada@home.example"))))
    _, hub = call(server, "POST", "/hubs", {"name": f"{prefix} people", "object_type": "contacts"})
    status, a = call(server, "POST", f"/hubs/{hub['id']}/spokes", {
        "name": f"{prefix} office", "kind": "memory_contacts", "address": {"folder": f"{prefix}-office"},
        "options": {"direction": "two_way"}})
    assert status == 201, a
    call(server, "POST", f"/spokes/{a['id']}/sync")
    wait_for(lambda: server.ctx.store.count_hub_items(hub["id"]) == 2, what="the office's contacts in the hub")
    wait_for(lambda: server.ctx.store.get_spoke(a["id"]).last_run_id is not None  # type: ignore[union-attr]
             and not call(server, "GET", f"/spokes/{a['id']}")[1]["running"], what="the office's first run")
    mine = team.user_create(Contact(display_name="Ada Lovelace", emails=(Email("ADA@example.com"),)))
    team.user_create(Contact(display_name="Grace Hopper", emails=(Email("grace@example.com"),)))
    status, b = call(server, "POST", f"/hubs/{hub['id']}/spokes", {
        "name": f"{prefix} team", "kind": "memory_contacts", "address": {"folder": f"{prefix}-team"},
        "options": {"direction": "two_way"}})
    assert status == 201, b
    call(server, "POST", f"/spokes/{b['id']}/sync")
    wait_for(lambda: bool(call(server, "GET", f"/spokes/{b['id']}/matches")[1]["ambiguous_matches"]),
             what="the team's first run to find the ambiguous match")
    wait_for(lambda: server.ctx.store.count_hub_items(hub["id"]) == 3, what="Grace copied into the hub")
    return {"hub": hub, "office": a, "team": b, "mine": mine, "office_folder": office, "team_folder": team}


def test_the_api_lists_ambiguous_matches_and_applies_a_decision(server: LocalSpokesync) -> None:
    s = ambiguous_situation(server, "api")
    team_id, mine = s["team"]["id"], s["mine"]
    _, listed = call(server, "GET", f"/spokes/{team_id}/matches")
    [entry] = listed["ambiguous_matches"]
    assert entry["spoke_item_id"] == mine.id and entry["title"] == "Ada Lovelace" and entry["decided"] is None
    assert entry["detail"].lower() == "ada@example.com"  # the address shown beside the name
    assert sorted((c["title"], c["detail"]) for c in entry["candidates"]) == [
        ("Ada (home)", "ada@example.com"), ("Ada (work)", "ada@example.com")]
    # held back: Ada is neither copied into the hub nor does the hub's Ada reach the team's folder
    assert server.ctx.store.count_hub_items(s["hub"]["id"]) == 3
    assert sorted(c.event.display_name for c in s["team_folder"].items.values()) == ["Ada Lovelace", "Grace Hopper"]

    # errors in words, with stable codes and the field they are about
    status, err = call(server, "POST", f"/spokes/{team_id}/matches", {"hub_item_id": None})
    assert (status, err["code"], err["field"]) == (400, "missing_field", "spoke_item_id")
    assert "spoke_item_id" in err["detail"] and "Traceback" not in err["detail"]
    status, err = call(server, "POST", f"/spokes/{team_id}/matches", {"spoke_item_id": mine.id})
    assert (status, err["code"], err["field"]) == (400, "missing_field", "hub_item_id")
    status, err = call(server, "POST", f"/spokes/{team_id}/matches", {"spoke_item_id": mine.id, "hub_item_id": 7})
    assert (status, err["code"]) == (400, "invalid_field")
    status, err = call(server, "POST", f"/spokes/{team_id}/matches", {"spoke_item_id": mine.id,
                                                                       "hub_item_id": "not-a-candidate"})
    assert (status, err["code"], err["field"]) == (400, "invalid_choice", "hub_item_id")
    assert "choose one of the hub items" in err["detail"]
    status, err = call(server, "POST", f"/spokes/{team_id}/matches", {"spoke_item_id": "nobody",
                                                                       "hub_item_id": None})
    assert (status, err["code"]) == (404, "no_such_match") and "Reload the list" in err["detail"]
    status, err = call(server, "POST", "/spokes/no-such-spoke/matches", {"spoke_item_id": mine.id,
                                                                          "hub_item_id": None})
    assert (status, err["code"]) == (404, "not_found")

    work = next(c["hub_item_id"] for c in entry["candidates"] if c["title"] == "Ada (work)")
    status, after = call(server, "POST", f"/spokes/{team_id}/matches", {"spoke_item_id": mine.id, "hub_item_id": work})
    assert status == 200 and after["id"] == team_id
    # the queued run links Ada to "Ada (work)" (no copy), and the other card, "Ada (home)", reaches the team
    wait_for(lambda: not call(server, "GET", f"/spokes/{team_id}/matches")[1]["ambiguous_matches"],
             what="the decision applied")
    wait_for(lambda: len(s["team_folder"].items) == 3, what="Ada (home) copied to the team")
    assert server.ctx.store.count_hub_items(s["hub"]["id"]) == 3  # no fourth card: linked, not copied
    assert server.ctx.store.links_by_spoke_items(team_id, [mine.id])[mine.id].hub_item_id == work
    names = sorted(c.event.display_name for c in s["team_folder"].items.values())
    assert "Ada (home)" in names and "Grace Hopper" in names and len(names) == 3


def test_the_openapi_description_names_the_matches_routes() -> None:
    paths = setup_api.openapi()["paths"]
    post = paths["/api/spokes/{id}/matches"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["spoke_item_id", "hub_item_id"] and schema["properties"]["hub_item_id"]["nullable"]
    assert "get" in paths["/api/spokes/{id}/matches"]


def test_the_dashboard_shows_both_sides_and_decides_in_the_browser(
        server: LocalSpokesync, page: Any, artifacts: Path) -> None:
    s = ambiguous_situation(server, "ui")
    team_id = s["team"]["id"]
    page.goto(server.url + "/setup/login")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("button[type=submit]")
    block = page.locator("section.matches[data-matches-of='ui team']")
    text = block.inner_text()
    assert "1 undecided match in ui team" in text
    # names and e-mail addresses of both sides, not ids
    assert "Ada Lovelace" in text and "Ada (work)" in text and "Ada (home)" in text and "ada@example.com" in text
    assert s["mine"].id not in text
    assert block.get_by_role("button", name="Same person").count() == 2
    assert block.get_by_role("button", name="Different people").count() == 1
    assert axe_violations(page) == []
    page.screenshot(path=str(artifacts / "dashboard-undecided-match.png"), full_page=True)

    block.locator("form.match-choice li", has_text="Ada (home)").get_by_role("button", name="Same person").click()
    assert "Decided: they are the same" in page.content()
    wait_for(lambda: not call(server, "GET", f"/spokes/{team_id}/matches")[1]["ambiguous_matches"],
             what="the decision applied")
    wait_for(lambda: len(s["team_folder"].items) == 3, what="Ada (work) copied to the team")
    assert server.ctx.store.count_hub_items(s["hub"]["id"]) == 3
    names = sorted(c.event.display_name for c in s["team_folder"].items.values())
    assert "Ada (work)" in names and "Grace Hopper" in names
    page.goto(server.url + "/setup/")
    assert page.locator("section.matches[data-matches-of='ui team']").count() == 0
    assert axe_violations(page) == []


def test_different_people_in_the_browser_copies_it_as_a_new_contact(
        server: LocalSpokesync, page: Any) -> None:
    s = ambiguous_situation(server, "sep")
    team_id = s["team"]["id"]
    page.goto(server.url + "/setup/login")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("button[type=submit]")
    block = page.locator("section.matches[data-matches-of='sep team']")
    block.get_by_role("button", name="Different people").click()
    assert "Decided: they are different" in page.content()
    wait_for(lambda: server.ctx.store.count_hub_items(s["hub"]["id"]) == 4, what="Ada Lovelace copied as new")
    wait_for(lambda: not call(server, "GET", f"/spokes/{team_id}/matches")[1]["ambiguous_matches"],
             what="the decision applied")
    wait_for(lambda: len(s["office_folder"].items) == 4, what="the new card reaching the office")
    assert "Ada Lovelace" in [c.event.display_name for c in s["office_folder"].items.values()]
