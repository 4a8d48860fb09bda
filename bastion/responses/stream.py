"""A chat-completion chunk stream as the Responses event stream.

    response.created, response.in_progress
    per text answer:  response.output_item.added (message), response.content_part.added,
                      response.output_text.delta ..., response.output_text.done,
                      response.content_part.done, response.output_item.done
    per tool call:    response.output_item.added (function_call),
                      response.function_call_arguments.delta ..., response.function_call_arguments.done,
                      response.output_item.done
    response.completed (or response.incomplete); on failure: error, then response.failed

Every event carries a ``sequence_number`` (0, 1, 2, ...). The final Response is handed to
``on_finished`` before the last event goes out, so a stored response can be continued as soon as
the client has seen it complete.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bastion.dialects.extension import FIELD
from bastion.errors import BastionError
from bastion.providers.base import Usage
from bastion.responses.output import failed, finish, function_call_item, message_item, usage_object
from bastion.responses.request import new_item_id

Event = dict[str, Any]


@dataclass(slots=True)
class _Call:
    output_index: int
    item_id: str
    call_id: str
    name: str
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Translator:
    response: dict[str, Any]
    sequence: int = 0
    output: list[dict[str, Any] | None] = field(default_factory=list)
    text_index: int | None = None
    text_id: str = ""
    text: list[str] = field(default_factory=list)
    calls: dict[int, _Call] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None  # the chunks' ``bastion`` field, kept for the final response

    def event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def open_text(self) -> list[Event]:
        self.text_index = len(self.output)
        self.text_id = new_item_id("msg")
        self.output.append(None)
        item = message_item(self.text_id, "", status="in_progress")
        item["content"] = []
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [
            self.event("response.output_item.added", output_index=self.text_index, item=item),
            self.event(
                "response.content_part.added",
                item_id=self.text_id,
                output_index=self.text_index,
                content_index=0,
                part=part,
            ),
        ]

    def close_text(self) -> list[Event]:
        if self.text_index is None:
            return []
        index, text = self.text_index, "".join(self.text)
        self.text_index = None
        item = message_item(self.text_id, text)
        self.output[index] = item
        part = item["content"][0]
        common = {"item_id": self.text_id, "output_index": index, "content_index": 0}
        return [
            self.event("response.output_text.done", **common, text=text, logprobs=[]),
            self.event("response.content_part.done", **common, part=part),
            self.event("response.output_item.done", output_index=index, item=item),
        ]

    def on_chunk(self, chunk: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        if isinstance(chunk.get(FIELD), dict):
            self.extension = chunk[FIELD]
        if chunk.get("usage"):
            usage = Usage.from_openai(chunk["usage"]) or Usage()
            self.usage = usage_object(
                usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.cache_creation_tokens
            )
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                if self.text_index is None:
                    events += self.open_text()
                self.text.append(content)
                events.append(
                    self.event(
                        "response.output_text.delta",
                        item_id=self.text_id,
                        output_index=self.text_index,
                        content_index=0,
                        delta=content,
                        logprobs=[],
                    )
                )
            for call in delta.get("tool_calls") or ():
                events += self.on_tool_call(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def on_tool_call(self, call: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        index = int(call.get("index") or 0)
        function = call.get("function") or {}
        state = self.calls.get(index)
        if state is None:
            events += self.close_text()  # the text before the calls is finished
            state = _Call(
                output_index=len(self.output),
                item_id=new_item_id("fc"),
                call_id=str(call.get("id") or new_item_id("call")),
                name=str(function.get("name") or ""),
            )
            self.calls[index] = state
            self.output.append(None)
            item = function_call_item(state.item_id, state.call_id, state.name, "", status="in_progress")
            events.append(self.event("response.output_item.added", output_index=state.output_index, item=item))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            state.arguments.append(arguments)
            events.append(
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=state.item_id,
                    output_index=state.output_index,
                    delta=arguments,
                )
            )
        return events

    def close_all(self) -> list[Event]:
        events = self.close_text()
        for state in self.calls.values():
            arguments = "".join(state.arguments)
            item = function_call_item(state.item_id, state.call_id, state.name, arguments)
            self.output[state.output_index] = item
            events.append(
                self.event(
                    "response.function_call_arguments.done",
                    item_id=state.item_id,
                    output_index=state.output_index,
                    name=state.name,
                    arguments=arguments,
                )
            )
            events.append(self.event("response.output_item.done", output_index=state.output_index, item=item))
        self.calls = {}
        return events


async def response_events(
    chunks: AsyncIterator[dict[str, Any]],
    response: dict[str, Any],
    on_finished: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> AsyncGenerator[Event, None]:
    """The Responses events for ``chunks``; ``response`` is the in-progress skeleton, completed here."""
    state = _Translator(response)
    yield state.event("response.created", response=dict(response))
    yield state.event("response.in_progress", response=dict(response))
    try:
        async for chunk in chunks:
            for event in state.on_chunk(chunk):
                yield event
    except BastionError as exc:
        for event in state.close_all():
            yield event
        failed(response, exc.message)
        response["output"] = [item for item in state.output if item is not None]
        yield state.event("error", code=exc.code or exc.error_type, message=exc.message, param=exc.param)
        yield state.event("response.failed", response=response)
        return
    for event in state.close_all():
        yield event
    output = [item for item in state.output if item is not None]
    if not output:
        output = [message_item(new_item_id("msg"), "")]
    finish(response, output, state.finish_reason, state.usage)
    if state.extension is not None:  # Bastion's answer field (sources and citations)
        response[FIELD] = state.extension
    if on_finished is not None:
        await on_finished(response)
    kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
    yield state.event(kind, response=response)
