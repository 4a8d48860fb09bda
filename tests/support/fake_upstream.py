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
``prompt_cache``    a normal answer whose usage reports prompt caching as the upstream would
                    (``fake_cache.py``: Anthropic's cache_control prefixes, OpenAI's cached_tokens;
                    tokens are words)
``tools``           (OpenAI dialect) a tool-calling model: while the request's last message is
                    not a tool result, it calls the request's first tool (string arguments
                    ``"test"``, numbers ``1``; streamed as argument fragments); after a tool
                    result it answers ``tool_answer(result)``. Without tools it is ``ok``.
==================  =============================================================================

``Behaviour.replying(fn)`` answers with ``fn(request body)`` (a scripted model whose answer depends on
what it was asked: one that repeats its system prompt, one that always refuses).

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
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Self

import orjson
from aiohttp import web

from tests.support import fake_responses
from tests.support.fake_cache import PromptCache
from tests.support.fake_wire import (  # the values tests compare against are re-exported
    Dialect,
    Received,
    answer_text,
    anthropic_events,
    anthropic_message,
    error_event,
    error_response,
    fake_token_count,
    fake_vector,
    json_response,
    openai_completion,
    openai_events,
    openai_tool_call_completion,
    openai_tool_call_events,
    presented_key,
    split_words,
    tool_answer,
    tool_call_for,
)

__all__ = [
    "LONG_STREAM_CHUNKS",
    "SLOW_STREAM_CHUNKS",
    "SLOW_STREAM_INTERVAL_S",
    "Behaviour",
    "FakeUpstream",
    "Received",
    "answer_text",
    "fake_token_count",
    "fake_vector",
    "tool_answer",
    "tool_call_for",
]

#: How long ``timeout`` sleeps: far beyond any read timeout the tests configure.
TIMEOUT_SLEEP_S = 60.0
SLOW_STREAM_CHUNKS = 50
SLOW_STREAM_INTERVAL_S = 0.1
LONG_STREAM_CHUNKS = 200_000


Kind = Literal[
    "ok",
    "error",
    "timeout",
    "malformed",
    "cut",
    "slow_stream",
    "long_stream",
    "reject_key",
    "stream_error",
    "tools",
    "prompt_cache",
]
#: Behaviours whose spec is their kind alone, without an argument.
_PLAIN_KINDS: tuple[Kind, ...] = (
    "timeout",
    "malformed",
    "cut",
    "slow_stream",
    "reject_key",
    "stream_error",
    "tools",
    "prompt_cache",
)


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
    #: For ``ok``: the answer's text computed from the request body.
    reply: Callable[[dict[str, Any]], str] | None = None

    @classmethod
    def replying(cls, reply: Callable[[dict[str, Any]], str]) -> Behaviour:
        return cls("ok", reply=reply, spec="ok:reply")

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
        self.prompt_cache = PromptCache()

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
        self.prompt_cache.reset()

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
            return error_response("anthropic", behaviour.status, "fake upstream count error")
        return json_response({"input_tokens": fake_token_count(body)})

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's Responses API (``fake_responses``): ``ok``/``no_usage`` answer, ``reject_key``
        and ``<status>`` fail as on chat completions."""
        body = orjson.loads(await request.read())
        behaviour = self._next(str(body.get("model")))
        entry = self._record(request, "openai", body, behaviour)
        if behaviour.kind == "error":
            return error_response("openai", behaviour.status, f"fake upstream error {behaviour.status}")
        if behaviour.kind == "reject_key":
            return error_response("openai", 401, f"Incorrect API key provided: {presented_key(entry)}. Check your key.")
        parts = split_words(answer_text(entry.model))
        if entry.stream:
            return await self._write_events(request, fake_responses.response_events(body, parts))
        return json_response(fake_responses.response_object(body, parts))

    async def _input_tokens(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        behaviour = self._next(str(body.get("model")))
        self._record(request, "openai", body, behaviour)
        if behaviour.kind == "error":
            return error_response("openai", behaviour.status, "fake upstream count error")
        return json_response(
            {"object": "response.input_tokens", "input_tokens": fake_responses.fake_input_tokens(body)}
        )

    async def _handle(self, request: web.Request, dialect: Dialect) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return error_response(dialect, 400, "fake upstream: body is not JSON")
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
            return error_response(dialect, behaviour.status, f"fake upstream error {behaviour.status}", headers)
        if behaviour.kind == "reject_key":
            return error_response(dialect, 401, f"Incorrect API key provided: {presented_key(entry)}. Check your key.")
        if behaviour.kind == "malformed":
            return web.Response(body=b'{"id": "chatcmpl-broken", "choices": [', content_type="application/json")
        if behaviour.kind == "tools" and dialect == "openai":
            call = tool_call_for(entry.body)
            if call is not None:
                if entry.stream:
                    return await self._write_events(request, openai_tool_call_events(entry, call))
                return json_response(openai_tool_call_completion(entry, call))
        text_parts = _answer_parts(entry.model, behaviour)
        if behaviour.reply is not None and isinstance(entry.body, dict):
            text_parts = split_words(behaviour.reply(entry.body))
        if behaviour.kind == "prompt_cache" and isinstance(entry.body, dict):
            cache = self.prompt_cache
            if dialect == "anthropic":
                entry.usage = cache.anthropic_usage(entry.body)
            else:
                entry.usage = cache.openai_usage(entry.body, len(text_parts))
        if behaviour.kind == "tools" and isinstance(entry.body, dict) and entry.body.get("messages"):
            last = entry.body["messages"][-1]
            if last.get("role") == "tool":
                text_parts = split_words(tool_answer(str(last.get("content"))))
        if entry.stream or behaviour.kind in ("cut", "slow_stream", "long_stream", "stream_error"):
            return await self._stream(request, dialect, entry, behaviour, text_parts)
        if dialect == "anthropic":
            return json_response(anthropic_message(entry, text_parts, behaviour.usage))
        return json_response(openai_completion(entry, text_parts, behaviour.usage))

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
        encode = anthropic_events if dialect == "anthropic" else openai_events
        cut_after = 2 if behaviour.kind in ("cut", "stream_error") else None
        interval = SLOW_STREAM_INTERVAL_S if behaviour.kind == "slow_stream" else 0.0
        sent_content = 0
        for kind, event in encode(entry, parts, behaviour.usage):
            if kind == "content":
                if cut_after is not None and sent_content == cut_after:
                    if behaviour.kind == "stream_error":
                        message = f"Internal error; request was sent with key {presented_key(entry)}"
                        await response.write(error_event(dialect, message))
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
            return error_response("openai", behaviour.status, "fake upstream embeddings error")
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(str(text))} for i, text in enumerate(inputs)
        ]
        tokens = sum(len(str(text).split()) for text in inputs)
        entry.finished_at = time.monotonic()
        return json_response(
            {
                "object": "list",
                "data": data,
                "model": entry.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


# -- payloads --------------------------------------------------------------------------------------


def _answer_parts(model: str, behaviour: Behaviour) -> list[str]:
    if behaviour.kind == "slow_stream":
        return [f"tick{i} " for i in range(SLOW_STREAM_CHUNKS)]
    if behaviour.kind == "long_stream":
        return [f"word{i} " for i in range(behaviour.chunks)]
    return split_words(answer_text(model))
