"""/v1/responses end to end (in process, auth on) with the unmodified OpenAI SDK and raw HTTP:
every answer, stream event and error body is held against OpenAI's own OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.responses import FunctionToolParam

from tests.responses.support import MODEL, TOOLS_MODEL, TOOLS_UPSTREAM, UPSTREAM, ResponsesEnv
from tests.support.fake_upstream import answer_text, tool_answer
from tests.support.openai_spec import validate, validate_response

WEATHER_TOOL: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}


def _error(body: dict[str, Any]) -> dict[str, Any]:
    validate("ErrorResponse", body)
    error: dict[str, Any] = body["error"]
    return error


async def test_plain_create_through_the_sdk(responses_env: ResponsesEnv) -> None:
    env = responses_env
    client = env.openai("ann")
    response = await client.responses.create(
        model=MODEL,
        input="Say hello.",
        instructions="Be brief.",
        max_output_tokens=50,
        temperature=0.3,
        top_p=0.9,
        metadata={"ticket": "T-1"},
    )
    assert response.output_text == answer_text(UPSTREAM)
    assert response.status == "completed" and response.object == "response"
    assert response.metadata == {"ticket": "T-1"} and response.instructions == "Be brief."
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    validate_response("/responses", "post", response.model_dump(mode="json", exclude_unset=True, by_alias=True))
    (sent,) = env.fake.requests(UPSTREAM)
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello."},
    ]
    assert (sent.body["max_completion_tokens"], sent.body["temperature"], sent.body["top_p"]) == (50, 0.3, 0.9)
    assert "metadata" not in sent.body and "bastion" not in sent.body

    raw = await env.create(input="Say hello.")
    assert raw.status_code == 200
    validate_response("/responses", "post", raw.json())


async def test_streamed_event_sequence(responses_env: ResponsesEnv) -> None:
    env = responses_env
    events = await env.stream_events(input="Say hello.")
    kinds = [e["type"] for e in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == answer_text(UPSTREAM)
    completed = events[-1]["response"]
    assert completed["status"] == "completed" and completed["output"][0]["content"][0]["text"] == deltas
    assert completed["usage"]["output_tokens"] > 0

    # The SDK's own stream parser reads the same events, and its final response is stored.
    client = env.openai("ann")
    async with client.responses.stream(model=MODEL, input="Say hello.") as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_response()
    assert final.output_text == answer_text(UPSTREAM)
    fetched = await client.responses.retrieve(final.id)
    assert fetched.output_text == final.output_text


async def test_tool_round_trip_with_previous_response_id(responses_env: ResponsesEnv) -> None:
    env = responses_env
    client = env.openai("ann")
    first = await client.responses.create(model=TOOLS_MODEL, input="Weather in Paris?", tools=[WEATHER_TOOL])
    validate_response("/responses", "post", first.model_dump(mode="json", exclude_unset=True, by_alias=True))
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "test"}
    (sent,) = env.fake.requests(TOOLS_UPSTREAM)
    assert sent.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": WEATHER_TOOL["parameters"],
                "strict": True,
            },
        }
    ]

    second = await client.responses.create(
        model=TOOLS_MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == tool_answer("sunny, 21 C")
    assert second.previous_response_id == first.id
    # The upstream got the whole conversation: the question, the call, its result.
    messages = env.fake.requests(TOOLS_UPSTREAM)[-1].body["messages"]
    assert messages == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 21 C"},
    ]

    items = await env.client.get(
        f"/v1/responses/{second.id}/input_items", params={"order": "asc"}, headers=env.auth("ann")
    )
    assert items.status_code == 200
    validate_response("/responses/{response_id}/input_items", "get", items.json())
    assert [item["type"] for item in items.json()["data"]] == ["message", "function_call", "function_call_output"]


async def test_streamed_tool_call_events(responses_env: ResponsesEnv) -> None:
    events = await responses_env.stream_events(model=TOOLS_MODEL, input="Weather?", tools=[WEATHER_TOOL])
    kinds = [e["type"] for e in events]
    assert kinds[2] == "response.output_item.added" and events[2]["item"]["type"] == "function_call"
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    (done,) = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert len(deltas) == 2 and "".join(deltas) == done["arguments"] == '{"city":"test"}'
    assert done["name"] == "get_weather"
    final = events[-1]["response"]
    assert kinds[-1] == "response.completed" and final["output"][0]["arguments"] == done["arguments"]


async def test_json_schema_output(responses_env: ResponsesEnv) -> None:
    env = responses_env
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    response = await env.openai("ann").responses.create(
        model=MODEL,
        input="A number.",
        text={"format": {"type": "json_schema", "name": "num", "schema": schema, "strict": True}},
    )
    validate_response("/responses", "post", response.model_dump(mode="json", exclude_unset=True, by_alias=True))
    (sent,) = env.fake.requests(UPSTREAM)
    assert sent.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "num", "schema": schema, "strict": True},
    }
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"


async def test_get_delete_and_tenant_isolation(responses_env: ResponsesEnv) -> None:
    env = responses_env
    created = (await env.create(input="Remember me.")).json()
    rid = created["id"]
    fetched = await env.client.get(f"/v1/responses/{rid}", headers=env.auth("svc"))  # same tenant, other key
    assert fetched.status_code == 200 and fetched.json() == created
    validate_response("/responses/{response_id}", "get", fetched.json())

    # Another tenant sees nothing: not the response, its items, nor a continuation of it.
    for method, path in (("GET", rid), ("GET", f"{rid}/input_items"), ("DELETE", rid)):
        answer = await env.client.request(method, f"/v1/responses/{path}", headers=env.auth("carl"))
        assert answer.status_code == 404, (method, path)
        assert _error(answer.json())["type"] == "not_found_error" or answer.json()["error"]["message"]
    other = await env.create("carl", input="Go on.", previous_response_id=rid)
    assert other.status_code == 404 and _error(other.json())["param"] == "previous_response_id"

    deleted = await env.client.delete(f"/v1/responses/{rid}", headers=env.auth("ann"))
    assert deleted.status_code == 200 and deleted.json() == {"id": rid, "object": "response.deleted", "deleted": True}
    gone = await env.client.get(f"/v1/responses/{rid}", headers=env.auth("ann"))
    assert gone.status_code == 404
    _error(gone.json())

    unstored = (await env.create(input="Forget me.", store=False)).json()
    assert unstored["store"] is False
    assert (await env.client.get(f"/v1/responses/{unstored['id']}", headers=env.auth("ann"))).status_code == 404


async def test_previous_response_id_continues_the_conversation(responses_env: ResponsesEnv) -> None:
    env = responses_env
    client = env.openai("ann")
    first = await client.responses.create(model=MODEL, input="My name is Ann.", instructions="Old instructions.")
    second = await client.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id)
    messages = env.fake.requests(UPSTREAM)[-1].body["messages"]
    # Instructions are not carried over (as with OpenAI); input and output are.
    assert messages == [
        {"role": "user", "content": "My name is Ann."},
        {"role": "assistant", "content": answer_text(UPSTREAM)},
        {"role": "user", "content": "What is my name?"},
    ]
    page = await client.responses.input_items.list(second.id, limit=2)
    assert [item.type for item in page.data] == ["message", "message"] and page.has_more
    assert getattr(page.data[0], "role", None) == "user"  # newest first by default


async def test_retention_sweep_and_expiry(responses_env: ResponsesEnv) -> None:
    env = responses_env
    rid = (await env.create(input="Short-lived.")).json()["id"]
    env.clock.advance(env.gateway.settings.responses.retention_days * 86400 + 1)
    assert (await env.client.get(f"/v1/responses/{rid}", headers=env.auth("ann"))).status_code == 404
    assert await env.store.sweep() == 1
    assert await env.store.sweep() == 0


async def test_bad_requests_are_openai_errors(responses_env: ResponsesEnv) -> None:
    env = responses_env
    cases: list[tuple[dict[str, Any], str | None]] = [
        ({"input": "x", "tools": [{"type": "web_search"}]}, "tools.0"),
        ({"input": [{"type": "computer_call"}]}, "input.0"),
        ({"input": "x", "temperature": 5}, "temperature"),
        ({"input": "x", "background": True}, "background"),
        ({}, "input"),
        ({"input": "x", "text": {"format": {"type": "json_schema"}}}, "text.format"),
    ]
    for body, param in cases:
        answer = await env.create(**body)
        assert answer.status_code == 400, body
        error = _error(answer.json())
        assert error["type"] == "invalid_request_error" and error["param"] == param, (body, error)
    unknown = await env.create(model="no-such-model", input="x")
    assert unknown.status_code == 404
    _error(unknown.json())
    anonymous = await env.client.post("/v1/responses", json={"model": MODEL, "input": "x"})
    assert anonymous.status_code == 401
    _error(anonymous.json())
    with pytest.raises(openai.BadRequestError):
        await env.openai("ann").responses.create(model=MODEL, input="x", tools=[{"type": "web_search"}])


async def test_upstream_failure_mid_stream(responses_env: ResponsesEnv) -> None:
    env = responses_env
    env.fake.script(UPSTREAM, ["stream_error"])
    events = await env.stream_events(input="x")
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-1]["response"]["status"] == "failed"
    assert "test-key" not in json.dumps(events)  # the upstream's quote of its credential is scrubbed


async def test_input_tokens(responses_env: ResponsesEnv) -> None:
    env = responses_env
    small = await env.client.post(
        "/v1/responses/input_tokens", json={"model": MODEL, "input": "hi"}, headers=env.auth("ann")
    )
    large = await env.client.post(
        "/v1/responses/input_tokens",
        json={"model": MODEL, "input": "hi " * 200, "instructions": "Be brief.", "tools": [WEATHER_TOOL]},
        headers=env.auth("ann"),
    )
    assert small.status_code == large.status_code == 200
    validate_response("/responses/input_tokens", "post", small.json())
    assert 0 < small.json()["input_tokens"] < large.json()["input_tokens"]
    assert env.fake.requests() == []  # counted locally: no upstream call
