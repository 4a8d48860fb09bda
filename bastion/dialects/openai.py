"""OpenAI dialect output: chat completions as JSON and as ``data:`` server-sent events, and
embeddings in the ``base64`` encoding.

Every chat answer leaves through ``shape_completion`` / ``shape_chunk`` whatever produced it (an
OpenAI-compatible upstream, the Anthropic or local provider, the output guard), so the fields the
official schema requires are always there: upstreams such as vLLM and Ollama omit
``message.refusal`` and ``logprobs``. They also apply the one rule for the ``model`` field: the
name the client asked for (see docs/API.md, "The model field"); the upstream's own model name
goes in the ``x-bastion-upstream-model`` header and the ledger.
"""

from __future__ import annotations

import array
import base64
import sys
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import orjson

from bastion.dialects.errors import openai_error
from bastion.errors import BastionError
from bastion.providers.anthropic_common import STOP_SEQUENCE
from bastion.providers.base import ChunkStream, EmbeddingResponse

DONE = b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def error_event(error: BastionError) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}``, the spec's full error shape: the OpenAI
    SDKs raise APIError when a data event carries an "error" object."""
    return sse(openai_error(error))


def shape_completion(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A ``chat.completion`` as the spec requires it, named ``model``; the input is not changed."""
    choices = []
    for choice in body.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        message = dict(message) if isinstance(message, dict) else {"role": "assistant"}
        message.setdefault("role", "assistant")
        message.setdefault("content", None)
        message.setdefault("refusal", None)
        shaped = {"logprobs": None, **choice, "message": message}
        shaped.pop(STOP_SEQUENCE, None)
        choices.append(shaped)
    return {**body, "object": "chat.completion", "model": model, "choices": choices}


def shape_chunk(chunk: dict[str, Any], model: str) -> dict[str, Any]:
    """A ``chat.completion.chunk`` named ``model``; the delta that opens a choice (the one with
    its ``role``) carries ``refusal: null`` as OpenAI's do, and Bastion's internal keys go.
    Changes ``chunk`` in place."""
    chunk["model"] = model
    for choice in chunk.get("choices") or ():
        if isinstance(choice, dict):
            delta = choice.get("delta")
            if isinstance(delta, dict) and "role" in delta and "refusal" not in delta:
                delta["refusal"] = None
            if choice.get("finish_reason"):
                choice.pop(STOP_SEQUENCE, None)
    return chunk


async def encode_stream(chunks: ChunkStream, include_usage: bool, model: str) -> AsyncGenerator[bytes, None]:
    """Encode chunks as OpenAI SSE, each named ``model``; usage goes out only if the client
    asked for it."""
    try:
        async for chunk in chunks:
            chunk = shape_chunk(chunk, model)
            if "usage" in chunk and chunk["usage"] is not None:
                if not include_usage:
                    if not chunk.get("choices"):
                        continue
                    chunk = {k: v for k, v in chunk.items() if k != "usage"}
            elif include_usage:
                # OpenAI sends "usage": null on every chunk but the last when usage is requested.
                chunk = {**chunk, "usage": None}
            yield sse(chunk)
    except BastionError as exc:
        yield error_event(exc)
        return
    finally:
        await chunks.aclose()
    yield DONE


def base64_floats(vector: Sequence[float]) -> str:
    """An embedding in OpenAI's ``encoding_format: base64``: little-endian float32, as the SDKs
    decode it. (The standard library's array, not numpy: numpy costs a worker ~15 MB.)"""
    floats = array.array("f", vector)
    if sys.byteorder == "big":
        floats.byteswap()
    return base64.b64encode(floats.tobytes()).decode("ascii")


def embeddings_body(result: EmbeddingResponse, model: str, encoding_format: str | None) -> dict[str, Any]:
    """An embeddings answer (``object: list``), vectors as floats or base64 as asked."""
    prompt_tokens = result.usage.prompt_tokens if result.usage else 0
    base64_wanted = encoding_format == "base64"
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": base64_floats(vector) if base64_wanted else vector}
            for i, vector in enumerate(result.vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
