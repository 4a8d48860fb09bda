"""The insights dashboard: one static page, its script and style, and the vendored Chart.js
(``bastion/api/dashboard_static/``), served with a strict Content-Security-Policy.

GET /dashboard                    the page (no credentials needed to load it: it asks for a key and
                                  calls the insights API with it; docs/INSIGHTS.md, "Dashboard")
GET /dashboard/static/{name}      its script, style sheet and Chart.js (a fixed list; 404 otherwise)

No inline script or style, no eval, nothing from another origin; the page cannot be framed, sends
no referrer, and is never cached (the script and style may be, briefly).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.errors import NotFound

PATH: Final = "/dashboard"
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
#: Served name -> (file in the package, content type).
STATIC: Final = {
    "dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "chart.umd.min.js": ("vendor/chart.umd.min.js", "text/javascript; charset=utf-8"),
}


@cache
def _read(name: str) -> bytes:
    return resources.files("bastion.api").joinpath("dashboard_static", name).read_bytes()


def _answer(body: bytes, media_type: str, cache_control: str) -> Response:
    return Response(body, media_type=media_type, headers={**SECURITY_HEADERS, "cache-control": cache_control})


async def page_route(request: Request) -> Response:
    return _answer(_read("index.html"), "text/html; charset=utf-8", "no-store")


async def static_route(request: Request) -> Response:
    entry = STATIC.get(request.path_params["name"])
    if entry is None:
        raise NotFound("No such dashboard file.")
    file, media_type = entry
    return _answer(_read(file), media_type, "no-cache")


routes = [
    Route(PATH, page_route, methods=["GET"]),
    Route(f"{PATH}/static/{{name}}", static_route, methods=["GET"]),
]
