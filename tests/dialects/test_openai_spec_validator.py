"""The validator every OpenAI-compatibility test relies on catches what it should."""

from __future__ import annotations

import pytest

from tests.support.openai_spec import _allow_null, response_schema_name, validate


def _completion(message: dict[str, object]) -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": message}],
    }


def test_a_complete_answer_passes_and_a_missing_required_field_fails() -> None:
    validate("CreateChatCompletionResponse", _completion({"role": "assistant", "content": "hi", "refusal": None}))
    with pytest.raises(AssertionError, match="refusal"):
        validate("CreateChatCompletionResponse", _completion({"role": "assistant", "content": "hi"}))


def test_openapi_30_nullable_is_read_as_accepting_null() -> None:
    assert _allow_null({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert _allow_null({"type": "string", "enum": ["a"], "nullable": True}) == {
        "type": ["string", "null"],
        "enum": ["a", None],
    }
    assert _allow_null({"$ref": "#/x", "nullable": True}) == {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}


def test_operations_name_their_answer_schema() -> None:
    assert response_schema_name("/chat/completions", "post") == "CreateChatCompletionResponse"
    assert response_schema_name("/moderations", "post") == "CreateModerationResponse"
    with pytest.raises(KeyError):
        validate("NoSuchSchema", {})
