"""The JSON model over the embedded engine builds the engine's request (no model loaded here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bastion.agents.budget import Usage
from bastion.agents.local_json_model import LocalJsonModel
from bastion.local.chat_engine import GenerationRequest, GenerationResult


@dataclass
class FakeEngine:
    requests: list[GenerationRequest] = field(default_factory=list)

    async def complete(self, request: GenerationRequest) -> GenerationResult:
        self.requests.append(request)
        return GenerationResult("stop", prompt_tokens=30, completion_tokens=5, text='{"a": 1}')


async def test_the_schema_becomes_a_json_schema_response_format() -> None:
    engine = FakeEngine()
    model = LocalJsonModel(engine, max_tokens_cap=16)
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "fill"},
        {"role": "user", "content": [{"type": "text", "text": "one "}, {"type": "text", "text": "two"}]},
    ]
    text, usage = await model.complete_json(messages, schema, max_tokens=64, seed=7)
    assert (text, usage) == ('{"a": 1}', Usage(tokens=35))
    request = engine.requests[0]
    assert request.messages == [{"role": "system", "content": "fill"}, {"role": "user", "content": "one two"}]
    assert request.response_format == {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    assert (request.max_tokens, request.seed, request.temperature) == (16, 7, 0.0)
    await LocalJsonModel(engine).complete_json(messages, schema, max_tokens=64)
    assert engine.requests[1].max_tokens == 64  # no cap: the caller's budget
