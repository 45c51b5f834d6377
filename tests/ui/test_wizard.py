"""The whole setup flow in Chromium against the local servers (what a newcomer does in demo mode).

Sign in with the admin token; add an Exchange public-folder spoke (a wrong
password first: its error is shown and nothing is saved), validated, picked
in the folder browser, in a new hub; add a Google spoke through the OAuth
consent flow and the calendar picker, joining that hub; make both two-way;
Sync hub now. Then the same events are in both servers, the dashboard shows
the right counts, a Google change reaches Exchange by a push notification to
the local webhook, and the preview and the run history read right. A
screenshot of every step goes to test-artifacts/ui/.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from spokesync.demo import DEMO_EWS_MAILBOX, DEMO_EWS_PASSWORD, DEMO_EWS_USER
from tests.helpers import wait_for
from tests.ui.conftest import ADMIN_TOKEN, LocalSpokesync, axe_violations

GOOGLE_CALENDAR = "team@group.calendar.google.com"




class Shots:
    """A screenshot of each step (test artifacts), and axe-core's accessibility check of the same page."""

    def __init__(self, page: Any, folder: Path) -> None:
        self.page, self.folder, self.n = page, folder, 0
        self.violations: dict[str, list[str]] = {}

    def __call__(self, name: str) -> None:
        self.n += 1
        self.page.screenshot(path=str(self.folder / f"{self.n:02d}-{name}.png"), full_page=True)
        found = axe_violations(self.page)
        if found:
            self.violations[name] = found


def google_titles(local: LocalSpokesync) -> list[str]:
    return sorted(e.get("summary", "") for e in local.demo.google.sandbox.live_events(GOOGLE_CALENDAR))


def exchange_titles(local: LocalSpokesync, folder: Any) -> list[str]:
    return sorted(i.text("Subject") or "" for i in local.demo.ews.items(folder))


def test_a_newcomer_builds_a_two_way_hub_in_the_browser(local: LocalSpokesync, page: Any, artifacts: Path) -> None:
    shot = Shots(page, artifacts)
    holidays = next(f for f in local.demo.ews.store.folders.values() if f.name == "Holidays")
    before_google, before_exchange = google_titles(local), exchange_titles(local, holidays)
    assert len(before_google) == 2 and len(before_exchange) == 2

    # -- sign in
    page.goto(local.url + "/")
    assert page.url.startswith(local.url + "/setup/login")
    page.fill("input[name=token]", "not-the-token")
    page.click("main button[type=submit]")
    assert "not the admin token" in page.inner_text("main")
    page.fill("input[name=token]", ADMIN_TOKEN)
    shot("sign-in")
    page.click("main button[type=submit]")
    assert page.url == local.url + "/setup/"
    assert "No hub yet" in page.inner_text("main")
    shot("empty-dashboard")

    # -- Exchange public folder: steps 1 to 6
    page.click("main >> text=Create the first hub and spoke")
    assert page.is_checked("input[value=calendar]") and page.is_enabled("input[value=contacts]")
    shot("step1-object")
    page.click("text=Next")
    page.check("input[value=exchange_public]")
    shot("step2-source")
    page.click("text=Next")
    # demo mode says so, and the sample server's values are filled in
    assert "Demo: the Google calendars and Exchange folders here are sample" in page.inner_text(".demo-banner")
    assert page.input_value("input[name=ews_url]") == local.demo.ews_url
    assert page.input_value("input[name=username]") == DEMO_EWS_USER
    page.fill("input[name=label]", "Demo Exchange")
    page.fill("input[name=ews_url]", local.demo.ews_url)
    page.fill("input[name=username]", DEMO_EWS_USER)
    page.fill("input[name=mailbox]", DEMO_EWS_MAILBOX)
    page.fill("input[name=password]", "wrong-password")
    page.click("#validate")
    error = page.inner_text("#validation-error")
    assert "wrong user or password" in error, error
    assert page.input_value("input[name=password]") == ""  # never sent back
    assert page.input_value("input[name=ews_url]") == local.demo.ews_url
    assert local.ctx.store.list_credentials() == []  # nothing saved
    shot("step3-exchange-wrong-password")
    page.fill("input[name=password]", DEMO_EWS_PASSWORD)
    page.click("#validate")
    result = page.inner_text("#validation-result")
    assert "Server version: 15.1" in result and "Public folders: reachable" in result
    assert DEMO_EWS_PASSWORD not in page.content()
    shot("step3-exchange-validated")
    page.click("text=Next: choose the folder")
    page.click("a:text-is('Company')")
    shot("step4-folder-browser")
    page.click("a[data-folder=Holidays]")
    assert page.input_value("input[name=name]") == "Holidays"
    page.fill("input[name=name]", "Holidays (Exchange)")
    page.fill("input[name=hub_name]", "Team")
    shot("step5-name-and-hub")
    page.click("text=Create the spoke")
    assert "/options" in page.url
    page.check("input[name=two_way]")
    page.click("summary")  # advanced settings open
    shot("step6-sync-options")
    page.click("#save-options")
    # step 7: the first sync runs at once; the page follows it to its result, then leads to the dashboard
    assert "/first-sync" in page.url
    assert "Sync options of 'Holidays (Exchange)' saved" in page.inner_text("#flash")
    page.wait_for_selector("#sync-phase:has-text('First sync done')")
    assert "2 into the hub, 0 into the spoke, 0 conflicts" in page.inner_text("#sync-phase")
    assert "now share 2 items" in page.inner_text("#sync-phase")
    shot("step7-first-sync")
    page.click("#to-dashboard")
    assert page.url == local.url + "/setup/"

    # -- Google calendar through OAuth, joining the hub
    page.click("section[data-hub=Team] >> text=Add a spoke")
    page.click("text=Next")
    page.check("input[value=google]")
    page.click("text=Next")
    shot("step3-google-credentials")
    page.click("#google-sign-in")  # consent at the local Google server, back to the callback
    assert "/setup/new/target" in page.url, page.inner_text("main")[:600]
    assert "Signed in" in page.inner_text("#flash")
    page.check(f"input[value='{GOOGLE_CALENDAR}']")
    shot("step4-calendar-picker")
    page.click("text=Next")
    assert page.input_value("input[name=name]") == "Team"
    page.fill("input[name=name]", "Team (Google)")
    assert page.is_checked("input[name=hub_id]:not([value=__new__])")  # joins the existing hub
    page.click("text=Create the spoke")
    page.check("input[name=two_way]")
    page.click("#save-options")
    page.wait_for_selector("#sync-phase:has-text('First sync done')")
    # (its first poll may have brought its items in already: the result names what the hub now shares)
    assert "into the spoke, 0 conflicts. The spoke and the hub now share 4 items." in page.inner_text("#sync-phase")
    shot("step7-first-sync-google")
    page.click("#to-dashboard")
    wait_for(lambda: not local.ctx.queue.pending()  # type: ignore[attr-defined]
             and all(s.lease_owner is None for s in local.ctx.store.list_spokes()), what="follow-ups to finish")
    page.goto(local.url + "/setup/")
    shot("dashboard-before-sync")

    # -- step 7: Sync hub now
    page.click("section[data-hub=Team] >> button.sync-hub")
    assert "Sync queued for 2 spoke(s)" in page.inner_text("#flash")
    expected = sorted(before_google + before_exchange)
    wait_for(lambda: google_titles(local) == expected and exchange_titles(local, holidays) == expected,
             what="both servers to hold the same four events")
    wait_for(lambda: not local.ctx.queue.pending()  # type: ignore[attr-defined]
             and all(s.lease_owner is None for s in local.ctx.store.list_spokes()), what="runs to finish")
    page.goto(local.url + "/setup/")
    hub = page.inner_text("section[data-hub=Team]")
    assert "4 items in the hub" in hub, hub
    for name in ("Holidays (Exchange)", "Team (Google)"):
        row = page.inner_text(f"tr[data-spoke='{name}']")
        assert "two-way" in row and "4 linked" in row and "OK" in row, row
        assert re.search(r"\d+ into the hub, \d+ into the spoke, 0 conflicts", row), row
        # the last run may be an idle follow-up; then the row also names the last run that moved items
        last = re.search(r"(\d+) into the hub, (\d+) into the spoke, 0 conflicts", row)
        change = re.search(r"last change .*?: (\d+) into the hub, (\d+) into the spoke", row)
        assert last is not None and (sum(map(int, last.groups())) > 0 or change is not None), row
        assert change is None or sum(map(int, change.groups())) > 0, row
    assert "push: changes arrive at once" in page.inner_text("tr[data-spoke='Team (Google)']")  # channel open
    assert "public folders cannot notify: checked every 5 minutes" in page.inner_text(
        "tr[data-spoke='Holidays (Exchange)']")
    shot("dashboard-after-sync")

    # run history: each spoke sent its two events in and received the other two
    page.click("section[data-hub=Team] >> text=Run history")
    rows = page.locator("tr.run").all()
    totals: dict[str, list[int]] = {}
    for row in rows:
        cells = [c.inner_text() for c in row.locator("td").all()]
        spoke, into_hub, into_spoke = cells[1], int(cells[3]), int(cells[4])
        totals.setdefault(spoke, [0, 0])
        totals[spoke][0] += into_hub
        totals[spoke][1] += into_spoke
    assert totals == {"Holidays (Exchange)": [2, 2], "Team (Google)": [2, 2]}, totals
    shot("run-history")
    changed = " ".join(page.locator("details.changed-items").all_text_contents())  # titles of what changed
    assert page.locator("details.changed-items").count() > 0 and any(t in changed for t in expected), changed
    page.select_option("#run-filter", "problems")
    page.click("form.filters button")
    assert "show=problems" in page.url and "No such runs." in page.inner_text("table.runs")

    # a Google change reaches Exchange through a push notification to the local webhook
    from datetime import UTC, datetime, timedelta

    # ... while the dashboard is open: it shows the new run by itself (its script polls /setup/live)
    page.goto(local.url + "/setup/")
    row = "tr[data-spoke='Holidays (Exchange)']"
    before_push = page.get_attribute(row, "data-last-run")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    local.demo.google.sandbox.user_insert(GOOGLE_CALENDAR, {
        "summary": "Pushed from Google", "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": (start + timedelta(hours=1)).isoformat()}})
    wait_for(lambda: "Pushed from Google" in exchange_titles(local, holidays), what="the push to reach Exchange")
    page.wait_for_selector(f"{row}:not([data-last-run='{before_push}'])", timeout=30_000)
    assert "1 into the spoke" in page.inner_text(row) or "last change" in page.inner_text(row)
    shot("dashboard-updated-itself")

    # preview: nothing left to change
    wait_for(lambda: all(s.lease_owner is None for s in local.ctx.store.list_spokes()), what="runs to finish")
    page.goto(local.url + "/setup/")
    page.click("tr[data-spoke='Holidays (Exchange)'] >> text=Preview")
    assert "Nothing was written" in page.inner_text("main")
    assert "Nothing to change" in page.inner_text("table.plan")
    shot("dry-run-preview")

    # Sync now on one spoke
    page.goto(local.url + "/setup/")
    page.click("tr[data-spoke='Team (Google)'] >> button.sync-spoke")
    assert "Sync queued" in page.inner_text("#flash")

    # no secret anywhere in what the browser received
    page.goto(local.url + "/setup/credentials")
    shot("credentials")
    body = page.content()
    assert "Demo Exchange" in body and DEMO_EWS_PASSWORD not in body and "1//" not in body

    # every page of the walk: no serious or critical accessibility violation (axe-core)
    page.goto(local.url + "/setup/")
    page.click("tr[data-spoke='Holidays (Exchange)'] >> text=Sync options")
    shot("sync-options-page")
    # phone width: the dashboard fits (no sideways scrolling), the spoke rows stack
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(local.url + "/setup/")
    shot("dashboard-phone")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    (artifacts / "accessibility.json").write_text(json.dumps(shot.violations, indent=2))  # kept with the shots
    assert shot.violations == {}, shot.violations
