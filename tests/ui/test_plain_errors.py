"""Errors in plain words, the same in the API, the web form and the CLI: each message is
triggered for real (a web server that is not Exchange, https to a plain-http port, a closed
port, a wrong password, a missing field, a bogus folder id) and its words checked; no
exception text (pool names, `Reraised from`, `SSLError`, errno) reaches a person."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import requests

from spokesync.demo import DEMO_EWS_MAILBOX, DEMO_EWS_PASSWORD, DEMO_EWS_USER
from spokesync.service.setup_api import handle
from tests.ui.conftest import ADMIN_TOKEN, LocalSpokesync, start_local

JSON = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
LEAKS = ("Reraised", "Pool", "SSLError", "Errno", "Traceback", "_ssl.c", "Max retries", "is required and must be")


class NotExchange(BaseHTTPRequestHandler):
    """A web server that is not Exchange: 404 for everything, as an intranet site would."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's names
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html><body>Not Found</body></html>")

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSpokesync]:
    running = start_local(Path(tmp_path_factory.mktemp("spokesync-errors")))
    yield running
    running.close()


@pytest.fixture(scope="module")
def not_exchange() -> Iterator[int]:
    httpd = HTTPServer(("127.0.0.1", 0), NotExchange)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def exchange_credential(server: LocalSpokesync, url: str, password: str = DEMO_EWS_PASSWORD) -> requests.Response:
    return requests.post(server.url + "/api/credentials/exchange", headers=JSON, timeout=60, json={
        "label": "x", "password": password,
        "settings": {"ews_url": url, "username": DEMO_EWS_USER, "mailbox": DEMO_EWS_MAILBOX, "version": "2016",
                     "auth_type": "NTLM"}})


def clean(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"exception text {leak!r} in {text!r}"


@pytest.mark.parametrize(("case", "code", "words"), [
    ("not_exchange", "not_ews", "this server answers but is not EWS"),
    ("https_to_http", "tls_failure", "does not speak https (TLS)"),
    ("closed_port", "host_unreachable", "the connection was refused or there is no route to it"),
    ("wrong_password", "wrong_password", "wrong user or password"),
])
def test_exchange_validation_failures_are_plain_and_name_their_field(
        server: LocalSpokesync, not_exchange: int, case: str, code: str, words: str) -> None:
    ews = server.demo.ews_url
    url = {"not_exchange": f"http://127.0.0.1:{not_exchange}/EWS/Exchange.asmx",
           "https_to_http": ews.replace("http://", "https://"),
           "closed_port": f"http://127.0.0.1:{closed_port()}/EWS/Exchange.asmx",
           "wrong_password": ews}[case]
    resp = exchange_credential(server, url, "wrong" if case == "wrong_password" else DEMO_EWS_PASSWORD)
    body = resp.json()
    assert resp.status_code == 422 and body["code"] == code
    assert words in body["detail"] and body["error"] == body["detail"]
    assert body["field"] == ("password" if case == "wrong_password" else "ews_url")
    clean(body["detail"])


def test_the_web_form_highlights_the_field_and_keeps_the_values(server: LocalSpokesync, not_exchange: int) -> None:
    s = requests.Session()
    login = s.get(server.url + "/setup/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert token
    s.post(server.url + "/setup/login", data={"csrf_token": token.group(1), "token": ADMIN_TOKEN})
    url = f"http://127.0.0.1:{not_exchange}/EWS/Exchange.asmx"
    form = {"csrf_token": token.group(1), "source": "exchange_public", "label": "Office", "ews_url": url,
            "username": DEMO_EWS_USER, "mailbox": DEMO_EWS_MAILBOX, "password": DEMO_EWS_PASSWORD, "version": "2016",
            "auth_type": "NTLM"}
    page = s.post(server.url + "/setup/new/credentials/exchange", data=form, headers={"Origin": server.url})
    assert page.status_code == 422
    assert "this server answers but is not EWS" in page.text
    field = re.search(r'<input name="ews_url"[^>]*>', page.text)
    assert field and 'aria-invalid="true"' in field.group(0) and f'value="{url}"' in field.group(0)
    assert 'aria-invalid="true"' not in re.search(r'<input name="username"[^>]*>', page.text).group(0)  # type: ignore[union-attr]
    clean(page.text)
    form["password"] = ""
    page = s.post(server.url + "/setup/new/credentials/exchange", data=form, headers={"Origin": server.url})
    assert page.status_code == 400 and "Enter the password." in page.text
    assert 'aria-invalid="true"' in re.search(r'<input name="password"[^>]*>', page.text).group(0)  # type: ignore[union-attr]


def test_api_errors_carry_detail_code_and_field(server: LocalSpokesync) -> None:
    ctx = server.ctx
    status, body = handle(ctx, "POST", "/api/hubs", {})
    assert status == 400 and body == {"error": "Enter a name.", "detail": "Enter a name.",
                                      "code": "missing_field", "field": "name"}
    status, body = handle(ctx, "POST", "/api/hubs", {"name": 7})
    assert status == 400 and body["detail"] == "A name must be text." and body["code"] == "invalid_field"
    handle(ctx, "POST", "/api/hubs", {"name": "Errors"})
    status, body = handle(ctx, "POST", "/api/hubs", {"name": "Errors"})
    assert status == 400 and body["code"] == "duplicate_name" and "choose another name" in body["detail"]
    status, body = handle(ctx, "GET", "/api/runs/nope")
    assert status == 404 and body["code"] == "not_found" and body["detail"] == "No run with id nope."
    status, body = handle(ctx, "GET", "/api/nowhere")
    assert status == 404 and body["code"] == "no_such_endpoint"
    resp = requests.post(server.url + "/api/hubs", headers=JSON, json={}, timeout=10)  # the same over HTTP
    assert resp.status_code == 400 and resp.json()["code"] == "missing_field"


def test_a_bogus_folder_id_is_refused_before_the_spoke_is_saved(server: LocalSpokesync) -> None:
    resp = exchange_credential(server, server.demo.ews_url)
    assert resp.status_code == 201, resp.text
    credential_id = resp.json()["id"]
    hub = requests.post(server.url + "/api/hubs", headers=JSON, json={"name": "Folders"}, timeout=10).json()
    hub_id = hub.get("id") or hub["hub"]["id"]
    resp = requests.post(f"{server.url}/api/hubs/{hub_id}/spokes", headers=JSON, timeout=60, json={
        "name": "Bogus", "kind": "exchange", "credential_id": credential_id,
        "address": {"folder_id": "BOGUS", "public": True}})
    body = resp.json()
    assert resp.status_code == 400 and body["code"] == "address_not_found" and body["field"] == "address"
    assert "there is no Exchange folder with id 'BOGUS'" in body["detail"]
    clean(body["detail"])
    assert server.ctx.store.list_spokes(hub_id) == []
