"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/embeddings, /v1/models."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, new_context, upstream_model_header
from bastion.api.http import Answer, CancelOnDisconnect, ClientDisconnected, SSEResponse, json_response, read_json
from bastion.dialects.extension import FIELD, parse_extension
from bastion.dialects.openai import base64_floats, encode_stream, shape_completion
from bastion.dialects.openai_schema import validate_chat_request, validate_embedding_request
from bastion.errors import InvalidRequest, ModelNotFound
from bastion.providers.base import ChatResponse
from bastion.usage import cl100k


async def chat_completions(request: Request) -> Answer:
    gw = gateway(request)
    body = await read_json(request, gw.settings.server.max_body_bytes)
    parsed = validate_chat_request(body)
    ctx = new_context(request, "openai", "chat", body, parsed.model)
    ctx.stream = bool(parsed.stream)
    ctx.include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
    # Bastion's own field never goes upstream.
    ctx.extension = parse_extension(body.pop(FIELD, None))
    try:
        async with CancelOnDisconnect(request.receive):
            result = await gw.pipeline.chat(ctx)
    except ClientDisconnected:
        return Response(status_code=499)
    # Stages' response headers (x-ratelimit-*); error responses carry them on the exception.
    headers = upstream_model_header(ctx)
    if isinstance(result, ChatResponse):
        return json_response(shape_completion(result.body, parsed.model), headers=headers)
    return SSEResponse(encode_stream(result, ctx.include_usage, parsed.model), headers=headers)


def _encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64_floats(vector)
    return vector


def _decode_token_ids(value: Any) -> list[str]:
    """Token-id input (one list of ids, or a list of them) as text: ids are read as OpenAI's
    ``cl100k_base``, the tokenizer of its embedding models that clients tokenize with."""
    rows = value if value and isinstance(value[0], list) else [value]
    try:
        return [cl100k.decode(row) for row in rows]
    except cl100k.UnknownTokenId as exc:
        raise InvalidRequest(
            f"Invalid request: input holds token id {exc.token_id}, which is not a cl100k_base token (token-id "
            "input is read as cl100k_base, the tokenizer of OpenAI's embedding models). Send the input as text.",
            param="input",
        ) from None


async def embeddings(request: Request) -> Response:
    gw = gateway(request)
    body = await read_json(request, gw.settings.server.max_body_bytes)
    parsed = validate_embedding_request(body)
    if isinstance(parsed.input, str):
        inputs = [parsed.input]
    elif all(isinstance(item, str) for item in parsed.input):
        inputs = [item for item in parsed.input if isinstance(item, str)]
    else:
        inputs = _decode_token_ids(parsed.input)
        body["input"] = inputs  # the guard scans, and the upstream embeds, the text the ids stand for
    if any(not text for text in inputs):
        raise InvalidRequest("Invalid request: input must not contain empty strings.", param="input")
    ctx = new_context(request, "openai", "embeddings", body, parsed.model)
    try:
        async with CancelOnDisconnect(request.receive):
            result = await gw.pipeline.embed(ctx)
    except ClientDisconnected:
        return Response(status_code=499)
    encoding = parsed.encoding_format or "float"
    usage = result.usage
    prompt_tokens = usage.prompt_tokens if usage else 0
    return json_response(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _encode_vector(vector, encoding)}
                for i, vector in enumerate(result.vectors)
            ],
            "model": parsed.model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        },
        headers=ctx.response_headers,
    )


def _model_card(name: str, owner: str, created: int) -> dict[str, object]:
    return {"id": name, "object": "model", "created": created, "owned_by": owner}


async def list_models(request: Request) -> Response:
    await authenticate_request(request)  # identity: any valid caller (anonymous while auth is off)
    gw = gateway(request)
    created = int(gw.started_at or time.time())
    data = [
        _model_card(name, group.targets[0].deployment.provider, created) for name, group in gw.router.groups.items()
    ]
    return json_response({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    await authenticate_request(request)  # identity: any valid caller (anonymous while auth is off)
    gw = gateway(request)
    name = request.path_params["model"]
    group = gw.router.groups.get(name)
    if group is None:
        raise ModelNotFound(f"The model {name!r} does not exist.", param="model")
    created = int(gw.started_at or time.time())
    return json_response(_model_card(name, group.targets[0].deployment.provider, created))


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", get_model, methods=["GET"]),
]
