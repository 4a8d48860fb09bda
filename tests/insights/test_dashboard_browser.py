"""The dashboard in a real browser (Debian's chromium, driven by Playwright): a viewer's key shows
the seeded figures, a wrong key shows an error and no data, the key never lands in the URL,
cookies or localStorage, the page breaks no rule of its Content-Security-Policy, and a roll-up run
after new ledger rows updates the figures live (over the event stream) without a reload.

One gateway (served by uvicorn on a thread of its own, on SQLite) and one browser per module.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from playwright.sync_api import expect, sync_playwright

from bastion.api.app import create_app
from bastion.api.dashboard import CSP
from bastion.auth.keys import generate_key, hash_key, listed_prefix
from bastion.gateway.compose import build_gateway
from bastion.gateway.service import Gateway
from bastion.insights.service import InsightsService
from bastion.redteam.store import NewRun, RunStore
from bastion.store.models import ApiKey
from tests.insights.synthetic import insert, records
from tests.jobs.support import make_tenants
from tests.support.harness import make_settings

pytestmark = pytest.mark.integration  # starts a browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The ports this suite may listen on.
PORTS = range(18100, 18200)
#: What a KPI shows without data (an en dash).
NO_VALUE = "\u2013"
T = TypeVar("T")


def _listening_socket() -> socket.socket:
    """A socket bound to the first free port of ``PORTS``, handed to uvicorn as it is (no race)."""
    for port in PORTS:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        return sock
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@dataclass
class Site:
    """A gateway served over HTTP from a thread with its own event loop."""

    url: str
    loop: asyncio.AbstractEventLoop
    gateway: Gateway
    keys: dict[str, str]
    tenants: dict[str, str]
    requests: dict[str, int] = field(default_factory=dict)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 30) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout_s)

    @property
    def insights(self) -> InsightsService:
        service = self.gateway.services.insights
        assert service is not None
        return service

    def add_rows(self, tenant: str, count: int, seed: int) -> None:
        """Ledger rows of ``tenant`` in the last hour (not rolled up yet)."""
        start = sum(self.requests.values())  # request ids are numbered from start: unique
        rows = records(count, seed=seed, start=start, base=datetime.now(UTC) - timedelta(minutes=50), span_s=2400)
        for row in rows:
            row["tenant_id"] = self.tenants[tenant]
        self.run(insert(self.gateway.services.db, rows))
        self.requests[tenant] = self.requests.get(tenant, 0) + count


async def _seed(gateway: Gateway) -> tuple[dict[str, str], dict[str, str]]:
    db = gateway.services.db
    tenants = await make_tenants(db, "acme", "globex")
    keys = {name: generate_key() for name in ("acme-viewer", "acme-service", "globex-viewer")}
    async with db.transaction() as session:
        session.add_all(
            ApiKey(tenant_id=tenants[name.split("-")[0]], name=name, prefix=listed_prefix(secret),
                   key_hash=hash_key(secret), role=name.split("-")[1])
            for name, secret in keys.items()
        )  # fmt: skip
    summary = {
        "attempts": 40,
        "success_rate": 0.125,
        "by_category": {"jailbreak": {"attempts": 40, "successes": 5, "rate": 0.125}},
        "fragility": 0.25,
    }
    run = NewRun(tenants["globex"], "support-bot", {}, guard=True, status="succeeded", summary=summary)
    await RunStore(db).create(run)
    return keys, tenants


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("dashboard")
    shutil.copyfile(sqlite_template, directory / "bastion.db")
    # Roll-ups run when the test asks (the scheduler's own loop would otherwise race it).
    settings = make_settings(f"sqlite:///{directory / 'bastion.db'}", directory / "data", insights={"interval_s": 3600})
    sock = _listening_socket()
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    ready: Future[Site] = Future()
    server: uvicorn.Server | None = None

    async def serve() -> None:
        nonlocal server
        gateway = build_gateway(settings)
        await gateway.start()
        try:
            keys, tenants = await _seed(gateway)
            app = create_app(settings, gateway)
            server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
            task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
            while not server.started:
                if task.done():
                    await task  # its failure, if it failed
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
            ready.set_result(Site(f"http://127.0.0.1:{port}", loop, gateway, keys, tenants))
            await task
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            await gateway.stop()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    running = ready.result(60)
    running.add_rows("acme", 40, seed=11)
    running.add_rows("globex", 7, seed=12)
    running.run(running.insights.rollup.run())
    try:
        yield running
    finally:
        assert server is not None
        server.should_exit = True
        thread.join(30)
        loop.close()
        sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the dashboard's browser tests need Debian's chromium (make install)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    page: Any
    problems: list[str]


#: Reports every Content-Security-Policy violation to the console (Playwright injects this itself:
#: the page's own policy does not apply to it).
_WATCH_CSP = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture
def tab(browser: Any, site: Site) -> Iterator[Tab]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.add_init_script(_WATCH_CSP)
    page.on("console", lambda m: problems.append(f"{m.text} @ {m.location.get('url')}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    try:
        yield Tab(page, problems)
    finally:
        context.close()


def sign_in(tab: Tab, site: Site, key: str) -> None:
    response = tab.page.goto(f"{site.url}/dashboard")
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"] == CSP
    tab.page.fill("#api-key", key)
    tab.page.click("#login-form button[type=submit]")


def kpi(tab: Tab, name: str) -> str:
    return str(tab.page.text_content(f"#kpi-{name}"))


def wait_for_kpi(tab: Tab, name: str, expected: str) -> None:
    # Playwright's own assertions (not wait_for_function, whose predicate the page's CSP forbids).
    expect(tab.page.locator(f"#kpi-{name}")).to_have_text(expected)


def test_a_viewer_sees_the_figures_and_a_roll_up_updates_them_live(tab: Tab, site: Site) -> None:
    key = site.keys["acme-viewer"]
    sign_in(tab, site, key)
    wait_for_kpi(tab, "requests", str(site.requests["acme"]))  # the tenant's rows, not globex's
    page = tab.page
    assert page.is_hidden("#login") and page.is_visible("#dashboard")
    for name in ("errors", "blocked", "p95", "tokens", "cost"):
        assert kpi(tab, name) not in ("", NO_VALUE), name
    page.wait_for_selector("#live-status[data-state=live]")
    page.wait_for_selector("body[data-loaded]", state="attached")  # every panel loaded once
    page.evaluate("window.notReloaded = true")

    # New ledger rows, then a roll-up job run by the gateway's own workers: its event updates the page.
    site.add_rows("acme", 5, seed=13)
    assert site.run(site.insights.scheduler.submit_if_idle())
    wait_for_kpi(tab, "requests", str(site.requests["acme"]))
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("document.body.dataset.lastEventId")  # the event's id, kept for Last-Event-ID

    # The key: in this tab's sessionStorage only; never in the URL, a cookie or localStorage.
    assert key not in page.url
    assert page.context.cookies() == []
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("sessionStorage.getItem('bastion.dashboard.key')") == key
    assert not [p for p in tab.problems if "CSP" in p or "Content Security Policy" in p or "Refused" in p]
    assert tab.problems == []
    assert page.is_visible("#redteam-empty")  # globex's red-team run is not acme's


def test_another_tenant_sees_its_own_figures_and_red_team_runs(tab: Tab, site: Site) -> None:
    sign_in(tab, site, site.keys["globex-viewer"])
    wait_for_kpi(tab, "requests", str(site.requests["globex"]))
    row = tab.page.wait_for_selector("#redteam tbody tr")
    assert row is not None
    cells = [str(cell.text_content()) for cell in row.query_selector_all("td")]
    assert cells[1:7] == ["support-bot", "succeeded", "on", "40", "12.50 %", "0.25"]
    assert cells[7] == "jailbreak 12.50 %"
    assert tab.page.is_hidden("#redteam-empty")
    assert tab.problems == []


def test_a_wrong_key_shows_an_error_and_no_data(tab: Tab, site: Site) -> None:
    sign_in(tab, site, "bk_not-a-key")
    tab.page.wait_for_selector("#login-error:not([hidden])")
    assert "not accepted" in str(tab.page.text_content("#login-error"))
    assert tab.page.is_hidden("#dashboard")
    assert kpi(tab, "requests") == NO_VALUE
    assert tab.page.evaluate("sessionStorage.length + localStorage.length") == 0
    # A key without usage:read is refused with its reason.
    tab.page.fill("#api-key", site.keys["acme-service"])
    tab.page.click("#login-form button[type=submit]")
    expect(tab.page.locator("#login-error")).to_contain_text("usage:read")
    assert tab.page.is_hidden("#dashboard")
    # Only the refused API calls are in the console, no policy violation.
    assert all("401" in p or "403" in p for p in tab.problems), tab.problems
