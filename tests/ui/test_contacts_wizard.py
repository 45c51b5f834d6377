"""The contacts wizard in Chromium against the demo's local servers: step 1 offers contacts; a
contacts hub's sources (Google Contacts, Exchange public folder, Exchange mailbox folder,
Microsoft 365); the Exchange folder browser offers contacts folders only; Google Contacts through
the OAuth sign-in and its contact group (the demo's People API server); the contact options form
(fields that travel, conditions, deletions, conflicts, the budget) without the calendar-only
options; the first sync; the dashboard, the preview and the history name the contacts.
Screenshots of every step go to test-artifacts/ui/contacts/, and axe-core checks every page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spokesync.demo import DEMO_EWS_MAILBOX, DEMO_EWS_PASSWORD
from tests.ui.conftest import ADMIN_TOKEN, LocalSpokesync
from tests.ui.test_wizard import Shots


@pytest.fixture
def shots(page: Any, artifacts: Path) -> Shots:
    folder = artifacts / "contacts"
    folder.mkdir(parents=True, exist_ok=True)
    return Shots(page, folder)


def test_the_contacts_wizard(local: LocalSpokesync, page: Any, shots: Shots) -> None:
    page.goto(local.url + "/setup/login")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("main button[type=submit]")
    page.goto(local.url + "/setup/new")
    assert page.is_enabled("input[value=contacts]")
    page.check("input[value=contacts]")
    shots("step1-contacts")
    page.click("text=Next")
    assert page.inner_text("h1") == "Where are the contacts?"
    sources = [s.strip() for s in page.locator("label.choice").all_inner_texts()]
    assert sources == ["Google Contacts", "Exchange Server public folder", "Exchange Server mailbox folder",
                       "Microsoft 365 (Exchange Online)"]
    page.check("input[value=exchange_public]")
    shots("step2-contacts-sources")
    page.click("text=Next")
    assert page.inner_text("h1") == "Credentials for Exchange Server public folder"
    page.fill("input[name=label]", "Demo Exchange")
    page.fill("input[name=mailbox]", DEMO_EWS_MAILBOX)
    page.fill("input[name=password]", DEMO_EWS_PASSWORD)
    shots("step3-contacts-exchange-credentials")
    page.click("#validate")
    assert "Public folders: reachable" in page.inner_text("#validation-result")
    page.click("text=Next: choose the folder")
    assert page.inner_text("h1") == "Choose the public contacts folder"
    assert "4. Contacts" in page.inner_text("ol.steps")
    page.click("a:text-is('Company')")
    rows = {r.split("\t")[0]: r for r in page.locator("table.folders tbody tr").all_inner_texts()}
    assert "contacts" in rows["Contacts"] and "Choose" in rows["Contacts"]
    assert "calendar" in rows["Holidays"] and "Choose" not in rows["Holidays"]  # a calendar folder is not offered
    shots("step4-contacts-folder-browser")

    # Google Contacts: sign in (the contacts scope), name the group, a new contacts hub
    page.goto(local.url + "/setup/new?object=contacts")
    page.click("text=Next")
    page.check("input[value=google]")
    page.click("text=Next")
    assert page.inner_text("h1") == "Credentials for Google Contacts"
    assert "read and write contacts" in page.inner_text("main")
    shots("step3-google-contacts-credentials")
    page.click("#google-sign-in")
    assert "/setup/new/target" in page.url and "object=contacts" in page.url, page.inner_text("main")[:500]
    assert page.inner_text("h1") == "Which contacts?"
    page.fill("input[name=group]", "Company contacts")
    shots("step4-google-contact-group")
    page.click("text=Next")
    assert page.input_value("input[name=name]") == "Company contacts (Google)"
    assert page.input_value("input[name=group]") == "Company contacts"
    page.fill("input[name=hub_name]", "Address book")
    shots("step5-contacts-name-and-hub")
    page.click("text=Create the spoke")
    assert "/options" in page.url, page.inner_text("main")[:500]

    # step 6: the contact options; no calendar option that would do nothing here
    page.click("summary")
    form = page.inner_text("#options-form")
    for words in ("Allow the hub to create and sync contacts in this spoke", "Notes", "Birthday and anniversary",
                  "Photo", "Only contacts with an e-mail address", "Only contacts of one of these companies",
                  "Only contacts in one of these categories or groups", "Propagate deletions",
                  "When the same contact changed in two places", "Pause when deletions would pass this share of the "
                  "contacts (%)", "Link contacts that are already in the hub instead of copying them"):
        assert words in form, words
    for name in ("days_past", "days_future", "subject_contains", "show_as_busy", "exclude_all_day",
                 "sync_attendees", "privacy_mode", "meetings_as_appointments"):
        assert page.locator(f"[name={name}]").count() == 0, name
    assert not page.is_visible("input[name=spoke_category]")  # copies' category: two-way spokes only
    page.check("input[name=two_way]")
    assert page.is_visible("input[name=spoke_category]")
    page.uncheck("input[name=sync_photo]")
    page.check("input[name=has_email]")
    shots("step6-contact-options")
    page.click("#save-options")
    assert "/first-sync" in page.url
    page.wait_for_selector("#sync-phase:has-text('First sync done')")
    assert "1 into the hub" in page.inner_text("#sync-phase")  # Ada (Reception has no e-mail address)
    shots("step7-contacts-first-sync")
    spoke = next(s for s in local.ctx.store.list_spokes() if s.name == "Company contacts (Google)")
    assert spoke.kind == "google_contacts" and spoke.options.two_way and spoke.address == {"group": "Company contacts"}
    assert spoke.options.sync_photo is False and spoke.options.filters.has_email is True
    hub = local.ctx.store.get_hub(spoke.hub_id)
    assert hub is not None and hub.object_type == "contacts"

    page.click("#to-dashboard")
    row = page.inner_text("tr[data-spoke='Company contacts (Google)']")
    assert "Google Contacts group “Company contacts”" in row and "Google Contacts cannot notify" in row
    assert "contacts · 1 contact in the hub" in page.inner_text("section[data-hub='Address book'] h2")
    shots("dashboard-contacts")
    page.click("tr[data-spoke='Company contacts (Google)'] >> text=History")
    page.click("details.changed-items summary")
    assert "Ada Lovelace · added to the hub" in page.inner_text("details.changed-items")  # the contact's name
    shots("history-contacts")
    page.goto(local.url + "/setup/")
    page.click("tr[data-spoke='Company contacts (Google)'] >> text=Preview")
    assert "Nothing to change: this spoke and the hub agree." in page.inner_text("main")
    shots("preview-contacts")

    # adding a spoke to the contacts hub: the object is fixed, the sources are the contacts ones
    page.goto(local.url + "/setup/")
    page.click("section[data-hub='Address book'] >> text=Add a spoke")
    assert page.is_checked("input[value=contacts]") and page.is_disabled("input[value=calendar]")
    shots("step1-fixed-contacts")
    page.click("text=Next")
    page.check("input[value=exchange_public]")
    page.click("text=Next")
    page.click("text=Use these credentials")  # the Exchange credential saved above
    page.click("a:text-is('Company')")
    page.click("a[data-folder=Contacts]")
    assert page.is_checked(f"input[name=hub_id][value='{hub.id}']")  # joins the contacts hub
    page.fill("input[name=name]", "Company contacts (Exchange)")
    page.click("text=Create the spoke")
    assert "/options" in page.url, page.inner_text("main")[:500]
    page.check("input[name=two_way]")
    page.click("#save-options")
    page.wait_for_selector("#sync-phase:has-text('First sync done')")
    shots("step7-exchange-contacts-first-sync")
    exchange = next(s for s in local.ctx.store.list_spokes() if s.name == "Company contacts (Exchange)")
    assert exchange.kind == "exchange_contacts" and exchange.hub_id == hub.id and exchange.address["public"] is True
    page.click("#to-dashboard")
    assert "Exchange public contacts folder" in page.inner_text("tr[data-spoke='Company contacts (Exchange)']")
    shots("dashboard-two-contacts-spokes")
    assert shots.violations == {}, shots.violations
