"""The CLI as people read it: tables, a progress line, one-line summaries, plain messages,
and the same data as JSON with --json. Exchange commands run against the demo's local
EWS server (the real exchangelib client); `--demo` finds the running demo's settings."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spokesync import cli
from spokesync.config import Config
from spokesync.connectors import memory_registry
from spokesync.demo import (
    DEMO_EWS_MAILBOX,
    DEMO_EWS_PASSWORD,
    DEMO_EWS_USER,
    Demo,
    start_demo_servers,
    stop_all,
    write_settings,
)
from spokesync.model.event import Event
from spokesync.ports import RunProgress

KEY = "k" * 43 + "="


def ev(title: str, day: int = 0) -> Event:
    start = datetime(2026, 12, 1, 9, tzinfo=UTC) + timedelta(days=day)
    return Event(title=title, start=start, end=start + timedelta(hours=1))


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SPOKESYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPOKESYNC_SECRET_KEY", KEY)
    memory_registry.CALENDARS.clear()
    memory_registry.FOLDERS.clear()
    yield tmp_path
    memory_registry.CALENDARS.clear()
    memory_registry.FOLDERS.clear()


def out_of(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> tuple[str, str]:
    assert cli.main(list(argv)) == code
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_tables_summaries_and_json_for_memory_spokes(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = out_of(capsys, "hub", "create", "Team")
    assert out.startswith("created calendar hub 'Team'")
    out_of(capsys, "spoke", "add", "Team", "office", "--kind", "memory", "--address", "calendar=a", "--two-way")
    out_of(capsys, "spoke", "add", "Team", "home", "--kind", "memory", "--address", "calendar=b", "--two-way")
    _, err = out_of(capsys, "spoke", "add", "Team", "Office", "--kind", "memory", "--address", "calendar=c", code=2)
    assert "already has a spoke named 'office': choose another name" in err
    for i in range(40):
        memory_registry.calendar("a").user_create(ev(f"meeting {i}", i))

    out, err = out_of(capsys, "sync", "office")
    assert "office: reading changes ..." in err
    assert "office: 40 of 40 items written (100%)" in err  # progress lines when not on a terminal
    assert out.startswith("office: done in ") and ": 40 into the hub, 0 into the spoke, 0 conflicts, 0 errors" in out
    assert "ran 1 follow-up sync of spokes whose hub changed" in out

    out, _ = out_of(capsys, "status")
    lines = out.splitlines()
    assert lines[0] == "Hub 'Team' (calendars): 40 items, 2 spokes"
    assert lines[1].split() == ["SPOKE", "KIND", "DIRECTION", "STATE", "ITEMS", "LAST", "RUN", "NEXT", "RUN"]
    office = next(line for line in lines if line.startswith("office "))
    assert "two-way" in office and " 40 " in office and "done, now" in office and "(in 5 minutes)" in office
    assert "{" not in out  # no JSON in the human output
    status = json.loads(out_of(capsys, "status", "--json")[0])
    assert status[0]["items"] == 40 and {s["name"] for s in status[0]["spokes"]} == {"office", "home"}
    assert json.loads(out_of(capsys, "--json", "status")[0]) == status

    out, _ = out_of(capsys, "hub", "list")
    assert out.splitlines()[0].split() == ["HUB", "TYPE", "ITEMS", "SPOKES", "ID"]
    assert out.splitlines()[2].split()[:4] == ["Team", "calendars", "40", "2"]
    assert json.loads(out_of(capsys, "hub", "list", "--json")[0])[0]["name"] == "Team"
    out, _ = out_of(capsys, "spoke", "list", "Team")
    assert out.splitlines()[0].split() == ["SPOKE", "HUB", "KIND", "ADDRESS", "DIRECTION", "STATE", "ID"]
    assert any(line.startswith("home ") and "calendar=b" in line for line in out.splitlines())
    assert sorted(s["name"] for s in json.loads(out_of(capsys, "spoke", "list", "--json")[0])) == ["home", "office"]
    out, _ = out_of(capsys, "credential", "list")
    assert out.startswith("No credentials yet.")
    assert json.loads(out_of(capsys, "credential", "list", "--json")[0]) == []

    # a conflict (both sides edited) and a preview of what a sync would do
    office = memory_registry.calendar("a")
    home = memory_registry.calendar("b")
    target = next(i for i in office.items.values() if i.event.title == "meeting 3")
    office.user_update(target.id, replace(target.event, title="meeting 3 (office)"))
    copy = next(i for i in home.items.values() if i.event.title == "meeting 3")
    home.user_update(copy.id, replace(copy.event, title="meeting 3 (home)"))
    home.user_create(ev("dentist", 2))
    out, _ = out_of(capsys, "sync", "home", "--dry-run")
    assert out.splitlines()[0] == "home: preview (dry run): nothing was written"
    assert "  add to the hub: 1\n    - dentist" in out and "update in the hub: 1" in out
    preview = json.loads(out_of(capsys, "sync", "home", "--dry-run", "--json")[0])
    assert {step["title"] for step in preview["spokes"][0]["plan"]} >= {"dentist"}
    out_of(capsys, "sync", "home", "office")
    out, _ = out_of(capsys, "runs", "office")
    header = out.splitlines()[0].split()
    assert header == ["STARTED", "RESULT", "INTO", "HUB", "INTO", "SPOKE", "CONFLICTS", "ERRORS"]
    assert "conflict: meeting 3 (" in out  # the conflict is named by its title
    runs = json.loads(out_of(capsys, "runs", "office", "--json")[0])
    assert sum(len(r["conflicts"]) for r in runs) == 1


def test_progress_bar_on_a_terminal_redraws_one_line() -> None:
    stream = io.StringIO()
    line = cli.ProgressLine("Big folder", stream, tty=True)
    line(RunProgress("s", "r", "reading"))
    line(RunProgress("s", "r", "writing", 0, 4000))
    line.last_draw = 0.0
    line(RunProgress("s", "r", "writing", 4000, 4000, into_hub=4000))
    line.write_started = (line.write_started or 0.0) - 2.0  # two seconds of writing so far
    line.last_draw = 0.0
    line(RunProgress("s", "r", "writing", 4000, 8000, into_hub=4000))
    line(RunProgress("s", "r", "done", 8000, 8000))
    text = stream.getvalue()
    assert "4,000/8,000 items (50%), " in text and " items/s" in text  # the rate, once there is one
    assert "\n" not in text  # one line, redrawn in place
    assert "\rBig folder: reading changes ..." in text.replace("\x1b[2K", "")
    assert "Big folder: [------------------------] 0/4,000 items (0%)" in text
    assert "Big folder: [########################] 4,000/4,000 items (100%)" in text
    assert text.endswith("\r\x1b[2K")  # cleared before the summary line


def test_every_subcommand_has_a_one_line_description(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for command in ("hub", "spoke", "credential", "folders", "calendars", "sync", "status", "runs", "confirm",
                    "refuse", "resume", "retry", "serve"):
        assert any(line.strip().startswith(command + " ") and len(line.split()) > 2 for line in text.splitlines()), \
            command
    assert "exit codes: 0 done; 1 a sync failed or is paused" in text
    with pytest.raises(SystemExit) as usage:
        cli.main(["spoke", "frobnicate"])
    assert usage.value.code == 2 and "see: spokesync spoke --help" in capsys.readouterr().err


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Demo]:
    monkeypatch.setenv("SPOKESYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPOKESYNC_SECRET_KEY", KEY)
    monkeypatch.setenv("SPOKESYNC_EXCHANGE_PASSWORD", DEMO_EWS_PASSWORD)
    running = start_demo_servers(Config(data_dir=str(tmp_path), secret_key=KEY))
    write_settings(running)  # what `spokesync serve --demo` does: this process is the demo server
    yield running
    stop_all()


def test_the_cli_sees_the_running_demo_and_checks_addresses(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = out_of(capsys, "--demo", "spoke", "list")
    assert out.startswith("No spokes yet.")
    closed = demo.ews_url.rsplit(":", 1)[0] + ":1/EWS/Exchange.asmx"  # nothing listens on port 1
    _, err = out_of(capsys, "--demo", "credential", "exchange", "--url", closed, "--user", DEMO_EWS_USER,
                    "--mailbox", DEMO_EWS_MAILBOX, code=2)
    assert err.startswith("spokesync: host unreachable: no connection to 127.0.0.1 (the connection was refused")
    assert "Reraised" not in err and "Errno" not in err and "Pool" not in err
    out, _ = out_of(capsys, "--demo", "credential", "exchange", "--url", demo.ews_url, "--user", DEMO_EWS_USER,
                    "--mailbox", DEMO_EWS_MAILBOX, "--version", "2019", "--label", "Demo Exchange")
    assert out.startswith("saved Exchange credential 'Demo Exchange'")
    out, _ = out_of(capsys, "--demo", "credential", "list")
    assert "Demo Exchange" in out and "Exchange" in out and "EXAMPLE\\demo" in out and " ok " in out
    out, _ = out_of(capsys, "--demo", "folders", "Demo Exchange")
    assert out.splitlines()[0].split() == ["FOLDER", "TYPE", "SUBFOLDERS", "ID"]
    assert any(line.startswith("Company ") for line in out.splitlines())
    out, _ = out_of(capsys, "--demo", "folders", "Demo Exchange", "Company")
    assert any(line.startswith("Company/Holidays ") and " calendar " in line for line in out.splitlines())
    _, err = out_of(capsys, "--demo", "folders", "Demo Exchange", "Company/Nope", code=2)
    assert "no folder 'Nope' in Company (there: Contacts, Holidays, Meeting rooms)" in err
    holidays = next(f for f in json.loads(out_of(capsys, "--demo", "folders", "Demo Exchange", "Company",
                                                 "--json")[0]) if f["name"] == "Holidays")

    out_of(capsys, "--demo", "hub", "create", "Team")
    _, err = out_of(capsys, "--demo", "spoke", "add", "Team", "Holidays", "--kind", "exchange", "--credential",
                    "Demo Exchange", "--address", "folder_id=BOGUS", "public=true", code=2)
    assert "there is no Exchange folder with id 'BOGUS'" in err and "spokesync folders" in err
    assert "Traceback" not in err and "Error" not in err
    _, err = out_of(capsys, "--demo", "spoke", "add", "Team", "Holidays", "--kind", "exchange", "--credential",
                    "Nobody", "--address", f"folder_id={holidays['id']}", code=2)
    assert "no saved credential named or numbered 'Nobody'" in err
    out, _ = out_of(capsys, "--demo", "spoke", "add", "Team", "Holidays", "--kind", "exchange", "--credential",
                    "Demo Exchange", "--address", f"folder_id={holidays['id']}", "public=true")
    assert out.startswith("added spoke 'Holidays' (Exchange, into the hub)")
    out, _ = out_of(capsys, "--demo", "sync", "Holidays")
    assert "Holidays: done in " in out and ": 2 into the hub" in out

    # without --demo the CLI opens the real hubs (none here): never the demo's spokes
    out, _ = out_of(capsys, "status")
    assert out.startswith("No hubs yet.")
    out, _ = out_of(capsys, "--demo", "status")
    assert out.startswith("Hub 'Team' (calendars): 2 items, 1 spoke")


def test_demo_flag_without_a_running_demo_says_how_to_start_one(
        demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    finished = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert finished.returncode == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_settings(demo, pid=dead.pid)
    _, err = out_of(capsys, "--demo", "status", code=2)
    assert "the demo server that used" in err and "has stopped" in err and "spokesync serve --demo" in err
    (Path(demo.config.data_dir) / "demo" / "settings.json").unlink()
    _, err = out_of(capsys, "--demo", "status", code=2)
    assert "no demo is running" in err and "spokesync serve --demo" in err


def test_the_demo_calendars_are_dated_relative_to_today(demo: Demo) -> None:
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    events = {e["summary"]: e for e in demo.google.sandbox.live_events("team@group.calendar.google.com")}
    standup = datetime.fromisoformat(events["Team standup"]["start"]["dateTime"]).date()
    assert standup == today - timedelta(days=today.weekday())  # this week's Monday
    assert events["Offsite"]["start"]["date"] == (today + timedelta(days=8)).isoformat()


def test_calendars_lists_a_google_accounts_calendars_from_the_calendar_server(
        demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    """`spokesync calendars CREDENTIAL` against the local Calendar API server (the real
    google-api-python-client): a table for people, the same rows as JSON."""
    from spokesync.bootstrap import build_context
    from spokesync.connectors.google import auth as google_auth
    from spokesync.demo import DEMO_CLIENT_ID, DEMO_GOOGLE_USER, cli_config

    ctx = build_context(cli_config(Config.from_env()))  # the demo's store, as `--demo` opens it
    token = demo.google.sandbox.issue_refresh_token(DEMO_GOOGLE_USER, DEMO_CLIENT_ID)
    google_auth.save_oauth_credential(ctx.store, ctx.secrets, "cred-google", "Demo Google", token,
                                      account=DEMO_GOOGLE_USER)

    out, _ = out_of(capsys, "--demo", "calendars", "Demo Google")
    lines = out.splitlines()
    assert lines[0].split() == ["CALENDAR", "TIME", "ZONE", "ACCESS", "ID"]
    rows = [line for line in lines[2:] if line and not line.startswith("add one")]
    assert any("(primary)" in row for row in rows)
    assert any("team@group.calendar.google.com" in row and "Europe/Berlin" in row for row in rows)
    assert "spokesync spoke add HUB NAME --kind google --credential 'Demo Google' --address calendar_id=ID" in out
    assert "{" not in out
    listed = json.loads(out_of(capsys, "--demo", "calendars", "Demo Google", "--json")[0])
    assert {c["id"] for c in listed} >= {"team@group.calendar.google.com"}
    assert all(set(c) == {"id", "summary", "time_zone", "access_role", "primary"} for c in listed)
    assert sum(c["primary"] for c in listed) == 1
    # the same row by the credential's id
    assert json.loads(out_of(capsys, "--demo", "calendars", "cred-google", "--json")[0]) == listed

    # an Exchange credential has no Google calendars: said in words, usage exit code
    out_of(capsys, "--demo", "credential", "exchange", "--url", demo.ews_url, "--user", DEMO_EWS_USER,
           "--mailbox", DEMO_EWS_MAILBOX, "--label", "Demo Exchange")
    _, err = out_of(capsys, "--demo", "calendars", "Demo Exchange", code=2)
    assert "'Demo Exchange' is not a Google credential" in err and "spokesync folders CREDENTIAL" in err
    _, err = out_of(capsys, "--demo", "calendars", "Nobody", code=2)
    assert "no saved credential named or numbered 'Nobody'" in err


def test_contacts_hubs_from_the_cli(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = out_of(capsys, "hub", "create", "Address book", "--object", "contacts")
    assert out.startswith("created contacts hub 'Address book'")
    assert "--kind google_contacts|exchange_contacts|graph_contacts" in out
    created = json.loads(out_of(capsys, "hub", "create", "Directory", "--object", "contacts", "--json")[0])
    assert created["object_type"] == "contacts" and created["name"] == "Directory"
    out, _ = out_of(capsys, "hub", "list")
    assert sorted(line.split("  ")[0] for line in out.splitlines()[2:]) == ["Address book", "Directory"]
    assert all(" contacts " in line for line in out.splitlines()[2:])
    out, _ = out_of(capsys, "status")
    assert "Hub 'Address book' (contacts): 0 contacts, 0 spokes" in out.splitlines()
    assert "no spokes yet: spokesync spoke add 'Address book' NAME --kind google_contacts|" in out

    # a calendar spoke cannot join a contacts hub, nor a contacts spoke a calendar hub
    _, err = out_of(capsys, "spoke", "add", "Address book", "Cal", "--kind", "exchange", "--address",
                    "folder_id=x", code=2)
    assert "Hub 'Address book' syncs contacts, but a 'exchange' spoke holds calendar: add it to a calendar hub" in err
    out_of(capsys, "hub", "create", "Team")
    _, err = out_of(capsys, "spoke", "add", "Team", "People", "--kind", "exchange_contacts", "--address",
                    "folder_id=x", code=2)
    assert "Hub 'Team' syncs calendar, but a 'exchange_contacts' spoke holds contacts" in err
    # an option of the other object type does nothing: refused in words
    _, err = out_of(capsys, "spoke", "add", "Address book", "try", "--kind", "memory_contacts", "--address",
                    "folder=z", "--option", "days_past=30", code=2)
    assert "The option days_past is for calendar spokes only: a contacts spoke has no use for it; leave it out." in err
    _, err = out_of(capsys, "spoke", "add", "Address book", "try", "--kind", "memory_contacts", "--address",
                    "folder=z", "--option", "filters.email_domains=[\"someone@example.com\"]", code=2)
    assert "E-mail domains are domain names such as example.com (without a name@). (option filters.email_domains)" \
        in err
    out, _ = out_of(capsys, "spoke", "add", "Address book", "People", "--kind", "memory_contacts", "--address",
                    "folder=people", "--option", "sync_photo=false", "filters.has_email=true")
    assert out.startswith("added spoke 'People'")
    shown, _ = out_of(capsys, "spoke", "options", "People")
    names = [line.split()[0] for line in shown.splitlines()[2:]]
    assert "sync_photo" in names and "filters.has_email" in names and "filters.email_domains" in names
    for calendar_only in ("days_past", "sync_attendees", "privacy_mode", "filters.show_as", "spoke_category"):
        assert calendar_only not in names, calendar_only  # (spoke_category: two-way spokes only)
    with pytest.raises(SystemExit) as usage:
        cli.main(["hub", "create", "Odd", "--object", "notes"])
    err = capsys.readouterr().err
    assert usage.value.code == 2 and "invalid choice: 'notes'" in err and "see: spokesync hub create --help" in err


def test_a_contacts_preview_and_pause_name_the_people(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from spokesync.model.contact import Contact, Email

    out_of(capsys, "hub", "create", "People", "--object", "contacts")
    out_of(capsys, "spoke", "add", "People", "Office", "--kind", "memory_contacts", "--address", "folder=office",
           "--two-way", "--option", "max_delete_count=0")
    office = memory_registry.folder("office")
    ada = office.user_create(Contact(display_name="Ada Lovelace", emails=(Email("ada@example.com"),)))
    office.user_create(Contact(display_name="Grace Hopper", emails=(Email("grace@example.com"),)))
    out, _ = out_of(capsys, "sync", "Office", "--dry-run")
    assert "  add to the hub: 2\n    - Ada Lovelace\n    - Grace Hopper" in out
    out, _ = out_of(capsys, "sync", "Office")
    assert "Office: done in " in out and ": 2 into the hub, 0 into the spoke" in out
    out, _ = out_of(capsys, "status")
    assert "Hub 'People' (contacts): 2 contacts, 1 spoke" in out
    out, _ = out_of(capsys, "runs", "Office")
    assert "STARTED" in out and "done" in out

    office.user_delete(ada.id)
    out, _ = out_of(capsys, "sync", "Office", code=1)
    assert "waiting for your decision: 1 item(s) would be deleted" in out
    assert "    - Ada Lovelace (ada@example.com): deleted in this spoke" in out  # the person's address, not a time
    assert "spokesync confirm 'Office'" in out


def test_undecided_matches_are_listed_and_decided_from_the_cli(data_dir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 15: a joining spoke's card that may be two of the hub's is listed by name and address
    (`spoke matches`, a table or --json) and decided with `spoke match --with | --separate`."""
    from spokesync.model.contact import Contact, Email

    out_of(capsys, "hub", "create", "People", "--object", "contacts")
    out_of(capsys, "spoke", "add", "People", "Office", "--kind", "memory_contacts", "--address", "folder=office",
           "--two-way")
    office = memory_registry.folder("office")
    office.user_create(Contact(display_name="Ada (work)", emails=(Email("ada@example.com"),)))
    office.user_create(Contact(display_name="Ada (home)", emails=(Email("ada@example.com"),)))
    out_of(capsys, "sync", "Office")
    team = memory_registry.folder("team")
    mine = team.user_create(Contact(display_name="Ada Lovelace", emails=(Email("ada@example.com"),)))
    out_of(capsys, "spoke", "add", "People", "Team", "--kind", "memory_contacts", "--address", "folder=team",
           "--two-way")
    out, _ = out_of(capsys, "sync", "Team", "--dry-run")
    assert "several possible matches" in out
    out_of(capsys, "sync", "Team")

    out, _ = out_of(capsys, "spoke", "matches", "Team")
    lines = out.splitlines()
    assert lines[0].split() == ["ITEM", "E-MAIL", "/", "START", "ITEM", "ID", "MAY", "BE", "HUB", "ITEM", "E-MAIL",
                                "/", "START", "HUB", "ID"]
    assert lines[2].startswith("Ada Lovelace") and "ada@example.com" in lines[2] and mine.id in lines[2]
    table = out
    assert "spokesync spoke match 'Team' ITEM --with HUB_ITEM" in out
    out, _ = out_of(capsys, "spoke", "matches", "Team", "--json")
    [entry] = json.loads(out)
    assert entry["spoke_item_id"] == mine.id and entry["decided"] is None
    assert sorted(c["title"] for c in entry["candidates"]) == ["Ada (home)", "Ada (work)"]
    for c in entry["candidates"]:  # each candidate on its own line: name, address, hub id
        assert any(c["title"] in line and "ada@example.com" in line and line.endswith(c["hub_item_id"])
                   for line in table.splitlines()[2:4])

    # wrong names: exit 2 and a sentence saying where to look
    _, err = out_of(capsys, "spoke", "match", "Team", "Grace", "--separate", code=2)
    assert "no undecided match for 'Grace'" in err and "spokesync spoke matches 'Team'" in err
    _, err = out_of(capsys, "spoke", "match", "Team", "Ada Lovelace", "--with", "Ada (attic)", code=2)
    assert "'Ada (attic)' is not one of the hub items" in err
    with pytest.raises(SystemExit) as usage:  # neither --with nor --separate
        cli.main(["spoke", "match", "Team", "Ada Lovelace"])
    assert usage.value.code == 2
    capsys.readouterr()

    # --separate first (as JSON: the spoke's status, the choice recorded), then a change of mind before the run
    out, _ = out_of(capsys, "spoke", "match", "Team", mine.id, "--separate", "--json")
    [pending] = json.loads(out)["ambiguous_matches"]
    assert pending["spoke_item_id"] == mine.id and pending["decided"] == ""
    out, _ = out_of(capsys, "spoke", "matches", "Team")
    assert "decided: a different item (applied by the next sync)" in out
    out, _ = out_of(capsys, "spoke", "match", "Team", "Ada Lovelace", "--with", "Ada (work)")
    assert "Team: 'Ada Lovelace' is the same as hub item 'Ada (work)': linked, not copied in its next run" in out
    out, _ = out_of(capsys, "spoke", "matches", "Team")
    assert "decided: the same as Ada (work) (applied by the next sync)" in out
    out_of(capsys, "sync", "Team")
    out, _ = out_of(capsys, "spoke", "matches", "Team")
    assert out.strip() == "Team: no undecided matches."
    assert json.loads(out_of(capsys, "spoke", "matches", "Team", "--json")[0]) == []
    hub_id = json.loads(out_of(capsys, "hub", "list", "--json")[0])[0]["id"]
    out, _ = out_of(capsys, "spoke", "list", "--json")
    team_status = next(s for s in json.loads(out) if s["name"] == "Team")
    assert team_status["linked_items"] == 2  # Ada linked to "Ada (work)", "Ada (home)" copied to the team
    assert sorted(c.event.display_name for c in team.items.values()) == ["Ada (home)", "Ada (work)"]
    assert hub_id and len(office.items) == 2  # no third card anywhere
    out, _ = out_of(capsys, "hub", "list")
    assert out.splitlines()[2].split()[:3] == ["People", "contacts", "2"]  # two cards in the hub, not three
