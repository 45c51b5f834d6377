"""The setup wizard and the dashboard: server-rendered pages under /setup/.

A small Flask app that `functions/setup` (and so the local server) hands
every non-API request to (`dispatch(request)`). Pages are Jinja2 templates
with plain HTML forms and almost no JavaScript. Every write goes through the
JSON API's own handlers (`setup_api.handle`), so the browser and API clients
get the same validation, the same errors and the same side effects (push
channels, queued syncs); reads use `service.hubs` directly.

Wizard (CiraHub's order): 1 object -> 2 source -> 3 credentials (Google
OAuth / saved / service account; Exchange with a visible validation step) ->
4 calendar picker or folder browser -> 5 name the spoke, new or existing hub
-> 6 sync options -> 7 the dashboard (Sync now, dry run, confirm or cancel a
paused mass deletion, run history). The credentials page shows why a
credential is broken and repairs it: a new Exchange password (validated
first) or "Sign in again" with Google for the same credential id.

Guards are in `web.security`: Host check on every request (`web.gate`),
administrator check on every page before any body is read, CSRF and
same-site Origin on every POST, OAuth `state` on the callback, `__Host-`
cookies over https, sessions revoked on the server at logout. No secret is ever rendered: the
Exchange password field is never filled back in, credentials show labels and
non-secret settings only.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode, urlsplit

from markupsafe import Markup

from spokesync.web import security

if TYPE_CHECKING:
    from flask import Flask, Response

    from spokesync.bootstrap import Context

HERE = Path(__file__).resolve().parent
SOURCES = {
    "google": "Google Calendar",
    "m365": "Microsoft 365 (Exchange Online)",
    "exchange_public": "Exchange Server public folder",
    "exchange_mailbox": "Exchange Server mailbox folder",
}
KIND_OF_SOURCE = {"google": "google", "m365": "graph", "exchange_public": "exchange", "exchange_mailbox": "exchange"}
# A contacts hub's sources (the order) and the spoke kinds they create.
CONTACT_SOURCES = {
    "google": "Google Contacts",
    "exchange_public": "Exchange Server public folder",
    "exchange_mailbox": "Exchange Server mailbox folder",
    "m365": "Microsoft 365 (Exchange Online)",
}
CONTACT_KIND_OF_SOURCE = {"google": "google_contacts", "m365": "graph_contacts", "exchange_public": "exchange_contacts",
                          "exchange_mailbox": "exchange_contacts"}
OBJECTS = {"calendar": "Calendars", "contacts": "Contacts"}
# Contacts options (SyncOptions): the optional fields that travel, and the filters' names.
CONTACT_FIELD_OPTIONS = (("sync_notes", "Notes"), ("sync_birthday", "Birthday and anniversary"), ("sync_photo", "Photo"))
CONTACT_FILTERS = {"has_email": "has_email", "companies": "companies", "email_domains": "email_domains"}
# The options form's field for an option an error names (the rest have the option's own name).
FORM_FIELD = {"max_delete_share": "max_delete_percent", "poll_interval_s": "poll_minutes", "direction": "two_way",
              **{f"filters.{k}": k for k in ("categories", "subject_contains", "companies", "email_domains")}}


def sources_for(object_type: str) -> dict[str, str]:
    return CONTACT_SOURCES if object_type == "contacts" else SOURCES


def kind_for(object_type: str, source: str) -> str:
    return (CONTACT_KIND_OF_SOURCE if object_type == "contacts" else KIND_OF_SOURCE)[source]
SHOW_AS = ("busy", "free", "tentative", "oof", "working_elsewhere")
SHOW_AS_WORDS = {"busy": "busy", "free": "free", "tentative": "tentative", "oof": "out of office",
                 "working_elsewhere": "working elsewhere"}
ACTION_WORDS = {
    "hub_create": "add to the hub", "hub_update": "update in the hub", "hub_delete": "delete from the hub",
    "spoke_create": "create in this spoke", "spoke_update": "update in this spoke",
    "spoke_delete": "delete from this spoke", "conflict": "conflict",
    "match": "already in the hub: linked, not copied", "ambiguous_match": "several possible matches: waiting for you",
}
ITEM_WORDS = {
    "hub_created": "added to the hub", "hub_updated": "updated in the hub", "hub_deleted": "deleted from the hub",
    "hub_restored": "restored in the hub", "spoke_created": "added to the spoke",
    "spoke_updated": "updated in the spoke", "spoke_deleted": "deleted from the spoke",
}
RUN_WORDS = {
    "ok": "done", "failed": "failed", "paused": "paused", "continued": "continuing", "skipped": "skipped",
    "interrupted": "stopped before the end", "dry_run": "preview", "running": "running",
}
STATE_WORDS = {
    "ok": "OK", "running": "running", "failed": "last run failed", "paused": "paused",
    "needs_confirmation": "waiting for your confirmation", "credential_broken": "sign-in needed",
}

_APP: Flask | None = None
_LOCK = threading.Lock()


def get_app() -> Flask:
    global _APP
    if _APP is None:
        with _LOCK:
            if _APP is None:
                _APP = create_app()
    return _APP


def dispatch(request: Any) -> Response:
    """Serve one request that reached the setup function (functions-framework or the local server).

    The body is not read here: the UI app gets it as a lazy stream (`gate.LazyBody`), read only when
    a handler asks for the form, after the administrator check, and never beyond MAX_BODY_BYTES."""
    from spokesync.web import gate

    app = get_app()
    # the outer request object itself, not flask's proxy (inside the UI app's context that names the inner one)
    request = getattr(request, "_get_current_object", lambda: request)()
    environ = {**request.environ, "wsgi.input": gate.LazyBody(request)}
    if request.content_length is None:
        environ.pop("CONTENT_LENGTH", None)
        if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            environ["wsgi.input_terminated"] = True  # read to the end, bounded by LazyBody
    with app.request_context(environ):
        return app.full_dispatch_request()


def _ctx() -> Context:
    from spokesync.bootstrap import get_context

    return get_context()


def api(method: str, path: str, body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None) -> tuple[int, Any]:
    from spokesync.service import setup_api

    return setup_api.handle(_ctx(), method, "/api" + path, body, query or {})


# ------------------------------------------------------------------ helpers for templates


def when(value: Any) -> Markup:
    """'<time datetime=...>2026-11-23 19:53 UTC</time> (in 4 minutes)': the page's script shows the time
    in the browser's zone (with the zone's name); without the script it reads in UTC, named."""
    from spokesync import display

    moment = display.parse_time(value)
    if moment is None:
        return Markup("—")
    moment = moment.astimezone(UTC)
    rel = display.relative(moment, datetime.now(UTC))
    return Markup('<time datetime="{}">{} UTC</time> (<span class="relative">{}</span>)').format(
        moment.isoformat(), f"{moment:%Y-%m-%d %H:%M}", rel)


def detail(value: Any) -> Markup:
    """What a paused item shows beside its name: an event's start (a time), a contact's e-mail address."""
    from spokesync import display

    if display.parse_time(value) is not None:
        return when(value)
    return Markup("{}").format(value or "")


def checked_every(spoke: dict[str, Any]) -> str:
    """How a spoke without push learns of changes, in words."""
    from spokesync import display

    every = display.interval(spoke.get("checked_every_s") or spoke.get("options", {}).get("poll_interval_s", 300))
    kind = spoke.get("kind")
    if kind in ("exchange", "exchange_contacts"):
        what = "public folders" if spoke.get("address", {}).get("public") else "mailbox folders"
        return f"{what} cannot notify: checked {every}"
    if kind == "google_contacts":
        return f"Google Contacts cannot notify: checked {every}"
    if kind == "graph_contacts":
        return f"contact folders are checked {every}"
    if kind in ("google", "graph"):
        return f"no push channel yet: checked {every}"
    return f"checked {every}"


def spoke_kind(spoke: dict[str, Any]) -> str:
    kind, address = spoke.get("kind"), spoke.get("address", {})
    if kind == "google":
        return "Google Calendar"
    if kind == "google_contacts":
        group = address.get("group") or address.get("group_name") or ""
        return f"Google Contacts group “{group}”" if group else "Google Contacts"
    if kind == "exchange":
        return "Exchange public folder" if address.get("public") else "Exchange mailbox folder"
    if kind == "exchange_contacts":
        return "Exchange public contacts folder" if address.get("public") else "Exchange mailbox contacts folder"
    if kind == "graph":
        return "Microsoft 365 group calendar" if address.get("kind") == "group" else "Microsoft 365 calendar"
    if kind == "graph_contacts":
        return "Microsoft 365 contacts"
    if kind == "memory":
        return "In-memory calendar (for trying things)"
    if kind == "memory_contacts":
        return "In-memory contacts folder (for trying things)"
    return str(kind or "")


class FormError(ValueError):
    """A form value the page refuses before the API sees it, with the form field it is about."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


NUMBER_WORDS = {"days_past": "Days in the past", "days_future": "Days in the future",
                "max_delete_percent": "The share of items", "max_delete_count": "The number of items",
                "deletion_window_h": "The hours deletions are counted over",
                "poll_minutes": "Check for changes every (minutes)"}


def plain(payload: Any) -> str:
    """An API error's words for a page: its detail, without the '(option name)' note meant for scripts."""
    import re

    detail = str(payload.get("detail", "")) if isinstance(payload, dict) else ""
    return re.sub(r" \(option [a-z_.]+\)$", "", detail) or "That did not work; nothing was changed. Try again."


OAUTH_ERRORS = {  # RFC 6749 4.1.2.1 error codes, in words
    "access_denied": "the access spokesync asks for was declined. Sign in again and allow it.",
    "invalid_scope": "Google refused the access spokesync asks for. Check the OAuth client's consent screen.",
    "unauthorized_client": "this OAuth client may not sign in this way. Check the client in Google Cloud.",
    "server_error": "Google had a problem. Try again in a minute.",
    "temporarily_unavailable": "Google is busy. Try again in a minute.",
}


def oauth_error_words(code: str) -> str:
    if not code:
        return "Google sent no sign-in code back. Start the sign-in again."
    return OAUTH_ERRORS.get(code, "Google did not complete the sign-in. Start it again.")


def form_value(name: str, saved: Any) -> Any:
    """What a form field shows after a refused submit: what the person typed (kept), else the saved value."""
    from flask import request

    return request.form.get(name, saved) if request.method == "POST" else saved


def keep_saved(name: str, saved: Any) -> Any:
    return saved


def ticked(name: str, saved: Any) -> bool:
    """Whether a checkbox shows ticked: as the person left it after a refused submit, else as saved."""
    from flask import request

    return name in request.form if request.method == "POST" else bool(saved)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    try:
        return base64.urlsafe_b64decode(text.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


# ------------------------------------------------------------------ the app


def create_app() -> Flask:  # noqa: C901 - one route table, read top to bottom
    from flask import Flask, abort, g, make_response, redirect, render_template, request, url_for

    from spokesync.service import auth
    from spokesync.service import credentials as setup_credentials

    app = Flask("spokesync.web", template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"),
                static_url_path="/setup/static")
    app.jinja_env.globals.update(SOURCES=SOURCES, SHOW_AS=SHOW_AS, ACTION_WORDS=ACTION_WORDS,
                                 STATE_WORDS=STATE_WORDS, RUN_WORDS=RUN_WORDS, ITEM_WORDS=ITEM_WORDS, spoke_kind=spoke_kind,
                                 SHOW_AS_WORDS=SHOW_AS_WORDS, checked_every=checked_every,
                                 CONTACT_FIELD_OPTIONS=CONTACT_FIELD_OPTIONS, CONTACT_FILTERS=CONTACT_FILTERS,
                                 form_value=keep_saved, ticked=ticked)
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["detail"] = detail
    app.config["MAX_CONTENT_LENGTH"] = security.MAX_BODY_BYTES

    # ------------------------------------------------------------ guards

    def secure() -> bool:
        return bool(request.is_secure or request.headers.get("X-Forwarded-Proto", "") == "https")

    def cookie(base: str) -> str:
        """This request's name for a cookie: `__Host-` over https (security.cookie_name)."""
        return security.cookie_name(base, secure())

    def set_cookie(resp: Response, base: str, value: str, samesite: str = "Strict", **kw: Any) -> None:
        # __Host- cookies: Secure, Path=/, no Domain (RFC 6265bis 4.1.3.2)
        resp.set_cookie(cookie(base), value, path="/", httponly=True, samesite=samesite, secure=secure(), **kw)

    def csrf_token() -> str:
        token = getattr(g, "csrf", None)
        if token is None:
            token = request.cookies.get(cookie(security.CSRF_COOKIE)) or ""
            if len(token) < 32:
                token = security.new_token()
                g.set_csrf = token
            g.csrf = token
        return token

    app.jinja_env.globals["csrf_token"] = csrf_token

    def demo_values() -> dict[str, str] | None:
        """In demo mode: the sample servers' values, for the banner and the pre-filled forms."""
        from spokesync import demo

        running = demo.running_for(_ctx().config)
        if running is None:
            return None
        # (never the password: pages carry no secret, not even the demo's)
        values = {"ews_url": running.ews_url, "ews_user": demo.DEMO_EWS_USER, "ews_mailbox": demo.DEMO_EWS_MAILBOX,
                  "google_user": demo.DEMO_GOOGLE_USER}
        if running.graph is not None:  # the sample Microsoft 365 tenant (its secret is never put in a page)
            values.update(graph_tenant=demo.DEMO_GRAPH_TENANT, graph_client_id=demo.DEMO_GRAPH_CLIENT_ID,
                          graph_mailbox=demo.DEMO_GRAPH_MAILBOX)
        return values

    def page(template: str, status: int = 200, **values: Any) -> Response:
        flash = request.cookies.get(cookie(security.FLASH_COOKIE))
        resp = make_response(render_template(template, flash=_unb64(flash) if flash else "",
                                             signed_in=getattr(g, "admin", None), demo=demo_values(), **values),
                             status)
        if flash:
            resp.delete_cookie(cookie(security.FLASH_COOKIE), path="/", secure=secure(), httponly=True,
                               samesite="Strict")
        return resp

    def go(target: str, message: str = "") -> Response:
        resp = make_response(redirect(target, code=303))
        if message:
            set_cookie(resp, security.FLASH_COOKIE, _b64(message), max_age=60)
        return resp

    def revocations() -> security.Revocations:
        return security.Revocations(str(Path(_ctx().config.data_dir) / "revoked-sessions.json"))

    def session_ok(config: Any) -> bool:
        value = request.cookies.get(cookie(security.SESSION_COOKIE))
        return security.valid_session(config.admin_token, value) and not revocations().revoked(value)

    def csrf_refused() -> Response:
        return page("error.html", 403, title="Form expired",
                    message="This form could not be accepted (its security token is missing or stale, or it "
                            "came from another web site). Go back, reload the page and try again.")

    @app.before_request
    def guard() -> Any:
        if request.endpoint == "static":
            return None
        config = _ctx().config
        headers = cast("Mapping[str, str]", request.headers)  # werkzeug's Headers: case-insensitive
        if request.method == "POST" and security.cross_site(headers, config.public_url, config.allowed_hosts):
            return csrf_refused()
        if request.endpoint not in ("login", "logout", "root"):
            # who is asking comes first: nothing reads the body of a request from nobody
            try:
                g.admin = auth.check_admin(config, headers).identity
            except auth.Forbidden as err:
                return page("error.html", 403, title="Not allowed", message=str(err))
            except auth.Unauthorized as err:
                if config.effective_auth_mode != "token":
                    return page("error.html", 401, title="Sign-in required",
                                message=f"{err}. Open spokesync through Identity-Aware Proxy (or a proxy that adds "
                                        "your Google identity token).")
                if not session_ok(config):
                    target = request.full_path if request.method == "GET" else "/setup/"
                    return redirect(url_for("login", next=target.rstrip("?")), code=303)
                g.admin = "admin"
        if request.method == "POST" and not security.same(request.form.get(security.CSRF_FIELD),
                                                          request.cookies.get(cookie(security.CSRF_COOKIE))):
            return csrf_refused()
        return None

    @app.after_request
    def headers(resp: Response) -> Response:
        token = getattr(g, "set_csrf", None)
        if token:
            set_cookie(resp, security.CSRF_COOKIE, token)
        resp.headers.setdefault("Cache-Control", "no-store")
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
        # form-action also names the OAuth consent origin: Chromium applies it to the redirect after a POST.
        oauth = urlsplit(_ctx().config.google_oauth_auth_uri)
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"frame-ancestors 'none'; form-action 'self' {oauth.scheme}://{oauth.netloc}")
        return resp

    # ------------------------------------------------------------ sign-in

    @app.get("/")
    @app.get("/setup")
    def root() -> Any:
        return redirect("/setup/", code=303)

    @app.route("/setup/login", methods=["GET", "POST"])
    def login() -> Any:
        config = _ctx().config
        target = security.safe_next(request.values.get("next"))
        if config.effective_auth_mode != "token":
            return redirect(target, code=303)
        error = ""
        if request.method == "POST":
            if security.same(request.form.get("token", "").strip(), config.admin_token):
                resp = go(target)
                set_cookie(resp, security.SESSION_COOKIE, security.new_session(config.admin_token), samesite="Lax",
                           max_age=security.SESSION_TTL_S)
                return resp
            error = ("That is not the admin token. `spokesync serve` printed it when it created it; it is kept "
                     f"in {Path(config.data_dir) / 'admin.token'} on the machine that runs spokesync.")
        return page("login.html", 401 if error else 200, error=error, next=target)

    @app.post("/setup/logout")
    def logout() -> Any:
        # the session ends on the server too: a copied cookie is refused from now on
        revocations().revoke(request.cookies.get(cookie(security.SESSION_COOKIE)))
        resp = go("/setup/login", "Signed out.")
        resp.delete_cookie(cookie(security.SESSION_COOKIE), path="/", secure=secure(), httponly=True,
                           samesite="Lax")
        return resp

    # ------------------------------------------------------------ dashboard (step 7)

    @app.get("/setup/")
    def dashboard() -> Any:
        from spokesync.service import hubs

        ctx = _ctx()
        return page("dashboard.html", hubs=hubs.status(ctx))

    @app.get("/setup/live")
    def live() -> Any:
        """What the dashboard's script polls: each spoke's state, its running sync's progress, its last
        run (a new id means new runs to show), in the words the page uses. JSON, read-only."""
        from flask import jsonify

        from spokesync.service import hubs

        ctx = _ctx()
        spokes: dict[str, Any] = {}
        for hub in hubs.status(ctx):
            for s in hub["spokes"]:
                last = s["last_run"] or {}
                spokes[s["id"]] = {
                    "name": s["name"], "hub_id": hub["id"], "state": s["state"],
                    "state_words": STATE_WORDS.get(s["state"], s["state"]) + (" (running)" if s["running"] else ""),
                    "running": s["running"], "progress": s["progress"], "linked_items": s["linked_items"],
                    "last_run_id": last.get("id"), "last_run_finished_at": last.get("finished_at"),
                    "last_run": None if not last else {
                        "status": last["status"], "words": RUN_WORDS.get(last["status"], last["status"]),
                        "into_hub": last["into_hub"], "into_spoke": last["into_spoke"],
                        "conflicts": len(last["conflicts"]), "errors": last["errors"][:3],
                        "reason": last["reason"], "finished_at": last.get("finished_at")},
                }
        resp = jsonify({"spokes": spokes, "hub_items": {h["id"]: h["items"] for h in hubs.status(ctx)}})
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/setup/spokes/<spoke_id>/first-sync")
    def first_sync(spoke_id: str) -> Any:
        """Wizard step 7: the first sync runs (queued when the options were saved); the page follows it."""
        status, spoke = api("GET", f"/spokes/{spoke_id}")
        if status >= 400:
            abort(404)
        return page("first_sync.html", step=7, spoke=spoke, after=request.args.get("after", ""))

    def act(method: str, path: str, ok: str, back: str = "/setup/", body: dict[str, Any] | None = None) -> Any:
        status, payload = api(method, path, body)
        if status >= 400:
            return go(back, f"Could not do that: {payload.get('detail', status)}")
        return go(back, ok.format(**payload) if isinstance(payload, dict) else ok)

    @app.post("/setup/spokes/<spoke_id>/sync")
    def sync_spoke(spoke_id: str) -> Any:
        return act("POST", f"/spokes/{spoke_id}/sync", "Sync queued.")

    @app.post("/setup/hubs/<hub_id>/sync")
    def sync_hub(hub_id: str) -> Any:
        return act("POST", f"/hubs/{hub_id}/sync", "Sync queued for {enqueued} spoke(s) of the hub.")

    @app.post("/setup/spokes/<spoke_id>/confirm-deletions")
    def confirm(spoke_id: str) -> Any:
        return act("POST", f"/spokes/{spoke_id}/confirm-deletions", "Deletions confirmed: the next run deletes them.")

    @app.post("/setup/spokes/<spoke_id>/cancel-deletions")
    def cancel(spoke_id: str) -> Any:
        return act("POST", f"/spokes/{spoke_id}/cancel-deletions",
                   "Deletions refused: nothing is deleted on either side; the next run brings back what was lost.")

    @app.post("/setup/spokes/<spoke_id>/clear-run")
    def clear_run(spoke_id: str) -> Any:
        return act("POST", f"/spokes/{spoke_id}/clear-run", "The stuck run was cleared; a sync is queued.")

    @app.post("/setup/spokes/<spoke_id>/retry-refused")
    def retry_refused(spoke_id: str) -> Any:
        return act("POST", f"/spokes/{spoke_id}/retry-refused", "The refused writes will be tried again now.")

    @app.post("/setup/spokes/<spoke_id>/matches")
    def decide_match(spoke_id: str) -> Any:
        """"Same person" (the candidate's hub item id) or "Different people" (separate) for one
        undecided match on the dashboard (setup API POST /spokes/{id}/matches)."""
        separate = bool(request.form.get("separate"))
        hub_item_id = None if separate else (request.form.get("hub_item_id") or "")
        if not separate and not hub_item_id:
            return go("/setup/", "Could not do that: choose “Same” next to one of the hub's items, or “Different”.")
        ok = ("Decided: they are different; it is copied as a new item in the next sync (queued)." if separate
              else "Decided: they are the same; they are linked in the next sync (queued).")
        return act("POST", f"/spokes/{spoke_id}/matches", ok,
                   body={"spoke_item_id": request.form.get("spoke_item_id") or "", "hub_item_id": hub_item_id})

    @app.post("/setup/spokes/<spoke_id>/resume")
    def resume(spoke_id: str) -> Any:
        return act("POST", f"/spokes/{spoke_id}/resume", "Spoke resumed; a sync is queued.")

    @app.post("/setup/spokes/<spoke_id>/remove")
    def remove_spoke(spoke_id: str) -> Any:
        return act("DELETE", f"/spokes/{spoke_id}", "Spoke removed; the hub keeps its items.")

    @app.post("/setup/hubs/<hub_id>/remove")
    def remove_hub(hub_id: str) -> Any:
        return act("DELETE", f"/hubs/{hub_id}", "Hub removed.")

    @app.post("/setup/spokes/<spoke_id>/dry-run")
    def dry_run(spoke_id: str) -> Any:
        from spokesync.service import hubs

        status, payload = api("POST", f"/spokes/{spoke_id}/dry-run")
        if status >= 400:
            return go("/setup/", f"Could not preview: {payload.get('detail', status)}")
        spoke = hubs.spoke_status(_ctx(), hubs.get_spoke(_ctx(), spoke_id))
        return page("preview.html", run=payload, spoke=spoke)

    @app.get("/setup/spokes/<spoke_id>/runs")
    def spoke_runs(spoke_id: str) -> Any:
        status, payload = api("GET", f"/spokes/{spoke_id}/runs", query={"limit": "200"})
        if status >= 400:
            abort(status)
        _, spoke = api("GET", f"/spokes/{spoke_id}")
        return runs_page(payload["runs"], f"Run history of spoke {spoke['name']}", {spoke["id"]: spoke["name"]})

    @app.get("/setup/hubs/<hub_id>/runs")
    def hub_runs(hub_id: str) -> Any:
        status, payload = api("GET", f"/hubs/{hub_id}/runs", query={"limit": "200"})
        if status >= 400:
            abort(status)
        _, hub = api("GET", f"/hubs/{hub_id}")
        return runs_page(payload["runs"], f"Run history of hub {hub['name']}", {s["id"]: s["name"] for s in hub["spokes"]})

    RUNS_PER_PAGE = 25

    def runs_page(runs: list[dict[str, Any]], title: str, names: dict[str, str]) -> Response:
        """Run history: a filter (everything / problems / changes), pages of 25, and runs with
        problems (errors, failures, conflicts) listed before the others on each page."""
        show = request.args.get("show", "all")
        problems = [r for r in runs if r["errors"] or r["conflicts"] or r["status"] in ("failed", "paused", "interrupted")]
        if show == "problems":
            runs = problems
        elif show == "changes":
            runs = [r for r in runs if r["into_hub"] or r["into_spoke"] or r["conflicts"]]
        try:
            number = max(1, int(request.args.get("page", "1")))
        except ValueError:
            number = 1
        pages = max(1, -(-len(runs) // RUNS_PER_PAGE))
        number = min(number, pages)
        shown = runs[(number - 1) * RUNS_PER_PAGE: number * RUNS_PER_PAGE]
        flagged = {id(r) for r in problems}
        shown = [r for r in shown if id(r) in flagged] + [r for r in shown if id(r) not in flagged]
        return page("runs.html", runs=shown, title=title, names=names, show=show, page_number=number, pages=pages,
                    problems=len(problems), base=request.path)

    @app.get("/setup/credentials")
    def credentials() -> Any:
        _, payload = api("GET", "/credentials")
        return page("credentials.html", credentials=payload["credentials"])

    @app.post("/setup/credentials/<credential_id>/selftest")
    def credential_selftest(credential_id: str) -> Any:
        status, payload = api("POST", f"/credentials/{credential_id}/selftest")
        if status >= 400:
            return go("/setup/credentials", f"The self-test could not run: {payload.get('error', status)}")
        _, listed = api("GET", "/credentials")
        return page("credentials.html", credentials=listed["credentials"], selftest=payload)

    @app.post("/setup/credentials/<credential_id>/remove")
    def remove_credential(credential_id: str) -> Any:
        return act("DELETE", f"/credentials/{credential_id}", "Credential removed.", back="/setup/credentials")

    @app.post("/setup/credentials/<credential_id>/repair")
    def repair_exchange(credential_id: str) -> Any:
        """A new Exchange password (and optionally a changed URL or user): validated before anything changes."""
        password = request.form.get("password", "")
        if not password:
            return go("/setup/credentials", "Repair failed: enter the new password.")
        settings = {k: request.form.get(k, "").strip() for k in ("ews_url", "username") if request.form.get(k, "").strip()}
        status, payload = api("POST", f"/credentials/{credential_id}/exchange-password",
                              {"password": password, "settings": settings})
        if status >= 400:
            return go("/setup/credentials", f"Repair failed, nothing was changed: {payload.get('detail', status)}")
        return go("/setup/credentials", f"Credential '{payload['label']}' repaired; "
                                        f"{len(payload['resumed'])} spoke(s) resumed and queued for a sync.")

    @app.post("/setup/credentials/<credential_id>/reauth")
    def reauth_google(credential_id: str) -> Any:
        """Sign in to Google again for a saved credential: its id travels in the signed OAuth state."""
        status, payload = api("POST", f"/credentials/{credential_id}/google/reauth/start",
                              {"redirect_uri": redirect_uri()})
        if status >= 400:
            return go("/setup/credentials", f"Google sign-in is not available: {payload.get('detail', status)}")
        resp = make_response(redirect(payload["url"], code=303))
        set_cookie(resp, security.OAUTH_COOKIE, ".".join((payload["state"], _b64(""), _b64(""))), samesite="Lax",
                   max_age=security.OAUTH_TTL_S)
        return resp

    # ------------------------------------------------------------ wizard steps 1-2

    def hub_object(hub_id: str) -> str:
        """The object type of the hub a spoke is added to from the dashboard ("" for a new hub)."""
        if not hub_id:
            return ""
        hub = _ctx().store.get_hub(hub_id)
        return hub.object_type if hub is not None else ""

    @app.get("/setup/new")
    def step_object() -> Any:
        hub = request.args.get("hub", "")
        return page("step_object.html", step=1, hub=hub, fixed=hub_object(hub),
                    chosen=request.args.get("object", "") or hub_object(hub) or "calendar")

    @app.get("/setup/new/source")
    def step_source() -> Any:
        hub = request.args.get("hub", "")
        chosen = object_arg()
        fixed = hub_object(hub)
        if fixed and fixed != chosen:
            return go("/setup/new?" + urlencode({"hub": hub, "object": fixed}),
                      f"This hub holds {OBJECTS[fixed].lower()}: its spokes hold {OBJECTS[fixed].lower()} too. "
                      "To sync the other kind, create a new hub for it (leave the hub out: Add a spoke).")
        return page("step_source.html", step=2, hub=hub, object=chosen, sources=sources_for(chosen))

    # ------------------------------------------------------------ step 3: credentials

    def wizard_args(**extra: str) -> dict[str, str]:
        keep = {k: request.values.get(k, "") for k in ("object", "source", "hub", "mailbox", "mailbox_kind")
                if request.values.get(k)}
        if keep.get("object") == "calendar":
            keep.pop("object")  # the default: calendar links stay as they were
        keep.update({k: v for k, v in extra.items() if v})
        return keep

    def object_arg() -> str:
        chosen = request.values.get("object", "") or "calendar"
        if chosen not in OBJECTS:
            abort(400, description="Choose calendars or contacts first (Add a spoke, step 1).")
        return chosen

    def source_arg() -> str:
        source = request.values.get("source", "")
        if source not in sources_for(object_arg()):
            abort(400, description="Choose where the calendar or the contacts are first (Add a spoke, step 2).")
        return source

    def credentials_page(source: str, status: int = 200, **values: Any) -> Response:
        _, payload = api("GET", "/credentials")
        wanted = {"google": ("google_oauth", "google_service_account"), "m365": ("graph",)}.get(source, ("exchange",))
        saved = [c for c in payload["credentials"] if c["kind"] in wanted]
        return page("step_credentials.html", status, step=3, source=source, saved=saved, args=wizard_args(),
                    form=values.pop("form", {}), object=object_arg(), source_words=sources_for(object_arg())[source],
                    **values)

    @app.get("/setup/new/credentials")
    def step_credentials() -> Any:
        return credentials_page(source_arg())

    @app.post("/setup/new/credentials/exchange")
    def add_exchange() -> Any:
        source = source_arg()
        form = {k: request.form.get(k, "").strip() for k in ("label", "ews_url", "username", "version",
                                                            "auth_type", "mailbox", "tenant_id", "client_id",
                                                            "token_url", "public_folder_mailboxes")}
        settings = {"ews_url": form["ews_url"], "username": form["username"], "version": form["version"] or "2016",
                    "auth_type": form["auth_type"] or "NTLM", "mailbox": form["mailbox"],
                    "public_folder_mailboxes": form["public_folder_mailboxes"] == "on"}
        if settings["auth_type"] == "OAuth 2.0":
            settings.update({k: form[k] for k in ("tenant_id", "client_id", "token_url") if form[k]})
        body = {"label": form["label"], "password": request.form.get("password", ""),
                "require_public_folders": source == "exchange_public", "settings": settings}
        if not body["password"]:
            return credentials_page(source, 400, error="Enter the password.", error_field="password", form=form)
        status, payload = api("POST", "/credentials/exchange", body)
        if status >= 400:
            return credentials_page(source, 422 if status == 422 else 400, form=form,
                                    error=f"Validation failed: {payload.get('detail', status)}",
                                    error_field=payload.get("field", ""))
        return page("step_validated.html", step=3, credential=payload, source=source,
                    args=wizard_args(credential=payload["id"]))

    @app.post("/setup/new/credentials/graph")
    def add_graph() -> Any:
        """Microsoft 365: validated against the mailbox (or group) before anything is saved."""
        source = source_arg()
        form = {k: request.form.get(k, "").strip() for k in ("label", "tenant", "client_id", "auth", "mailbox",
                                                            "mailbox_kind")}
        auth = form["auth"] if form["auth"] in ("secret", "certificate") else "secret"
        body: dict[str, Any] = {"label": form["label"], "mailbox": form["mailbox"],
                                "mailbox_kind": form["mailbox_kind"] or "user", "object_type": object_arg(),
                                "settings": {"tenant": form["tenant"], "client_id": form["client_id"], "auth": auth}}
        missing, field = "", ""
        if auth == "certificate":
            body.update(private_key=request.form.get("private_key", ""), certificate=request.form.get("certificate", ""))
            if not body["certificate"]:
                missing, field = "Paste the certificate (PEM) uploaded to the app registration.", "certificate"
            elif not body["private_key"]:
                missing, field = "Paste the certificate's private key (PEM).", "private_key"
        else:
            body["secret"] = request.form.get("secret", "")
            if not body["secret"]:
                missing, field = "Enter the client secret (its Value, not its Secret ID).", "secret"
        if not form["mailbox"]:
            what = "contacts" if object_arg() == "contacts" else "calendar"
            missing, field = (f"Enter the mailbox address (or the group's object id) whose {what} spokesync syncs.",
                              "mailbox")
        for name, words in (("client_id", "the Application (client) ID"), ("tenant", "the Directory (tenant) ID")):
            if not form[name]:
                missing, field = f"Enter {words}: it is on the app registration's Overview page.", name
        if missing:
            return credentials_page(source, 400, error=missing, error_field=field, form=form)
        status, payload = api("POST", "/credentials/graph", body)
        if status >= 400:
            return credentials_page(source, 422 if status == 422 else 400, form=form,
                                    error=f"Validation failed: {plain(payload)}", error_field=payload.get("field", ""))
        return page("step_validated.html", step=3, credential=payload, source=source,
                    args=wizard_args(credential=payload["id"], mailbox=form["mailbox"],
                                     mailbox_kind=body["mailbox_kind"]))

    @app.post("/setup/new/credentials/google/service-account")
    def add_service_account() -> Any:
        source = source_arg()
        body = {"label": request.form.get("label", "").strip() or "Google service account",
                "key": request.form.get("key", ""), "subject": request.form.get("subject", "").strip()}
        status, payload = api("POST", "/credentials/google/service-account", body)
        if status >= 400:
            field = payload.get("field", "")
            return credentials_page(source, 400, sa_error=f"The key was not accepted: {plain(payload)}",
                                    error_field={"label": "sa_label"}.get(field, field),
                                    form={"sa_label": body["label"], "subject": body["subject"]})
        return go("/setup/new/target?" + urlencode(wizard_args(credential=payload["id"])),
                  f"Saved service account credential '{payload['label']}'.")

    def redirect_uri() -> str:
        return _ctx().config.public_url.rstrip("/") + "/setup/oauth/callback"

    @app.post("/setup/oauth/start")
    def oauth_start() -> Any:
        source_arg()
        label = request.form.get("label", "").strip() or "Google account"
        status, payload = api("POST", "/credentials/google/oauth/start",
                              {"redirect_uri": redirect_uri(), "object_type": object_arg()})
        if status >= 400:
            return credentials_page("google", 400, oauth_error=f"Google sign-in is not available: {plain(payload)}",
                                    form={"oauth_label": label})
        resp = make_response(redirect(payload["url"], code=303))
        value = ".".join((payload["state"], _b64(label), _b64(request.form.get("hub", "")), _b64(object_arg())))
        set_cookie(resp, security.OAUTH_COOKIE, value, samesite="Lax", max_age=security.OAUTH_TTL_S)
        return resp

    @app.get("/setup/oauth/callback")
    def oauth_callback() -> Any:
        parts = request.cookies.get(cookie(security.OAUTH_COOKIE), "").split(".")
        expected = parts[0] if len(parts) in (3, 4) else ""
        if not security.same(request.args.get("state"), expected):
            return page("error.html", 400, title="Sign-in not accepted",
                        message="The answer from Google does not match a sign-in started here (state mismatch "
                                "or the sign-in took more than ten minutes). Start the sign-in again.")
        label, hub = _unb64(parts[1]), _unb64(parts[2])
        chosen = _unb64(parts[3]) if len(parts) == 4 else ""
        back = {"source": "google", **({"hub": hub} if hub else {}), **({"object": chosen} if chosen == "contacts" else {})}
        if setup_credentials.is_reauth_state(expected):
            resp = reauth_callback(expected)
        elif request.args.get("error") or not request.args.get("code"):
            resp = go("/setup/new/credentials?" + urlencode(back),
                      f"Google sign-in was not completed: {oauth_error_words(request.args.get('error', ''))}")
        else:
            status, payload = api("POST", "/credentials/google/oauth/finish",
                                  {"code": request.args["code"], "redirect_uri": redirect_uri(), "label": label})
            if status >= 400:
                resp = go("/setup/new/credentials?" + urlencode(back), f"Google sign-in failed: {plain(payload)}")
            else:
                resp = go("/setup/new/target?" + urlencode({**back, "credential": payload["id"]}),
                          f"Signed in: saved credential '{payload['label']}'.")
        resp.delete_cookie(cookie(security.OAUTH_COOKIE), path="/", secure=secure(), httponly=True, samesite="Lax")
        return resp

    def reauth_callback(state: str) -> Response:
        if request.args.get("error") or not request.args.get("code"):
            return go("/setup/credentials",
                      f"Google sign-in was not completed: {oauth_error_words(request.args.get('error', ''))}")
        status, payload = api("POST", "/credentials/google/oauth/finish",
                              {"code": request.args["code"], "redirect_uri": redirect_uri(), "state": state})
        if status >= 400:
            return go("/setup/credentials", f"Google sign-in failed, nothing was changed: "
                                            f"{payload.get('detail', status)}")
        return go("/setup/credentials", f"Signed in again: credential '{payload['label']}' repaired; "
                                        f"{len(payload['resumed'])} spoke(s) resumed and queued for a sync.")

    # ------------------------------------------------------------ step 4: calendar or folder

    @app.get("/setup/new/target")
    def step_target() -> Any:
        source = source_arg()
        credential_id = request.args.get("credential", "")
        if not credential_id:
            return go("/setup/new/credentials?" + urlencode(wizard_args()), "Choose or add a credential first.")
        args = wizard_args(credential=credential_id)
        contacts = object_arg() == "contacts"
        if contacts and source == "google":
            # the spoke is one contact group (its members), named by the admin (checked when the spoke is created)
            return page("step_target.html", step=4, source=source, args=args, contacts=True)
        if contacts and source == "m365":
            mailbox = request.args.get("mailbox", "")
            if not mailbox:
                return page("step_target.html", step=4, source=source, args=args, contacts=True, ask_mailbox=True)
            status, payload = api("POST", f"/credentials/{credential_id}/graph-contact-folders", {"mailbox": mailbox})
            return page("step_target.html", 200 if status < 400 else status, step=4, source=source, args=args,
                        contacts=True, folders=payload.get("folders", []),
                        error=plain(payload) if status >= 400 else "")
        if source == "google":
            status, payload = api("GET", f"/credentials/{credential_id}/calendars")
            return page("step_target.html", 200 if status < 400 else status, step=4, source=source, args=args,
                        calendars=payload.get("calendars", []), error=payload.get("detail", ""))
        if source == "m365":
            mailbox = request.args.get("mailbox", "")
            if not mailbox:  # saved credentials: which mailbox?
                return page("step_target.html", step=4, source=source, args=args, calendars=[], ask_mailbox=True)
            status, payload = api("POST", f"/credentials/{credential_id}/graph-calendars",
                                  {"mailbox": mailbox, "mailbox_kind": request.args.get("mailbox_kind", "user")})
            return page("step_target.html", 200 if status < 400 else status, step=4, source=source, args=args,
                        calendars=payload.get("calendars", []), error=payload.get("detail", ""))
        parent = request.args.get("parent") or None
        status, payload = api("POST", f"/credentials/{credential_id}/folders",
                              {"parent": parent, "public": source == "exchange_public"})
        return page("step_target.html", 200 if status < 400 else status, step=4, source=source, args=args,
                    folders=payload.get("folders", []), error=payload.get("detail", ""), parent=parent,
                    parent_name=request.args.get("parent_name", ""), contacts=contacts,
                    wanted="contacts" if contacts else "calendar")

    @app.post("/setup/new/target/add")
    def step_target_add() -> Any:
        credential_id = request.form.get("credential", "")
        args = wizard_args(credential=credential_id)
        status, payload = api("POST", f"/credentials/{credential_id}/calendars",
                              {"calendar_id": request.form.get("calendar_id", "")})
        if status >= 400:
            return go("/setup/new/target?" + urlencode(args), payload.get("error", "The calendar could not be added."))
        calendar = payload["calendar"]
        return go("/setup/new/create?" + urlencode({**args, "calendar_id": calendar["id"],
                                                    "suggested": calendar["summary"]}),
                  f"Added “{calendar['summary']}” to this account's calendar list.")

    # ------------------------------------------------------------ step 5: name and hub

    def target_address(source: str) -> dict[str, Any]:
        if object_arg() == "contacts" and source == "google":
            return {"group": request.values.get("group", "").strip()}
        if object_arg() == "contacts" and source == "m365":
            return {"mailbox": request.values.get("mailbox", "").strip(),
                    "folder_id": request.values.get("folder_id", "").strip()}
        if source == "google":
            return {"calendar_id": request.values.get("calendar_id", "")}
        if source == "m365":
            return {"kind": request.values.get("mailbox_kind") or request.values.get("kind") or "user",
                    "mailbox": request.values.get("mailbox", ""), "calendar_id": request.values.get("calendar_id", "")}
        return {"folder_id": request.values.get("folder_id", ""), "public": source == "exchange_public"}

    @app.route("/setup/new/create", methods=["GET", "POST"])
    def step_create() -> Any:
        from spokesync.service import hubs

        source = source_arg()
        address = target_address(source)
        values = {"name": request.values.get("name", "").strip() or request.values.get("suggested", ""),
                  "hub_id": request.values.get("hub_id", request.values.get("hub", "")),
                  "hub_name": request.values.get("hub_name", "").strip()}
        contacts = object_arg() == "contacts"
        fields = {"source": source, "credential": request.values.get("credential", ""),
                  "suggested": request.values.get("suggested", ""), **{k: str(v) for k, v in address.items()}}
        if contacts:
            fields["object"] = "contacts"
            if not fields["suggested"] and source == "google" and address.get("group"):
                fields["suggested"] = f"{address['group']} (Google)"
            values["name"] = values["name"] or fields["suggested"]
        existing = hubs.list_hubs(_ctx())
        if not contacts and not fields["suggested"] and source == "google" and fields["credential"]:
            _, found = api("GET", f"/credentials/{fields['credential']}/calendars")
            fields["suggested"] = next((c["summary"] for c in found.get("calendars", [])
                                        if c["id"] == address["calendar_id"]), "")
            if not fields["suggested"] and source == "m365" and address.get("folder_id") and fields["credential"]:
                _, found = api("POST", f"/credentials/{fields['credential']}/graph-contact-folders",
                               {"mailbox": address["mailbox"]})
                path = next((f["path"] for f in found.get("folders", []) if f["id"] == address["folder_id"]), "")
                fields["suggested"] = f"{address['mailbox']} · {path}" if path else ""
            values["name"] = values["name"] or fields["suggested"]
        if not contacts and not fields["suggested"] and source == "m365" and fields["credential"] and address["mailbox"]:
            _, found = api("POST", f"/credentials/{fields['credential']}/graph-calendars",
                           {"mailbox": address["mailbox"], "mailbox_kind": address["kind"]})
            name = next((c["name"] for c in found.get("calendars", []) if c["id"] == address["calendar_id"]), "")
            fields["suggested"] = f"{address['mailbox']} · {name}" if name else ""
            values["name"] = values["name"] or fields["suggested"]
        object_type = "contacts" if contacts else "calendar"
        existing = [h for h in existing if h.object_type == object_type]
        if request.method == "GET":
            return page("step_create.html", step=5, fields=fields, values=values, hubs=existing, contacts=contacts)
        error = error_field = ""
        hub_id = values["hub_id"]
        if hub_id == "__new__" or not hub_id:
            status, payload = api("POST", "/hubs", {"name": values["hub_name"], "object_type": object_type})
            if status >= 400:
                error = f"The hub could not be created: {plain(payload)}"
                error_field = "hub_name" if payload.get("field") == "name" else ""
            else:
                hub_id = payload["id"]
        if not error:
            status, payload = api("POST", f"/hubs/{hub_id}/spokes", {
                "name": values["name"], "kind": kind_for(object_type, source), "address": address,
                "credential_id": fields["credential"] or None})
            if status >= 400:
                error = f"The spoke could not be created: {plain(payload)}"
                error_field = {"name": "name", "address": "address"}.get(payload.get("field", ""), "")
                if values["hub_id"] in ("__new__", ""):
                    api("DELETE", f"/hubs/{hub_id}")  # do not leave an empty hub behind
            else:
                note = f" Note: {payload['note']}" if payload.get("note") else ""
                return go(f"/setup/spokes/{payload['id']}/options?wizard=1",
                          f"Spoke '{payload['name']}' created.{note}")
        return page("step_create.html", 400, step=5, fields=fields, values=values, hubs=existing, error=error,
                    error_field=error_field, contacts=contacts)

    # ------------------------------------------------------------ step 6: sync options

    def options_from_form(spoke: dict[str, Any]) -> dict[str, Any]:
        f = request.form

        def number(name: str, kind: type = int, blank: Any = None) -> Any:
            raw = f.get(name, "").strip()
            if raw == "":
                return blank
            try:
                return kind(raw)
            except ValueError:
                whole = " whole" if kind is int else ""
                raise FormError(f"“{raw}” is not a{whole} number: {NUMBER_WORDS.get(name, name)} takes a{whole} "
                                "number.", name) from None

        def words(name: str) -> list[str]:
            return [c.strip() for c in f.get(name, "").split(",") if c.strip()]

        share = number("max_delete_percent", float, 25.0)
        shared = {
            "direction": "two_way" if f.get("two_way") else "to_hub",
            "deletions": f.get("deletions", "propagate"),
            "conflict_policy": f.get("conflict_policy", "latest"),
            "max_delete_share": share / 100.0,
            "max_delete_count": number("max_delete_count", int, 10),
            "deletion_window_h": number("deletion_window_h", int, 24),
            "poll_interval_s": number("poll_minutes", float, 5.0) * 60,
        }
        if "spoke_category" in f:  # both kinds: a category stamped on the copies the hub creates (two-way)
            shared["spoke_category"] = f.get("spoke_category", "").strip()
        if "match_existing" in f or f.get("match_shown"):
            shared["match_existing"] = bool(f.get("match_existing"))
        if spoke.get("object_type") == "contacts":
            return {**shared, **{name: bool(f.get(name)) for name, _ in CONTACT_FIELD_OPTIONS}, "filters": {
                "categories": words("categories"),
                CONTACT_FILTERS["has_email"]: bool(f.get("has_email")),
                CONTACT_FILTERS["companies"]: words("companies"),
                CONTACT_FILTERS["email_domains"]: [d.lstrip("@").lower() for d in words("email_domains")],
            }}
        out = {
            **shared,
            "days_past": number("days_past"),
            "days_future": number("days_future"),
            "filters": {
                "categories": words("categories"),
                "subject_contains": f.get("subject_contains", "").strip(),
                "show_as": [s for s in SHOW_AS if f.get(f"show_as_{s}")],
                "exclude_all_day": bool(f.get("exclude_all_day")),
                "exclude_private": bool(f.get("exclude_private")),
            },
            "sync_description": bool(f.get("sync_description")),
            "sync_location": bool(f.get("sync_location")),
            "sync_attendees": bool(f.get("sync_attendees")),
            "sync_reminders": bool(f.get("sync_reminders")),
            "privacy_mode": f.get("privacy_mode", "as_is"),
        }
        if "placeholder_title" in f:
            out["placeholder_title"] = f.get("placeholder_title", "").strip() or "Busy"
        if "meetings_as_appointments" in f or spoke.get("kind") != "graph":
            out["meetings_as_appointments"] = bool(f.get("meetings_as_appointments"))
        return out

    @app.route("/setup/spokes/<spoke_id>/options", methods=["GET", "POST"])
    def spoke_options(spoke_id: str) -> Any:
        status, spoke = api("GET", f"/spokes/{spoke_id}")
        if status >= 400:
            abort(404)
        _, hub = api("GET", f"/hubs/{spoke['hub_id']}")
        wizard = request.values.get("wizard") == "1"
        error = error_field = ""
        spoke["object_type"] = hub.get("object_type", "calendar")
        if request.method == "POST":
            try:
                changes = options_from_form(spoke)
                changes["poll_interval_s"] = int(changes["poll_interval_s"])
            except FormError as err:
                error, error_field = str(err), err.field
            else:
                status, payload = api("PATCH", f"/spokes/{spoke_id}/options", changes)
                if status < 400 and wizard:  # step 7: the first sync, followed on its own page
                    after = datetime.now(UTC).isoformat()
                    api("POST", f"/spokes/{spoke_id}/sync")
                    return go(f"/setup/spokes/{spoke_id}/first-sync?" + urlencode({"after": after}),
                              f"Sync options of '{spoke['name']}' saved.")
                if status < 400:
                    return go("/setup/", f"Sync options of '{spoke['name']}' saved.")
                error, error_field = plain(payload), FORM_FIELD.get(payload.get("field", ""), payload.get("field", ""))
        return page("options.html", 400 if error else 200, step=6 if wizard else None, spoke=spoke, hub=hub,
                    options=spoke["options"], wizard=wizard, error=error, error_field=error_field,
                    object_type=spoke["object_type"], form_value=form_value if error else keep_saved)

    @app.errorhandler(400)
    @app.errorhandler(404)
    @app.errorhandler(405)
    def http_error(err: Any) -> Any:
        code = getattr(err, "code", 400)
        return page("error.html", code, title={404: "Not found", 405: "Not allowed"}.get(code, "Bad request"),
                    message=getattr(err, "description", "") or "")

    return app
