"""The embedded local models as a provider: ``smollm2`` (chat) and ``minilm`` (embeddings).

Answers are shaped exactly like OpenAI's (``chat.completion`` / ``chat.completion.chunk``, a role
chunk first, a ``finish_reason`` chunk, then a usage-only chunk with ``choices: []``), so the rest of
the gateway cannot tell the local model from a remote one.

``tools`` are refused with a 400 before the call reaches this provider (the model cannot call tools
reliably), unless the deployment says ``tools: ignore`` (``Provider.admit``). ``logprobs`` and
``top_logprobs`` are served from the model's own distribution. What else the 135M-parameter model
cannot do is accepted and ignored, so clients written for bigger models keep working:
``logit_bias``, images in content parts, ``user``, ``metadata`` and ``store``. One choice per call:
``n > 1`` is served by several calls (``providers.fanout``). Tool results in the conversation are
shown to the model as user text (``Tool result (name): ...``) and earlier tool calls as assistant
text.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import structlog

from bastion.config.settings import LocalModelSettings
from bastion.errors import InvalidRequest
from bastion.local.chat_engine import (
    ChatEngine,
    GenerationRequest,
    GenerationResult,
    TokenLogprobs,
    get_chat_engine,
)
from bastion.local.embedder import DIMENSIONS, Embedder, get_embedder
from bastion.providers.anthropic_common import STOP_SEQUENCE
from bastion.providers.base import (
    ChatRequest,
    ChatResponse,
    ChunkStream,
    Deployment,
    EmbeddingResponse,
    Provider,
    Usage,
)

log = structlog.get_logger("bastion.local")

CHAT_MODEL = "smollm2"
EMBEDDING_MODEL = "minilm"
SYSTEM_FINGERPRINT = "fp_local_smollm2_q4_1"
_TEXT_PARTS = ("text", "input_text", "output_text")
#: OpenAI's bound on ``top_logprobs``.
MAX_TOP_LOGPROBS = 20


class LocalProvider(Provider):
    def __init__(self, deployment: Deployment) -> None:
        super().__init__(deployment)
        settings = deployment.extra.get("local")
        self.settings = settings if isinstance(settings, LocalModelSettings) else LocalModelSettings()
        if deployment.model not in (CHAT_MODEL, EMBEDDING_MODEL):
            raise ValueError(
                f"deployment {deployment.id}: the local provider serves {CHAT_MODEL!r} and "
                f"{EMBEDDING_MODEL!r}, not {deployment.model!r}"
            )
        # Engines are process-wide: chat and embedding deployments (and tests) share one model each.
        self.engine: ChatEngine | None = get_chat_engine(self.settings) if deployment.model == CHAT_MODEL else None
        self.embedder: Embedder | None = get_embedder(self.settings) if deployment.model == EMBEDDING_MODEL else None
        self._warming: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin loading in the background: start-up is not delayed and the loop never blocks.
        A request that arrives before the model is ready waits for the same load. A deployment
        with ``preload: false`` loads on its first request instead: until then the process has
        not imported llama.cpp or torch (hundreds of MB)."""
        if self.deployment.settings.preload:
            self._warming = asyncio.create_task(self._warm_logged(), name=f"warm-{self.deployment.id}")

    async def _loaded(self) -> None:
        """Before each call: the first one of a deployment that was not preloaded starts the same
        logged load a preload would, and every call waits for it to end. (A load that failed is
        then reported by the engine itself, as a 503 with the reason.)"""
        warming = self._warming
        if warming is None:
            warming = self._warming = asyncio.create_task(self._warm_logged(), name=f"warm-{self.deployment.id}")
        if not warming.done():
            await asyncio.shield(warming)  # a caller that gives up does not cancel the load

    async def warm(self) -> None:
        """Load the model now (in a thread); raises ``UpstreamUnavailable`` if it cannot be loaded."""
        if self.engine is not None:
            await self.engine.warm()
        if self.embedder is not None:
            await self.embedder.warm()

    async def _warm_logged(self) -> None:
        started = time.perf_counter()
        try:
            await self.warm()
        except Exception as exc:
            # Not fatal: the gateway serves other models; calls here answer 503 with the reason.
            log.warning("local_model_unavailable", deployment=self.deployment.id, error=str(exc))
        else:
            seconds = round(time.perf_counter() - started, 3)
            log.info("local_model_loaded", deployment=self.deployment.id, seconds=seconds)

    async def aclose(self) -> None:
        if self._warming is not None and not self._warming.done():
            self._warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warming
        self._warming = None

    async def check_ready(self) -> bool:
        if self.engine is not None:
            return self.engine.loaded or self.engine.loadable()
        assert self.embedder is not None
        return self.embedder.loaded or self.embedder.loadable()

    # -- chat -------------------------------------------------------------------------------------

    def _chat_engine(self) -> ChatEngine:
        if self.engine is None:
            raise InvalidRequest(f"model {self.deployment.alias!r} does not support chat completions", param="model")
        return self.engine

    async def chat(self, request: ChatRequest) -> ChatResponse:
        engine = self._chat_engine()
        await self._loaded()
        generation = to_generation_request(request.body, text_completion=request.text_completion)
        total = self.deployment.timeouts.total_s
        coro = engine.complete(generation)
        # A timeout or a cancelled caller cancels the await, which stops the worker thread.
        result = await (asyncio.wait_for(coro, total) if total else coro)
        usage = Usage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
        body = {
            "id": _completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.deployment.alias,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text, "refusal": None},
                    "logprobs": _choice_logprobs(result.logprobs),
                    "finish_reason": result.finish_reason,
                    **_stopped_on(result),
                }
            ],
            "usage": usage.to_openai(),
        }
        return ChatResponse(body=body, usage=usage)

    async def stream_chat(self, request: ChatRequest) -> ChunkStream:
        engine = self._chat_engine()
        await self._loaded()
        generation = to_generation_request(request.body, text_completion=request.text_completion)
        head = {
            "id": _completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.deployment.alias,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**head, "choices": [choice]}

        items = engine.stream(generation)
        try:
            # Errors (queue full, prompt too long) surface here, before anything was sent, so the
            # router can still retry or answer with the right status. The role chunk goes out with
            # the first token, as OpenAI's does.
            first = await items.__anext__()
            yield chunk({"role": "assistant", "content": "", "refusal": None})
            item: str | TokenLogprobs | GenerationResult = first
            logprobs: list[dict[str, Any]] | None = None
            while not isinstance(item, GenerationResult):
                if isinstance(item, TokenLogprobs):
                    logprobs = item.entries
                else:
                    content = chunk({"content": item})
                    content["choices"][0]["logprobs"] = _choice_logprobs(logprobs)
                    logprobs = None
                    yield content
                item = await items.__anext__()
            end = chunk({}, item.finish_reason)
            end["choices"][0].update(_stopped_on(item))
            yield end
            usage = Usage(prompt_tokens=item.prompt_tokens, completion_tokens=item.completion_tokens)
            yield {**head, "choices": [], "usage": usage.to_openai()}
        finally:
            # Client gone or stream finished: closing the engine's stream stops the worker thread.
            await items.aclose()

    async def count_tokens(self, request: ChatRequest) -> int | None:
        """Exact: the prompt as the engine tokenizes it (chat template included), the number its
        answers report as ``prompt_tokens``. Tools are not counted: the local model never sees them."""
        engine = self._chat_engine()
        await self._loaded()
        return await engine.count_prompt_tokens(to_generation_request(request.body))

    # -- embeddings -------------------------------------------------------------------------------

    async def embed(self, inputs: list[str], request_id: str, dimensions: int | None = None) -> EmbeddingResponse:
        if self.embedder is None:
            raise InvalidRequest(f"model {self.deployment.alias!r} does not support embeddings", param="model")
        if dimensions is not None and dimensions != DIMENSIONS:
            # MiniLM was not trained for truncated (Matryoshka) vectors: refuse rather than degrade silently.
            raise InvalidRequest(
                f"model {self.deployment.alias!r} only produces {DIMENSIONS}-dimensional embeddings",
                param="dimensions",
            )
        await self._loaded()
        vectors, tokens = await self.embedder.embed(inputs)
        return EmbeddingResponse(vectors=vectors, usage=Usage(prompt_tokens=tokens))


def _choice_logprobs(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    return None if entries is None else {"content": entries, "refusal": None}


def _stopped_on(result: GenerationResult) -> dict[str, str]:
    """The choice's internal key naming the stop sequence that ended it (the Anthropic dialect's
    ``stop_sequence``), when one did."""
    return {STOP_SEQUENCE: result.stop_sequence} if result.stop_sequence is not None else {}


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


# -- OpenAI request -> engine request ---------------------------------------------------------------


def to_generation_request(body: dict[str, Any], *, text_completion: bool = False) -> GenerationRequest:
    """Translate an OpenAI chat body into the engine's request, validating what it uses. A text
    completion continues its (one) user message's text as it is, without the chat template."""
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("the local model returns one choice per request (n must be 1)", param="n")
    max_tokens = body.get("max_completion_tokens")
    name = "max_completion_tokens"
    if max_tokens is None:
        max_tokens, name = body.get("max_tokens"), "max_tokens"
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        raise InvalidRequest(f"{name} must be a positive integer", param=name)
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise InvalidRequest("seed must be an integer", param="seed")
    response_format = body.get("response_format")
    if response_format is not None and not isinstance(response_format, dict):
        raise InvalidRequest("response_format must be an object", param="response_format")
    logprobs, top_logprobs = body.get("logprobs"), body.get("top_logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise InvalidRequest("logprobs must be a boolean", param="logprobs")
    if top_logprobs is not None:
        if not _is_int(top_logprobs) or not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
            raise InvalidRequest(f"top_logprobs must be an integer from 0 to {MAX_TOP_LOGPROBS}", param="top_logprobs")
        if top_logprobs and not logprobs:
            raise InvalidRequest("top_logprobs needs logprobs set to true", param="top_logprobs")
    messages = to_local_messages(body.get("messages"))
    return GenerationRequest(
        messages=messages,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 0.2, 0.0, 2.0),
        top_p=_number(body, "top_p", 0.9, 0.0, 1.0),
        stop=_stop(body.get("stop")),
        seed=seed % 2**31 if seed is not None else None,  # llama.cpp takes a 32-bit seed
        response_format=response_format,
        frequency_penalty=_number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        presence_penalty=_number(body, "presence_penalty", 0.0, -2.0, 2.0),
        raw_prompt="\n".join(m["content"] for m in messages if m["role"] == "user") if text_completion else None,
        logprobs=bool(logprobs),
        top_logprobs=top_logprobs or 0,
    )


def to_local_messages(messages: Any) -> list[dict[str, str]]:
    """OpenAI messages -> ``{"role", "content": str}`` with only system/user/assistant roles."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty array", param="messages")
    tool_names: dict[str, str] = {}  # tool_call_id -> function name, to label tool results
    out: list[dict[str, str]] = []
    for message in messages:
        if not isinstance(message, dict):
            raise InvalidRequest("each message must be an object", param="messages")
        role = message.get("role")
        text = _content_text(message.get("content"))
        if role in ("system", "developer"):
            out.append({"role": "system", "content": text})
        elif role == "user":
            out.append({"role": "user", "content": text})
        elif role == "assistant":
            calls = []
            for call in message.get("tool_calls") or []:
                if not isinstance(call, dict):
                    continue
                inner = call.get("function")
                function: dict[str, Any] = inner if isinstance(inner, dict) else {}
                if call.get("id"):
                    tool_names[str(call["id"])] = str(function.get("name") or "")
                calls.append(f"Tool call: {function.get('name')}({function.get('arguments') or ''})")
            legacy = message.get("function_call")
            if isinstance(legacy, dict):
                calls.append(f"Tool call: {legacy.get('name')}({legacy.get('arguments') or ''})")
            out.append({"role": "assistant", "content": "\n".join([text, *calls] if text else calls)})
        elif role in ("tool", "function"):
            name = message.get("name") or tool_names.get(str(message.get("tool_call_id"))) or "tool"
            out.append({"role": "user", "content": f"Tool result ({name}): {text}"})
        else:
            raise InvalidRequest(f"unsupported message role {role!r}", param="messages")
    return out


def _content_text(content: Any) -> str:
    """A message's text: strings as they are, content parts' text joined, images and audio ignored."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                if part.get("type") in _TEXT_PARTS and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                    texts.append(part["refusal"])
        return "\n".join(texts)
    raise InvalidRequest("message content must be a string or an array of content parts", param="messages")


def _stop(stop: Any) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 16:
        return list(stop)
    raise InvalidRequest("stop must be a string or an array of up to 16 strings", param="stop")


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"{name} must be a number between {low:g} and {high:g}", param=name)
    return float(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
