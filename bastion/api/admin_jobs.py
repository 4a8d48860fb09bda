"""Jobs admin API: ``/api/v1/admin/jobs`` (list, filter by state and kind), ``/{job_id}`` (one),
``/{job_id}/cancel`` and ``/{job_id}/retry``.

A tenant's admin sees and acts on the tenant's jobs only (another tenant's job answers 404, like
one that does not exist); a platform admin sees every tenant's, and may filter by ``tenant_id``.
Listings leave out the payload, which only the single-job route returns. Newest first; ``limit``
(1..500, default 50) and ``cursor`` (the previous page's ``next_cursor``) page through them.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.admin_ledger import _int, _text
from bastion.api.common import authenticate_request, gateway
from bastion.api.http import json_response
from bastion.auth.principal import Permission, Principal
from bastion.errors import NotFound, PermissionDenied
from bastion.jobs.model import JobFilter, job_json

PREFIX = "/api/v1/admin/jobs"
DEFAULT_PAGE = 50
MAX_PAGE = 500


async def _admin(request: Request) -> Principal:
    return await authenticate_request(request, Permission.MANAGE_TENANT)


def _scope(principal: Principal) -> str | None:
    """The tenant whose jobs the caller may see; None: every tenant's (a platform admin)."""
    return None if principal.platform_admin else principal.tenant_id


def _job_id(request: Request) -> str:
    job_id: str = request.path_params["job_id"]
    if len(job_id) > 64:
        raise NotFound(f"No job {job_id[:64]!r}.")
    return job_id


async def list_jobs(request: Request) -> Response:
    principal = await _admin(request)
    tenant_id = _text(request, "tenant_id", 32)
    scope = _scope(principal)
    if tenant_id is not None and scope is not None and tenant_id != scope:
        raise PermissionDenied("Only a platform admin key may list another tenant's jobs.")
    where = JobFilter(tenant_id=tenant_id or scope, state=_text(request, "state", 16), kind=_text(request, "kind", 64))
    limit = _int(request, "limit", 1, MAX_PAGE) or DEFAULT_PAGE
    jobs, next_cursor = await gateway(request).services.jobs.list_jobs(where, limit, _text(request, "cursor", 512))
    return json_response(
        {
            "object": "list",
            "data": [job_json(job, payload=False) for job in jobs],
            "next_cursor": next_cursor,
            "has_more": next_cursor is not None,
        }
    )


async def get_job(request: Request) -> Response:
    principal = await _admin(request)
    job = await gateway(request).services.jobs.get(_job_id(request), _scope(principal))
    return json_response(job_json(job))


async def cancel_job(request: Request) -> Response:
    principal = await _admin(request)
    job = await gateway(request).services.jobs.cancel(_job_id(request), _scope(principal))
    return json_response(job_json(job))


async def retry_job(request: Request) -> Response:
    principal = await _admin(request)
    job = await gateway(request).services.jobs.retry(_job_id(request), _scope(principal))
    return json_response(job_json(job))


routes = [
    Route(PREFIX, list_jobs, methods=["GET"]),
    Route(PREFIX + "/{job_id}", get_job, methods=["GET"]),
    Route(PREFIX + "/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route(PREFIX + "/{job_id}/retry", retry_job, methods=["POST"]),
]
