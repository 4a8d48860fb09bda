"""OpenAI dialect output: chat completions as JSON and as ``data:`` server-sent events, and
embeddings in the ``base64`` encoding."""

from __future__ import annotations

import array
import base64
import sys
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import orjson

from bastion.dialects.errors import openai_error
from bastion.errors import BastionError
from bastion.providers.base import ChunkStream

DONE = b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def error_event(error: BastionError) -> bytes:
    # The OpenAI SDKs raise APIError when a data event carries an "error" object.
    return sse(openai_error(error))


async def encode_stream(chunks: ChunkStream, include_usage: bool) -> AsyncGenerator[bytes, None]:
    """Encode chunks as OpenAI SSE; usage goes out only if the client asked for it."""
    try:
        async for chunk in chunks:
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
