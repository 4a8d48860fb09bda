"""The dashboard's files as served: content types, the security headers, a fixed list of files,
and markup that needs nothing the Content-Security-Policy forbids (no inline script, handler or
style attribute)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from bastion.api.dashboard import CSP, STATIC
from tests.support.harness import make_settings, running_gateway

STATIC_DIR = resources.files("bastion.api").joinpath("dashboard_static")


async def test_the_page_and_its_files_come_with_the_security_headers(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, auto_migrate=True)
    async with running_gateway(settings) as env:
        page = await env.client.get("/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["cache-control"] == "no-store"
        for response in (page, *[await env.client.get(f"/dashboard/static/{name}") for name in STATIC]):
            assert response.status_code == 200
            assert response.headers["content-security-policy"] == CSP
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
        script = await env.client.get("/dashboard/static/dashboard.js")
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        chart = await env.client.get("/dashboard/static/chart.umd.min.js")
        assert b"window.Chart" in chart.content
        style = await env.client.get("/dashboard/static/dashboard.css")
        assert style.headers["content-type"] == "text/css; charset=utf-8"
        for name in ("../__init__.py", "vendor%2FLICENSE.md", "index.html", "nope.js"):
            missing = await env.client.get(f"/dashboard/static/{name}")
            assert missing.status_code == 404, name
            assert missing.json()["error"]


def test_the_markup_needs_no_inline_script_or_style() -> None:
    html = STATIC_DIR.joinpath("index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all('src="/dashboard/static/' in tag for tag in scripts)
    bodies = re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S)
    assert len(bodies) == len(scripts) and all(body.strip() == "" for body in bodies)  # no inline code
    assert re.search(r"\son\w+\s*=", html) is None  # no onclick= and the like
    assert " style=" not in html and "<style" not in html
    script = STATIC_DIR.joinpath("dashboard.js").read_text()
    forbidden_calls = ["eval(", "new Function", "innerHTML", 'setAttribute("style"']
    forbidden_calls += ["localStorage.set", "document.cookie"]
    for forbidden in forbidden_calls:
        assert forbidden not in script, forbidden
    vendor = STATIC_DIR.joinpath("vendor")
    assert "MIT" in vendor.joinpath("LICENSE.md").read_text()
    assert "4.6.2" in vendor.joinpath("README.md").read_text()
