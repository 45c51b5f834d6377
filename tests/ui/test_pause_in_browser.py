"""A paused deletion as an administrator meets it in the browser: the dashboard
says how many and which items (title, date, where they were deleted), refusing
keeps everything, and the history keeps the pause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from spokesync.connectors import memory_registry
from spokesync.model.event import Event
from tests.helpers import wait_for
from tests.ui.conftest import ADMIN_TOKEN, LocalSpokesync

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Spokesync-Client": "tests"}


def test_the_dashboard_lists_a_paused_deletion_and_refusing_keeps_everything(
        local: LocalSpokesync, page: Any, artifacts: Path) -> None:
    api = local.url + "/api"
    src, dst = memory_registry.calendar("pause-src"), memory_registry.calendar("pause-dst")
    src.items.clear()
    dst.items.clear()
    hub = requests.post(api + "/hubs", json={"name": "Paused hub"}, headers=AUTH, timeout=10).json()
    a = requests.post(api + f"/hubs/{hub['id']}/spokes", headers=AUTH, timeout=10, json={
        "name": "Team calendar", "kind": "memory", "address": {"calendar": "pause-src"},
        "options": {"direction": "two_way"}}).json()
    requests.post(api + f"/hubs/{hub['id']}/spokes", headers=AUTH, timeout=10, json={
        "name": "Public folder", "kind": "memory", "address": {"calendar": "pause-dst"},
        "options": {"direction": "two_way"}})
    start = datetime(2026, 12, 7, 9, tzinfo=UTC)
    ids = [src.user_create(Event(title=f"Planning {n}", start=start + timedelta(days=n),
                                 end=start + timedelta(days=n, hours=1))).id for n in range(30)]
    requests.post(api + f"/hubs/{hub['id']}/sync", headers=AUTH, timeout=10)
    wait_for(lambda: len(dst.items) == 30, what="the first sync")
    for item_id in ids[:20]:
        src.user_delete(item_id)
    requests.post(api + f"/spokes/{a['id']}/sync", headers=AUTH, timeout=10)
    wait_for(lambda: local.ctx.store.get_spoke(a["id"]).state == "needs_confirmation",  # type: ignore[union-attr]
             what="the pause")

    page.goto(local.url + "/setup/login")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("button[type=submit]")
    row = page.locator("tr[data-spoke='Team calendar']")
    assert "20 deletions waiting" in row.inner_text()
    row.locator("details.pending-items summary").click()
    listed = row.locator("details.pending-items li").all_inner_texts()
    assert len(listed) == 20 and any("Planning 0" in t for t in listed)
    assert all("deleted in this spoke" in t for t in listed)
    page.screenshot(path=str(artifacts / "dashboard-paused-deletion.png"), full_page=True)
    row.get_by_role("button", name="Refuse (keep everything)").click()
    assert "Deletions refused" in page.content()
    wait_for(lambda: len(src.items) == 30, what="the items written back")
    assert len(dst.items) == 30 and local.ctx.store.count_hub_items(hub["id"]) == 30
    page.goto(local.url + "/setup/")
    page.screenshot(path=str(artifacts / "dashboard-after-refusal.png"), full_page=True)
