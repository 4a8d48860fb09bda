"""The ledger stage in a real pipeline: the record is journaled before the answer can leave.

Non-streamed answers: ``Pipeline.chat`` runs ``on_complete`` before it returns the response the
endpoint then sends. Streams: ``on_complete`` runs when the chunk stream ends, before the SSE
encoder yields its terminating event (``[DONE]`` or ``message_stop``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.config.settings import Settings
from bastion.dialects.anthropic import AnthropicStreamEncoder
from bastion.dialects.openai import DONE, encode_stream
from bastion.errors import UpstreamUnavailable
from bastion.gateway.compose import build_services, build_stages
from bastion.gateway.pipeline import Pipeline
from bastion.gateway.stage import Chunks
from bastion.gateway.stages.ledger import LedgerStage
from bastion.gateway.stages.usage import UsageStage
from bastion.ledger.journal import SEGMENT_SUFFIX
from bastion.ledger.writer import LedgerWriter
from bastion.providers.base import ChatRequest, ChatResponse, EmbeddingResponse
from bastion.routing.trace import RouteTrace
from bastion.store.db import Database
from tests.ledger.support import count_rows, make_context, principal


class FakeRouter:
    """Answers every call with a fixed completion or stream (or fails when told to)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    async def chat(self, request: ChatRequest, model: str, trace: RouteTrace) -> ChatResponse:
        if self.fail:
            raise UpstreamUnavailable("no deployment available")
        trace.alias, trace.deployment = model, model + "-0"
        body = {
            "id": "c1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }
        return ChatResponse(body=body, usage=None)

    async def stream(self, request: ChatRequest, model: str, trace: RouteTrace) -> Chunks:
        trace.alias, trace.deployment = model, model + "-0"

        async def chunks() -> Chunks:
            for word in ("Hel", "lo"):
                yield {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                }
            yield {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model,
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}  # fmt: skip

        return chunks()

    async def embed(
        self, inputs: list[str], model: str, request_id: str, trace: RouteTrace, dimensions: int | None = None
    ) -> EmbeddingResponse:
        raise NotImplementedError


@pytest.fixture
async def sqlite_db(sqlite_database_url: str) -> AsyncIterator[Database]:
    from bastion.store.migrate import upgrade

    db = Database.from_settings(Settings(database_url=sqlite_database_url))
    await upgrade(db.engine)
    yield db
    await db.dispose()


def journal_text(directory: Path) -> str:
    return "".join(p.read_text() for p in directory.iterdir() if p.name.endswith(SEGMENT_SUFFIX))


async def make_pipeline(db: Database, journal: Path, router: FakeRouter) -> tuple[Pipeline, LedgerStage]:
    settings = Settings(ledger={"journal_dir": journal, "flush_interval_s": 0.01})
    writer = LedgerWriter(settings.ledger, db, journal)
    await writer.start()
    stage = LedgerStage(writer, "full")
    return Pipeline([stage, UsageStage()], router), stage


async def test_complete_answers_are_journaled_before_the_pipeline_returns(sqlite_db: Database, tmp_path: Path) -> None:
    pipeline, stage = await make_pipeline(sqlite_db, tmp_path, FakeRouter())
    ctx = make_context(principal=principal(), output="")
    response = await pipeline.chat(ctx)
    assert isinstance(response, ChatResponse)
    # The endpoint has not sent anything yet, and the record is already on disk.
    assert ctx.request_id in journal_text(tmp_path)
    assert '"completion_tokens":2' in journal_text(tmp_path)
    await stage.writer.flush()
    assert await count_rows(sqlite_db) == 1
    await stage.writer.stop()


async def test_streams_are_journaled_before_the_terminating_event(sqlite_db: Database, tmp_path: Path) -> None:
    pipeline, stage = await make_pipeline(sqlite_db, tmp_path, FakeRouter())
    ctx = make_context(principal=principal(), output="")
    ctx.stream = True
    chunks = await pipeline.chat(ctx)
    seen_before_done: list[bool] = []
    assert not isinstance(chunks, ChatResponse)
    async for event in encode_stream(chunks, include_usage=True, model="fast"):
        journaled = ctx.request_id in journal_text(tmp_path)
        if event == DONE:
            seen_before_done.append(journaled)
        elif b"Hel" in event:
            assert not journaled  # mid-stream: the exchange is not over yet
    assert seen_before_done == [True]
    await stage.writer.stop()
    assert await count_rows(sqlite_db) == 1


async def test_anthropic_streams_are_journaled_before_message_stop(sqlite_db: Database, tmp_path: Path) -> None:
    pipeline, stage = await make_pipeline(sqlite_db, tmp_path, FakeRouter())
    ctx = make_context(principal=principal(), output="")
    ctx.stream = True
    chunks = await pipeline.chat(ctx)
    assert not isinstance(chunks, ChatResponse)
    encoder = AnthropicStreamEncoder("fast", "msg_1")
    async for chunk in chunks:
        encoder.encode(chunk)
    # The stream is exhausted (what the endpoint does before encoder.finish sends message_stop).
    assert ctx.request_id in journal_text(tmp_path)
    assert b"message_stop" in encoder.finish(None)
    await stage.writer.stop()


async def test_failed_requests_are_recorded_too(sqlite_db: Database, tmp_path: Path) -> None:
    pipeline, stage = await make_pipeline(sqlite_db, tmp_path, FakeRouter(fail=True))
    ctx = make_context(principal=principal(), output="")
    with pytest.raises(UpstreamUnavailable):
        await pipeline.chat(ctx)
    assert '"status":503' in journal_text(tmp_path)
    await stage.writer.stop()
    assert await count_rows(sqlite_db) == 1


async def test_disabled_ledger_records_nothing(sqlite_database_url: str, tmp_path: Path) -> None:
    settings = Settings(
        database_url=sqlite_database_url,
        ledger={"enabled": False, "journal_dir": tmp_path / "j"},
        local={"enabled": False},
    )
    services = build_services(settings)
    assert services.ledger is None
    assert not any(isinstance(stage, LedgerStage) for stage in build_stages(services))
    await services.db.dispose()
    assert not (tmp_path / "j").exists()


async def test_on_complete_costs_microseconds(sqlite_db: Database, tmp_path: Path) -> None:
    """A loose bound that still catches a database call or fsync on the request path."""
    _, stage = await make_pipeline(sqlite_db, tmp_path, FakeRouter())
    ctx = make_context(principal=principal())
    n = 2000
    started = time.perf_counter()
    for i in range(n):
        ctx.request_id = f"req_{i:024d}"
        await stage.on_complete(ctx)
    per_call_us = (time.perf_counter() - started) / n * 1e6
    await stage.writer.stop()
    assert per_call_us < 500, per_call_us
    assert await count_rows(sqlite_db) == n
