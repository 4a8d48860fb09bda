"""The dashboard in a real browser (Debian's chromium, headless, driven by Playwright): a viewer's
key shows the seeded figures and every chart has data, a wrong key shows an error and no data, the
key never lands in the URL, cookies or localStorage, a real gateway call reaches the request count
within 5 s without a reload (the roll-up job runs on its own schedule), reconnects of the event
stream repeat no event and no point, and no session has a console error, a Content-Security-Policy
violation or a request to another host.

One gateway (served by uvicorn on a thread of its own, on SQLite) and one browser per module. With
``BASTION_DASHBOARD_SCREENSHOT=<file>`` the chart test saves a screenshot of the page there (the one
in docs/INSIGHTS.md).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
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
from tests.support.fake_upstream import FakeUpstream
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
PORTS = range(18400, 18500)
#: The model of the gateway calls, answered by the session's fake upstream.
MODEL = "fake-ok"
#: How long a stream connection lasts before the server ends it and the page reconnects.
STREAM_S = 2.0
#: What a KPI shows without data (an en dash).
NO_VALUE = "\u2013"
T = TypeVar("T")
#: The browser window (and the size of the screenshot in the docs).
VIEWPORT = {"width": 1280, "height": 900}
#: Hosts the page may talk to: this gateway only, never a CDN or anything else.
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
#: Set to a path (docs/images/dashboard.png) to save a screenshot of the seeded page there.
SCREENSHOT_ENV = "BASTION_DASHBOARD_SCREENSHOT"


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
def site(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, fake_upstream: FakeUpstream
) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("dashboard")
    shutil.copyfile(sqlite_template, directory / "bastion.db")
    deployment = {"provider": "openai", "model": MODEL, "api_base": fake_upstream.openai_base}
    # The roll-up job runs by itself every second (as in production, only faster); a stream ends
    # every STREAM_S seconds, so the page reconnects (with Last-Event-ID) several times per test.
    settings = make_settings(
        f"sqlite:///{directory / 'bastion.db'}",
        directory / "data",
        insights={"interval_s": 1, "stream": {"max_connection_s": STREAM_S}},
        ledger={"flush_interval_s": 0.05},
        models=[{"name": MODEL, "deployments": [deployment]}],
    )
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
    running.run(running.insights.rollup.run())  # seeded figures from the first page load on
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
    #: Console errors, uncaught page errors and policy violations, in order.
    problems: list[str]
    #: The URL of every request the page made.
    requests: list[str]
    #: The Last-Event-ID of each request for the event stream (None: the first connection).
    stream_ids: list[str | None] = field(default_factory=list)


#: Reports every Content-Security-Policy violation to the console (Playwright injects this itself:
#: the page's own policy does not apply to it).
_WATCH_CSP = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture
def tab(browser: Any, site: Site) -> Iterator[Tab]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    requests: list[str] = []
    page.add_init_script(_WATCH_CSP)
    page.on("console", lambda m: problems.append(f"{m.text} @ {m.location.get('url')}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    opened = Tab(page, problems, requests)

    def record(request: Any) -> None:
        requests.append(request.url)
        if urlsplit(request.url).path == "/api/v1/insights/stream":
            opened.stream_ids.append(request.headers.get("last-event-id"))

    page.on("request", record)
    try:
        yield opened
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


def poll(tab: Tab, expression: str, what: str, timeout_s: float = 10.0) -> Any:
    """Evaluate ``expression`` in the page until it is truthy and return it; fail after ``timeout_s``.
    (Playwright's wait_for_function compiles its predicate with eval, which the page's CSP forbids.)"""
    deadline = time.monotonic() + timeout_s
    while True:
        value = tab.page.evaluate(expression)
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        tab.page.wait_for_timeout(50)


def foreign_requests(tab: Tab) -> list[str]:
    """The page's requests to anything but this machine (data: URLs are inline, not requests out)."""
    return [url for url in tab.requests if not url.startswith("data:") and urlsplit(url).hostname not in LOOPBACK]


def assert_clean(tab: Tab) -> None:
    """No console error, uncaught error or policy violation, and no request off this machine."""
    assert tab.problems == []
    assert tab.requests and foreign_requests(tab) == []


def open_dashboard(tab: Tab, site: Site, tenant: str = "acme") -> None:
    """Signed in as ``tenant``'s viewer, every panel loaded and the stream connected."""
    sign_in(tab, site, site.keys[f"{tenant}-viewer"])
    wait_for_kpi(tab, "requests", str(site.requests[tenant]))
    tab.page.wait_for_selector("body[data-loaded]", state="attached")
    tab.page.wait_for_selector("#live-status[data-state=live]")


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

    # New ledger rows; the next roll-up job run (by the gateway's own scheduler and workers) sends an
    # event that updates the page.
    site.add_rows("acme", 5, seed=13)
    wait_for_kpi(tab, "requests", str(site.requests["acme"]))
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("document.body.dataset.lastEventId")  # the event's id, kept for Last-Event-ID

    # The key: in this tab's sessionStorage only; never in the URL, a cookie or localStorage.
    assert key not in page.url
    assert page.context.cookies() == []
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("sessionStorage.getItem('bastion.dashboard.key')") == key
    assert not [p for p in tab.problems if "CSP" in p or "Content Security Policy" in p or "Refused" in p]
    assert_clean(tab)
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
    assert_clean(tab)


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
    assert foreign_requests(tab) == []


#: Per chart: the Chart.js instance's datasets, how many of their points have a value, and whether
#: the canvas has any painted pixel.
_CHARTS = """
() => Array.from(document.querySelectorAll("canvas")).map((canvas) => {
  const chart = Chart.getChart(canvas);
  const datasets = chart ? chart.data.datasets : [];
  const points = datasets.reduce((n, d) => n + d.data.filter((v) => v !== null && v !== undefined).length, 0);
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = false;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) { painted = true; break; } }
  return { id: canvas.id, chart: Boolean(chart), datasets: datasets.length, points, painted,
           width: canvas.width, height: canvas.height };
})
"""


def test_every_chart_renders_with_data(tab: Tab, site: Site) -> None:
    open_dashboard(tab, site)
    charts = {c["id"]: c for c in tab.page.evaluate(_CHARTS)}
    assert set(charts) == {
        "chart-requests", "chart-latency", "chart-ttft", "chart-tokens", "chart-cost", "chart-guard",
        "chart-efficiency", "chart-waste", "chart-drift",
    }  # fmt: skip
    for name, c in charts.items():
        assert c["chart"] and c["width"] > 0 and c["height"] > 0 and c["painted"], c  # drawn, axes at least
        assert c["datasets"] > 0, c
        if name != "chart-drift":  # drift has no samples here (insights.drift.enabled is off)
            assert c["points"] > 0, c
    assert tab.page.is_visible("#drift-empty")
    if screenshot := os.environ.get(SCREENSHOT_ENV):
        tab.page.screenshot(path=screenshot, type="png")
    assert_clean(tab)


def test_a_gateway_call_updates_the_request_count_within_5_seconds(tab: Tab, site: Site) -> None:
    open_dashboard(tab, site)
    tab.page.evaluate("window.notReloaded = true")
    started = time.monotonic()
    response = httpx.post(
        f"{site.url}/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hello dashboard"}]},
        headers={"authorization": f"Bearer {site.keys['acme-service']}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    site.requests["acme"] += 1
    # Ledger row, roll-up job run (its own schedule), event, refetch: the new count within 5 s.
    expect(tab.page.locator("#kpi-requests")).to_have_text(str(site.requests["acme"]), timeout=5_000)
    assert time.monotonic() - started <= 5
    assert tab.page.evaluate("window.notReloaded") is True
    assert_clean(tab)


#: Per time-series chart: its labels (one per bucket) and the length of each dataset.
_SERIES = """
() => ["chart-requests", "chart-latency", "chart-ttft", "chart-tokens", "chart-cost"].map((id) => {
  const chart = Chart.getChart(document.getElementById(id));
  return { id, labels: chart.data.labels, lengths: chart.data.datasets.map((d) => d.data.length) };
})
"""


def test_reconnecting_replays_no_event_twice_and_adds_no_point_twice(tab: Tab, site: Site) -> None:
    open_dashboard(tab, site)
    page = tab.page
    first = page.evaluate("window.bastionDashboard.connections()")
    # Events keep coming while the server ends the stream every STREAM_S seconds.
    seed = 100
    while page.evaluate("window.bastionDashboard.connections()") < first + 2:
        seen = len(page.evaluate("window.bastionDashboard.eventIds()"))
        site.add_rows("acme", 2, seed=seed)
        seed += 1
        poll(tab, f"window.bastionDashboard.eventIds().length > {seen}", "the roll-up's event")
        assert seed < 130, "the stream was not reconnected"
    wait_for_kpi(tab, "requests", str(site.requests["acme"]))
    page.wait_for_selector("#live-status[data-state=live]")

    ids = [int(i) for i in page.evaluate("window.bastionDashboard.eventIds()")]
    assert len(ids) >= 2
    assert ids == sorted(set(ids)), ids  # each event once, in order, across the reconnects
    # Each reconnect asked for the events after the last one received (none before the first event).
    resumed = [int(i) for i in tab.stream_ids if i is not None]
    assert len(resumed) >= 2 and set(resumed) <= set(ids), (tab.stream_ids, ids)
    for series in page.evaluate(_SERIES):
        labels = series["labels"]
        assert labels and len(labels) == len(set(labels)), series  # one point per bucket
        assert all(n == len(labels) for n in series["lengths"]), series
    assert_clean(tab)
