"""A scriptable fake LLM upstream for the gateway's integration tests.

It speaks enough of the OpenAI chat-completions/embeddings API and of the Anthropic Messages API
to be a deployment behind Bastion, and it can misbehave on request. It runs an aiohttp server on
its own event loop in a background thread, so it serves both a gateway subprocess and an
in-process gateway driven from the test's own loop.

Behaviour is scripted per upstream model name (the ``model`` the gateway sends upstream)::

    fake.script("m-retry", ["500", "500", "ok"])   # consumed one per request, in order
    fake.default("m-breaker", "500")               # used whenever the script queue is empty

Behaviour specs (strings, parsed by ``Behaviour.parse``):

==================  =============================================================================
``ok``              a normal answer (streamed when the request asks for a stream)
``ok:<s>``          a normal answer whose first byte comes after ``<s>`` seconds
``<status>``        an error in the dialect's JSON shape with that HTTP status (``500``, ``400``...)
``429:<s>``         429 with ``Retry-After: <s>``
``timeout``         never answers in time (sleeps 60 s; the gateway's read timeout must be shorter)
``malformed``       200 with a ``application/json`` body that is not JSON
``cut``             a stream that sends two content chunks and then drops the connection
``slow_stream``     a stream of 50 chunks, 0.1 s apart (5 s in all), to observe disconnects
``long_stream:<n>`` a stream of ``<n>`` chunks (default 200,000, some 30 MB) sent as fast as the
                    gateway reads them, to observe back-pressure from a client that stops reading
``no_usage``        a normal answer that reports no token usage
``reject_key``      401 whose error message quotes the credential the request carried, as some
                    upstreams do (``Authorization`` bearer value or ``x-api-key``)
``stream_error``    a stream that sends two content chunks and then an error event (OpenAI
                    ``data: {"error": ...}``, Anthropic ``event: error``) quoting that credential
``tools``           (OpenAI dialect) a tool-calling model: while the request's last message is
                    not a tool result, it calls the request's first tool (string arguments
                    ``"test"``, numbers ``1``; streamed as argument fragments); after a tool
                    result it answers ``tool_answer(result)``. Without tools it is ``ok``.
==================  =============================================================================

``Behaviour.error_body(status, body, content_type)`` scripts an error answer with any body (a huge
message, an HTML page).

Every request is recorded (``requests``) with its arrival time; a request whose connection the
gateway closed before the fake finished answering is marked ``disconnected_at`` (aiohttp's
``handler_cancellation`` is on, so a client going away cancels the handler, as it would on a real
upstream that stops generating).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import orjson
from aiohttp import web

from tests.support import fake_responses

Dialect = Literal["openai", "anthropic"]

#: How long ``timeout`` sleeps: far beyond any read timeout the tests configure.
TIMEOUT_SLEEP_S = 60.0
SLOW_STREAM_CHUNKS = 50
SLOW_STREAM_INTERVAL_S = 0.1
LONG_STREAM_CHUNKS = 200_000


Kind = Literal[
    "ok", "error", "timeout", "malformed", "cut", "slow_stream", "long_stream", "reject_key", "stream_error", "tools"
]
#: Behaviours whose spec is their kind alone, without an argument.
_PLAIN_KINDS: tuple[Kind, ...] = ("timeout", "malformed", "cut", "slow_stream", "reject_key", "stream_error", "tools")


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One scripted answer. Build it from a spec string with ``parse``."""

    kind: Kind = "ok"
    status: int = 200
    retry_after: str | None = None
    delay_s: float = 0.0
    usage: bool = True
    chunks: int = 0
    spec: str = "ok"
    #: For ``error``: the whole body to answer with instead of the dialect's error JSON.
    body: bytes | None = None
    content_type: str = "application/json"

    @classmethod
    def error_body(
        cls, status: int, body: bytes, content_type: str = "application/json", retry_after: str | None = None
    ) -> Behaviour:
        return cls(
            "error", status=status, retry_after=retry_after, body=body, content_type=content_type, spec=f"{status}:body"
        )

    @classmethod
    def parse(cls, spec: str | Behaviour) -> Behaviour:
        if isinstance(spec, Behaviour):
            return spec
        name, _, arg = spec.partition(":")
        if name == "ok":
            return cls("ok", delay_s=float(arg) if arg else 0.0, spec=spec)
        if name == "long_stream":
            return cls("long_stream", chunks=int(arg) if arg else LONG_STREAM_CHUNKS, spec=spec)
        if name == "no_usage":
            return cls("ok", usage=False, spec=spec)
        plain = next((kind for kind in _PLAIN_KINDS if kind == name), None)
        if plain is not None:
            return cls(plain, spec=spec)
        if name.isdigit():
            return cls("error", status=int(name), retry_after=arg or None, spec=spec)
        raise ValueError(f"unknown fake-upstream behaviour {spec!r}")


@dataclass(slots=True)
class Received:
    """One request as the fake saw it."""

    model: str
    dialect: Dialect
    path: str
    body: Any
    stream: bool
    behaviour: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)
    disconnected_at: float | None = None
    finished_at: float | None = None


class FakeUpstream:
    """The fake server. Use ``start()``/``stop()`` or as a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Behaviour]] = defaultdict(deque)
        self._defaults: dict[str, Behaviour] = {}
        self._received: list[Received] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """Root URL (Anthropic-style api_base; the OpenAI-style one is ``openai_base``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base(self) -> str:
        return self.base_url + "/v1"

    def start(self) -> Self:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fake-upstream", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for path in ("/v1/chat/completions", "/chat/completions"):
            app.router.add_post(path, self._chat)
        for path in ("/v1/embeddings", "/embeddings"):
            app.router.add_post(path, self._embeddings)
        for path in ("/v1/messages", "/messages"):
            app.router.add_post(path, self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/responses/input_tokens", self._input_tokens)
        # handler_cancellation: a client that disconnects cancels the handler, which is how the
        # fake observes that the gateway gave up on (cancelled) the upstream call.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        (address, *_) = self._runner.addresses
        self.port = int(address[1])

    # -- scripting and inspection (called from the test thread) -------------------------------

    def script(self, model: str, behaviours: Iterable[str | Behaviour]) -> None:
        """Queue behaviours for the next requests naming ``model`` (one each, in order)."""
        with self._lock:
            self._scripts[model].extend(Behaviour.parse(b) for b in behaviours)

    def default(self, model: str, behaviour: str | Behaviour) -> None:
        """What ``model`` does once its script is used up (``ok`` unless set)."""
        with self._lock:
            self._defaults[model] = Behaviour.parse(behaviour)

    def reset(self) -> None:
        """Forget scripts, defaults and recorded requests (tests start from a clean fake)."""
        with self._lock:
            self._scripts.clear()
            self._defaults.clear()
            self._received.clear()

    def requests(self, model: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if model is None or r.model == model]

    def attempts(self, model: str) -> int:
        return len(self.requests(model))

    def disconnects(self, model: str | None = None) -> list[Received]:
        return [r for r in self.requests(model) if r.disconnected_at is not None]

    def _next(self, model: str) -> Behaviour:
        with self._lock:
            queue = self._scripts.get(model)
            if queue:
                return queue.popleft()
            return self._defaults.get(model, Behaviour())

    def _record(self, request: web.Request, dialect: Dialect, body: Any, behaviour: Behaviour) -> Received:
        model = str(body.get("model")) if isinstance(body, dict) else "?"
        stream = bool(body.get("stream")) if isinstance(body, dict) else False
        entry = Received(
            model=model,
            dialect=dialect,
            path=request.path,
            body=body,
            stream=stream,
            behaviour=behaviour.spec,
            headers=dict(request.headers),
        )
        with self._lock:
            self._received.append(entry)
        return entry

    # -- handlers -------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "openai")

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "anthropic")

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's token counter: ``fake_token_count`` of the body (an ``<status>`` behaviour
        answers with that error instead)."""
        body = orjson.loads(await request.read())
        behaviour = self._next(str(body.get("model")))
        self._record(request, "anthropic", body, behaviour)
        if behaviour.kind == "error":
            return _error("anthropic", behaviour.status, "fake upstream count error")
        return _json({"input_tokens": fake_token_count(body)})

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's Responses API (``fake_responses``): ``ok``/``no_usage`` answer, ``reject_key``
        and ``<status>`` fail as on chat completions."""
        body = orjson.loads(await request.read())
        behaviour = self._next(str(body.get("model")))
        entry = self._record(request, "openai", body, behaviour)
        if behaviour.kind == "error":
            return _error("openai", behaviour.status, f"fake upstream error {behaviour.status}")
        if behaviour.kind == "reject_key":
            return _error("openai", 401, f"Incorrect API key provided: {presented_key(entry)}. Check your key.")
        parts = _split_words(answer_text(entry.model))
        if entry.stream:
            return await self._write_events(request, fake_responses.response_events(body, parts))
        return _json(fake_responses.response_object(body, parts))

    async def _input_tokens(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        behaviour = self._next(str(body.get("model")))
        self._record(request, "openai", body, behaviour)
        if behaviour.kind == "error":
            return _error("openai", behaviour.status, "fake upstream count error")
        return _json({"object": "response.input_tokens", "input_tokens": fake_responses.fake_input_tokens(body)})

    async def _handle(self, request: web.Request, dialect: Dialect) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(dialect, 400, "fake upstream: body is not JSON")
        model = str(body.get("model")) if isinstance(body, dict) else "?"
        behaviour = self._next(model)
        entry = self._record(request, dialect, body, behaviour)
        try:
            response = await self._respond(request, dialect, entry, behaviour)
        except (asyncio.CancelledError, ConnectionResetError):
            # The gateway closed the connection: the handler was cancelled (or a write failed).
            entry.disconnected_at = time.monotonic()
            raise
        entry.finished_at = time.monotonic()
        return response

    async def _respond(
        self, request: web.Request, dialect: Dialect, entry: Received, behaviour: Behaviour
    ) -> web.StreamResponse:
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        if behaviour.kind == "timeout":
            await asyncio.sleep(TIMEOUT_SLEEP_S)
        if behaviour.kind == "error":
            headers = {"retry-after": behaviour.retry_after} if behaviour.retry_after else {}
            if behaviour.body is not None:
                return web.Response(
                    body=behaviour.body, status=behaviour.status, headers=headers, content_type=behaviour.content_type
                )
            return _error(dialect, behaviour.status, f"fake upstream error {behaviour.status}", headers)
        if behaviour.kind == "reject_key":
            return _error(dialect, 401, f"Incorrect API key provided: {presented_key(entry)}. Check your key.")
        if behaviour.kind == "malformed":
            return web.Response(body=b'{"id": "chatcmpl-broken", "choices": [', content_type="application/json")
        if behaviour.kind == "tools" and dialect == "openai":
            call = tool_call_for(entry.body)
            if call is not None:
                if entry.stream:
                    return await self._write_events(request, _openai_tool_call_events(entry, call))
                return _json(_openai_tool_call_completion(entry, call))
        text_parts = _answer_parts(entry.model, behaviour)
        if behaviour.kind == "tools" and isinstance(entry.body, dict) and entry.body.get("messages"):
            last = entry.body["messages"][-1]
            if last.get("role") == "tool":
                text_parts = _split_words(tool_answer(str(last.get("content"))))
        if entry.stream or behaviour.kind in ("cut", "slow_stream", "long_stream", "stream_error"):
            return await self._stream(request, dialect, entry, behaviour, text_parts)
        if dialect == "anthropic":
            return _json(_anthropic_message(entry, text_parts, behaviour.usage))
        return _json(_openai_completion(entry, text_parts, behaviour.usage))

    async def _stream(
        self,
        request: web.Request,
        dialect: Dialect,
        entry: Received,
        behaviour: Behaviour,
        parts: list[str],
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await response.prepare(request)
        encode = _anthropic_events if dialect == "anthropic" else _openai_events
        cut_after = 2 if behaviour.kind in ("cut", "stream_error") else None
        interval = SLOW_STREAM_INTERVAL_S if behaviour.kind == "slow_stream" else 0.0
        sent_content = 0
        for kind, event in encode(entry, parts, behaviour.usage):
            if kind == "content":
                if cut_after is not None and sent_content == cut_after:
                    if behaviour.kind == "stream_error":
                        message = f"Internal error; request was sent with key {presented_key(entry)}"
                        await response.write(_error_event(dialect, message))
                        await response.write_eof()
                        return response
                    # Drop the connection mid-stream without the chunked-encoding terminator.
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                if interval and sent_content:
                    await asyncio.sleep(interval)
                sent_content += 1
            await response.write(event)
        await response.write_eof()
        return response

    async def _write_events(self, request: web.Request, events: Iterable[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await response.prepare(request)
        for event in events:
            await response.write(event)
        await response.write_eof()
        return response

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        behaviour = self._next(str(body.get("model")))
        entry = self._record(request, "openai", body, behaviour)
        if behaviour.kind == "error":
            return _error("openai", behaviour.status, "fake upstream embeddings error")
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(str(text))} for i, text in enumerate(inputs)
        ]
        tokens = sum(len(str(text).split()) for text in inputs)
        entry.finished_at = time.monotonic()
        return _json(
            {
                "object": "list",
                "data": data,
                "model": entry.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


# -- payloads --------------------------------------------------------------------------------------


def fake_vector(text: str, dims: int = 8) -> list[float]:
    """A deterministic small vector for ``text`` (tests can recompute it)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((b - 128) / 128.0, 6) for b in digest[:dims]]


def answer_text(model: str) -> str:
    """The text the fake answers ``ok`` requests for ``model`` with."""
    return f"Hello from {model}."


def tool_answer(result: str) -> str:
    """What the ``tools`` behaviour answers once it has a tool's result."""
    return f"The tool said: {result}"


def tool_call_for(body: Any) -> dict[str, Any] | None:
    """The call the ``tools`` behaviour makes (None: it answers in text): the first tool, with
    arguments filled from its JSON schema, unless the last message is already a tool result."""
    if not isinstance(body, dict) or not body.get("tools"):
        return None
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return None
    function = body["tools"][0].get("function") or {}
    properties = (function.get("parameters") or {}).get("properties") or {}
    arguments = {name: 1 if spec.get("type") in ("integer", "number") else "test" for name, spec in properties.items()}
    return {
        "id": "call_" + uuid.uuid4().hex[:12],
        "type": "function",
        "function": {"name": function.get("name", ""), "arguments": orjson.dumps(arguments).decode()},
    }


def _openai_tool_call_completion(entry: Received, call: dict[str, Any]) -> dict[str, Any]:
    body = _openai_completion(entry, [], with_usage=True)
    body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    body["choices"][0]["finish_reason"] = "tool_calls"
    return body


def _openai_tool_call_events(entry: Received, call: dict[str, Any]) -> Iterable[bytes]:
    cid = "chatcmpl-" + uuid.uuid4().hex[:12]

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        payload = {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": entry.model, "choices": choices}
        return b"data: " + orjson.dumps({**payload, **extra}) + b"\n\n"

    arguments = call["function"]["arguments"]
    half = len(arguments) // 2
    head = {
        "index": 0,
        "id": call["id"],
        "type": "function",
        "function": {"name": call["function"]["name"], "arguments": ""},
    }
    yield chunk(
        [{"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [head]}, "finish_reason": None}]
    )
    for piece in (arguments[:half], arguments[half:]):
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        yield chunk([{"index": 0, "delta": delta, "finish_reason": None}])
    yield chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
    options = entry.body.get("stream_options") if isinstance(entry.body, dict) else None
    if isinstance(options, dict) and options.get("include_usage"):
        prompt_tokens = _prompt_tokens(entry)
        yield chunk(
            [], usage={"prompt_tokens": prompt_tokens, "completion_tokens": 3, "total_tokens": prompt_tokens + 3}
        )
    yield b"data: [DONE]\n\n"


def fake_token_count(body: dict[str, Any]) -> int:
    """What the fake's token counter answers: recognisably not an estimate of Bastion's."""
    return 1000 + 10 * len(body.get("messages") or []) + 100 * len(body.get("tools") or []) + bool(body.get("system"))


def _answer_parts(model: str, behaviour: Behaviour) -> list[str]:
    if behaviour.kind == "slow_stream":
        return [f"tick{i} " for i in range(SLOW_STREAM_CHUNKS)]
    if behaviour.kind == "long_stream":
        return [f"word{i} " for i in range(behaviour.chunks)]
    return _split_words(answer_text(model))


def _split_words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]


def _prompt_tokens(entry: Received) -> int:
    messages = entry.body.get("messages") if isinstance(entry.body, dict) else None
    return 3 + 4 * len(messages or [])


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, headers=headers, content_type="application/json")


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error(dialect: Dialect, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    if dialect == "anthropic":
        payload: dict[str, Any] = {
            "type": "error",
            "error": {"type": _ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message},
        }
    else:
        kind = "invalid_request_error" if status < 500 else "server_error"
        payload = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return _json(payload, status=status, headers=headers)


def presented_key(entry: Received) -> str:
    """The credential a request carried: the bearer value, or Anthropic's ``x-api-key``."""
    headers = {name.lower(): value for name, value in entry.headers.items()}
    return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


def _error_event(dialect: Dialect, message: str) -> bytes:
    """An error reported inside an event stream, after a 200 and some content."""
    if dialect == "anthropic":
        payload = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
    return b"data: " + orjson.dumps({"error": {"message": message, "type": "server_error"}}) + b"\n\n"


def _openai_completion(entry: Received, parts: list[str], with_usage: bool) -> dict[str, Any]:
    completion_tokens = len(parts)
    prompt_tokens = _prompt_tokens(entry)
    body: dict[str, Any] = {
        "id": "chatcmpl-" + uuid.uuid4().hex[:12],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": entry.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(parts)},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
    }
    if with_usage:
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return body


def _openai_events(entry: Received, parts: list[str], with_usage: bool) -> Iterable[tuple[str, bytes]]:
    """(kind, bytes) pairs: kind is "content" for the events that carry answer text."""
    cid = "chatcmpl-" + uuid.uuid4().hex[:12]
    created = int(time.time())

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        payload = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": entry.model,
            "choices": choices,
            **extra,
        }
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    yield "meta", chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for part in parts:
        yield "content", chunk([{"index": 0, "delta": {"content": part}, "finish_reason": None}])
    yield "meta", chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    options = entry.body.get("stream_options") if isinstance(entry.body, dict) else None
    if with_usage and isinstance(options, dict) and options.get("include_usage"):
        prompt_tokens = _prompt_tokens(entry)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(parts),
            "total_tokens": prompt_tokens + len(parts),
        }
        yield "meta", chunk([], usage=usage)
    yield "meta", b"data: [DONE]\n\n"


def _anthropic_message(entry: Received, parts: list[str], with_usage: bool) -> dict[str, Any]:
    return {
        "id": "msg_" + uuid.uuid4().hex[:12],
        "type": "message",
        "role": "assistant",
        "model": entry.model,
        "content": [{"type": "text", "text": "".join(parts)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": _prompt_tokens(entry) if with_usage else 0,
            "output_tokens": len(parts) if with_usage else 0,
        },
    }


def _anthropic_events(entry: Received, parts: list[str], with_usage: bool) -> Iterable[tuple[str, bytes]]:
    def event(name: str, payload: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    message = {**_anthropic_message(entry, [], with_usage), "content": [], "stop_reason": None}
    message["usage"] = {"input_tokens": _prompt_tokens(entry) if with_usage else 0, "output_tokens": 1}
    yield "meta", event("message_start", {"type": "message_start", "message": message})
    yield (
        "meta",
        event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    )
    yield "meta", event("ping", {"type": "ping"})
    for part in parts:
        yield (
            "content",
            event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}},
            ),
        )
    yield "meta", event("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield (
        "meta",
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(parts) if with_usage else 0},
            },
        ),
    )
    yield "meta", event("message_stop", {"type": "message_stop"})
