"""The front door (issue 11): what a hostile web page, a rebinding DNS name or an oversized
request gets from the local server and from the setup function.

- A cross-site form POST to `/api/...` (the proxy or IAP adds the admin's credentials) is
  refused: foreign `Origin`, `Sec-Fetch-Site: cross-site|same-site`, or a form body (not JSON,
  no `X-Spokesync-Client`).
- A request whose `Host` is another name (DNS rebinding: the attacker's name pointed at
  127.0.0.1) is refused on every route.
- An unauthenticated 400 MB POST is refused from its Content-Length before a byte of the body
  is read (the test never sends the body: a server that waited for it would time out).
- Deeply nested JSON gets a 400 in plain words; names are bounded and printable.
- `__Host-` cookies over https; logout revokes the session on the server.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from spokesync.connectors import memory_registry
from spokesync.model.event import Event
from spokesync.web import security
from tests.helpers import wait_for
from tests.ui.conftest import ADMIN_TOKEN, LocalSpokesync, start_local

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSpokesync]:
    running = start_local(Path(tmp_path_factory.mktemp("spokesync-front-door")))
    yield running
    running.close()


def paused_spoke(server: LocalSpokesync, name: str) -> str:
    """A spoke whose mass deletion waits for confirmation (as in test_web_guards)."""
    api = server.url + "/api"
    a_cal, b_cal = memory_registry.calendar(f"{name}-a"), memory_registry.calendar(f"{name}-b")
    a_cal.items.clear()
    b_cal.items.clear()
    hub = requests.post(api + "/hubs", json={"name": name}, headers=AUTH, timeout=10).json()
    a = requests.post(api + f"/hubs/{hub['id']}/spokes", headers=AUTH, timeout=10, json={
        "name": "Source", "kind": "memory", "address": {"calendar": f"{name}-a"},
        "options": {"direction": "two_way", "max_delete_count": 1}}).json()
    requests.post(api + f"/hubs/{hub['id']}/spokes", headers=AUTH, timeout=10, json={
        "name": "Copy", "kind": "memory", "address": {"calendar": f"{name}-b"}, "options": {"direction": "two_way"}})
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    ids = [a_cal.user_create(Event(title=f"E{n}", start=start + timedelta(days=n),
                                   end=start + timedelta(days=n, hours=1))).id for n in range(3)]
    requests.post(api + f"/hubs/{hub['id']}/sync", json={}, headers=AUTH, timeout=10)
    wait_for(lambda: len(b_cal.items) == 3, what="the copy")
    for item_id in ids:
        a_cal.user_delete(item_id)
    requests.post(api + f"/spokes/{a['id']}/sync", json={}, headers=AUTH, timeout=10)

    def paused() -> bool:
        spoke = server.ctx.store.get_spoke(a["id"])
        return spoke is not None and spoke.state == "needs_confirmation" and spoke.lease_owner is None

    wait_for(paused, what="the pause")
    return str(a["id"])


def test_a_cross_site_form_cannot_confirm_a_mass_deletion(server: LocalSpokesync) -> None:
    spoke_id = paused_spoke(server, "CSRF")
    url = server.url + f"/api/spokes/{spoke_id}/confirm-deletions"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # what a hostile page's auto-submitted form sends, with the proxy's credentials added
    attacks = [
        {**AUTH, **form, "Origin": EVIL},
        {**AUTH, **form, "Sec-Fetch-Site": "cross-site"},
        {**AUTH, **form, "Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another site too
        {**AUTH, **form, "Origin": "null"},  # a sandboxed iframe
        {**AUTH, **form},  # no Origin at all (old browsers): a form body is still no JSON write
        {**AUTH, "Content-Type": "text/plain", "Origin": EVIL},
    ]
    for headers in attacks:
        resp = requests.post(url, data="x=1", headers=headers, timeout=10)
        assert resp.status_code in (403, 415), (headers, resp.status_code, resp.text)
        assert "error" in resp.json()
    assert server.ctx.store.get_spoke(spoke_id).state == "needs_confirmation"  # type: ignore[union-attr]
    plain = requests.post(url, data="x=1", headers={**AUTH, **form}, timeout=10).json()["error"]
    assert "Content-Type: application/json" in plain and "Traceback" not in plain
    # the legitimate clients: JSON (even empty) or the custom header, from no browser or this site
    ok = requests.post(url, json={}, headers={**AUTH, "Origin": server.url}, timeout=10)
    assert ok.status_code == 200, ok.text
    assert server.ctx.store.get_spoke(spoke_id).state != "needs_confirmation"  # type: ignore[union-attr]
    assert requests.post(server.url + f"/api/spokes/{spoke_id}/sync", headers={
        **AUTH, security.API_CLIENT_HEADER: "cli"}, timeout=10).status_code == 202


def test_a_body_that_is_not_json_is_never_treated_as_no_body(server: LocalSpokesync) -> None:
    resp = requests.post(server.url + "/api/hubs", data="name=Sneaky",
                         headers={**AUTH, "Content-Type": "application/json"}, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"] == "the request body is not valid JSON"
    assert all(h.name != "Sneaky" for h in server.ctx.store.list_hubs())


def test_a_rebinding_host_is_refused_on_every_route(server: LocalSpokesync) -> None:
    port = server.url.rsplit(":", 1)[1]
    for path, method in (("/api/status", "GET"), ("/api/credentials", "GET"), ("/setup/", "GET"),
                         ("/setup/login", "GET"), ("/push_webhook", "POST"), ("/sync_spoke", "POST"),
                         ("/healthz", "GET")):
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
            resp = requests.request(method, server.url + path, headers={**AUTH, "Host": host}, timeout=10)
            assert resp.status_code == 421, (path, host, resp.status_code)
            assert "not to this spokesync" in resp.json()["error"]
        forwarded = requests.request(method, server.url + path, timeout=10,
                                     headers={**AUTH, "X-Forwarded-Host": f"evil.example:{port}"})
        assert forwarded.status_code == 421
    # loopback names are not rebinding: accepted
    assert requests.get(server.url + "/api/status", headers={**AUTH, "Host": f"localhost:{port}"},
                        timeout=10).status_code == 200


def _raw(url: str, head: str) -> str:
    """Send request headers only (no body) and read the answer: a server that waits for the body
    times out here instead of answering."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        sock.settimeout(10)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except TimeoutError:
            return "timeout: the server waited for the body " + answer.decode("latin-1")
        return answer.decode("latin-1")


def test_an_unauthenticated_400_mb_post_is_refused_before_reading(server: LocalSpokesync) -> None:
    host = server.url.removeprefix("http://")
    for path in ("/setup/login", "/api/hubs", "/setup/new/create"):
        answer = _raw(server.url, f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: "
                                  f"application/x-www-form-urlencoded\r\nContent-Length: 400000000\r\n\r\n")
        assert answer.startswith("HTTP/1.1 413"), (path, answer[:200])
        assert "larger than 1024 KB" in answer


def test_a_chunked_body_is_read_no_further_than_the_limit(server: LocalSpokesync) -> None:
    def chunks() -> Iterator[bytes]:
        sent = 0
        while sent < 8 * security.MAX_BODY_BYTES:  # 8 MiB offered; the server stops at 1 MiB
            sent += 65536
            yield b"token=" + b"a" * 65530

    offered = []

    def counted() -> Iterator[bytes]:
        for chunk in chunks():
            offered.append(len(chunk))
            yield chunk

    try:
        resp = requests.post(server.url + "/setup/login", data=counted(), timeout=30,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    except requests.ConnectionError:
        # the server answered and closed the connection while the client was still sending
        assert sum(offered) < 8 * security.MAX_BODY_BYTES
        return
    # 413, not the 403 of a missing CSRF token: the server stopped at the limit instead of reading 8 MiB
    assert resp.status_code == 413


def test_deeply_nested_json_gets_a_clear_400(server: LocalSpokesync) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    resp = requests.post(server.url + "/api/hubs", data=deep, timeout=10,
                         headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == 400 and "nested more than 32 levels" in resp.json()["error"]
    nested = '{"name": "Deep", "object_type": ' + "[" * 40 + "]" * 40 + "}"
    resp = requests.post(server.url + "/api/hubs", data=nested, timeout=10,
                         headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert security.json_depth(b'{"a": "[[[[[[", "b": [[{}]]}') == 4  # brackets inside strings do not count


@pytest.mark.parametrize(("name", "words"), [
    ("x" * 201, "use at most 200"),
    ("Team\x00Calendar", "control character"),
    ("Team\nCalendar", "control character"),
    ("Invoices \u202egpj.exe", "text-direction character"),
    ("Board \u2066x\u2069", "text-direction character"),
])
def test_hostile_names_are_refused_in_plain_words(server: LocalSpokesync, name: str, words: str) -> None:
    resp = requests.post(server.url + "/api/hubs", json={"name": name}, headers=AUTH, timeout=10)
    assert resp.status_code == 400 and words in resp.json()["error"], resp.text
    hub = requests.post(server.url + "/api/hubs", json={"name": f"Names {name.encode('unicode_escape').decode()[-24:]}"}, headers=AUTH,
                        timeout=10).json()
    spoke = requests.post(server.url + f"/api/hubs/{hub['id']}/spokes", headers=AUTH, timeout=10,
                          json={"name": name, "kind": "memory", "address": {"calendar": "names"}})
    assert spoke.status_code == 400 and words in spoke.json()["error"]
    cred = requests.post(server.url + "/api/credentials/google/service-account", headers=AUTH, timeout=10,
                         json={"label": name, "key": "{}"})
    assert cred.status_code == 400 and words in cred.json()["error"]
    assert all(h.name != name for h in server.ctx.store.list_hubs())


def test_a_5_mb_name_is_refused_by_size(server: LocalSpokesync) -> None:
    resp = requests.post(server.url + "/api/hubs", json={"name": "n" * 5_000_000}, headers=AUTH, timeout=30)
    assert resp.status_code == 413 and "larger than" in resp.json()["error"]


def _signed_in(base: str, **headers: str) -> tuple[requests.Session, str]:
    s = requests.Session()
    login = s.get(base + "/setup/login", headers=headers)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
    if headers.get("X-Forwarded-Proto") == "https":
        # requests keeps Secure cookies for https URLs only: hand them on explicitly
        for c in s.cookies:
            c.secure = False
    resp = s.post(base + "/setup/login", data={"csrf_token": token, "token": ADMIN_TOKEN}, headers=headers,
                  allow_redirects=False)
    assert resp.status_code == 303, resp.text
    for c in s.cookies:
        c.secure = False
    return s, token


def test_cookies_use_the_host_prefix_over_https(server: LocalSpokesync) -> None:
    https = {"X-Forwarded-Proto": "https"}
    first = requests.get(server.url + "/setup/login", headers=https, timeout=10).headers["Set-Cookie"]
    assert first.startswith(f"__Host-{security.CSRF_COOKIE}=") and "Secure" in first and "Path=/;" in first
    assert "Domain" not in first
    s, _ = _signed_in(server.url, **https)
    names = {c.name for c in s.cookies}
    assert f"__Host-{security.SESSION_COOKIE}" in names and security.SESSION_COOKIE not in names
    assert s.get(server.url + "/setup/", headers=https, timeout=10).status_code == 200
    # an unprefixed cookie (planted over http or by a sibling host) is not a session over https
    value = s.cookies.get(f"__Host-{security.SESSION_COOKIE}")
    resp = requests.get(server.url + "/setup/", headers=https, cookies={security.SESSION_COOKIE: value},
                        allow_redirects=False, timeout=10)
    assert resp.status_code == 303 and "/setup/login" in resp.headers["Location"]


def test_logout_revokes_the_session_on_the_server(server: LocalSpokesync) -> None:
    s, token = _signed_in(server.url)
    copied = s.cookies.get(security.SESSION_COOKIE)
    assert s.get(server.url + "/setup/", timeout=10).status_code == 200
    out = s.post(server.url + "/setup/logout", data={"csrf_token": token}, allow_redirects=False, timeout=10)
    assert out.status_code == 303
    # the cookie still has hours to live and a valid signature, but the server ended it
    assert security.valid_session(ADMIN_TOKEN, copied)
    again = requests.get(server.url + "/setup/", cookies={security.SESSION_COOKIE: copied}, allow_redirects=False,
                         timeout=10)
    assert again.status_code == 303 and "/setup/login" in again.headers["Location"]
    revoked = Path(server.ctx.config.data_dir) / "revoked-sessions.json"
    assert stat.S_IMODE(os.stat(revoked).st_mode) == 0o600


def test_after_a_demo_run_every_file_is_private(server: LocalSpokesync) -> None:
    paused_spoke(server, "Modes")  # syncs ran: the database, its journals, secrets exist
    root = Path(server.ctx.config.data_dir)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name.endswith("-wal") for p in files) and any(p.name == "hub.sqlite3" for p in files)
    for path in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700, path
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


# ------------------------------------------------------------------ the setup function


@pytest.fixture
def function_server(tmp_path: Path) -> Iterator[str]:
    """functions-framework's app for `setup` on a real socket (as Cloud Run serves it)."""
    import functions_framework
    from werkzeug.serving import make_server

    from spokesync import bootstrap
    from spokesync.bootstrap import build_context, set_context
    from spokesync.config import Config

    previous = bootstrap._CONTEXT  # the module's local server keeps its own context afterwards
    server: Any = None
    try:
        server = make_server("127.0.0.1", 0, functions_framework.create_app(
            target="setup", source="functions/setup/main.py"), threaded=True)
        url = f"http://127.0.0.1:{server.server_port}"
        set_context(build_context(Config(data_dir=str(tmp_path), admin_token=ADMIN_TOKEN, task_token="t",
                                         public_url=url)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield url
    finally:
        if server is not None:
            server.shutdown()
        set_context(previous)


def test_the_setup_function_refuses_the_same(function_server: str) -> None:
    url = function_server
    host = url.removeprefix("http://")
    answer = _raw(url, f"POST /setup/login HTTP/1.1\r\nHost: {host}\r\nContent-Length: 400000000\r\n\r\n")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    answer = _raw(url, f"POST /api/hubs HTTP/1.1\r\nHost: {host}\r\nContent-Length: 400000000\r\n\r\n")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    rebound = requests.get(url + "/api/status", headers={**AUTH, "Host": "evil.example"}, timeout=10)
    assert rebound.status_code == 421
    assert requests.get(url + "/setup/login", headers={"Host": "evil.example"}, timeout=10).status_code == 421
    forged = requests.post(url + "/api/hubs", data="name=x", timeout=10, headers={
        **AUTH, "Content-Type": "application/x-www-form-urlencoded", "Origin": EVIL})
    assert forged.status_code == 403
    form = requests.post(url + "/api/hubs", data="name=x", timeout=10, headers={
        **AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    assert requests.post(url + "/api/hubs", json={"name": "Real"}, headers=AUTH, timeout=10).status_code == 201


def test_the_sign_in_callback_leaves_no_code_or_state_in_the_logs(server: LocalSpokesync,
                                                                  caplog: pytest.LogCaptureFixture,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    from urllib.parse import parse_qs, urlsplit

    s, token = _signed_in(server.url)
    with caplog.at_level("DEBUG"):
        start = s.post(server.url + "/setup/oauth/start", data={"csrf_token": token, "source": "google"},
                       allow_redirects=False)
        consent = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
        callback = consent.headers["Location"]
        done = s.get(callback)
    assert "/setup/new/target" in done.url
    query = parse_qs(urlsplit(callback).query)
    code, state = query["code"][0], query["state"][0]
    logged = caplog.text + "".join(capfd.readouterr())
    assert "/setup/oauth/callback?" in logged  # the access log line is there, masked
    for secret in (code, state, ADMIN_TOKEN, s.cookies.get(security.SESSION_COOKIE) or "x" * 40):
        assert secret not in logged
