"""The browser tests' world: the demo servers, the local spokesync server, one Chromium.

`LocalSpokesync` is what `spokesync serve --demo` runs, in this process: the
local Calendar API and EWS servers with their sample data (`spokesync.demo`),
the one-machine Flask app mounting the three functions, the in-process queue's
workers. Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright;
`playwright install` cannot download browsers here. Without Chromium the
browser tests skip on a developer machine and fail in CI (`CI` set).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spokesync.bootstrap import Context, build_context, set_context
from spokesync.config import Config
from spokesync.demo import Demo, start_demo_servers
from tests.helpers import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ADMIN_TOKEN = "ui-test-admin-token-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"  # ./test.sh installs it


def axe_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now ("rule: where, why").
    The script goes in through the DevTools protocol (page.evaluate), so the page's own CSP stays on."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: ./test.sh installs axe-core (npm install in tests/ui/axe)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    found = page.evaluate("""async () => {
        const result = await window.axe.run(document, {resultTypes: ["violations"]});
        return result.violations.filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => v.id + ": " + v.nodes.map(n => n.target.join(" ")).slice(0, 3).join(", ") + " - " + v.help);
    }""")
    return list(found)




@dataclass
class LocalSpokesync:
    url: str  # http://127.0.0.1:PORT
    ctx: Context
    demo: Demo
    server: Any
    thread: threading.Thread

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.ctx.queue.stop()  # type: ignore[attr-defined]
        self.demo.close()
        set_context(None)


def start_local(data_dir: Path, **overrides: Any) -> LocalSpokesync:
    from werkzeug.serving import make_server

    from spokesync.local_server import create_app

    port = free_port()
    config = Config(data_dir=str(data_dir), admin_token=ADMIN_TOKEN, task_token="ui-test-task-token",
                    public_url=f"http://127.0.0.1:{port}", run_budget_s=60.0, **overrides)
    demo = start_demo_servers(config)
    ctx = build_context(demo.config)
    set_context(ctx)
    ctx.queue.start(workers=2)  # type: ignore[attr-defined]
    server = make_server("127.0.0.1", port, create_app(ctx), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="spokesync-ui-test", daemon=True)
    thread.start()
    return LocalSpokesync(f"http://127.0.0.1:{port}", ctx, demo, server, thread)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSpokesync]:
    running = start_local(tmp_path_factory.mktemp("spokesync-data"))
    yield running
    running.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
