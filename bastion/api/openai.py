"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/embeddings, /v1/models."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, new_context, upstream_model_header
from bastion.api.http import Answer, CancelOnDisconnect, ClientDisconnected, SSEResponse, json_response, read_json
from bastion.dialects.extension import FIELD, parse_extension
from bastion.dialects.openai import embeddings_body, encode_stream, shape_completion
from bastion.dialects.openai_schema import validate_chat_request, validate_embedding_request
from bastion.errors import ModelNotFound
from bastion.gateway.embedding_input import embedding_texts
from bastion.providers.base import ChatResponse


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


async def embeddings(request: Request) -> Response:
    gw = gateway(request)
    body = await read_json(request, gw.settings.server.max_body_bytes)
    parsed = validate_embedding_request(body)
    embedding_texts(parsed, body)
    ctx = new_context(request, "openai", "embeddings", body, parsed.model)
    try:
        async with CancelOnDisconnect(request.receive):
            result = await gw.pipeline.embed(ctx)
    except ClientDisconnected:
        return Response(status_code=499)
    return json_response(embeddings_body(result, parsed.model, parsed.encoding_format), headers=ctx.response_headers)


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
