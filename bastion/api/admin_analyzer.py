"""Admin API of the prompt analyzer (docs/ANALYZER.md).

* ``POST /api/v1/admin/ai/prompts/{prompt_id}/analyze`` (``prompts:read``): a vault prompt analysed
  server-side. Findings carry spans (offsets), rationale, confidence and token deltas; excerpts of
  the text only for callers with ``prompts:read_plaintext`` (and then the read is audited).
* ``POST /api/v1/admin/ai/prompts/{prompt_id}/rewrite`` (``prompts:write`` and ``models:call``):
  an LLM-assisted rewrite through the gateway, stored as a new version without labels (a draft).
  The answer names the draft version; it never contains prompt text.
* ``POST /api/v1/admin/ai/analyze`` (``prompts:read``): analysis of a text the caller sends.

Everything is scoped to the caller's tenant: another tenant's prompt is a 404 like a missing one.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.analyzer.model import PromptText
from bastion.analyzer.service import AnalyzerService, RewriteUnavailable, check_declared
from bastion.api.admin_prompts import PREFIX, _version
from bastion.api.admin_prompts import _body as prompt_body
from bastion.api.common import authenticate_request, gateway
from bastion.api.http import json_response
from bastion.auth.principal import Permission, Principal, require
from bastion.errors import InvalidRequest
from bastion.vault.model import MAX_TEXT_CHARS, check_label, check_prompt_id

ANALYZE_TEXT_PATH = "/api/v1/admin/ai/analyze"
_PROMPT_FIELDS = {"version", "label", "variables", "model"}
_REWRITE_FIELDS = {*_PROMPT_FIELDS, "instructions"}
_TEXT_FIELDS = {"system_prompt", "user_template", "variables", "model"}
MAX_INSTRUCTIONS_CHARS = 2000


async def _caller(request: Request, permission: Permission) -> tuple[Principal, AnalyzerService]:
    principal = await authenticate_request(request, permission)
    analyzer = gateway(request).services.analyzer
    if analyzer is None:
        raise RewriteUnavailable("The analyzer is not available in this process.")
    return principal, analyzer


async def _body(request: Request, allowed: set[str], *, optional: bool = False) -> dict[str, Any]:
    if optional and request.headers.get("content-length", "0") == "0" and "transfer-encoding" not in request.headers:
        return {}
    return await prompt_body(request, allowed)


def _model(value: Any, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 256:
        raise InvalidRequest("model must be a model name (1-256 characters).", param="model")
    return value


def _selector(body: dict[str, Any]) -> tuple[int | None, str | None]:
    version = _version(body["version"]) if body.get("version") is not None else None
    label = check_label(body["label"]) if body.get("label") is not None else None
    if version is not None and label is not None:
        raise InvalidRequest("Give a version or a label, not both.", param="version")
    return version, label


async def analyze_prompt(request: Request) -> Response:
    principal, analyzer = await _caller(request, Permission.READ_PROMPTS)
    prompt_id = check_prompt_id(request.path_params["prompt_id"])
    body = await _body(request, _PROMPT_FIELDS, optional=True)
    version, label = _selector(body)
    result = await analyzer.analyze_prompt(
        principal,
        prompt_id,
        version=version,
        label=label,
        declared=check_declared(body.get("variables")),
        model=_model(body.get("model")),
    )
    headers = {"cache-control": "no-store"} if result.readable is not None else None
    return json_response(result.to_json(), headers=headers)


async def rewrite_prompt(request: Request) -> Response:
    principal, analyzer = await _caller(request, Permission.WRITE_PROMPTS)
    require(principal, Permission.CALL_MODELS)
    prompt_id = check_prompt_id(request.path_params["prompt_id"])
    body = await _body(request, _REWRITE_FIELDS)
    version, label = _selector(body)
    instructions = body.get("instructions")
    if instructions is not None and (not isinstance(instructions, str) or len(instructions) > MAX_INSTRUCTIONS_CHARS):
        raise InvalidRequest(
            f"instructions must be a string of at most {MAX_INSTRUCTIONS_CHARS} characters.", param="instructions"
        )
    result = await analyzer.rewrite(
        principal,
        prompt_id,
        model=_model(body.get("model"), required=True) or "",
        version=version,
        label=label,
        declared=check_declared(body.get("variables")),
        instructions=instructions,
    )
    return json_response(result.to_json(), status=201)


def _text(value: Any, param: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidRequest(f"{param} must be a non-empty string.", param=param)
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidRequest(f"{param} is longer than {MAX_TEXT_CHARS} characters.", param=param)
    return value


async def analyze_text(request: Request) -> Response:
    _, analyzer = await _caller(request, Permission.READ_PROMPTS)
    body = await _body(request, _TEXT_FIELDS)
    prompt = PromptText(
        system=_text(body.get("system_prompt"), "system_prompt", required=True) or "",
        template=_text(body.get("user_template"), "user_template", required=False),
        declared=check_declared(body.get("variables")),
        model=_model(body.get("model")),
    )
    # The caller sent the text: excerpts tell it nothing new.
    return json_response((await analyzer.analyze(prompt)).to_json(prompt))


routes = [
    Route(PREFIX + "/{prompt_id}/analyze", analyze_prompt, methods=["POST"]),
    Route(PREFIX + "/{prompt_id}/rewrite", rewrite_prompt, methods=["POST"]),
    Route(ANALYZE_TEXT_PATH, analyze_text, methods=["POST"]),
]
