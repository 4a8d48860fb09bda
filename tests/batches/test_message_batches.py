"""Anthropic's Message Batches API with the unmodified ``anthropic`` SDK: create, poll, results
(succeeded / errored / canceled), cancel, list, delete, the ``custom_id`` rules; and either batch
API reaching either provider."""

from __future__ import annotations

import anthropic
import pytest

from tests.batches.support import (
    CHAT,
    CHAT_MODEL,
    CHAT_UPSTREAM,
    CLAUDE,
    CLAUDE_UPSTREAM,
    BatchEnv,
    chat_line,
    jsonl,
    message_request,
    read_jsonl,
)
from tests.support.fake_upstream import Behaviour
from tests.support.harness import wait_until


async def test_a_message_batch_runs_and_serves_its_results(batch_env: BatchEnv) -> None:
    batch_env.fake.script(CLAUDE_UPSTREAM, ["ok", "400", "ok"])
    client = batch_env.anthropic("ann")
    requests = [message_request(f"m{i}") for i in range(3)]
    batch = await client.messages.batches.create(requests=requests)
    assert batch.id.startswith("msgbatch_") and batch.type == "message_batch"
    assert batch.processing_status == "in_progress" and batch.results_url is None
    await batch_env.finished(batch.id)
    done = await client.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended" and done.ended_at is not None and done.results_url
    counts = done.request_counts
    assert (counts.processing, counts.succeeded, counts.errored, counts.canceled, counts.expired) == (0, 2, 1, 0, 0)
    results = {entry.custom_id: entry.result async for entry in await client.messages.batches.results(batch.id)}
    assert set(results) == {"m0", "m1", "m2"}
    kinds = sorted(result.type for result in results.values())
    assert kinds == ["errored", "succeeded", "succeeded"]
    succeeded = next(result for result in results.values() if result.type == "succeeded")
    assert succeeded.message.type == "message" and succeeded.message.model == CLAUDE
    errored = next(result for result in results.values() if result.type == "errored")
    assert errored.error.type == "error"


async def test_custom_id_rules_and_limits_are_clear_400s(batch_env: BatchEnv) -> None:
    client = batch_env.anthropic("ann")
    cases = [
        [message_request("dup"), message_request("dup")],
        [message_request("has space")],
        [message_request("x" * 65)],
        [{"custom_id": "a", "params": {"max_tokens": 5}}],
        [message_request("s", stream=True)],
        [],
    ]
    for requests in cases:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.batches.create(requests=requests)
        assert caught.value.status_code == 400
        body = caught.value.body
        assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"


async def test_cancel_list_and_delete(batch_env: BatchEnv) -> None:
    env = batch_env
    env.fake.default(CLAUDE_UPSTREAM, Behaviour.parse("ok:0.2"))
    client = env.anthropic("ann")
    batch = await client.messages.batches.create(requests=[message_request(f"c{i}") for i in range(30)])
    with pytest.raises(anthropic.APIStatusError) as caught:
        await client.messages.batches.delete(batch.id)  # still processing
    assert caught.value.status_code == 409

    async def started() -> bool:
        return len(env.fake.requests(CLAUDE_UPSTREAM)) >= 2

    await wait_until(started, what="lines started")
    canceling = await client.messages.batches.cancel(batch.id)
    assert canceling.processing_status in ("canceling", "ended") and canceling.cancel_initiated_at
    await env.finished(batch.id)
    ended = await client.messages.batches.retrieve(batch.id)
    counts = ended.request_counts
    assert counts.succeeded + counts.canceled == 30 and counts.canceled > 0 and counts.processing == 0
    results = [entry async for entry in await client.messages.batches.results(batch.id)]
    assert len(results) == 30
    assert sum(1 for entry in results if entry.result.type == "canceled") == counts.canceled

    second = await client.messages.batches.create(requests=[message_request("z")])
    listed = [b.id async for b in client.messages.batches.list(limit=1)]
    assert listed == [second.id, batch.id]
    assert [b.id async for b in env.anthropic("carl").messages.batches.list()] == []
    with pytest.raises(anthropic.NotFoundError):
        await env.anthropic("carl").messages.batches.retrieve(batch.id)

    deleted = await client.messages.batches.delete(batch.id)
    assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve(batch.id)
    await env.finished(second.id)


async def test_either_batch_api_reaches_either_provider(batch_env: BatchEnv) -> None:
    env = batch_env
    # Anthropic's batch API, answered by an OpenAI-compatible deployment.
    client = env.anthropic("ann")
    batch = await client.messages.batches.create(
        requests=[
            {
                "custom_id": "to-openai",
                "params": {"model": CHAT_MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
            }
        ]
    )
    await env.finished(batch.id)
    [entry] = [entry async for entry in await client.messages.batches.results(batch.id)]
    assert entry.result.type == "succeeded" and entry.result.message.model == CHAT_MODEL
    assert len(env.fake.requests(CHAT_UPSTREAM)) == 1
    # OpenAI's batch API, answered by an Anthropic deployment.
    sdk = env.openai("ann")
    line = chat_line("to-anthropic", max_tokens=16)
    line["body"]["model"] = CLAUDE
    uploaded = await sdk.files.create(file=("in.jsonl", jsonl([line])), purpose="batch")
    openai_batch = await sdk.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    await env.finished(openai_batch.id)
    done = await sdk.batches.retrieve(openai_batch.id)
    assert done.output_file_id
    [output] = read_jsonl((await sdk.files.content(done.output_file_id)).content)
    assert output["response"]["body"]["object"] == "chat.completion" and output["response"]["body"]["model"] == CLAUDE
    assert len(env.fake.requests(CLAUDE_UPSTREAM)) == 1
