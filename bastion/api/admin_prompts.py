"""Admin API of the prompt vault: ``/api/v1/admin/ai/prompts``.

Every route authenticates the caller and checks a permission: ``prompts:write`` for changes,
``prompts:read`` for metadata, ``prompts:read_plaintext`` (admins) for the one route that returns
prompt text, which is audited. Everything is scoped to the caller's tenant; another tenant's
prompt answers 404 exactly like one that does not exist. No route but the plaintext one ever
returns prompt text.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway
from bastion.api.http import json_response, read_json
from bastion.auth.principal import Permission, Principal
from bastion.errors import InvalidRequest
from bastion.vault.model import VersionSpec, check_label, check_prompt_id
from bastion.vault.service import VaultService

PREFIX = "/api/v1/admin/ai/prompts"
_VERSION_FIELDS = {"system_prompt", "user_template", "model", "params", "metadata", "labels"}
_CREATE_FIELDS = {"prompt_id", "name", "description", *_VERSION_FIELDS}


async def _caller(request: Request, permission: Permission) -> tuple[Principal, VaultService]:
    principal = await authenticate_request(request, permission)
    return principal, gateway(request).services.vault


async def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    body = await read_json(request, gateway(request).settings.server.max_body_bytes)
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(
            f"Unknown field {unknown[0][:40]!r}; allowed: {', '.join(sorted(allowed))}.", param=unknown[0][:40]
        )
    return body


def _spec(body: dict[str, Any]) -> VersionSpec:
    if "system_prompt" not in body:
        raise InvalidRequest("system_prompt is required.", param="system_prompt")
    return VersionSpec(
        system_prompt=body["system_prompt"],
        user_template=body.get("user_template"),
        model=body.get("model"),
        params=body.get("params") or {},
        metadata=body.get("metadata") or {},
    )


def _labels(body: dict[str, Any]) -> list[str]:
    labels = body.get("labels") or []
    if not isinstance(labels, list):
        raise InvalidRequest("labels must be a list of label names.", param="labels")
    return [check_label(label, "labels") for label in labels]


def _prompt_id(request: Request) -> str:
    return check_prompt_id(request.path_params["prompt_id"])


def _version(value: Any, param: str = "version") -> int:
    text = str(value)
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1 or len(text) > 9:
        raise InvalidRequest(f"{param} must be a positive integer.", param=param)
    return int(text)


async def prompts(request: Request) -> Response:
    if request.method == "GET":
        principal, vault = await _caller(request, Permission.READ_PROMPTS)
        archived = request.query_params.get("include_archived", "").lower() in ("1", "true", "yes")
        items = await vault.list_prompts(principal.tenant_id, include_archived=archived)
        return json_response({"object": "list", "data": [item.to_json() for item in items]})
    principal, vault = await _caller(request, Permission.WRITE_PROMPTS)
    body = await _body(request, _CREATE_FIELDS)
    if "prompt_id" not in body:
        raise InvalidRequest("prompt_id is required.", param="prompt_id")
    info = await vault.create_prompt(
        principal.tenant_id,
        check_prompt_id(body["prompt_id"]),
        _spec(body),
        actor=principal.actor,
        name=body.get("name"),
        description=body.get("description"),
        labels=_labels(body),
    )
    return json_response(info.to_json(), status=201)


async def prompt(request: Request) -> Response:
    if request.method == "GET":
        principal, vault = await _caller(request, Permission.READ_PROMPTS)
        info = await vault.get_prompt(principal.tenant_id, _prompt_id(request))
        return json_response(info.to_json())
    return await _new_version(request)  # PUT: the seed's "update a prompt" is a new version


async def versions(request: Request) -> Response:
    if request.method == "GET":
        principal, vault = await _caller(request, Permission.READ_PROMPTS)
        items = await vault.list_versions(principal.tenant_id, _prompt_id(request))
        return json_response({"object": "list", "data": [item.to_json() for item in items]})
    return await _new_version(request)


async def _new_version(request: Request) -> Response:
    principal, vault = await _caller(request, Permission.WRITE_PROMPTS)
    body = await _body(request, _VERSION_FIELDS)
    info = await vault.new_version(
        principal.tenant_id, _prompt_id(request), _spec(body), actor=principal.actor, labels=_labels(body)
    )
    return json_response(info.to_json(), status=201)


async def move_label(request: Request) -> Response:
    principal, vault = await _caller(request, Permission.WRITE_PROMPTS)
    label = check_label(request.path_params["label"])
    body = await _body(request, {"version"})
    if "version" not in body:
        raise InvalidRequest("version is required.", param="version")
    prompt_id = _prompt_id(request)
    version = _version(body["version"])
    before = await vault.move_label(principal.tenant_id, prompt_id, label, version, actor=principal.actor)
    return json_response({"prompt_id": prompt_id, "label": label, "version": version, "previous_version": before})


async def clone(request: Request) -> Response:
    principal, vault = await _caller(request, Permission.WRITE_PROMPTS)
    body = await _body(request, {"new_prompt_id", "name"})
    if "new_prompt_id" not in body:
        raise InvalidRequest("new_prompt_id is required.", param="new_prompt_id")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidRequest("name must be a string.", param="name")
    info = await vault.clone(
        principal.tenant_id, _prompt_id(request), body["new_prompt_id"], actor=principal.actor, name=name
    )
    return json_response(info.to_json(), status=201)


async def archive(request: Request) -> Response:
    principal, vault = await _caller(request, Permission.WRITE_PROMPTS)
    info = await vault.archive(principal.tenant_id, _prompt_id(request), actor=principal.actor)
    return json_response(info.to_json())


async def plaintext(request: Request) -> Response:
    principal, vault = await _caller(request, Permission.READ_PROMPT_PLAINTEXT)
    version = _version(request.path_params["version"])
    text = await vault.read_plaintext(principal.tenant_id, _prompt_id(request), version, actor=principal.actor)
    # Not to be kept by browsers or proxies.
    return json_response(text, headers={"cache-control": "no-store"})


routes = [
    Route(PREFIX, prompts, methods=["GET", "POST"]),
    Route(PREFIX + "/{prompt_id}", prompt, methods=["GET", "PUT"]),
    Route(PREFIX + "/{prompt_id}/versions", versions, methods=["GET", "POST"]),
    Route(PREFIX + "/{prompt_id}/versions/{version}/plaintext", plaintext, methods=["GET"]),
    Route(PREFIX + "/{prompt_id}/labels/{label}", move_label, methods=["PUT"]),
    Route(PREFIX + "/{prompt_id}/clone", clone, methods=["POST"]),
    Route(PREFIX + "/{prompt_id}/archive", archive, methods=["POST"]),
]
