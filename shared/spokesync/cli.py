"""The `spokesync` command: hubs, spokes, syncs, status, and the local server.

    spokesync hub create NAME [--object calendar|contacts] | hub list | hub remove HUB
    spokesync spoke add HUB NAME --kind google|exchange|graph|google_contacts|exchange_contacts|graph_contacts
                        --address k=v ... [--credential CRED]
                        [--two-way] [--option k=v ...]
    spokesync spoke list [HUB] | spoke remove SPOKE | spoke options SPOKE k=v ...
    spokesync spoke matches SPOKE | spoke match SPOKE ITEM --with HUB_ITEM | --separate
    spokesync credential list | credential exchange --url URL --user USER [--mailbox ADDRESS] [--version 2016] [--auth ntlm]
    spokesync credential graph --tenant T --client-id C --mailbox M [--group] [--certificate PEM --key PEM]
    spokesync sync SPOKE... | sync --all  [--dry-run]
    spokesync status | runs SPOKE | confirm SPOKE | refuse SPOKE | resume SPOKE [--clear-lease] | retry SPOKE
    spokesync serve [--host 127.0.0.1] [--port 8080] [--demo]

Output is for people (tables, a progress line during a sync, one-line summaries);
`--json` on any command prints the same data as JSON for scripts instead.
`spokesync --demo COMMAND` works on the hubs of the running demo server.
Hubs, spokes and credentials are named by id or by name. Option values are JSON
when they parse as JSON (numbers, true/false, lists), else strings.

Exit codes: 0 done; 1 a sync failed or is paused (waiting for a confirmation,
a sign-in, a quota); 2 the command was wrong (unknown name, bad option);
3 skipped because another run of the spoke is in progress (try again when it
has finished); 130 stopped by Ctrl-C or SIGTERM (nothing lost; run it again).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
import time
from datetime import datetime
from typing import Any, TextIO

from spokesync import display
from spokesync.bootstrap import Context, build_context
from spokesync.ports import RunProgress
from spokesync.service import hubs


def _pairs(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise hubs.InvalidRequest(f"expected key=value, got '{item}'")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        if "." in key:  # filters.categories=[...] -> {"filters": {"categories": [...]}}
            head, tail = key.split(".", 1)
            out.setdefault(head, {})[tail] = out.pop(key)
    return out


def _print(rows: list[dict[str, Any]] | dict[str, Any]) -> None:
    print(json.dumps(rows, indent=2, default=str))


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUSY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

BUDGET_HELP = """\
Deletion budget: spokesync never deletes many items without asking. Deletions are
counted across runs (pushes, polls, continuations) over the last {window} hours, for
this spoke and for its whole hub. When a sync would take that count past {count}
items AND past {share} of the items, it pauses before deleting anything more and
lists what it would delete. Then:
  spokesync confirm SPOKE   deletes exactly the listed items (the count starts afresh)
  spokesync refuse SPOKE    deletes nothing: every listed item is kept, and copies that
                            were already removed are written back
Change it with: spokesync spoke options SPOKE max_delete_count=N max_delete_share=0.25 deletion_window_h=24
"""


def _budget_help(options: Any) -> str:
    share = display.percent(options.max_delete_share)
    return BUDGET_HELP.format(window=options.deletion_window_h, count=options.max_delete_count, share=share)


def _print_pause(ctx: Context, spoke_id: str) -> None:
    spoke = hubs.get_spoke(ctx, spoke_id)
    if spoke.state != "needs_confirmation":
        return
    items = spoke.pending_items
    print(f"  waiting for your decision: {spoke.pending_deletions} item(s) would be deleted")
    for item in items[:20]:
        side = "deleted in this spoke" if item.get("deleted_in") == "spoke" else "deleted in the hub (another spoke)"
        start = item.get("start")
        when = "" if not start else (f" ({display.local_time(start)})" if display.parse_time(start) else f" ({start})")
        print(f"    - {item.get('title') or '(no title)'}{when}: {side}")
    if spoke.pending_deletions > 20:
        print(f"    ... and {spoke.pending_deletions - 20} more (spokesync status --json lists them)")
    print(f"  confirm: spokesync confirm '{spoke.name}'   keep everything: spokesync refuse '{spoke.name}'")


class ProgressLine:
    """A progress line for one spoke's sync: a bar that redraws itself on a terminal, a few
    plain lines (reading, each quarter written) when the output goes to a file or a pipe."""

    def __init__(self, name: str, out: TextIO, tty: bool | None = None) -> None:
        self.name, self.out = name, out
        self.tty = out.isatty() if tty is None else tty
        self.started = time.monotonic()
        self.write_started: float | None = None
        self.last_draw = 0.0
        self.quarter = -1
        self.drawn = False

    def __call__(self, progress: RunProgress) -> None:
        now = time.monotonic()
        if progress.phase == "reading":
            self._line(f"{self.name}: reading changes ...")
            return
        if progress.phase == "done":
            self.finish()
            return
        first = self.write_started is None
        if self.write_started is None:
            self.write_started = now
        total, done = progress.total, progress.done
        if total == 0:
            self._line(f"{self.name}: nothing to write")
            return
        seconds = now - self.write_started
        rate = done / seconds if seconds >= 0.5 and done else 0.0  # shorter: no meaningful rate
        share = done / total
        rate_words = f", {rate:,.0f} items/s" if rate else ""
        if self.tty:
            width = 24
            filled = int(width * share)
            bar = "#" * filled + "-" * (width - filled)
            text = f"{self.name}: [{bar}] {done:,}/{total:,} items ({share:.0%}){rate_words}"
            if first or now - self.last_draw >= 0.1 or done >= total:
                self._line(text)
            return
        quarter = int(share * 4)
        if quarter > self.quarter:
            self.quarter = quarter
            self._line(f"{self.name}: {done:,} of {total:,} items written ({share:.0%}){rate_words}")

    def _line(self, text: str) -> None:
        self.last_draw = time.monotonic()
        if self.tty:
            self.out.write("\r\x1b[2K" + text)
            self.drawn = True
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.tty and self.drawn:
            self.out.write("\r\x1b[2K")
            self.out.flush()
            self.drawn = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _summary_line(name: str, runs: list[Any], elapsed: float) -> str:
    last = runs[-1]
    totals: dict[str, int] = {}
    errors = 0
    for run in runs:
        summary = hubs.run_summary(run)
        for key in ("into_hub", "into_spoke"):
            totals[key] = totals.get(key, 0) + summary[key]
        totals["conflicts"] = totals.get("conflicts", 0) + run.counts.get("conflicts", 0)
        errors += len(run.errors)
    status = display.RUN_WORDS.get(last.status, last.status)
    parts = f" in {len(runs)} runs" if len(runs) > 1 else ""
    return (f"{name}: {status}{parts} in {elapsed:.1f} s: {totals['into_hub']:,} into the hub, "
            f"{totals['into_spoke']:,} into the spoke, {display.plural(totals['conflicts'], 'conflict')}, "
            f"{display.plural(errors, 'error')}" + (f". {last.reason}" if last.reason else ""))


def _print_plan(spoke: Any, run: Any, object_type: str = "calendar") -> None:
    plan = run.plan or []
    print(f"{spoke.name}: preview (dry run): nothing was written")
    if run.reason:
        print(f"  the real sync would pause: {run.reason}")
    if not plan:
        print("  nothing to do: the spoke and the hub agree")
        return
    groups: dict[str, list[str]] = {}
    for step in plan:
        groups.setdefault(str(step.get("action")), []).append(str(step.get("title") or "(no title)"))
    for action in display.PLAN_WORDS:
        titles = groups.get(action, [])
        if not titles:
            continue
        print(f"  {display.plan_words(action, object_type)}: {len(titles)}")
        for title in titles[:10]:
            print(f"    - {title}")
        if len(titles) > 10:
            print(f"    ... and {len(titles) - 10} more (--json lists them all)")
    if run.conflicts:
        print(f"  conflicts: {len(run.conflicts)}")
        for conflict in run.conflicts[:10]:
            print(f"    - {display.conflict_title(conflict)}: the {conflict.get('winner')} side's version is kept")


def _sync(ctx: Context, spoke_id: str, dry_run: bool, as_json: bool, out: list[dict[str, Any]]) -> int:
    """Run one spoke's sync here, continuing until it has nothing left, with progress."""
    from spokesync.engine.runner import Runner

    spoke = hubs.get_spoke(ctx, spoke_id)
    if dry_run:
        run = Runner(ctx).sync(spoke.id, dry_run=True)
        if as_json:
            out.append({"spoke": spoke.name, "spoke_id": spoke.id, "counts": run.counts, "reason": run.reason,
                        "plan": run.plan, "conflicts": run.conflicts})
        else:
            hub = ctx.store.get_hub(spoke.hub_id)
            _print_plan(spoke, run, hub.object_type if hub is not None else "calendar")
        return 0
    line = ProgressLine(spoke.name, sys.stderr)
    if not as_json:
        ctx.progress_listeners.append(line)
    runs = []
    try:
        while True:
            run = Runner(ctx).sync(spoke.id, reason="manual")
            runs.append(run)
            if run.status != "continued" or len(runs) >= 1000:
                break
    finally:
        line.finish()
        if line in ctx.progress_listeners:
            ctx.progress_listeners.remove(line)
    last = runs[-1]
    if as_json:
        out.append({"spoke": spoke.name, "spoke_id": spoke.id, "runs": [hubs.run_summary(r) for r in runs]})
    else:
        print(_summary_line(spoke.name, runs, line.elapsed), flush=True)
        for run in runs:
            for error in run.errors:
                print(f"  error: {error}")
        if last.status == "paused":
            _print_pause(ctx, spoke.id)
    if last.status == "skipped":
        if not as_json:
            _follow(ctx, spoke.id, ProgressLine(spoke.name, sys.stderr))
        print(f"  not synced by this command: another run of '{spoke.name}' was going. It syncs again by itself "
              "when it has finished, or try again then (if its process was stopped, "
              f"`spokesync resume '{spoke.name}' --clear-lease`)", file=sys.stderr)
        return EXIT_BUSY
    return EXIT_OK if last.status == "ok" else EXIT_FAILED


def _progress_of(status: dict[str, Any]) -> RunProgress | None:
    p = status.get("progress")
    if not p:
        return None
    return RunProgress(status["id"], str(p.get("run_id", "")), "writing" if p.get("phase") == "writing" else "reading",
                       int(p.get("done", 0)), int(p.get("total", 0)), int(p.get("into_hub", 0)),
                       int(p.get("into_spoke", 0)))


FOLLOW_EVERY_S = 0.5
# How long a run that shows no progress (reading, or a process that died holding the spoke) is waited
# for before `sync` stops following it; a run that writes keeps its record current and is followed to its end.
FOLLOW_QUIET_S = 10.0


def _follow(ctx: Context, spoke_id: str, line: ProgressLine, limit_s: float = 3600.0) -> dict[str, Any]:
    """Show the progress of a sync another process runs (its run record in the store), until it ends;
    then one line with its result. Returns the spoke's status after it."""
    started = last_seen = time.monotonic()
    status = hubs.spoke_status(ctx, hubs.get_spoke(ctx, spoke_id))
    if status["running"]:
        line.out.write(f"{status['name']}: another run is going (started elsewhere); following it\n")
    shown = False
    reading_said = False
    last: tuple[int, int] | None = None
    try:
        while status["running"] and time.monotonic() - started < limit_s:
            progress = _progress_of(status)
            now = time.monotonic()
            if progress is not None and progress.phase == "writing":
                if (progress.done, progress.total) != last:
                    last, last_seen = (progress.done, progress.total), now
                line(progress)
                shown = True
            elif not reading_said and progress is not None:
                line(progress)  # "reading changes ...", once
                reading_said = True
            if now - last_seen > FOLLOW_QUIET_S:
                line.finish()
                line.out.write(f"{status['name']}: the other run shows no progress; not waiting for it\n")
                break
            time.sleep(FOLLOW_EVERY_S)
            status = hubs.spoke_status(ctx, hubs.get_spoke(ctx, spoke_id))
    finally:
        line.finish()
    last = status.get("last_run")
    if shown and last and not status["running"]:
        words = display.RUN_WORDS.get(last["status"], last["status"])
        line.out.write(f"{status['name']}: the other run {words}: {last['into_hub']:,} into the hub, "
                       f"{last['into_spoke']:,} into the spoke\n")
        line.out.flush()
    return status


def _watch(ctx: Context, every_s: float, out: TextIO, rounds: int | None = None) -> int:
    """`status --watch`: the status again every few seconds (progress of running syncs included),
    redrawn on a terminal, printed again into a pipe when it changed; Ctrl-C ends it (`rounds`:
    a number of updates instead, for tests)."""
    import contextlib
    import io

    previous = ""
    try:
        while rounds is None or rounds > 0:
            if rounds is not None:
                rounds -= 1
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                _print_status(ctx, hubs.status(ctx))
            text = buffer.getvalue()
            if text != previous:
                if out.isatty():
                    out.write("\x1b[H\x1b[2J")
                out.write(text + ("" if out.isatty() else "\n"))
                out.flush()
                previous = text
            time.sleep(every_s)
    except KeyboardInterrupt:
        out.write("stopped watching.\n")
        out.flush()
    return EXIT_OK


# ------------------------------------------------------------ human output


def _now(ctx: Context) -> datetime:
    return ctx.clock.now()


def _direction(two_way: bool) -> str:
    return "two-way" if two_way else "into the hub"


def _last_run_words(ctx: Context, status: dict[str, Any]) -> str:
    last = status.get("last_run")
    if not last:
        return "never"
    words = display.RUN_WORDS.get(last["status"], last["status"])
    return f"{words}, {display.relative(last.get('finished_at') or last['started_at'], _now(ctx))}"


def _state_words(status: dict[str, Any]) -> str:
    if status.get("running"):
        return "running"
    return display.STATE_WORDS.get(status["state"], status["state"])


KINDS_HELP = {"calendar": "google|exchange|graph", "contacts": "google_contacts|exchange_contacts|graph_contacts"}


def _print_status(ctx: Context, hubs_status: list[dict[str, Any]]) -> None:
    if not hubs_status:
        print("No hubs yet. Create one with: spokesync hub create NAME   (or in the web wizard: spokesync serve)")
        return
    now = _now(ctx)
    for n, hub in enumerate(hubs_status):
        if n:
            print()
        noun = "contact" if hub.get("object_type") == "contacts" else "item"
        print(f"Hub '{hub['name']}' ({display.KIND_WORDS.get(hub.get('object_type', 'calendar'), 'calendars')}): "
              f"{display.plural(hub['items'], noun)}, "
              f"{display.plural(len(hub['spokes']), 'spoke')}")
        if not hub["spokes"]:
            print(f"  no spokes yet: spokesync spoke add '{hub['name']}' NAME "
                  f"--kind {KINDS_HELP.get(hub.get('object_type', 'calendar'), 'google|exchange')} ...")
            continue
        rows = [[s["name"], display.KIND_WORDS.get(s["kind"], s["kind"]), _direction(s["two_way"]), _state_words(s),
                 s["linked_items"], _last_run_words(ctx, s), display.when(s["next_run_at"], now)]
                for s in hub["spokes"]]
        print(display.table(rows, ["SPOKE", "KIND", "DIRECTION", "STATE", "ITEMS", "LAST RUN", "NEXT RUN"]))
        for s in hub["spokes"]:
            progress = _progress_of(s) if s["running"] else None
            if progress is not None:
                if progress.phase == "reading" or not progress.total:
                    print(f"  {s['name']}: syncing: reading changes ...")
                else:
                    print(f"  {s['name']}: syncing: {progress.done:,} of {progress.total:,} items written "
                          f"({progress.done / progress.total:.0%})")
            if s["state"] != "ok" and s["state_reason"]:
                print(f"  {s['name']}: {s['state_reason']}")
            if s["state"] == "needs_confirmation":
                print(f"    decide: spokesync confirm '{s['name']}'  or  spokesync refuse '{s['name']}'")
            if s["needs_attention"]:
                print(f"  {s['name']}: {display.plural(len(s['needs_attention']), 'write')} refused by the spoke "
                      f"(spokesync runs '{s['name']}' shows them; spokesync retry '{s['name']}' tries again)")


def _print_runs(ctx: Context, runs: list[dict[str, Any]]) -> None:
    if not runs:
        print("No runs yet.")
        return
    now = _now(ctx)
    rows = []
    for r in runs:
        status = display.RUN_WORDS.get(r["status"], r["status"])
        if r["runs"] > 1:
            status += f" (x{r['runs']})"
        rows.append([display.when(r["started_at"], now), status, r["into_hub"], r["into_spoke"],
                     len(r["conflicts"]), len(r["errors"])])
    print(display.table(rows, ["STARTED", "RESULT", "INTO HUB", "INTO SPOKE", "CONFLICTS", "ERRORS"]))
    for r in runs:
        details = [f"    conflict: {display.conflict_title(c)} (the {c.get('winner')} side's version was kept)"
                   for c in r["conflicts"][:10]] + [f"    error: {e}" for e in r["errors"][:10]]
        if r["reason"] and r["status"] not in ("ok",):
            details.insert(0, f"    {r['reason']}")
        if details:
            print(f"  {display.local_time(r['started_at'])}:")
            print("\n".join(details))


def _credential_account(cred: Any) -> str:
    settings = cred.settings or {}
    return str(settings.get("account") or settings.get("username") or settings.get("client_email")
               or settings.get("smtp_address") or "")


def _spoke_rows(ctx: Context, spokes: list[dict[str, Any]]) -> list[list[Any]]:
    names = {h.id: h.name for h in hubs.list_hubs(ctx)}
    return [[s["name"], names.get(s["hub_id"], s["hub_id"]), display.KIND_WORDS.get(s["kind"], s["kind"]),
             display.address_words(s["kind"], s["address"]), _direction(s["two_way"]), _state_words(s), s["id"]]
            for s in spokes]


def _print_spoke_line(verb: str, status: dict[str, Any]) -> None:
    print(f"{verb} spoke '{status['name']}' ({display.KIND_WORDS.get(status['kind'], status['kind'])}, "
          f"{_direction(status['two_way'])}); state: {_state_words(status)}; id {status['id']}")


def _print_options(options: dict[str, Any]) -> None:
    rows: list[list[Any]] = []
    for key, value in options.items():
        if isinstance(value, dict):
            rows.extend([f"{key}.{k}", json.dumps(v)] for k, v in value.items())
        elif key == "max_delete_share":
            rows.append([key, f"{value} ({display.percent(float(value))})"])
        else:
            rows.append([key, json.dumps(value)])
    print(display.table(rows, ["OPTION", "VALUE"]))


def _print_matches(spoke_name: str, pending: list[dict[str, Any]]) -> None:
    """One row per candidate: the spoke's item (name, e-mail or start), the hub item it may be."""
    if not pending:
        print(f"{spoke_name}: no undecided matches.")
        return
    rows: list[list[Any]] = []
    for entry in pending:
        first = [entry.get("title") or "(no name)", entry.get("detail", ""), entry.get("spoke_item_id")]
        decided = entry.get("decided")
        candidates = list(entry.get("candidates", ()))
        if decided is not None:
            chosen = next((c.get("title") for c in candidates if c.get("hub_item_id") == decided), None)
            rows.append([*first, f"decided: {'the same as ' + str(chosen) if chosen else 'a different item'} "
                                 "(applied by the next sync)", "", ""])
            continue
        if not candidates:  # the chosen hub item was taken by another item meanwhile
            rows.append([*first, "(its choice was taken by another item: decide again)", "", ""])
        for i, c in enumerate(candidates):
            rows.append([*(first if i == 0 else ["", "", ""]), c.get("title") or "(no name)", c.get("detail", ""),
                         c.get("hub_item_id")])
    print(display.table(rows, ["ITEM", "E-MAIL / START", "ITEM ID", "MAY BE HUB ITEM", "E-MAIL / START", "HUB ID"]))
    print(f"\ndecide: spokesync spoke match '{spoke_name}' ITEM --with HUB_ITEM (the same) | --separate (different)")


def _pick(entries: list[dict[str, Any]], wanted: str, id_key: str, missing: str) -> dict[str, Any]:
    """The entry named by its id, else by its title when exactly one has it."""
    by_id = [e for e in entries if str(e.get(id_key)) == wanted]
    by_title = [e for e in entries if str(e.get("title", "")).strip().lower() == wanted.strip().lower()]
    found = by_id or by_title
    if not found:
        raise hubs.NotFound(missing)
    if len(found) > 1:
        raise hubs.InvalidRequest(f"several items are called '{wanted}': name it by its id "
                                  f"({', '.join(str(e.get(id_key)) for e in found)})")
    return found[0]


def _serve(ctx_args: argparse.Namespace) -> int:
    from spokesync.config import Config
    from spokesync.local_server import admin_token_line, local_config, serve

    config = local_config(Config.from_env(), ctx_args.port)
    if ctx_args.demo:
        from spokesync.demo import start_demo

        config = start_demo(config)
    ctx = build_context(config)
    url = f"http://{ctx_args.host}:{ctx_args.port}/setup/login"
    print(f"spokesync is running: open {url} and sign in with the admin token\n"
          f"{admin_token_line(config)}\n"
          f"data: {config.data_dir}", flush=True)
    serve(ctx, ctx_args.host, ctx_args.port, ctx_args.poll)
    return 0


def _folders(ctx: Context, credential: Any, path: str, mailbox: bool) -> list[dict[str, Any]]:
    """The folders under PATH ('Calendars/Holidays', by names, from the public-folder root or the
    mailbox's top), as the wizard's browser shows them: one FindFolder call per level."""
    from spokesync.connectors import exchange

    if credential.kind != "exchange" or not credential.secret_name:
        raise hubs.InvalidRequest(f"'{credential.label}' is not an Exchange credential: folders are browsed on "
                                  "Exchange (for Google calendars: spokesync calendars CREDENTIAL)")
    password = ctx.secrets.get(credential.secret_name)
    parent: str | None = None
    walked: list[str] = []
    for name in [p for p in path.split("/") if p]:
        found = exchange.browse(credential.settings, password, ctx.config, parent=parent, public=not mailbox)
        match = next((f for f in found if f.name.casefold() == name.casefold()), None)
        if match is None:
            where = "/".join(walked) or ("the mailbox" if mailbox else "the public folders")
            names = ", ".join(sorted(f.name for f in found)) or "none"
            raise hubs.NotFound(f"no folder '{name}' in {where} (there: {names})")
        parent = match.id
        walked.append(match.name)
    folders = exchange.browse(credential.settings, password, ctx.config, parent=parent, public=not mailbox)
    prefix = "/".join(walked)
    return [{"path": f"{prefix}/{f.name}" if prefix else f.name, "name": f.name, "kind": f.kind, "id": f.id,
             "subfolders": f.child_count, "public": f.public} for f in folders]


def _calendars(ctx: Context, credential: Any) -> list[dict[str, Any]]:
    from spokesync.connectors.google import auth as google_auth

    if not credential.kind.startswith("google"):
        raise hubs.InvalidRequest(f"'{credential.label}' is not a Google credential: calendars are listed for "
                                  "Google (for Exchange folders: spokesync folders CREDENTIAL [PATH])")
    return google_auth.list_calendars(credential, ctx.secrets, ctx.config)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit code 2 with a plain message and where to look
        self.print_usage(sys.stderr)
        print(f"{self.prog}: {message} (see: {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


EXIT_CODES = """\
exit codes: 0 done; 1 a sync failed or is paused (waiting for a confirmation, a sign-in,
a quota); 2 the command was wrong (unknown name, bad option); 3 skipped because another
run of the spoke is in progress; 130 stopped by Ctrl-C (nothing lost; run it again)"""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON for scripts instead of tables and sentences")
    parser = _Parser(prog="spokesync", description="Hub-and-spoke sync of shared calendars and contacts between Google, Exchange and Microsoft 365.",
                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="also log what happens")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables and sentences")
    parser.add_argument("--demo", action="store_true",
                        help="work on the hubs of the running demo (`spokesync serve --demo`)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def add(group: Any, name: str, text: str) -> argparse.ArgumentParser:
        return group.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".",  # type: ignore[no-any-return]
                                parents=[common])

    hub = add(sub, "hub", "create, list and remove hubs").add_subparsers(dest="action", required=True,
                                                                           metavar="ACTION")
    p = add(hub, "create", "create a hub (the shared calendar or address book every spoke syncs with)")
    p.add_argument("name")
    p.add_argument("--object", choices=["calendar", "contacts"], default="calendar",
                   help="what the hub holds: calendar events (default) or contacts")
    add(hub, "list", "list the hubs with their item and spoke counts")
    p = add(hub, "remove", "remove a hub and its spokes (the calendars themselves keep their items)")
    p.add_argument("hub", help="name or id")

    spoke = add(sub, "spoke", "add, list, configure and remove spokes").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = add(spoke, "add", "add a calendar, contacts folder or contact group to a hub as a spoke "
                          "(its address is checked first)")
    p.add_argument("hub", help="name or id")
    p.add_argument("name")
    p.add_argument("--kind", required=True,
                   help="calendar hubs: google, exchange, graph; contacts hubs: google_contacts, exchange_contacts, "
                        "graph_contacts (or memory, for trying things)")
    p.add_argument("--address", nargs="*", default=[], metavar="KEY=VALUE",
                   help="google: calendar_id=ID; exchange, exchange_contacts: folder_id=ID public=true|false; "
                        "google_contacts: group=NAME (the contact group); graph_contacts: mailbox=ADDRESS "
                        "[folder=NAME] (spokesync calendars / folders find them)")
    p.add_argument("--credential", help="saved credential, by label or id (spokesync credential list)")
    p.add_argument("--two-way", action="store_true", help="allow the hub to create and sync items in this spoke")
    p.add_argument("--option", nargs="*", default=[], metavar="KEY=VALUE")
    p = add(spoke, "list", "list the spokes (of one hub, or all)")
    p.add_argument("hub", nargs="?", help="name or id")
    p = add(spoke, "remove", "remove a spoke (the hub keeps its items)")
    p.add_argument("spoke", help="name or id")
    p = add(spoke, "matches", "list the spoke's items that may be the same as several hub items (or share one "
                              "with another item): left unlinked until you decide")
    p.add_argument("spoke", help="name or id")
    p = add(spoke, "match", "decide an undecided match: the same as one hub item (--with), or a different item "
                            "(--separate, copied as a new one); the next sync applies it")
    p.add_argument("spoke", help="name or id")
    p.add_argument("item", help="the spoke's item, by id or name (spokesync spoke matches SPOKE)")
    choice = p.add_mutually_exclusive_group(required=True)
    choice.add_argument("--with", dest="hub_item", metavar="HUB_ITEM",
                        help="the hub item it is the same as, by id or name (one of its candidates)")
    choice.add_argument("--separate", action="store_true", help="they are different: copy it as a new item")
    p = add(spoke, "options", "show or change a spoke's sync options")
    p.add_argument("spoke", help="name or id")
    p.add_argument("option", nargs="*", metavar="KEY=VALUE")

    cred = add(sub, "credential", "list and save credentials (Exchange passwords, Google sign-ins)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add(cred, "list", "list the saved credentials (never their secrets)")
    p = add(cred, "exchange", "save an Exchange credential (validated first; password from "
                              "$SPOKESYNC_EXCHANGE_PASSWORD or a prompt)")
    p.add_argument("--label", default="Exchange")
    p.add_argument("--url", required=True, help="the EWS address, https://mail.example.com/EWS/Exchange.asmx")
    p.add_argument("--user", required=True, help="DOMAIN\\user or user@example.com")
    p.add_argument("--mailbox", default="", help="the mailbox's primary SMTP address (needed unless --user is one)")
    p.add_argument("--public-folder-mailboxes", action="store_true",
                   help="route public-folder requests to their public-folder mailboxes (several of them)")
    p.add_argument("--version", default="2016", choices=["2010", "2013", "2016", "2019"],
                   help="the server's Exchange version: 2016 covers 2016 and later (2019 is accepted)")
    p.add_argument("--auth", default="ntlm", choices=["ntlm", "basic"])

    p = add(cred, "graph", "save a Microsoft 365 app credential, validated against one mailbox "
                           "(client secret from $SPOKESYNC_GRAPH_SECRET or a prompt, or a certificate)")
    p.add_argument("--label", default="Microsoft 365")
    p.add_argument("--tenant", required=True, help="Directory (tenant) ID or a verified domain")
    p.add_argument("--client-id", required=True, help="Application (client) ID")
    p.add_argument("--mailbox", required=True, help="a user or shared mailbox address, or a group id with --group")
    p.add_argument("--group", action="store_true", help="the mailbox is a Microsoft 365 group")
    p.add_argument("--certificate", help="PEM file of the certificate uploaded to the app registration")
    p.add_argument("--key", help="PEM file of the certificate's private key")
    p = add(cred, "graph-calendars", "list the calendars of a Microsoft 365 mailbox or group")
    p.add_argument("credential", help="Microsoft 365 credential, by label or id")
    p.add_argument("--mailbox", required=True)
    p.add_argument("--group", action="store_true")
    p = add(sub, "selftest", "check a credential against the real service in a scratch calendar it "
                             "creates and removes (touches nothing else)")
    p.add_argument("credential", help="credential id or label")

    p = add(sub, "folders", "list Exchange folders (public, or --mailbox) under a path, as the wizard's browser")
    p.add_argument("credential", help="Exchange credential, by label or id")
    p.add_argument("path", nargs="?", default="", help="folder names from the top, e.g. 'Calendars/Holidays'")
    p.add_argument("--mailbox", action="store_true", help="the mailbox's folders instead of the public folders")
    p = add(sub, "calendars", "list the Google calendars a Google credential can write to")
    p.add_argument("credential", help="Google credential, by label or id")

    p = add(sub, "sync", "sync spokes now, here, with progress (--dry-run: show what would change)")
    p.add_argument("spokes", nargs="*", help="names or ids")
    p.add_argument("--all", action="store_true", help="every spoke of every hub")
    p.add_argument("--dry-run", action="store_true", help="write nothing; show the plan")

    p = add(sub, "status", "every hub and spoke: state, items, last and next run, progress of running syncs")
    p.add_argument("--watch", action="store_true",
                   help="keep showing it, with the progress of syncs run anywhere (Ctrl-C ends)")
    p.add_argument("--every", type=float, default=2.0, help="seconds between updates with --watch (default 2)")
    for name, text in (("runs", "a spoke's run history, with the titles of conflicts and errors"),
                       ("confirm", "confirm a paused deletion: delete exactly the listed items"),
                       ("refuse", "refuse a paused deletion: keep every listed item on every side"),
                       ("resume", "resume a paused or failed spoke"),
                       ("retry", "try the writes a calendar refused once more")):
        p = add(sub, name, text)
        p.add_argument("spoke", help="name or id")
        if name == "resume":
            p.add_argument("--clear-lease", action="store_true",
                           help="also clear a run still marked as in progress (its process was stopped or crashed)")
        if name == "runs":
            p.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")

    p = add(sub, "serve", "run the local server: the web wizard, the dashboard and the sync schedule")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--poll", type=float, default=30.0, help="seconds between polling ticks")
    p.add_argument("--demo", action="store_true",
                   help="also start local Google Calendar and EWS servers with sample calendars")
    return parser


def run(args: argparse.Namespace, ctx: Context) -> int:  # noqa: C901 - one branch per command
    cmd, action = args.command, getattr(args, "action", None)
    as_json = bool(getattr(args, "json", False))
    if cmd == "hub" and action == "create":
        hub = hubs.create_hub(ctx, args.name, args.object)
        if as_json:
            _print(hub.to_dict())
        else:
            fitting = KINDS_HELP[hub.object_type]
            print(f"created {'contacts' if hub.object_type == 'contacts' else 'calendar'} hub '{hub.name}' "
                  f"(id {hub.id}); add spokes with: spokesync spoke add '{hub.name}' NAME --kind {fitting} ...")
    elif cmd == "hub" and action == "list":
        hub_list = hubs.list_hubs(ctx)
        if as_json:
            _print([h.to_dict() for h in hub_list])
        elif not hub_list:
            print("No hubs yet. Create one with: spokesync hub create NAME")
        else:
            print(display.table([[h.name, display.KIND_WORDS.get(h.object_type, h.object_type),
                                  ctx.store.count_hub_items(h.id), len(ctx.store.list_spokes(h.id)), h.id]
                                 for h in hub_list], ["HUB", "TYPE", "ITEMS", "SPOKES", "ID"]))
    elif cmd == "hub" and action == "remove":
        hub = hubs.find_hub(ctx, args.hub)
        hubs.delete_hub(ctx, hub.id)
        print(json.dumps({"deleted": hub.id}) if as_json else f"removed hub '{hub.name}'")
    elif cmd == "spoke" and action == "add":
        options = _pairs(args.option)
        if args.two_way:
            options["direction"] = "two_way"
        credential_id = hubs.find_credential(ctx, args.credential).id if args.credential else None
        hub = hubs.find_hub(ctx, args.hub)
        spoke = hubs.add_spoke(ctx, hub.id, args.name, args.kind, _pairs(args.address), credential_id, options,
                               check=True)
        note = hubs.start_push(ctx, spoke)
        if note:
            print(f"note: {note}", file=sys.stderr)
        status = hubs.spoke_status(ctx, spoke)
        if as_json:
            _print(status)
        else:
            _print_spoke_line("added", status)
            print(f"sync it now with: spokesync sync '{spoke.name}'")
    elif cmd == "spoke" and action == "list":
        hub_id = hubs.find_hub(ctx, args.hub).id if args.hub else None
        statuses = [hubs.spoke_status(ctx, s) for s in hubs.list_spokes(ctx, hub_id)]
        if as_json:
            _print(statuses)
        elif not statuses:
            print("No spokes yet. Add one with: spokesync spoke add HUB NAME --kind google|exchange|graph ... "
                  "(contacts hubs: --kind google_contacts|exchange_contacts|graph_contacts)")
        else:
            print(display.table(_spoke_rows(ctx, statuses),
                                ["SPOKE", "HUB", "KIND", "ADDRESS", "DIRECTION", "STATE", "ID"]))
    elif cmd == "spoke" and action == "remove":
        spoke = hubs.find_spoke(ctx, args.spoke)
        hubs.remove_spoke(ctx, spoke.id)
        print(json.dumps({"deleted": spoke.id}) if as_json else f"removed spoke '{spoke.name}' (the hub keeps its items)")
    elif cmd == "spoke" and action == "matches":
        spoke = hubs.find_spoke(ctx, args.spoke)
        pending = hubs.spoke_status(ctx, spoke)["ambiguous_matches"]
        if as_json:
            _print(pending)
        else:
            _print_matches(spoke.name, pending)
    elif cmd == "spoke" and action == "match":
        spoke = hubs.find_spoke(ctx, args.spoke)
        entry = _pick(spoke.ambiguous, args.item, "spoke_item_id",
                      f"spoke '{spoke.name}' has no undecided match for '{args.item}' "
                      f"(spokesync spoke matches '{spoke.name}' lists them)")
        hub_item = "" if args.separate else str(_pick(
            list(entry.get("candidates", ())), args.hub_item, "hub_item_id",
            f"'{args.hub_item}' is not one of the hub items '{entry.get('title')}' may be "
            f"(spokesync spoke matches '{spoke.name}' lists them)")["hub_item_id"])
        spoke = hubs.decide_match(ctx, spoke.id, str(entry["spoke_item_id"]), hub_item)
        if as_json:
            _print(hubs.spoke_status(ctx, spoke))
        else:
            chosen = next((c for c in entry.get("candidates", ()) if c.get("hub_item_id") == hub_item), None)
            words = (f"the same as hub item '{chosen.get('title')}': linked, not copied" if chosen
                     else "a different item: copied into the hub as a new one")
            print(f"{spoke.name}: '{entry.get('title')}' is {words} in its next run "
                  f"(spokesync sync '{spoke.name}' runs it now)")
    elif cmd == "spoke" and action == "options":
        spoke = hubs.find_spoke(ctx, args.spoke)
        if args.option:
            spoke = hubs.set_options(ctx, spoke.id, _pairs(args.option))
        hub = hubs.get_hub(ctx, spoke.hub_id)
        if as_json:
            _print(spoke.options.to_dict())
        else:
            _print_options(hubs.options_view(spoke.options, hub.object_type))
        print(_budget_help(spoke.options), file=sys.stderr)
    elif cmd == "credential" and action == "list":
        creds = ctx.store.list_credentials()
        if as_json:
            _print([c.to_dict() for c in creds])
        elif not creds:
            print("No credentials yet. Save one with: spokesync credential exchange --url URL --user USER "
                  "(Google: sign in through the web wizard)")
        else:
            kinds = {"google_oauth": "Google sign-in", "google_service_account": "Google service account",
                     "exchange": "Exchange", "graph": "Microsoft 365 app"}
            print(display.table([[c.label, kinds.get(c.kind, c.kind), _credential_account(c),
                                  f"needs repair: {c.broken_reason}" if c.broken_reason else "ok", c.id]
                                 for c in creds], ["CREDENTIAL", "KIND", "ACCOUNT", "STATE", "ID"]))
    elif cmd == "credential" and action == "exchange":
        from spokesync.connectors import exchange

        password = os.environ.get("SPOKESYNC_EXCHANGE_PASSWORD") or getpass.getpass("Exchange password: ")
        settings = {"ews_url": args.url, "username": args.user, "version": args.version,
                    "auth_type": args.auth.upper(), "mailbox": args.mailbox,
                    "public_folder_mailboxes": args.public_folder_mailboxes}
        cred = exchange.save_credential(ctx, hubs.check_name(args.label.strip(), "credential label"), settings,
                                        password)
        if as_json:
            _print(cred.to_dict())
        else:
            print(f"saved Exchange credential '{cred.label}' for {args.user} (id {cred.id}); "
                  f"find folders with: spokesync folders '{cred.label}'")
    elif cmd == "folders":
        folders = _folders(ctx, hubs.find_credential(ctx, args.credential), args.path, args.mailbox)
        if as_json:
            _print(folders)
        elif not folders:
            print("No calendar or contacts folders here.")
        else:
            kinds = {"calendar": "calendar", "contacts": "contacts", "folder": "folder"}
            print(display.table([[f["path"], kinds.get(f["kind"], f["kind"]), f["subfolders"] or "", f["id"]]
                                 for f in folders], ["FOLDER", "TYPE", "SUBFOLDERS", "ID"]))
            print(f"\nadd one: spokesync spoke add HUB NAME --kind exchange (contacts folders: exchange_contacts) "
                  f"--credential '{args.credential}' --address folder_id=ID public={'false' if args.mailbox else 'true'}")
    elif cmd == "calendars":
        calendars = _calendars(ctx, hubs.find_credential(ctx, args.credential))
        if as_json:
            _print(calendars)
        elif not calendars:
            print("This account cannot write to any calendar.")
        else:
            print(display.table([[c["summary"] + (" (primary)" if c["primary"] else ""), c["time_zone"],
                                  c["access_role"], c["id"]] for c in calendars],
                                ["CALENDAR", "TIME ZONE", "ACCESS", "ID"]))
            print(f"\nadd one: spokesync spoke add HUB NAME --kind google --credential '{args.credential}' "
                  "--address calendar_id=ID")
    elif cmd == "credential" and action == "graph":
        from spokesync.connectors import graph

        auth = "certificate" if args.certificate or args.key else "secret"
        if auth == "certificate":
            if not (args.certificate and args.key):
                raise hubs.InvalidRequest("a certificate credential needs both --certificate and --key")
            with open(args.certificate) as cert_file, open(args.key) as key_file:
                secret = json.dumps({"private_key": key_file.read(), "certificate": cert_file.read()})
        else:
            secret = os.environ.get("SPOKESYNC_GRAPH_SECRET") or getpass.getpass("Client secret: ")
        settings = {"tenant": args.tenant, "client_id": args.client_id, "auth": auth}
        cred = graph.save_credential(ctx, args.label, settings, secret, mailbox=args.mailbox,
                                     kind="group" if args.group else "user")
        if as_json:
            _print(cred.to_dict())
        else:
            print(f"saved Microsoft 365 credential '{cred.label}' (id {cred.id}); find calendars with: "
                  f"spokesync credential graph-calendars '{cred.label}' --mailbox {args.mailbox}")
    elif cmd == "credential" and action == "graph-calendars":
        from spokesync.connectors import graph

        credential = hubs.find_credential(ctx, args.credential)
        if credential.kind != "graph" or not credential.secret_name:
            raise hubs.NotFound(f"'{credential.label}' is not a Microsoft 365 credential (spokesync credential list)")
        found = graph.list_calendars(credential.settings, ctx.secrets.get(credential.secret_name), ctx.config,
                                     args.mailbox, "group" if args.group else "user")
        rows: list[dict[str, Any]] = [{"id": c.id, "name": c.name, "default": c.is_default} for c in found]
        if as_json:
            _print(rows)
        elif not rows:
            print("This mailbox has no calendar this app may open.")
        else:
            print(display.table([[str(r["name"]) + (" (default)" if r["default"] else ""), r["id"]] for r in rows],
                                ["CALENDAR", "ID"]))
    elif cmd == "selftest":
        from spokesync.service import selftest

        chosen = hubs.find_credential(ctx, args.credential)
        report = selftest.run(ctx, chosen.id)
        to_dict = getattr(report, "to_dict", None)
        if as_json and to_dict is not None:
            _print(to_dict())
        else:
            print(report.text())
        return 0 if report.ok else 1
    elif cmd == "sync":
        ids = [s.id for s in hubs.list_spokes(ctx)] if args.all else [hubs.find_spoke(ctx, s).id for s in args.spokes]
        if not ids:
            raise hubs.InvalidRequest("name the spokes to sync, or use --all")
        out: list[dict[str, Any]] = []
        code = max(_sync(ctx, spoke_id, args.dry_run, as_json, out) for spoke_id in ids)
        drain = getattr(ctx.queue, "drain", None)
        ran = drain() if drain is not None and not args.dry_run else 0  # follow-ups: other two-way spokes, continuations
        if as_json:
            _print({"spokes": out, "follow_ups": ran})
        elif ran:
            print(f"ran {display.plural(ran, 'follow-up sync')} of spokes whose hub changed")
        return code
    elif cmd == "status" and args.watch and not as_json:
        return _watch(ctx, max(0.2, args.every), sys.stdout)
    elif cmd == "status":
        data = hubs.status(ctx)
        if as_json:
            _print(data)
        else:
            _print_status(ctx, data)
    elif cmd == "runs":
        runs = hubs.run_history(ctx, spoke_id=hubs.find_spoke(ctx, args.spoke).id, limit=args.limit)
        if as_json:
            _print(runs)
        else:
            _print_runs(ctx, runs)
    elif cmd in ("confirm", "refuse", "resume", "retry"):
        spoke = hubs.find_spoke(ctx, args.spoke)
        if cmd == "confirm":
            spoke, words = hubs.confirm_deletions(ctx, spoke.id), "confirmed: the listed items are deleted in its next run"
        elif cmd == "refuse":
            spoke, words = hubs.cancel_deletions(ctx, spoke.id), "refused: every listed item is kept and written back"
        elif cmd == "resume":
            spoke, words = hubs.resume(ctx, spoke.id, args.clear_lease), "resumed: it syncs again"
        else:
            spoke, words = hubs.retry_refused_writes(ctx, spoke.id), "the refused writes are tried again in its next run"
        status = hubs.spoke_status(ctx, spoke)
        if as_json:
            _print(status)
        else:
            print(f"{spoke.name}: {words} (spokesync sync '{spoke.name}' runs it now)")
    return 0


def _context(args: argparse.Namespace) -> Context:
    if not args.demo:
        return build_context()
    from spokesync.config import Config
    from spokesync.demo import cli_config

    return build_context(cli_config(Config.from_env()))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from spokesync import lifecycle

    lifecycle.install(raise_in_main=True, signals=(signal.SIGTERM,))
    if args.command == "serve":
        try:
            return _serve(args)
        except KeyboardInterrupt:
            print("spokesync: stopped; runs in progress were recorded as interrupted and their spokes released.",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
    from spokesync.demo import DemoNotRunning
    from spokesync.ports import ConnectorError

    try:
        ctx = _context(args)
        return run(args, ctx)
    except KeyboardInterrupt:
        print("spokesync: stopped. The run was recorded as interrupted and its spoke released: nothing was lost. "
              "Run the same command again to continue.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (hubs.InvalidRequest, hubs.NotFound, DemoNotRunning) as err:
        print(f"spokesync: {err}", file=sys.stderr)
        return EXIT_USAGE
    except ConnectorError as err:  # a readable message, not a traceback, for known failures
        print(f"spokesync: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
