"""The self-test an administrator runs against a real account before trusting
spokesync with a shared calendar.

It works only in a scratch calendar it creates and removes at the end (also
when a check fails), and touches nothing else. Each behaviour the product
depends on is reported in plain words as passed, failed, or not checked (with
the reason). Used by `spokesync selftest CREDENTIAL`, the credentials page and
`pytest --live`.

Google checks: the event schema accepted (every mapped field round-trips),
create / update / delete with preconditions, the incremental feed (sync
token), a push channel (when an https webhook address is configured), a
recurrence round trip (day 31, an excluded date, across a DST change, a moved
and a cancelled occurrence), exceptions returned by `events.list(iCalUID=…)`
(the connector's assumption: master plus every exception, cancelled ones
included), whether re-setting a recurrence keeps its exceptions, attendee
handling for this credential, and the reminder limit.

Exchange checks (in a calendar folder it creates in the mailbox and deletes at the end): the mailbox
routed (the directory's primary address, its calendar opened, public folders reached as configured), the
item schema accepted (every mapped field round-trips), create / update / delete with ChangeKey
preconditions, the incremental feed (SyncFolderItems) and the listing diff used for public folders, a
recurrence round trip (day 31 across a DST change with a deleted and a moved occurrence, addressed by
their real ids), and throttling (not forced on a real server: reported with what spokesync does).

Google contacts checks (`run(..., object_type="contacts")`, in a scratch
contact group removed at the end with the contacts in it): every mapped field
round-trips (birthday without a year, anniversary, typed lists, a category as
a label, a photo), create / update / delete with etag preconditions, and the
incremental feed (sync token).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from spokesync.model.item import as_event
from spokesync.ports import ConnectorError, CredentialBroken

if TYPE_CHECKING:
    from spokesync.bootstrap import Context
    from spokesync.connectors.google.connector import GoogleCalendarConnector
    from spokesync.model.hub import CredentialRef

Outcome = Literal["passed", "failed", "not_checked"]
SCRATCH_PREFIX = "spokesync self-test"


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    detail: str  # plain words: what happened, and what to do when it failed

    def line(self) -> str:
        mark = {"passed": "ok  ", "failed": "FAIL", "not_checked": "--  "}[self.outcome]
        return f"{mark} {self.name}: {self.detail}"


@dataclass
class Report:
    credential: str
    scratch: str = ""
    checks: list[Check] = field(default_factory=list)
    cleaned_up: bool = False
    kind: str = "google"
    noun: str = "calendar"  # what the scratch is: "calendar", "contact group"
    app: str = "Google Calendar"  # where a person deletes a scratch left behind

    @property
    def ok(self) -> bool:
        return self.cleaned_up and all(c.outcome != "failed" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"credential": self.credential, "scratch": self.scratch, "ok": self.ok,
                "cleaned_up": self.cleaned_up, "checks": [asdict(c) for c in self.checks]}

    def text(self) -> str:
        lines = [f"Self-test of credential '{self.credential}' in a scratch {self.noun} it created"
                 f"{f' ({self.scratch})' if self.scratch else ''}:"]
        lines += ["  " + c.line() for c in self.checks]
        where = "in Outlook" if self.kind == "exchange" else f"in {self.app}"
        lines.append(f"  The scratch {self.noun} was removed." if self.cleaned_up else
                     f"  FAIL The scratch {self.noun} could not be removed: delete it {where} "
                     f"({SCRATCH_PREFIX} …).")
        lines.append("All checks passed." if self.ok else "Some checks failed: see above.")
        return "\n".join(lines)


def run(ctx: Context, credential_id: str, object_type: str = "calendar") -> Report:
    credential = ctx.store.get_credential(credential_id)
    if credential is None:
        raise ConnectorError(f"no credential with id {credential_id}: list them with `spokesync credentials`")
    if credential.kind.startswith("google") and object_type == "contacts":
        return run_google_contacts(ctx, credential)
    if credential.kind.startswith("google"):
        return run_google(ctx, credential)
    if credential.kind == "exchange":
        return run_exchange(ctx, credential)
    raise ConnectorError(f"the self-test covers Google and Exchange credentials so far; '{credential.label}' is "
                         f"{credential.kind}")


# ------------------------------------------------------------------ Google


def run_google(ctx: Context, credential: CredentialRef, *, now: Callable[[], datetime] | None = None) -> Report:
    from spokesync.connectors.google.auth import can_set_attendees, credentials_for
    from spokesync.connectors.google.client import GoogleClient
    from spokesync.connectors.google.connector import GoogleCalendarConnector

    report = Report(credential.label)
    client = GoogleClient(credentials_for(credential, ctx.secrets, ctx.config), ctx.config)
    calendars = client.service.calendars()
    summary = f"{SCRATCH_PREFIX} {uuid.uuid4().hex[:8]}"
    try:
        created = client.execute(calendars.insert(body={"summary": summary, "timeZone": "Europe/Berlin"}),
                                 "calendars.insert")
    except CredentialBroken:
        raise
    except Exception:  # noqa: BLE001 - reported in plain words
        report.checks.append(Check("scratch calendar", "failed",
                                   "Google refused to create a scratch calendar for this credential: give it the "
                                   "calendar scope (https://www.googleapis.com/auth/calendar) and try again."))
        report.cleaned_up = True  # nothing was created
        return report
    report.scratch = str(created["id"])
    conn = GoogleCalendarConnector(client, report.scratch, can_set_attendees=can_set_attendees(credential))
    start = (now or (lambda: datetime.now(ZoneInfo("Europe/Berlin"))))()
    try:
        for check in (_schema_and_preconditions, _incremental_feed, _recurrence_round_trip, _attendees,
                      _reminder_limit, _push_channel):
            try:
                report.checks.extend(check(ctx, conn, start))
            except CredentialBroken:
                raise
            except Exception as exc:  # noqa: BLE001 - one check failing must not stop the others or the clean-up
                report.checks.append(Check(check.__name__.strip("_").replace("_", " "), "failed",
                                           f"stopped with an unexpected answer from Google ({type(exc).__name__}); "
                                           "run the self-test again, and report it if it repeats."))
    finally:
        try:
            client.execute(calendars.delete(calendarId=report.scratch), "calendars.delete")
            report.cleaned_up = True
        except Exception:  # noqa: BLE001 - reported in the text
            report.cleaned_up = False
    return report


def _event(start: datetime, title: str, **kw: Any) -> Any:
    from spokesync.model.event import Event

    start = start.replace(second=0, microsecond=0) + timedelta(days=7)
    return Event(title=title, start=start, end=start + timedelta(hours=1), timezone="Europe/Berlin", **kw)


def _same(a: Any, b: Any, names: frozenset[str]) -> bool:
    from spokesync.model.event import content_hash

    return content_hash(a, names) == content_hash(b, names)


def _schema_and_preconditions(ctx: Context, conn: GoogleCalendarConnector, start: datetime) -> list[Check]:
    from spokesync.connectors.google.mapping import FIELDS
    from spokesync.ports import ItemDelete, ItemUpdate, NewItem

    out: list[Check] = []
    event = _event(start, "Self-test: every field", description="Plain text", location="Room 1",
                   show_as="tentative", privacy="private", categories=("Blue",), color="5", reminders=(10, 30),
                   url="https://example.com/selftest", status="tentative")
    hub_id = uuid.uuid4().hex
    [made] = conn.create([NewItem(hub_id, event)])
    if made.status != "ok":
        return [Check("schema accepted", "failed", f"Google refused a new event: {made.message or made.status}.")]
    back = conn.read([made.spoke_item_id]).get(made.spoke_item_id)
    fields = FIELDS - {"attendees", "overrides", "cancelled", "recurrence"}
    if back is not None and _same(back.event, event, fields):
        out.append(Check("schema accepted", "passed", "an event with every synced field was created and read "
                                                      "back unchanged."))
    else:
        out.append(Check("schema accepted", "failed", "an event read back differently from how it was written: "
                                                      "some field would change on every sync."))
    if back is None:
        return out
    [stale] = conn.update([ItemUpdate(made.spoke_item_id, '"0"', replace(event, title="stale"), hub_id)])
    [fresh] = conn.update([ItemUpdate(made.spoke_item_id, back.version, replace(event, title="fresh"), hub_id)])
    [gone] = conn.delete([ItemDelete(made.spoke_item_id, fresh.version)])
    [again] = conn.delete([ItemDelete(made.spoke_item_id, fresh.version)])
    if stale.status == "conflict" and fresh.status == "ok" and gone.status == "ok" and again.status == "not_found":
        out.append(Check("create / update / delete with preconditions", "passed",
                         "a stale version was refused (412), the current one accepted, and a second delete "
                         "reported the event gone."))
    else:
        out.append(Check("create / update / delete with preconditions", "failed",
                         f"expected conflict/ok/ok/gone, got {stale.status}/{fresh.status}/{gone.status}/"
                         f"{again.status}: edits made meanwhile could be overwritten."))
    return out


def _incremental_feed(ctx: Context, conn: GoogleCalendarConnector, start: datetime) -> list[Check]:
    from spokesync.ports import NewItem

    first = conn.changes(None)
    [made] = conn.create([NewItem(uuid.uuid4().hex, _event(start, "Self-test: feed"))])
    later = conn.changes(first.cursor)
    seen = [i.id for i in later.items]
    out = [Check("incremental feed", "passed" if made.spoke_item_id in seen and not later.full else "failed",
                 "a change made after the first listing came back through the sync token." if made.spoke_item_id
                 in seen else "the sync token did not return a new event: changes would be missed.")]
    out.append(Check("sync-token expiry", "not_checked",
                     "Google decides when a sync token expires (410); spokesync then lists everything again "
                     "and reconciles. This cannot be forced on a real account."))
    return out


def _recurrence_round_trip(ctx: Context, conn: GoogleCalendarConnector, start: datetime) -> list[Check]:
    from spokesync.connectors.google.mapping import FIELDS
    from spokesync.model.event import Event, Override
    from spokesync.ports import ItemUpdate, NewItem

    berlin = ZoneInfo("Europe/Berlin")
    year = start.year + 1
    first = datetime(year, 1, 31, 9, 0, tzinfo=berlin)
    # Monthly on day 31: January, March (after the DST change), May ...; March excluded by EXDATE-equivalent
    # cancellation, May moved.
    may = datetime(year, 5, 31, 9, 0, tzinfo=berlin)
    series = Event(title="Self-test: day 31", start=first, end=first + timedelta(hours=1), timezone="Europe/Berlin",
                   recurrence=("RRULE:FREQ=MONTHLY;BYMONTHDAY=31;COUNT=4",),
                   overrides=(Override(may, Event(title="Self-test: day 31 (moved)", start=may + timedelta(hours=2),
                                                  end=may + timedelta(hours=3), timezone="Europe/Berlin")),),
                   cancelled=(datetime(year, 3, 31, 9, 0, tzinfo=berlin),))
    hub_id = uuid.uuid4().hex
    [made] = conn.create([NewItem(hub_id, series)])
    out: list[Check] = []
    if made.status != "ok":
        return [Check("recurrence round trip", "failed", f"Google refused a monthly series: {made.message}.")]
    back = conn.read([made.spoke_item_id]).get(made.spoke_item_id)
    ok = back is not None and _same(back.event, series, FIELDS - {"attendees"})
    out.append(Check("recurrence round trip (day 31, cancelled and moved occurrences, DST)",
                     "passed" if ok else "failed",
                     "the series read back with the same rule, moved occurrence and cancelled date." if ok else
                     "the series read back differently: recurring events would be rewritten on every sync."))
    raw = conn.client.execute(conn._events.get(calendarId=conn.calendar_id, eventId=made.spoke_item_id),
                              "events.get")
    listed = conn.client.execute(conn._events.list(calendarId=conn.calendar_id, iCalUID=raw.get("iCalUID"),
                                                   showDeleted=True, maxResults=2500), "events.list")
    ids = {str(e.get("id")) for e in listed.get("items", [])}
    statuses = {str(e.get("status")) for e in listed.get("items", []) if e.get("recurringEventId")}
    ok = made.spoke_item_id in ids and "cancelled" in statuses and len(ids) >= 3
    out.append(Check("exceptions returned by iCalUID", "passed" if ok else "failed",
                     "events.list(iCalUID) returned the series with its moved and cancelled occurrences." if ok
                     else "events.list(iCalUID) did not return every exception: changed occurrences could be "
                          "missed. Report this with your Google Workspace edition."))
    if back is not None:
        reset = replace(series, recurrence=("RRULE:FREQ=MONTHLY;BYMONTHDAY=31;COUNT=5",))
        [upd] = conn.update([ItemUpdate(made.spoke_item_id, back.version, reset, hub_id)])
        after = conn.read([made.spoke_item_id]).get(made.spoke_item_id)
        kept = after is not None and len(as_event(after.event).overrides) == 1 and len(as_event(after.event).cancelled) == 1
        out.append(Check("re-set recurrence keeps its exceptions", "passed" if upd.status == "ok" and kept
                         else "failed",
                         "after the rule changed, the moved and cancelled occurrences were still there." if kept
                         else "changing the rule lost the exceptions: spokesync writes them again, "
                              "but other apps may not."))
    return out


def _attendees(ctx: Context, conn: GoogleCalendarConnector, start: datetime) -> list[Check]:
    from spokesync.model.event import Attendee
    from spokesync.ports import NewItem

    guest = Attendee("selftest-guest@example.com", "Self-test guest", "optional", "needs_action")
    event = _event(start, "Self-test: attendees", attendees=(guest,))
    [made] = conn.create([NewItem(uuid.uuid4().hex, event)])
    back = conn.read([made.spoke_item_id]).get(made.spoke_item_id) if made.status == "ok" else None
    if back is None or as_event(back.event).attendees != (guest,):
        return [Check("attendee handling", "failed", f"attendees did not survive a round trip "
                                                     f"({made.message or made.status}).")]
    how = ("set on the Google event (no invitation is sent: spokesync writes with sendUpdates=none)"
           if conn.can_set_attendees else
           "kept in a private property: a service account without domain-wide delegation may not set "
           "attendees in Google (add a Workspace user to act as, to show them in Google)")
    return [Check("attendee handling", "passed", f"attendees are {how}.")]


def _reminder_limit(ctx: Context, conn: GoogleCalendarConnector, start: datetime) -> list[Check]:
    from spokesync.ports import NewItem

    [made] = conn.create([NewItem(uuid.uuid4().hex, _event(start, "Self-test: long reminder",
                                                           reminders=(60 * 24 * 40,)))])
    back = conn.read([made.spoke_item_id]).get(made.spoke_item_id) if made.status == "ok" else None
    ok = back is not None and as_event(back.event).reminders == (40320,)
    return [Check("reminder limit", "passed" if ok else "failed",
                  "a 40-day reminder was stored as Google's maximum of 4 weeks, not refused." if ok else
                  "a reminder longer than 4 weeks was not handled: such events would fail to sync.")]


def _push_channel(ctx: Context, conn: GoogleCalendarConnector, start: datetime) -> list[Check]:
    address = ctx.config.webhook_url
    if not address.startswith("https://"):
        return [Check("push channel", "not_checked",
                      "no https webhook address is configured (SPOKESYNC_WEBHOOK_URL); Google sends push "
                      "notifications to https only, so spokesync polls.")]
    channel_id = f"selftest-{uuid.uuid4().hex}"
    resource_id, expiration_ms = conn.watch(channel_id, uuid.uuid4().hex, address, 3600)
    stopped = conn.stop_channel(channel_id, resource_id)
    ok = bool(resource_id) and expiration_ms > 0 and stopped
    return [Check("push channel", "passed" if ok else "failed",
                  "Google accepted a push channel to the webhook address and stopped it again." if ok else
                  "Google did not open or stop a push channel: spokesync will poll instead.")]




# ------------------------------------------------------------------ Exchange


def run_exchange(ctx: Context, credential: CredentialRef, *, now: Callable[[], datetime] | None = None) -> Report:
    """The Exchange checks in a calendar folder created under the mailbox's calendar and deleted at the
    end (also when a check fails). Nothing outside that folder is written."""
    from exchangelib.folders import Folder

    from spokesync.connectors import exchange
    from spokesync.connectors.exchange.access import ExchangeSettings, describe

    report = Report(credential.label, kind="exchange")
    settings = ExchangeSettings.from_dict(credential.settings)
    try:
        password = ctx.secrets.get(credential.secret_name or "")
    except KeyError as exc:
        raise CredentialBroken("the Exchange password is missing from the secret store: enter it again") from exc
    try:
        validated = exchange.validate(settings, password, ctx.config)
    except CredentialBroken:
        raise
    except ConnectorError as exc:
        report.checks.append(Check("mailbox routed", "failed", f"{exc}."))
        report.cleaned_up = True  # nothing was created
        return report
    report.checks.append(_mailbox_routed(settings, validated))
    if validated.mailbox and validated.mailbox != settings.smtp_address:
        settings = replace(settings, mailbox=validated.mailbox)
    account = exchange.make_account(settings, password, ctx.config)
    name = f"{SCRATCH_PREFIX} {uuid.uuid4().hex[:8]}"
    try:
        folder = Folder(parent=account.calendar, name=name, folder_class="IPF.Appointment")
        folder.save()  # CreateFolder
    except CredentialBroken:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in plain words
        report.checks.append(Check("scratch folder", "failed",
                                   "Exchange refused to create a scratch calendar folder in the mailbox "
                                   f"({describe(exc, settings)}): give the account owner rights on the mailbox's "
                                   "calendar and try again."))
        report.cleaned_up = True
        return report
    report.scratch = name
    mailbox_conn = exchange.connector_for_folder(settings, password, ctx.config, folder.id, public=False,
                                                 clock=ctx.clock)
    listing_conn = exchange.connector_for_folder(replace(settings, public_folder_mailboxes=False), password,
                                                 ctx.config, folder.id, public=True, clock=ctx.clock)
    start = (now or (lambda: datetime.now(ZoneInfo("Europe/Berlin"))))()
    try:
        for check in (_ews_schema_and_preconditions, _ews_feeds, _ews_recurrence_round_trip, _ews_throttling):
            try:
                report.checks.extend(check(mailbox_conn, listing_conn, start))
            except CredentialBroken:
                raise
            except Exception as exc:  # noqa: BLE001 - one check failing must not stop the others or the clean-up
                report.checks.append(Check(check.__name__.strip("_").replace("ews_", "").replace("_", " "),
                                           "failed", f"stopped with an unexpected answer from Exchange "
                                           f"({describe(exc, settings)}); run the self-test again, and report it "
                                           "if it repeats."))
    finally:
        try:
            folder.delete()  # DeleteFolder (HardDelete): the folder and what the checks wrote into it
            report.cleaned_up = True
        except Exception:  # noqa: BLE001 - reported in the text
            report.cleaned_up = False
    return report


def _mailbox_routed(settings: Any, validated: Any) -> Check:
    where = f"the mailbox {validated.mailbox or settings.smtp_address} answered (its calendar opened)"
    if validated.mailbox and validated.mailbox.lower() != settings.smtp_address.lower():
        where += f"; {settings.smtp_address} is a secondary address of it, the credential keeps the primary one"
    if settings.public_folder_mailboxes:
        where += "; public-folder requests are routed to their public-folder mailboxes"
    if not validated.public_folders:
        where += f"; public folders: {validated.public_folders_reason or 'not reachable'}"
    return Check("mailbox routed", "passed", where + ".")


def _ews_schema_and_preconditions(conn: Any, listing: Any, start: datetime) -> list[Check]:
    from spokesync.connectors.exchange.mapping import FIELDS
    from spokesync.ports import ItemDelete, ItemUpdate, NewItem

    out: list[Check] = []
    event = _event(start, "Self-test: every field", description="Plain text", location="Room 1",
                   show_as="tentative", privacy="private", categories=("Blue",), reminders=(30,))
    hub_id = uuid.uuid4().hex
    [made] = conn.create([NewItem(hub_id, event)])
    if made.status != "ok":
        return [Check("schema accepted", "failed", f"Exchange refused a new item: {made.message or made.status}.")]
    back = conn.read([made.spoke_item_id]).get(made.spoke_item_id)
    fields = FIELDS - {"attendees", "overrides", "cancelled", "recurrence"}
    if back is not None and _same(back.event, event, fields):
        out.append(Check("schema accepted", "passed", "an item with every synced field was created and read "
                                                      "back unchanged."))
    else:
        out.append(Check("schema accepted", "failed", "an item read back differently from how it was written: "
                                                      "some field would change on every sync."))
    if back is None:
        return out
    [fresh] = conn.update([ItemUpdate(made.spoke_item_id, back.version, replace(event, title="fresh"), hub_id)])
    [stale] = conn.update([ItemUpdate(made.spoke_item_id, back.version, replace(event, title="stale"), hub_id)])
    [stale_delete] = conn.delete([ItemDelete(made.spoke_item_id, back.version)])
    [gone] = conn.delete([ItemDelete(made.spoke_item_id, fresh.version)])
    [again] = conn.delete([ItemDelete(made.spoke_item_id, fresh.version)])
    statuses = (fresh.status, stale.status, stale_delete.status, gone.status, again.status)
    if statuses == ("ok", "conflict", "conflict", "ok", "not_found"):
        out.append(Check("create / update / delete with ChangeKey preconditions", "passed",
                         "an update with the current ChangeKey was accepted, an old ChangeKey was refused for an "
                         "update and a delete, and a second delete reported the item gone."))
    else:
        out.append(Check("create / update / delete with ChangeKey preconditions", "failed",
                         f"expected ok/conflict/conflict/ok/gone, got {'/'.join(statuses)}: edits made meanwhile "
                         "could be overwritten."))
    return out


def _ews_feeds(conn: Any, listing: Any, start: datetime) -> list[Check]:
    from spokesync.ports import NewItem

    out: list[Check] = []
    for name, connector, how in (("incremental feed (SyncFolderItems)", conn, "the mailbox folder's sync state"),
                                 ("listing diff (public folders)", listing, "a listing compared with the last one")):
        first = connector.changes(None)
        [made] = connector.create([NewItem(uuid.uuid4().hex, _event(start, f"Self-test: {name}"))])
        later = connector.changes(first.cursor)
        seen = made.spoke_item_id in {i.id for i in later.items}
        out.append(Check(name, "passed" if seen and not later.full else "failed",
                         f"a change made after the first listing came back through {how}." if seen else
                         f"{how} did not return a new item: changes would be missed."))
    return out


def _ews_recurrence_round_trip(conn: Any, listing: Any, start: datetime) -> list[Check]:
    from spokesync.connectors.exchange.mapping import FIELDS
    from spokesync.model.event import Event, Override
    from spokesync.ports import NewItem

    berlin = ZoneInfo("Europe/Berlin")
    year = start.year + 1
    first = datetime(year, 1, 31, 9, 0, tzinfo=berlin)
    # Exchange's day 31 falls on the last day of shorter months (28 February, 30 April); March 31 lies
    # after the DST change and is deleted, 30 April is moved.
    april = datetime(year, 4, 30, 9, 0, tzinfo=berlin)
    series = Event(title="Self-test: day 31", start=first, end=first + timedelta(hours=1), timezone="Europe/Berlin",
                   recurrence=("RRULE:FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=5",),
                   overrides=(Override(april, Event(title="Self-test: day 31 (moved)", start=april + timedelta(hours=2),
                                                    end=april + timedelta(hours=3), timezone="Europe/Berlin")),),
                   cancelled=(datetime(year, 3, 31, 9, 0, tzinfo=berlin),))
    [made] = conn.create([NewItem(uuid.uuid4().hex, series)])
    if made.status != "ok":
        return [Check("recurrence round trip", "failed", f"Exchange refused a monthly series: {made.message}.")]
    back = conn.read([made.spoke_item_id]).get(made.spoke_item_id)
    ok = back is not None and _same(back.event, series, frozenset(FIELDS - {"attendees", "organizer"}))
    return [Check("recurrence round trip (day 31, deleted and moved occurrences, DST)", "passed" if ok else "failed",
                  "the series read back with the same rule, moved occurrence and deleted date." if ok else
                  "the series read back differently: recurring events would be rewritten on every sync.")]


def _ews_throttling(conn: Any, listing: Any, start: datetime) -> list[Check]:
    return [Check("throttling behaviour", "not_checked",
                  "Exchange decides when to throttle (ErrorServerBusy with a back-off, HTTP 503, now and then a "
                  "401); this cannot be forced on a real server without disturbing its users. spokesync waits "
                  "the time Exchange asks for, retries a single 401 on a fresh connection, and continues later.")]


# ------------------------------------------------------------------ Google contacts


def run_google_contacts(ctx: Context, credential: CredentialRef) -> Report:
    from spokesync.connectors.google.auth import CONTACTS_SCOPES, credentials_for
    from spokesync.connectors.google.client import GoogleClient
    from spokesync.connectors.google.contacts import PRODUCT, GoogleContactsConnector, discovery_document

    report = Report(credential.label, noun="contact group", app="Google Contacts")
    client = GoogleClient(credentials_for(credential, ctx.secrets, ctx.config, CONTACTS_SCOPES), ctx.config,
                          document=discovery_document(), api_root=ctx.config.google_people_api_root, product=PRODUCT)
    groups = client.service.contactGroups()
    name = f"{SCRATCH_PREFIX} {uuid.uuid4().hex[:8]}"
    try:
        created = client.execute(groups.create(body={"contactGroup": {"name": name}}), "contactGroups.create")
    except CredentialBroken:
        raise
    except Exception:  # noqa: BLE001 - reported in plain words
        report.checks.append(Check("scratch contact group", "failed",
                                   "Google refused to create a scratch contact group for this credential: give it "
                                   "the contacts scope (https://www.googleapis.com/auth/contacts; a service account "
                                   "also needs domain-wide delegation and a user to act as) and try again."))
        report.cleaned_up = True
        return report
    report.scratch = str(created["resourceName"])
    root = ctx.config.google_people_api_root
    conn = GoogleContactsConnector(client, group_id=report.scratch,
                                   plain_http_root=root if root.startswith("http://") else "")
    category = f"{name} label"
    try:
        for check in (_contact_fields, _contact_preconditions, _contact_feed):
            try:
                report.checks.extend(check(conn, category))
            except CredentialBroken:
                raise
            except Exception as exc:  # noqa: BLE001 - one check failing must not stop the others or the clean-up
                report.checks.append(Check(check.__name__.strip("_").replace("_", " "), "failed",
                                           f"stopped with an unexpected answer from Google ({type(exc).__name__}); "
                                           "run the self-test again, and report it if it repeats."))
    finally:
        try:
            client.execute(groups.delete(resourceName=report.scratch, deleteContacts=True), "contactGroups.delete")
            label = conn._group_named(category, create=False) if conn._groups is not None else None
            if label:
                client.execute(groups.delete(resourceName=label), "contactGroups.delete")
            report.cleaned_up = True
        except Exception:  # noqa: BLE001 - reported in the text
            report.cleaned_up = False
    return report


def _sample_contact(category: str) -> Any:
    from spokesync.model.contact import Address, Contact, Email, PartialDate, Phone, Photo

    # a 1x1 PNG: the smallest photo Google accepts (JPEG or PNG)
    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                        "0000000d4944415478da63fccfc0500f000485018084a98c210000000049454e44ae426082")
    return Contact(display_name="Self-test Person", given_name="Self-test", family_name="Person", prefix="Dr.",
                   nickname="Selfie", emails=(Email("selftest@example.com", "work"), Email("home@example.com", "home")),
                   phones=(Phone("+1 555 0100", "mobile"), Phone("+1 555 0101", "work_fax")),
                   addresses=(Address("work", "1 Test Street", "Testville", "TS", "12345", "Testland"),),
                   company="Self-test Ltd", department="QA", job_title="Checker", manager="Boss",
                   websites=("https://example.com/selftest",), birthday=PartialDate(2, 29),
                   anniversary=PartialDate(6, 1, 2001), notes="Plain text notes.", categories=(category,),
                   photo=Photo.of(png, "image/png"))


def _contact_fields(conn: Any, category: str) -> list[Check]:
    from spokesync.connectors.google.contacts import FIELDS
    from spokesync.model.contact import content_hash
    from spokesync.ports import NewItem

    contact = _sample_contact(category)
    [made] = conn.create([NewItem(uuid.uuid4().hex, contact)])
    if made.status != "ok":
        return [Check("contact fields accepted", "failed",
                      f"Google refused a new contact: {made.message or made.status}.")]
    back = conn.read([made.spoke_item_id]).get(made.spoke_item_id)
    ok = back is not None and content_hash(back.event, FIELDS) == content_hash(contact, FIELDS)
    return [Check("contact fields accepted", "passed" if ok else "failed",
                  "a contact with every synced field (a birthday without a year, a label, a photo) was created and "
                  "read back unchanged." if ok else
                  "a contact read back differently from how it was written: some field would change on every sync.")]


def _contact_preconditions(conn: Any, category: str) -> list[Check]:
    from dataclasses import replace as with_

    from spokesync.model.contact import Contact
    from spokesync.ports import ItemDelete, ItemUpdate, NewItem

    hub_id = uuid.uuid4().hex
    contact: Any = Contact(display_name="Self-test: preconditions")  # Any: the ports' items widen with wt-kinds
    [made] = conn.create([NewItem(hub_id, contact)])
    [fresh] = conn.update([ItemUpdate(made.spoke_item_id, made.version, with_(contact, nickname="fresh"), hub_id)])
    [stale] = conn.update([ItemUpdate(made.spoke_item_id, made.version, with_(contact, nickname="stale"), hub_id)])
    [gone] = conn.delete([ItemDelete(made.spoke_item_id, fresh.version)])
    [again] = conn.delete([ItemDelete(made.spoke_item_id, fresh.version)])
    ok = (made.status, fresh.status, stale.status, gone.status, again.status) == (
        "ok", "ok", "conflict", "ok", "not_found")
    return [Check("contact create / update / delete with preconditions", "passed" if ok else "failed",
                  "a stale etag was refused, the current one accepted, and a second delete reported the contact "
                  "gone." if ok else
                  f"expected ok/ok/conflict/ok/gone, got {made.status}/{fresh.status}/{stale.status}/{gone.status}/"
                  f"{again.status}: edits made meanwhile could be overwritten.")]


def _contact_feed(conn: Any, category: str) -> list[Check]:
    from spokesync.model.contact import Contact
    from spokesync.ports import NewItem

    first = conn.changes(None)
    feed: Any = Contact(display_name="Self-test: feed")
    [made] = conn.create([NewItem(uuid.uuid4().hex, feed)])
    later = conn.changes(first.cursor)
    seen = made.spoke_item_id in [i.id for i in later.items] and not later.full
    out = [Check("contacts incremental feed", "passed" if seen else "failed",
                 "a contact added after the first listing came back through the sync token (Google documents a "
                 "delay of up to several minutes; this account answered at once)." if seen else
                 "the sync token did not return a new contact yet: Google documents a delay of several minutes, "
                 "so run the self-test again later; if it repeats, changes would be missed.")]
    out.append(Check("contacts sync-token expiry", "not_checked",
                     "Google lets sync tokens expire 7 days after a full listing; spokesync then lists the group "
                     "again and reconciles. This cannot be forced on a real account."))
    return out
