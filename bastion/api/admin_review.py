"""Review and datasets admin API (docs/REVIEW.md).

Seed 000's routes: ``POST /api/v1/admin/ai/finetune/prepare`` (queue interactions for review),
``POST /api/v1/admin/ai/finetune/review/{item_id}`` (a reviewer's review of an item they claimed),
``GET /api/v1/admin/ai/finetune/export`` (export a dataset version and download the file). Then the
queue (``/api/v1/admin/review/...``: batches, claim, assign, release, progress, agreement), the
datasets (``/api/v1/admin/datasets/...``: versions, their manifests and export history) and the
exports (``/api/v1/admin/dataset-exports/{id}`` and its ``/content``).

Every route is scoped to the caller's tenant; reviewers need ``review:write``, everything else
``datasets:manage``; exporting the vault's system prompts also needs ``prompts:read_plaintext``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bastion.api.admin_ledger import _int, _text
from bastion.api.common import authenticate_request, gateway
from bastion.api.http import file_chunks, json_response, read_json
from bastion.auth.principal import Principal
from bastion.errors import Conflict, InvalidRequest, NotFound
from bastion.review.datasets import DatasetService
from bastion.review.service import ReviewService

F = "/api/v1/admin/ai/finetune"
R = "/api/v1/admin/review"
D = "/api/v1/admin/datasets"
E = "/api/v1/admin/dataset-exports"


def _reviews(request: Request) -> ReviewService:
    service = gateway(request).services.review
    if service is None:
        raise NotFound("Review is not available on this gateway.")
    return service


def _datasets(request: Request) -> DatasetService:
    service = gateway(request).services.datasets
    if service is None:
        raise NotFound("Datasets are not available on this gateway.")
    return service


async def _body(request: Request) -> Any:
    return await read_json(request, gateway(request).settings.server.max_body_bytes)


async def _caller(request: Request) -> Principal:
    return await authenticate_request(request)


_ID = re.compile(r"^[0-9a-f]{1,32}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def _param(request: Request, name: str, max_length: int = 128) -> str:
    """A path parameter: an id (32 hex digits at most) or a dataset name; anything else names
    nothing here (404)."""
    value: str = request.path_params[name]
    pattern = _ID if max_length == 32 else _NAME
    if not pattern.match(value):
        label = "dataset" if name == "name" else name.replace("_", " ")
        raise NotFound(f"No {label} {value[:64]!r}.")
    return value


def _version(request: Request) -> int:
    raw = request.path_params["version"]
    if not raw.isdigit() or not 1 <= int(raw) <= 999_999_999:
        raise InvalidRequest("Invalid request: version must be a positive integer.", param="version")
    return int(raw)


# -- seed 000's routes -----------------------------------------------------------------------------


async def prepare(request: Request) -> Response:
    principal = await _caller(request)
    return json_response(await _reviews(request).prepare(principal, await _body(request)), status=201)


async def review_item(request: Request) -> Response:
    principal = await _caller(request)
    review = await _reviews(request).submit(principal, _param(request, "item_id", 32), await _body(request))
    return json_response(review, status=201)


async def export_download(request: Request) -> Response:
    """Export a version now (the latest unless ``version``) and answer with the file."""
    principal = await _caller(request)
    datasets = _datasets(request)
    name = _text(request, "dataset", 128)
    if name is None:
        raise InvalidRequest("Invalid request: dataset is required.", param="dataset")
    number = _int(request, "version", 1, 999_999_999)
    if number is None:
        listed = await datasets.get_dataset(principal, name)
        if not listed["versions"]:
            raise NotFound(f"Dataset {name!r} has no version.")
        number = max(v["version"] for v in listed["versions"])
    version = await datasets.get_version(principal, name, number)
    if version["example_count"] > datasets.settings.inline_export_max:
        raise Conflict(
            f"Version {number} has {version['example_count']} examples; export it in the background with "
            f"POST {D}/{name}/versions/{number}/exports."
        )
    body: dict[str, Any] = {"format": _text(request, "format", 32) or "openai"}
    for field in ("system", "system_prompt"):
        value = _text(request, field, 100_000)
        if value is not None:
            body[field] = value
    repairs = _text(request, "repairs", 512)
    if repairs:
        body["repairs"] = [r for r in repairs.split(",") if r]
    export = await datasets.request_export(principal, name, number, body, background=False)
    return await _file(request, principal, export["id"], export)


async def _file(request: Request, principal: Principal, export_id: str, export: dict[str, Any]) -> Response:
    info, handle = await _datasets(request).download(principal, export_id)
    headers = {
        "content-length": str(info["bytes"]),
        "content-disposition": f"attachment; filename*=UTF-8''{quote(info['filename'], safe='')}",
        "x-bastion-export-id": export["id"],
        "x-bastion-file-id": info["id"],
        "x-bastion-sha256": str(export["sha256"]),
    }
    return StreamingResponse(file_chunks(handle), media_type="application/octet-stream", headers=headers)


# -- the review queue --------------------------------------------------------------------------------


async def list_batches(request: Request) -> Response:
    principal = await _caller(request)
    limit = _int(request, "limit", 1, 500) or 100
    data = await _reviews(request).list_batches(principal, limit)
    return json_response({"object": "list", "data": data})


async def get_batch(request: Request) -> Response:
    principal = await _caller(request)
    return json_response(await _reviews(request).get_batch(principal, _param(request, "batch_id", 32)))


async def claim(request: Request) -> Response:
    principal = await _caller(request)
    item = await _reviews(request).claim(principal, _param(request, "batch_id", 32))
    return json_response({"object": "review_claim", "item": item})


async def assign(request: Request) -> Response:
    principal = await _caller(request)
    body = await _body(request)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("item_id"), str)
        or not isinstance(body.get("reviewer"), str)
    ):
        raise InvalidRequest("Invalid request: item_id and reviewer (user:<id> or key:<id>) are required.")
    extra = sorted(set(body) - {"item_id", "reviewer"})
    if extra:
        raise InvalidRequest(f"Invalid request: unknown field {extra[0]!r}.", param=extra[0])
    assignment = await _reviews(request).assign(
        principal, _param(request, "batch_id", 32), body["item_id"], body["reviewer"]
    )
    return json_response(assignment, status=201)


async def progress(request: Request) -> Response:
    principal = await _caller(request)
    return json_response(await _reviews(request).progress(principal, _param(request, "batch_id", 32)))


async def agreement(request: Request) -> Response:
    principal = await _caller(request)
    return json_response(await _reviews(request).agreement(principal, _param(request, "batch_id", 32)))


async def my_items(request: Request) -> Response:
    principal = await _caller(request)
    return json_response({"object": "list", "data": await _reviews(request).my_items(principal)})


async def get_item(request: Request) -> Response:
    principal = await _caller(request)
    return json_response(await _reviews(request).item_reviews(principal, _param(request, "item_id", 32)))


async def release(request: Request) -> Response:
    principal = await _caller(request)
    return json_response(await _reviews(request).release(principal, _param(request, "item_id", 32)))


# -- datasets and exports ------------------------------------------------------------------------------


async def list_datasets(request: Request) -> Response:
    principal = await _caller(request)
    return json_response({"object": "list", "data": await _datasets(request).list_datasets(principal)})


async def get_dataset(request: Request) -> Response:
    principal = await _caller(request)
    return json_response(await _datasets(request).get_dataset(principal, _param(request, "name")))


async def build_version(request: Request) -> Response:
    principal = await _caller(request)
    name: str = request.path_params["name"]  # a new name: a bad one is a 400 (``check_name``), not a 404
    version = await _datasets(request).build_version(principal, name, await _body(request))
    return json_response(version, status=201)


async def get_version(request: Request) -> Response:
    principal = await _caller(request)
    return json_response(await _datasets(request).get_version(principal, _param(request, "name"), _version(request)))


async def list_exports(request: Request) -> Response:
    principal = await _caller(request)
    data = await _datasets(request).list_exports(principal, _param(request, "name"), _version(request))
    return json_response({"object": "list", "data": data})


async def create_export(request: Request) -> Response:
    """An export of the version: in the background (``"background": true``, or a version larger
    than ``review.inline_export_max``: 202 with the job's id) or now (201, finished)."""
    principal = await _caller(request)
    body = await _body(request)
    background = None
    if isinstance(body, dict) and "background" in body:
        background = body.pop("background")
        if not isinstance(background, bool):
            raise InvalidRequest("Invalid request: background must be true or false.", param="background")
    export = await _datasets(request).request_export(
        principal, _param(request, "name"), _version(request), body, background=background
    )
    return json_response(export, status=202 if export["status"] == "queued" else 201)


async def get_export(request: Request) -> Response:
    principal = await _caller(request)
    return json_response(await _datasets(request).get_export(principal, _param(request, "export_id", 32)))


async def export_content(request: Request) -> Response:
    principal = await _caller(request)
    export = await _datasets(request).get_export(principal, _param(request, "export_id", 32))
    return await _file(request, principal, export["id"], export)


routes = [
    Route(F + "/prepare", prepare, methods=["POST"]),
    Route(F + "/review/{item_id}", review_item, methods=["POST"]),
    Route(F + "/export", export_download, methods=["GET"]),
    Route(R + "/batches", list_batches, methods=["GET"]),
    Route(R + "/batches/{batch_id}", get_batch, methods=["GET"]),
    Route(R + "/batches/{batch_id}/claim", claim, methods=["POST"]),
    Route(R + "/batches/{batch_id}/assign", assign, methods=["POST"]),
    Route(R + "/batches/{batch_id}/progress", progress, methods=["GET"]),
    Route(R + "/batches/{batch_id}/agreement", agreement, methods=["GET"]),
    Route(R + "/items", my_items, methods=["GET"]),
    Route(R + "/items/{item_id}", get_item, methods=["GET"]),
    Route(R + "/items/{item_id}/release", release, methods=["POST"]),
    Route(D, list_datasets, methods=["GET"]),
    Route(D + "/{name}", get_dataset, methods=["GET"]),
    Route(D + "/{name}/versions", build_version, methods=["POST"]),
    Route(D + "/{name}/versions/{version}", get_version, methods=["GET"]),
    Route(D + "/{name}/versions/{version}/exports", list_exports, methods=["GET"]),
    Route(D + "/{name}/versions/{version}/exports", create_export, methods=["POST"]),
    Route(E + "/{export_id}", get_export, methods=["GET"]),
    Route(E + "/{export_id}/content", export_content, methods=["GET"]),
]
