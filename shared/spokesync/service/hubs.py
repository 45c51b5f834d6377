"""Administrative use cases: hubs, spokes, options, sync now, status, history.

Called by the CLI, the setup function's JSON API and the web UI. Each
function takes the Context first and returns plain data or model objects;
bad input raises `InvalidRequest` / `NotFound` with a message fit for an
administrator.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from spokesync.engine.runner import window_deletions
from spokesync.model.hub import CredentialRef, Hub, RunRecord, Spoke, SyncOptions
from spokesync.ports import SyncTask

if TYPE_CHECKING:
    from spokesync.bootstrap import Context


log = logging.getLogger("spokesync.service")


def check_name(value: str, what: str) -> str:
    """A hub, spoke or credential name, refused in plain words when too long or holding control or
    text-direction characters (`model.names`)."""
    from spokesync.model.names import name_problem

    problem = name_problem(value, what)
    if problem:
        raise InvalidRequest(problem, "invalid_name", "label" if "label" in what else "name")
    return value


class InvalidRequest(ValueError):
    """The request is wrong in a way the administrator can fix: `code` names the problem for
    scripts (the API's `code`), `field` the form field it is about."""

    def __init__(self, message: str, code: str = "invalid_request", field: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class NotFound(KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


def _id() -> str:
    return uuid.uuid4().hex


# ------------------------------------------------------------------- hubs

def create_hub(ctx: Context, name: str, object_type: str = "calendar") -> Hub:
    name = (name or "").strip()
    if not name:
        raise InvalidRequest("Enter a name for the hub.", "missing_field", "name")
    check_name(name, "hub name")
    if object_type not in ("calendar", "contacts"):
        raise InvalidRequest("Choose what the hub syncs: 'calendar' or 'contacts'.", "invalid_object_type",
                             "object_type")
    if any(h.name == name for h in ctx.store.list_hubs()):
        raise InvalidRequest(f"A hub named '{name}' already exists: choose another name.", "duplicate_name", "name")
    hub = Hub(id=_id(), name=name, object_type="contacts" if object_type == "contacts" else "calendar")
    ctx.store.put_hub(hub)
    return hub


def get_hub(ctx: Context, hub_id: str) -> Hub:
    hub = ctx.store.get_hub(hub_id)
    if hub is None:
        raise NotFound(f"no hub with id {hub_id}")
    return hub


def find_hub(ctx: Context, ref: str) -> Hub:
    """A hub by id or by name (the CLI accepts either)."""
    hub = ctx.store.get_hub(ref)
    if hub is not None:
        return hub
    for candidate in ctx.store.list_hubs():
        if candidate.name == ref:
            return candidate
    raise NotFound(f"no hub named or numbered '{ref}'")


def list_hubs(ctx: Context) -> list[Hub]:
    return ctx.store.list_hubs()


def delete_hub(ctx: Context, hub_id: str) -> None:
    get_hub(ctx, hub_id)
    for spoke in ctx.store.list_spokes(hub_id):
        remove_spoke(ctx, spoke.id)
    ctx.store.delete_hub(hub_id)


# ------------------------------------------------------------ credentials


def find_credential(ctx: Context, ref: str) -> CredentialRef:
    """A saved credential by id or by its label (the CLI accepts either)."""
    credential = ctx.store.get_credential(ref)
    if credential is not None:
        return credential
    matches = [c for c in ctx.store.list_credentials() if c.label == ref]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidRequest(f"several credentials are labelled '{ref}': use the id (spokesync credential list)")
    raise NotFound(f"no saved credential named or numbered '{ref}' (spokesync credential list shows them)")


# ----------------------------------------------------------------- spokes


_OBJECT_WORDS = {"calendar": "a calendar", "contacts": "a contacts"}

# What is wrong with an option, in the words of the options form (the option's name follows, for
# the CLI and scripts); the model's own message is used for options not listed here.
OPTION_PROBLEMS = {
    "direction": "Choose whether the hub may also write into this spoke (two-way) or not.",
    "days_past": "Days in the past must be a whole number, 0 or more (blank: no limit).",
    "days_future": "Days in the future must be a whole number, 0 or more (blank: no limit).",
    "privacy_mode": "Choose a privacy mode: copy as is, mark private, or a busy-only placeholder.",
    "deletions": "Choose what happens to deletions: propagate them, or keep the items in the hub.",
    "conflict_policy": "Choose who wins a conflict: the most recent change, the hub, or one of the hub's spokes.",
    "max_delete_share": "The share of items must be more than 0 % and at most 100 %.",
    "max_delete_count": "The number of items must be a whole number, 0 or more.",
    "deletion_window_h": "The hours deletions are counted over must be a whole number from 1 to 2160 (90 days).",
    "poll_interval_s": "Checks for changes must be at least 30 seconds (half a minute) apart.",
    "spoke_category": "The category must be text of at most 255 characters (blank: none).",
    "meetings_as_appointments": "'Sync meetings as appointments' is on or off (true or false).",
    "sync_notes": "'Notes' is on or off (true or false).",
    "sync_birthday": "'Birthday and anniversary' is on or off (true or false).",
    "sync_photo": "'Photo' is on or off (true or false).",
    "match_existing": "Linking existing items is on, off, or empty for the default (true, false or null).",
    "has_email": "'Only contacts with an e-mail address' is on or off (true or false).",
    "companies": "Companies are a list of names, none of them empty.",
    "email_domains": "E-mail domains are domain names such as example.com (without a name@).",
}


def _option_problem(message: str, names: list[str]) -> tuple[str, str]:
    """(plain words, option name) for a model validation message that starts with the option's name."""
    first = message.split(" ", 1)[0].strip("'\":,")
    name = next((n for n in sorted(names, key=len, reverse=True) if first in (n, f"filters.{n}")), "")
    if not name:
        return message, ""
    text = OPTION_PROBLEMS.get(name) or message
    field = f"filters.{name}" if first == f"filters.{name}" else name
    return f"{text} (option {field})", field


def _same_type(value: Any, default: Any) -> bool:
    """Whether a requested option value has the shape of the option's default (None: a number or none)."""
    if default is None:
        return value is None or (isinstance(value, int) and not isinstance(value, bool))
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    return True


def _type_words(default: Any) -> str:
    if default is None or (isinstance(default, int) and not isinstance(default, bool)):
        return "a whole number"
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, (list, tuple)):
        return "a list of words, e.g. [\"Team\", \"Board\"]"
    return "text"


# Options that mean something for two-way spokes only (they shape the copies the hub writes there).
TWO_WAY_ONLY = ("privacy_mode", "placeholder_title", "spoke_category", "meetings_as_appointments")


def options_view(options: SyncOptions, object_type: str = "calendar") -> dict[str, Any]:
    """The options that mean something for a spoke of this object type, in the direction it syncs:
    what `spokesync spoke options` shows (the API's spoke status keeps every option)."""
    from spokesync.engine.kinds import kind_for

    kind = kind_for(object_type)
    raw = options.to_dict()
    out = {k: v for k, v in raw.items()
           if k in kind.option_names and not (k in TWO_WAY_ONLY and not options.two_way)}
    out["filters"] = {k: v for k, v in raw["filters"].items() if k in kind.filter_names}
    if options.privacy_mode != "busy_only":
        out.pop("placeholder_title", None)
    return out


def options_from(raw: dict[str, Any] | None, base: SyncOptions | None = None,
                 object_type: str = "calendar") -> SyncOptions:
    """Options from request data, on top of `base`; validated for the hub's object type. A wrong
    value is refused in the options form's words, with the option as the error's `field`.

    An option (or filter) that means nothing for the object type — the date window on a contacts
    spoke, `sync_photo` on a calendar spoke — is refused when the request gives it a value other
    than its default (code `option_not_for_object_type`); sent at its default (a form that posts
    every field) it is accepted and does nothing (docs/decisions/2026-12-01-contact-options.md)."""
    from spokesync.engine.kinds import kind_for
    from spokesync.model.hub import Filters

    kind = kind_for(object_type)
    defaults, default_filters = SyncOptions().to_dict(), SyncOptions().to_dict()["filters"]
    other = _other(object_type)
    for key, value in (raw or {}).items():
        if key == "filters" and isinstance(value, dict):
            for fkey, fvalue in value.items():
                if fkey not in default_filters:
                    raise InvalidRequest(f"There is no filter '{fkey}'. Filters for {object_type} spokes: "
                                         f"{', '.join(sorted(kind.filter_names))}.", "unknown_option",
                                         f"filters.{fkey}")
                if not _same_type(fvalue, default_filters[fkey]):
                    raise InvalidRequest(f"The filter '{fkey}' takes {_type_words(default_filters[fkey])}.",
                                         "invalid_option", f"filters.{fkey}")
                if fkey not in kind.filter_names and Filters.from_dict({fkey: fvalue}) != Filters():
                    raise InvalidRequest(f"The condition filters.{fkey} is for {other} spokes only: "
                                         f"{_OBJECT_WORDS[object_type]} spoke has no use for it; leave it empty.",
                                         "option_not_for_object_type", f"filters.{fkey}")
        elif key not in defaults:
            raise InvalidRequest(f"There is no sync option '{key}'. Options for {object_type} spokes: "
                                 f"{', '.join(sorted(kind.option_names))}.", "unknown_option", key)
        elif not (value is None or isinstance(value, bool) if key == "match_existing"
                  else _same_type(value, defaults[key])):
            text = OPTION_PROBLEMS.get(key) or f"The option '{key}' takes {_type_words(defaults[key])}."
            raise InvalidRequest(f"{text} (option {key})", "invalid_option", key)
        elif key not in kind.option_names and value != defaults[key]:
            raise InvalidRequest(f"The option {key} is for {other} spokes only: {_OBJECT_WORDS[object_type]} "
                                 "spoke has no use for it; leave it out.", "option_not_for_object_type", key)
    merged = (base or SyncOptions()).to_dict()
    for key, value in (raw or {}).items():
        if key == "filters" and isinstance(value, dict):
            merged["filters"] = {**merged["filters"], **value}
        else:
            merged[key] = value
    try:
        options = SyncOptions.from_dict(merged)
        options.validate()
    except (TypeError, ValueError) as err:
        text, name = _option_problem(str(err), [*merged, *merged["filters"]])
        raise InvalidRequest(text, "invalid_option", name or "options") from None
    return options


def _other(object_type: str) -> str:
    return "calendar" if object_type == "contacts" else "contacts"


def check_object_type(hub: Hub, kind: str) -> None:
    """A hub holds one object type: a spoke's kind must hold the same (code `object_type_mismatch`)."""
    from spokesync.connectors.registry import kinds_for, object_type_of

    held = object_type_of(kind)
    if held != hub.object_type:
        raise InvalidRequest(
            f"Hub '{hub.name}' syncs {hub.object_type}, but a '{kind}' spoke holds {held}: add it to a "
            f"{held} hub, or choose a {hub.object_type} source here ({', '.join(kinds_for(hub.object_type))}).",
            "object_type_mismatch", "kind")


def add_spoke(
    ctx: Context,
    hub_id: str,
    name: str,
    kind: str,
    address: dict[str, Any],
    credential_id: str | None = None,
    options: dict[str, Any] | None = None,
    check: bool = False,
) -> Spoke:
    """Add a spoke. With `check` (the CLI, the API) its address is first asked of the server
    (`check_address`), after the cheap checks of name, kind and duplicates."""
    from spokesync.connectors.registry import kinds

    hub = get_hub(ctx, hub_id)
    name = (name or "").strip()
    if not name:
        raise InvalidRequest("Enter a name for the spoke.", "missing_field", "name")
    check_name(name, "spoke name")
    if kind not in kinds():
        raise InvalidRequest(f"unknown spoke kind '{kind}'; choose one of {', '.join(kinds())}", "invalid_field",
                             "kind")
    check_object_type(hub, kind)
    if credential_id is not None and ctx.store.get_credential(credential_id) is None:
        raise InvalidRequest(f"no saved credential with id {credential_id}", "not_found", "credential_id")
    for other in ctx.store.list_spokes(hub.id):
        if other.kind == kind and other.address == address:
            what = "folder or group" if hub.object_type == "contacts" else "calendar"
            raise InvalidRequest(f"this {what} is already a spoke of hub '{hub.name}' ('{other.name}')",
                                 "duplicate_spoke", "address")
        if other.name.casefold() == name.casefold():
            raise InvalidRequest(f"hub '{hub.name}' already has a spoke named '{other.name}': choose another name",
                                 "duplicate_name", "name")
    parsed = options_from(options, object_type=hub.object_type)
    if check:
        check_address(ctx, kind, address, credential_id)
    spoke = Spoke(id=_id(), hub_id=hub.id, name=name, kind=kind, credential_id=credential_id,
                  address=dict(address), options=parsed, next_run_at=ctx.clock.now())
    ctx.store.put_spoke(spoke)
    return spoke


# The address field a kind cannot do without (its connector checks the rest with the server).
ADDRESS_NEEDS = {"google": "calendar_id", "exchange": "folder_id", "exchange_contacts": "folder_id",
                 "google_contacts": "group"}


def check_address(ctx: Context, kind: str, address: dict[str, Any], credential_id: str | None) -> str:
    """Ask the server whether the address names a calendar this credential can open, before a spoke
    is saved (a wrong folder id is refused now, not at the first sync). Returns the calendar's name.
    Kinds whose connector cannot check (memory) pass."""
    from spokesync.connectors.registry import connector_for, kinds
    from spokesync.ports import ConnectorError

    if kind not in kinds():
        raise InvalidRequest(f"unknown spoke kind '{kind}'; choose one of {', '.join(kinds())}")
    needed = ADDRESS_NEEDS.get(kind)
    if needed is None:
        return ""  # kinds whose connector has no check (memory; graph's wizard picks from the mailbox's calendars)
    if needed and not address.get(needed):
        finder = {"google": "spokesync calendars CREDENTIAL lists them",
                  "google_contacts": "the name of the contact group the spoke holds"}.get(
            kind, "spokesync folders CREDENTIAL lists them")
        raise InvalidRequest(f"a {kind} spoke needs --address {needed}=... ({finder})", "missing_field", "address")
    if needed and not credential_id:
        raise InvalidRequest(f"a {kind} spoke needs --credential (spokesync credential list)")
    credential = ctx.store.get_credential(credential_id) if credential_id else None
    probe = Spoke(id="check", hub_id="", name="new spoke", kind=kind, credential_id=credential_id,
                  address=dict(address))
    try:
        connector = connector_for(probe, credential, ctx.secrets, ctx.config, ctx.clock)
    except ImportError:
        raise InvalidRequest(f"Spokes of kind '{kind}' cannot be added here: this installation of spokesync does "
                             "not include their connector. Update spokesync, or choose another kind.",
                             "kind_not_installed", "kind") from None
    except ValueError as err:
        raise InvalidRequest(str(err)) from None
    check = getattr(connector, "check", None)
    if check is None:
        return ""
    try:
        return str(check())
    except ConnectorError as err:
        raise InvalidRequest(str(err), "address_refused" if err.code == "service_error" else err.code,
                             "address") from None


def start_push(ctx: Context, spoke: Spoke) -> str:
    """Open the first push channel of a new Google or Graph spoke (when a webhook address is
    configured). Best effort: the spoke works by polling meanwhile and channel renewal
    retries. Returns a note for the administrator when it could not be opened."""
    if spoke.kind not in ("google", "graph") or not ctx.config.webhook_url:
        return ""
    try:
        if spoke.kind == "graph":
            from spokesync.service import graph_push

            graph_push.open_subscription(ctx, spoke)
        else:
            from spokesync.service import push

            push.on_spoke_added(ctx, spoke)
    except Exception as err:  # noqa: BLE001 - see the docstring
        log.warning("could not open a push channel", extra={"spoke_id": spoke.id, "error": type(err).__name__})
        return f"push notifications not set up yet ({type(err).__name__}); polling until renewal succeeds"
    return ""


def get_spoke(ctx: Context, spoke_id: str) -> Spoke:
    spoke = ctx.store.get_spoke(spoke_id)
    if spoke is None:
        raise NotFound(f"no spoke with id {spoke_id}")
    return spoke


def find_spoke(ctx: Context, ref: str) -> Spoke:
    spoke = ctx.store.get_spoke(ref)
    if spoke is not None:
        return spoke
    matches = [s for s in ctx.store.list_spokes() if s.name == ref]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidRequest(f"several spokes are named '{ref}': use the id")
    raise NotFound(f"no spoke named or numbered '{ref}'")


def list_spokes(ctx: Context, hub_id: str | None = None) -> list[Spoke]:
    return ctx.store.list_spokes(hub_id)


def set_options(ctx: Context, spoke_id: str, changes: dict[str, Any]) -> Spoke:
    spoke = get_spoke(ctx, spoke_id)
    hub = ctx.store.get_hub(spoke.hub_id)
    options = options_from(changes, spoke.options, hub.object_type if hub is not None else "calendar")
    if options.conflict_policy.startswith("spoke:"):
        named = options.conflict_policy.split(":", 1)[1]
        if named not in {s.id for s in ctx.store.list_spokes(spoke.hub_id)}:
            raise InvalidRequest("the conflict policy names a spoke that is not in this hub")
    return ctx.store.update_spoke(spoke.id, options=options)


def remove_spoke(ctx: Context, spoke_id: str) -> None:
    """Remove a spoke: its links, cursor and push channels go; the hub keeps its items."""
    spoke = get_spoke(ctx, spoke_id)
    if spoke.kind == "google":
        try:
            from spokesync.service import push

            push.stop_channels(ctx, spoke)
        except ImportError:  # the Google connector is not installed in this build
            pass
    elif spoke.kind == "graph":
        from spokesync.service import graph_push

        graph_push.stop_subscriptions(ctx, spoke)
    ctx.store.delete_spoke(spoke.id)


# --------------------------------------------------------------- syncing


def sync_now(ctx: Context, spoke_id: str) -> bool:
    """Queue a sync of one spoke; False when one is already waiting."""
    spoke = get_spoke(ctx, spoke_id)
    return ctx.queue.enqueue(SyncTask(spoke.id, reason="manual"))


def sync_hub_now(ctx: Context, hub_id: str) -> int:
    get_hub(ctx, hub_id)
    return sum(ctx.queue.enqueue(SyncTask(s.id, reason="manual")) for s in ctx.store.list_spokes(hub_id))


def dry_run(ctx: Context, spoke_id: str) -> RunRecord:
    from spokesync.engine.runner import Runner

    spoke = get_spoke(ctx, spoke_id)
    return Runner(ctx).sync(spoke.id, reason="preview", dry_run=True)


def confirm_deletions(ctx: Context, spoke_id: str) -> Spoke:
    """An administrator confirms a paused deletion: the next run deletes exactly the items the
    pause listed (more that arrived since are weighed against the budget again), and the
    spoke's deletion budget starts afresh."""
    spoke = get_spoke(ctx, spoke_id)
    if spoke.state != "needs_confirmation":
        raise InvalidRequest(f"spoke '{spoke.name}' has no deletion waiting for confirmation")
    confirmed = list(dict.fromkeys([*spoke.confirmed_ids, *spoke.pending_ids]))
    spoke = ctx.store.update_spoke(spoke.id, confirm_deletions=True, confirmed_ids=confirmed, refuse_deletions=False,
                                   deletion_log=[], state="ok", state_reason="")
    ctx.queue.enqueue(SyncTask(spoke.id, reason="confirmed"))
    return spoke


def cancel_deletions(ctx: Context, spoke_id: str) -> Spoke:
    """Refuse a paused deletion: nothing is deleted on either side. The next run writes back
    into the spoke what it lost (two-way spokes) and restores into the hub, from this
    spoke's copies, what the hub lost; the other spokes then get those items back."""
    spoke = get_spoke(ctx, spoke_id)
    if spoke.state != "needs_confirmation":
        raise InvalidRequest(f"spoke '{spoke.name}' has no deletion waiting for confirmation")
    spoke = ctx.store.update_spoke(spoke.id, refuse_deletions=True, confirm_deletions=False, confirmed_ids=[],
                                   state="ok", state_reason="")
    ctx.queue.enqueue(SyncTask(spoke.id, reason="refused"))
    return spoke


class LeaseHeld(InvalidRequest):
    """`resume` found a run marked as in progress: clearing it needs an explicit yes."""


def resume(ctx: Context, spoke_id: str, clear_lease: bool = False) -> Spoke:
    """Resume a paused or failed spoke. A run still marked as in progress (its process may have
    died: the mark expires by itself) is cleared only when `clear_lease` says so."""
    spoke = get_spoke(ctx, spoke_id)
    now = ctx.clock.now()
    held = spoke.lease_owner is not None and spoke.lease_expires is not None and spoke.lease_expires > now
    if held and not clear_lease:
        raise LeaseHeld(
            f"a run of spoke '{spoke.name}' is marked as in progress until {spoke.lease_expires:%H:%M:%S} UTC. "
            "If it is really running, wait for it. If its process was stopped or crashed, clear the mark "
            "(CLI: resume --clear-lease; dashboard: 'Clear the stuck run'); nothing is lost either way.")
    changes: dict[str, Any] = {"state": "ok", "state_reason": ""}
    if spoke.lease_owner is not None:
        changes.update(lease_owner=None, lease_expires=None)
        log.warning("run mark cleared by an administrator", extra={"spoke_id": spoke.id})
    spoke = ctx.store.update_spoke(spoke.id, **changes)
    ctx.queue.enqueue(SyncTask(spoke.id, reason="manual"))
    return spoke


def retry_refused_writes(ctx: Context, spoke_id: str) -> Spoke:
    """Try the writes the spoke refused (listed as needing attention) once more, in the next run."""
    spoke = get_spoke(ctx, spoke_id)
    if not spoke.attention:
        raise InvalidRequest(f"spoke '{spoke.name}' has no refused writes to try again")
    spoke = ctx.store.update_spoke(spoke.id, retry_attention=True)
    ctx.queue.enqueue(SyncTask(spoke.id, reason="manual"))
    return spoke


def decide_match(ctx: Context, spoke_id: str, spoke_item_id: str, hub_item_id: str) -> Spoke:
    """An administrator's decision on an ambiguous match (docs/decisions/2026-12-01-matching.md):
    the spoke item is the same as hub item `hub_item_id` (one of its candidates), or, with "", a
    new item to copy. Applied by the next run, which is queued."""
    spoke = get_spoke(ctx, spoke_id)
    pending = {str(a.get("spoke_item_id")): a for a in spoke.ambiguous}
    entry = pending.get(spoke_item_id)
    if entry is None:
        raise InvalidRequest(f"spoke '{spoke.name}' has no undecided match for item {spoke_item_id}: "
                             "the list of undecided matches is in the spoke's status", "not_found", "spoke_item_id")
    choices = {str(c.get("hub_item_id")) for c in entry.get("candidates", ())}
    if hub_item_id and hub_item_id not in choices:
        raise InvalidRequest("choose one of the hub items listed for this match, or none to copy it as a new item",
                             "invalid_choice", "hub_item_id")
    taken = [s for s, h in spoke.match_decisions.items() if hub_item_id and h == hub_item_id and s != spoke_item_id]
    if taken:
        raise InvalidRequest("another item of this spoke was already matched to that hub item: choose another one",
                             "invalid_choice", "hub_item_id")
    # The hub cursor goes back to the start so that the hub items held back while the match was
    # undecided are planned again (linked items cost a comparison, no write).
    spoke = ctx.store.update_spoke(spoke.id, match_decisions={**spoke.match_decisions, spoke_item_id: hub_item_id},
                                   hub_cursor=0)
    ctx.queue.enqueue(SyncTask(spoke.id, reason="manual"))
    return spoke


# ----------------------------------------------------------------- status


def spoke_status(ctx: Context, spoke: Spoke) -> dict[str, Any]:
    last = ctx.store.get_run(spoke.last_run_id) if spoke.last_run_id else None
    change = None if last is None or not last.idle else last_change(ctx, spoke)
    channels = ctx.store.list_channels(spoke_id=spoke.id) if spoke.kind in ("google", "graph") else []
    return {
        "id": spoke.id,
        "hub_id": spoke.hub_id,
        "name": spoke.name,
        "kind": spoke.kind,
        "address": spoke.address,
        "credential_id": spoke.credential_id,
        "two_way": spoke.options.two_way,
        "options": spoke.options.to_dict(),
        "state": spoke.state,
        "state_reason": spoke.state_reason,
        "pending_deletions": spoke.pending_deletions,
        # what a pause is about: the first items with titles, dates and where they were deleted
        "pending_items": spoke.pending_items if spoke.state == "needs_confirmation" else [],
        "deletions_in_window": sum(window_deletions(spoke, ctx.clock.now())),
        "needs_attention": spoke.attention,
        # items already on both sides whose match is ambiguous: left unlinked until decided (decide_match)
        # (`decided`: the administrator's choice, applied by the next run: a hub item id, "" = a new item)
        "ambiguous_matches": [{**a, "decided": spoke.match_decisions.get(str(a.get("spoke_item_id")))}
                              for a in spoke.ambiguous],
        "running": _held(ctx, spoke),
        "run_started_by": spoke.lease_owner,
        "run_mark_expires_at": None if spoke.lease_expires is None else spoke.lease_expires.isoformat(),
        "linked_items": ctx.store.count_links(spoke.id),
        # how far a running sync is: this process's own report, else the run record it keeps current
        # in the store (a sync run by another process: the local server's queue, a Cloud Function, the CLI)
        "progress": _live(ctx, spoke),
        "checked_every_s": spoke.options.poll_interval_s,
        "push": spoke.kind == "google" and bool(channels),
        "last_run": None if last is None else run_summary(last),
        # Most polls change nothing: the latest run that moved something, when it is not the last one.
        "last_change": None if change is None else run_summary(change),
        "next_run_at": None if spoke.next_run_at is None else spoke.next_run_at.isoformat(),
        "push_channel_expires_at": max((c.expires_at for c in channels), default=None),
    }


def _held(ctx: Context, spoke: Spoke) -> bool:
    return spoke.lease_owner is not None and spoke.lease_expires is not None and spoke.lease_expires > ctx.clock.now()


def _live(ctx: Context, spoke: Spoke) -> dict[str, Any] | None:
    live = getattr(ctx, "live_runs", {}).get(spoke.id)
    if live is not None:
        return {"run_id": live.run_id, "phase": live.phase, "done": live.done, "total": live.total,
                "into_hub": live.into_hub, "into_spoke": live.into_spoke}
    if not _held(ctx, spoke) or spoke.lease_owner is None:
        return None
    record = ctx.store.get_run(spoke.lease_owner)  # the lease holder is the run's id
    if record is None or record.status != "running" or not record.progress:
        return {"run_id": spoke.lease_owner, "phase": "reading", "done": 0, "total": 0, "into_hub": 0,
                "into_spoke": 0}
    p = record.progress
    return {"run_id": record.id, "phase": "writing", "done": int(p.get("done", 0)), "total": int(p.get("total", 0)),
            "into_hub": int(p.get("into_hub", 0)), "into_spoke": int(p.get("into_spoke", 0))}


STOPPED_REASON = ("the process running it stopped before the end (nothing was lost: the next run continues "
                  "where it stopped)")


def _settled(run: RunRecord, holders: dict[str, str | None]) -> RunRecord:
    """A "running" record whose spoke no longer holds a lease for it: its process died mid-run."""
    if run.status != "running" or holders.get(run.spoke_id) == run.id:
        return run
    from dataclasses import replace

    return replace(run, status="interrupted", reason=STOPPED_REASON)


_INTO_HUB = ("hub_created", "hub_updated", "hub_deleted", "hub_restored")  # run counts of writes into the hub
_INTO_SPOKE = ("spoke_created", "spoke_updated", "spoke_deleted")  # ... and into the spoke


def last_change(ctx: Context, spoke: Spoke, lookback: int = 20) -> RunRecord | None:
    """The newest of the spoke's last ``lookback`` runs that moved something or met a conflict."""
    moved = (*_INTO_HUB, *_INTO_SPOKE, "conflicts")
    return next((r for r in ctx.store.list_runs(spoke_id=spoke.id, limit=lookback)
                 if r.status != "dry_run" and any(r.counts.get(k, 0) for k in moved)), None)


def run_summary(run: RunRecord) -> dict[str, Any]:
    counts = run.counts
    return {
        "id": run.id,
        "spoke_id": run.spoke_id,
        "status": run.status,
        "reason": run.reason,
        "started_at": run.started_at.isoformat(),
        "finished_at": None if run.finished_at is None else run.finished_at.isoformat(),
        "runs": run.runs,
        "into_hub": sum(counts.get(k, 0) for k in _INTO_HUB),
        "into_spoke": sum(counts.get(k, 0) for k in _INTO_SPOKE),
        "counts": counts,
        "conflicts": run.conflicts,
        "errors": run.errors,
        "items": run.items,
        "progress": run.progress,
    }


def hub_status(ctx: Context, hub: Hub) -> dict[str, Any]:
    return {
        "id": hub.id,
        "name": hub.name,
        "object_type": hub.object_type,
        "items": ctx.store.count_hub_items(hub.id),  # counted by the store: a dashboard view reads no items
        "spokes": [spoke_status(ctx, s) for s in ctx.store.list_spokes(hub.id)],
    }


def status(ctx: Context) -> list[dict[str, Any]]:
    return [hub_status(ctx, h) for h in ctx.store.list_hubs()]


def run_history(ctx: Context, spoke_id: str | None = None, hub_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    runs = ctx.store.list_runs(spoke_id=spoke_id, hub_id=hub_id, limit=limit)
    holders: dict[str, str | None] = {}
    if any(r.status == "running" for r in runs):
        for spoke in ctx.store.list_spokes(hub_id) if spoke_id is None else [get_spoke(ctx, spoke_id)]:
            holders[spoke.id] = spoke.lease_owner if _held(ctx, spoke) else None
    return [run_summary(_settled(r, holders)) for r in runs]

