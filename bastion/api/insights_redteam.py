"""``GET /api/v1/insights/redteam``: the tenant's latest red-team runs (executed here or imported
from garak) as the dashboard shows them (docs/INSIGHTS.md, "Red team"). Needs ``usage:read``, like
the other insights, and answers for the caller's tenant only.

    {"runs": [{"id", "created_at", "status", "target", "guard", "attempts", "success_rate",
               "by_category": {"<category>": {"attempts", "successes", "rate"}}, "fragility"}]}

``limit`` (1-100, default 10), newest first. A run without a summary yet (queued, running,
cancelled, failed) has zero attempts, a success rate of 0 and no categories.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, query_int
from bastion.api.http import json_response
from bastion.auth.principal import Permission
from bastion.errors import NotFound
from bastion.redteam.service import RunView

PATH = "/api/v1/insights/redteam"


def run_entry(view: RunView) -> dict[str, Any]:
    summary = view.run.summary or {}
    return {
        "id": view.run.id,
        "created_at": view.run.created_at.isoformat(),
        "status": view.status,
        "target": view.run.target,
        "guard": bool(view.run.guard),
        "attempts": int(summary.get("attempts", 0)),
        "success_rate": float(summary.get("success_rate", 0.0)),
        "by_category": {
            str(category): {
                "attempts": int(figures["attempts"]),
                "successes": int(figures["successes"]),
                "rate": float(figures["rate"]),
            }
            for category, figures in (summary.get("by_category") or {}).items()
        },
        "fragility": float(summary["fragility"]) if summary.get("fragility") is not None else None,
    }


async def redteam_route(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.READ_USAGE)
    service = gateway(request).services.redteam
    if service is None:
        raise NotFound("The red team is not enabled on this gateway.")
    limit = query_int(request, "limit", 10, 1, 100)
    views = await service.list(principal.tenant_id, limit)
    return json_response({"runs": [run_entry(view) for view in views]})


routes = [Route(PATH, redteam_route, methods=["GET"])]
