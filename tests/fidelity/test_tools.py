"""``tools`` sent to a deployment that cannot call them: a 400 naming the model in the caller's
dialect (nothing reaches the upstream), or dropped where the configuration says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic

from tests.fidelity.support import API_KEY, CHAT, CHAT_UPSTREAM, USER, fidelity_gateway
from tests.support.fake_upstream import FakeUpstream
from tests.support.openai_spec import validate

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
ANTHROPIC_TOOL = {"name": "lookup", "input_schema": {"type": "object", "properties": {}}}


def _models(fake: FakeUpstream, tools: str) -> list[dict[str, Any]]:
    deployment = {
        "provider": "openai",
        "model": CHAT_UPSTREAM,
        "api_base": fake.openai_base,
        "api_key": API_KEY,
        "tools": tools,
    }
    return [{"name": CHAT, "deployments": [deployment]}]


async def test_tools_to_a_model_that_cannot_call_them_are_a_400(
    tmp_path: Path, db_path: Path, fake: FakeUpstream
) -> None:
    async with fidelity_gateway(tmp_path, fake, models=_models(fake, "reject")) as env:
        for stream in (False, True):
            body: dict[str, Any] = {"model": CHAT, "messages": USER, "tools": [TOOL], "stream": stream}
            response = await env.client.post("/v1/chat/completions", json=body)
            assert response.status_code == 400
            validate("ErrorResponse", response.json())
            error = response.json()["error"]
            assert (error["type"], error["param"]) == ("invalid_request_error", "tools")
            assert f"{CHAT!r} cannot call tools" in error["message"]
        body = {"model": CHAT, "messages": USER, "max_tokens": 5, "tools": [ANTHROPIC_TOOL]}
        response = await env.client.post("/v1/messages", json=body)
        assert response.status_code == 400
        error_body = anthropic.types.ErrorResponse.model_validate(response.json())
        assert error_body.error.type == "invalid_request_error" and "cannot call tools" in error_body.error.message
        # A request without tools is served as usual.
        response = await env.client.post("/v1/chat/completions", json={"model": CHAT, "messages": USER})
        assert response.status_code == 200
    assert [r.body.get("tools") for r in fake.requests(CHAT_UPSTREAM)] == [None]


async def test_tools_ignore_drops_them(tmp_path: Path, db_path: Path, fake: FakeUpstream) -> None:
    async with fidelity_gateway(tmp_path, fake, models=_models(fake, "ignore")) as env:
        body = {"model": CHAT, "messages": USER, "tools": [TOOL], "tool_choice": "auto"}
        response = await env.client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200
    (request,) = fake.requests(CHAT_UPSTREAM)
    assert "tools" not in request.body and "tool_choice" not in request.body
