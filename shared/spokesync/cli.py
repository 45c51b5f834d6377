"""The `spokesync` command: hubs, spokes, syncs, status, and the local server.

    spokesync hub create NAME | hub list | hub remove HUB
    spokesync spoke add HUB NAME --kind memory|google|exchange|graph --address k=v ... [--credential ID]
                        [--two-way] [--option k=v ...]
    spokesync spoke list [HUB] | spoke remove SPOKE | spoke options SPOKE k=v ...
    spokesync credential list | credential exchange --url URL --user USER [--mailbox ADDRESS] [--version 2016] [--auth ntlm]
    spokesync credential graph --tenant T --client-id C --mailbox M [--group] [--certificate PEM --key PEM]
    spokesync sync SPOKE... | sync --all  [--dry-run]
    spokesync status | runs SPOKE | confirm SPOKE | refuse SPOKE | resume SPOKE [--clear-lease] | retry SPOKE
    spokesync serve [--host 127.0.0.1] [--port 8080] [--demo]

Hubs and spokes are named by id or by name. Option values are JSON when
they parse as JSON (numbers, true/false, lists), else strings.

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
from typing import Any

from spokesync.bootstrap import Context, build_context
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
    share = f"{options.max_delete_share * 100:g} %"
    return BUDGET_HELP.format(window=options.deletion_window_h, count=options.max_delete_count, share=share)


def _print_pause(ctx: Context, spoke_id: str) -> None:
    spoke = hubs.get_spoke(ctx, spoke_id)
    if spoke.state != "needs_confirmation":
        return
    items = spoke.pending_items
    print(f"  waiting for your decision: {spoke.pending_deletions} item(s) would be deleted")
    for item in items[:20]:
        side = "deleted in this spoke" if item.get("deleted_in") == "spoke" else "deleted in the hub (another spoke)"
        when = f" ({str(item.get('start'))[:16].replace('T', ' ')})" if item.get("start") else ""
        print(f"    - {item.get('title') or '(no title)'}{when}: {side}")
    if spoke.pending_deletions > 20:
        print(f"    ... and {spoke.pending_deletions - 20} more (spokesync status --json lists them)")
    print(f"  confirm: spokesync confirm '{spoke.name}'   keep everything: spokesync refuse '{spoke.name}'")


def _sync(ctx: Context, spoke_id: str, dry_run: bool) -> int:
    """Run one spoke's sync here, continuing until it has nothing left, with progress."""
    from spokesync.engine.runner import Runner

    spoke = hubs.get_spoke(ctx, spoke_id)
    if dry_run:
        run = Runner(ctx).sync(spoke.id, dry_run=True)
        print(f"{spoke.name}: dry run, nothing written")
        _print({"counts": run.counts, "reason": run.reason, "plan": run.plan})
        return 0
    part = 0
    while True:
        part += 1
        run = Runner(ctx).sync(spoke.id, reason="manual")
        summary = hubs.run_summary(run)
        print(f"{spoke.name}: run {part}: {run.status}; {summary['into_hub']} into the hub, "
              f"{summary['into_spoke']} into the spoke, {run.counts.get('conflicts', 0)} conflicts"
              + (f" - {run.reason}" if run.reason else ""), flush=True)
        for error in run.errors:
            print(f"  error: {error}")
        if run.status == "paused":
            _print_pause(ctx, spoke.id)
        if run.status == "skipped":
            print(f"  not synced now: try again when the other run has finished "
                  f"(or, if its process was stopped, `spokesync resume '{spoke.name}' --clear-lease`)",
                  file=sys.stderr)
            return EXIT_BUSY
        if run.status != "continued" or part >= 1000:
            return EXIT_OK if run.status == "ok" else EXIT_FAILED


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spokesync", description="Hub-and-spoke calendar sync.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    hub = sub.add_parser("hub").add_subparsers(dest="action", required=True)
    p = hub.add_parser("create")
    p.add_argument("name")
    hub.add_parser("list")
    p = hub.add_parser("remove")
    p.add_argument("hub")

    spoke = sub.add_parser("spoke").add_subparsers(dest="action", required=True)
    p = spoke.add_parser("add")
    p.add_argument("hub")
    p.add_argument("name")
    p.add_argument("--kind", required=True)
    p.add_argument("--address", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--credential")
    p.add_argument("--two-way", action="store_true", help="allow the hub to create and sync items in this spoke")
    p.add_argument("--option", nargs="*", default=[], metavar="KEY=VALUE")
    p = spoke.add_parser("list")
    p.add_argument("hub", nargs="?")
    p = spoke.add_parser("remove")
    p.add_argument("spoke")
    p = spoke.add_parser("options")
    p.add_argument("spoke")
    p.add_argument("option", nargs="*", metavar="KEY=VALUE")

    cred = sub.add_parser("credential").add_subparsers(dest="action", required=True)
    cred.add_parser("list")
    p = cred.add_parser("exchange", help="save an Exchange credential (validated first; password from "
                                         "$SPOKESYNC_EXCHANGE_PASSWORD or a prompt)")
    p.add_argument("--label", default="Exchange")
    p.add_argument("--url", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--mailbox", default="", help="the mailbox's primary SMTP address (needed unless --user is one)")
    p.add_argument("--public-folder-mailboxes", action="store_true",
                   help="route public-folder requests to their public-folder mailboxes (several of them)")
    p.add_argument("--version", default="2016", choices=["2010", "2013", "2016"])
    p.add_argument("--auth", default="ntlm", choices=["ntlm", "basic"])

    p = cred.add_parser("graph", help="save a Microsoft 365 app credential, validated against one mailbox "
                                      "(client secret from $SPOKESYNC_GRAPH_SECRET or a prompt, or a certificate)")
    p.add_argument("--label", default="Microsoft 365")
    p.add_argument("--tenant", required=True, help="Directory (tenant) ID or a verified domain")
    p.add_argument("--client-id", required=True, help="Application (client) ID")
    p.add_argument("--mailbox", required=True, help="a user or shared mailbox address, or a group id with --group")
    p.add_argument("--group", action="store_true", help="the mailbox is a Microsoft 365 group")
    p.add_argument("--certificate", help="PEM file of the certificate uploaded to the app registration")
    p.add_argument("--key", help="PEM file of the certificate's private key")
    p = cred.add_parser("graph-calendars", help="list the calendars of a mailbox or group")
    p.add_argument("credential")
    p.add_argument("--mailbox", required=True)
    p.add_argument("--group", action="store_true")
    p = sub.add_parser("selftest", help="check a credential against the real service in a scratch calendar it "
                                         "creates and removes (touches nothing else)")
    p.add_argument("credential", help="credential id or label")

    p = sub.add_parser("sync")
    p.add_argument("spokes", nargs="*")
    p.add_argument("--all", action="store_true")
    p.add_argument("--dry-run", action="store_true")

    sub.add_parser("status")
    for name in ("runs", "confirm", "refuse", "resume", "retry"):
        p = sub.add_parser(name)
        p.add_argument("spoke")
        if name == "resume":
            p.add_argument("--clear-lease", action="store_true",
                           help="also clear a run still marked as in progress (its process was stopped or crashed)")

    p = sub.add_parser("serve")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--poll", type=float, default=30.0, help="seconds between polling ticks")
    p.add_argument("--demo", action="store_true",
                   help="also start local Google Calendar and EWS servers with sample calendars")
    return parser


def run(args: argparse.Namespace, ctx: Context) -> int:
    cmd, action = args.command, getattr(args, "action", None)
    if cmd == "hub" and action == "create":
        _print(hubs.create_hub(ctx, args.name).to_dict())
    elif cmd == "hub" and action == "list":
        _print([h.to_dict() for h in hubs.list_hubs(ctx)])
    elif cmd == "hub" and action == "remove":
        hubs.delete_hub(ctx, hubs.find_hub(ctx, args.hub).id)
    elif cmd == "spoke" and action == "add":
        options = _pairs(args.option)
        if args.two_way:
            options["direction"] = "two_way"
        spoke = hubs.add_spoke(ctx, hubs.find_hub(ctx, args.hub).id, args.name, args.kind, _pairs(args.address),
                               args.credential, options)
        note = hubs.start_push(ctx, spoke)
        if note:
            print(f"note: {note}", file=sys.stderr)
        _print(hubs.spoke_status(ctx, spoke))
    elif cmd == "spoke" and action == "list":
        hub_id = hubs.find_hub(ctx, args.hub).id if args.hub else None
        _print([hubs.spoke_status(ctx, s) for s in hubs.list_spokes(ctx, hub_id)])
    elif cmd == "spoke" and action == "remove":
        hubs.remove_spoke(ctx, hubs.find_spoke(ctx, args.spoke).id)
    elif cmd == "spoke" and action == "options":
        spoke = hubs.find_spoke(ctx, args.spoke)
        if args.option:
            spoke = hubs.set_options(ctx, spoke.id, _pairs(args.option))
        _print(spoke.options.to_dict())
        print(_budget_help(spoke.options), file=sys.stderr)
    elif cmd == "credential" and action == "list":
        _print([c.to_dict() for c in ctx.store.list_credentials()])
    elif cmd == "credential" and action == "exchange":
        from spokesync.connectors import exchange

        password = os.environ.get("SPOKESYNC_EXCHANGE_PASSWORD") or getpass.getpass("Exchange password: ")
        settings = {"ews_url": args.url, "username": args.user, "version": args.version,
                    "auth_type": args.auth.upper(), "mailbox": args.mailbox,
                    "public_folder_mailboxes": args.public_folder_mailboxes}
        cred = exchange.save_credential(ctx, hubs.check_name(args.label.strip(), "credential label"), settings,
                                        password)
        _print(cred.to_dict())
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
        _print(cred.to_dict())
    elif cmd == "credential" and action == "graph-calendars":
        from spokesync.connectors import graph

        credential = ctx.store.get_credential(args.credential)
        if credential is None or credential.kind != "graph" or not credential.secret_name:
            raise hubs.NotFound(f"no Microsoft 365 credential with id {args.credential}")
        found = graph.list_calendars(credential.settings, ctx.secrets.get(credential.secret_name), ctx.config,
                                     args.mailbox, "group" if args.group else "user")
        _print([{"id": c.id, "name": c.name, "default": c.is_default} for c in found])
    elif cmd == "selftest":
        from spokesync.service import selftest

        wanted = args.credential
        chosen = next((c for c in ctx.store.list_credentials() if wanted in (c.id, c.label)), None)
        if chosen is None:
            raise hubs.NotFound(f"no credential '{wanted}': `spokesync credential list` shows them")
        report = selftest.run(ctx, chosen.id)
        print(report.text())
        return 0 if report.ok else 1
    elif cmd == "sync":
        ids = [s.id for s in hubs.list_spokes(ctx)] if args.all else [hubs.find_spoke(ctx, s).id for s in args.spokes]
        if not ids:
            raise hubs.InvalidRequest("name the spokes to sync, or use --all")
        code = max(_sync(ctx, spoke_id, args.dry_run) for spoke_id in ids)
        drain = getattr(ctx.queue, "drain", None)
        if drain is not None and not args.dry_run:
            ran = drain()  # follow-ups: the other two-way spokes of a changed hub, continuations
            if ran:
                print(f"ran {ran} follow-up sync(s) of spokes whose hub changed")
        return code
    elif cmd == "status":
        _print(hubs.status(ctx))
    elif cmd == "runs":
        _print(hubs.run_history(ctx, spoke_id=hubs.find_spoke(ctx, args.spoke).id))
    elif cmd == "confirm":
        _print(hubs.spoke_status(ctx, hubs.confirm_deletions(ctx, hubs.find_spoke(ctx, args.spoke).id)))
    elif cmd == "refuse":
        _print(hubs.spoke_status(ctx, hubs.cancel_deletions(ctx, hubs.find_spoke(ctx, args.spoke).id)))
    elif cmd == "resume":
        _print(hubs.spoke_status(ctx, hubs.resume(ctx, hubs.find_spoke(ctx, args.spoke).id, args.clear_lease)))
    elif cmd == "retry":
        _print(hubs.spoke_status(ctx, hubs.retry_refused_writes(ctx, hubs.find_spoke(ctx, args.spoke).id)))
    return 0


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
    try:
        ctx = build_context()
        return run(args, ctx)
    except KeyboardInterrupt:
        print("spokesync: stopped. The run was recorded as interrupted and its spoke released: nothing was lost. "
              "Run the same command again to continue.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (hubs.InvalidRequest, hubs.NotFound) as err:
        print(f"spokesync: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # noqa: BLE001 - a readable message, not a traceback, for known failures
        from spokesync.ports import ConnectorError

        if isinstance(err, ConnectorError):
            print(f"spokesync: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
