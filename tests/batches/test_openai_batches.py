"""OpenAI's Batch API with the unmodified ``openai`` SDK: upload, create, poll to completion,
output and error files, counts, cancel, list, and the 400s for bad input."""

from __future__ import annotations

import openai
import pytest

from tests.batches.support import (
    CHAT,
    CHAT_UPSTREAM,
    EMBEDDINGS,
    BatchEnv,
    chat_jsonl,
    chat_line,
    embed_line,
    jsonl,
    read_jsonl,
)
from tests.support.fake_upstream import Behaviour
from tests.support.harness import wait_until
from tests.support.openai_spec import validate


async def test_a_chat_batch_runs_to_completion_with_an_output_file(batch_env: BatchEnv) -> None:
    client = batch_env.openai("ann")
    uploaded = await client.files.create(file=("in.jsonl", chat_jsonl(5)), purpose="batch")
    batch = await client.batches.create(
        input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h", metadata={"job": "nightly"}
    )
    assert batch.id.startswith("batch_") and batch.status == "validating"
    assert batch.metadata == {"job": "nightly"} and batch.endpoint == CHAT
    await batch_env.finished(batch.id)
    done = await client.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (5, 5, 0)
    assert done.output_file_id and done.error_file_id is None
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    lines = read_jsonl((await client.files.content(done.output_file_id)).content)
    assert sorted(line["custom_id"] for line in lines) == [f"req-{i}" for i in range(5)]
    for line in lines:
        assert line["id"].startswith("batch_req_") and line["error"] is None
        response = line["response"]
        assert response["status_code"] == 200 and response["request_id"].startswith("req_")
        assert response["body"]["object"] == "chat.completion" and response["body"]["model"] == "gpt-4o-mini"
    output = await client.files.retrieve(done.output_file_id)
    assert output.purpose == "batch_output"
    # The batch object and its list, as OpenAI's own OpenAPI document defines them.
    raw = await batch_env.client.get(f"/v1/batches/{batch.id}", headers=batch_env.auth("ann"))
    validate("Batch", raw.json())
    listed = await batch_env.client.get("/v1/batches", headers=batch_env.auth("ann"))
    validate("ListBatchesResponse", listed.json())
    assert len(batch_env.fake.requests(CHAT_UPSTREAM)) == 5


async def test_failed_lines_go_to_the_error_file_with_exact_counts(batch_env: BatchEnv) -> None:
    batch_env.fake.script(CHAT_UPSTREAM, ["ok", "400", "ok", "400", "ok", "ok"])
    client = batch_env.openai("ann")
    # One line of six fails before any upstream call: an invalid body, checked as a live call would be.
    lines = [*(chat_line(f"r{i}") for i in range(5)), chat_line("r5", temperature="hot")]
    uploaded = await client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    await batch_env.finished(batch.id)
    done = await client.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (6, 3, 3)
    assert done.output_file_id and done.error_file_id
    errors = read_jsonl((await client.files.content(done.error_file_id)).content)
    assert len(errors) == 3 and "r5" in {line["custom_id"] for line in errors}
    assert all(line["response"]["status_code"] == 400 and line["error"] is None for line in errors)
    bad = next(line for line in errors if line["custom_id"] == "r5")
    assert bad["response"]["body"]["error"]["param"] == "temperature"
    assert len(read_jsonl((await client.files.content(done.output_file_id)).content)) == 3
    assert len(batch_env.fake.requests(CHAT_UPSTREAM)) == 5  # the invalid line never went upstream


async def test_a_batch_whose_every_line_failed_is_completed_with_only_an_error_file(batch_env: BatchEnv) -> None:
    batch_env.fake.default(CHAT_UPSTREAM, "400")
    client = batch_env.openai("ann")
    uploaded = await client.files.create(file=("in.jsonl", chat_jsonl(3)), purpose="batch")
    batch = await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    await batch_env.finished(batch.id)
    done = await client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id is None and done.error_file_id
    assert done.request_counts is not None and done.request_counts.failed == 3


async def test_an_embeddings_batch(batch_env: BatchEnv) -> None:
    client = batch_env.openai("ann")
    content = jsonl([embed_line("e1", "alpha"), embed_line("e2", "beta")])
    uploaded = await client.files.create(file=("in.jsonl", content), purpose="batch")
    batch = await client.batches.create(input_file_id=uploaded.id, endpoint=EMBEDDINGS, completion_window="24h")
    await batch_env.finished(batch.id)
    done = await client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id
    lines = read_jsonl((await client.files.content(done.output_file_id)).content)
    bodies = {line["custom_id"]: line["response"]["body"] for line in lines}
    assert set(bodies) == {"e1", "e2"}
    assert all(body["object"] == "list" and body["data"][0]["object"] == "embedding" for body in bodies.values())


async def test_lines_that_name_another_endpoint_fail_the_batch_in_validation(batch_env: BatchEnv) -> None:
    client = batch_env.openai("ann")
    content = jsonl([chat_line("a"), embed_line("b")])
    uploaded = await client.files.create(file=("in.jsonl", content), purpose="batch")
    batch = await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    await batch_env.finished(batch.id)
    done = await client.batches.retrieve(batch.id)
    assert done.status == "failed" and done.failed_at and done.errors and done.errors.data
    error = done.errors.data[0]
    assert error.code == "mismatched_endpoint" and error.line == 2
    assert batch_env.fake.requests(CHAT_UPSTREAM) == []


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"endpoint": "/v1/completions"}, "endpoint"),
        ({"completion_window": "1h"}, "completion_window"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"input_file_id": "file-" + "0" * 32}, "input_file_id"),
    ],
)
async def test_bad_create_requests_are_clear_400s(batch_env: BatchEnv, change: dict[str, object], param: str) -> None:
    client = batch_env.openai("ann")
    uploaded = await client.files.create(file=("in.jsonl", chat_jsonl(1)), purpose="batch")
    body: dict[str, object] = {"input_file_id": uploaded.id, "endpoint": CHAT, "completion_window": "24h", **change}
    response = await batch_env.client.post("/v1/batches", json=body, headers=batch_env.auth("ann"))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_a_user_data_file_is_not_a_batch_input(batch_env: BatchEnv) -> None:
    client = batch_env.openai("ann")
    uploaded = await client.files.create(file=("notes.txt", b"hello"), purpose="user_data")
    with pytest.raises(openai.BadRequestError, match="purpose batch"):
        await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")


async def test_duplicate_custom_ids_and_malformed_files_are_refused_at_upload(batch_env: BatchEnv) -> None:
    client = batch_env.openai("ann")
    with pytest.raises(openai.BadRequestError, match="duplicate custom_id"):
        await client.files.create(file=("in.jsonl", jsonl([chat_line("a"), chat_line("a")])), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="not valid JSON"):
        await client.files.create(file=("in.jsonl", b'{"custom_id": \n'), purpose="batch")


async def test_batches_are_the_callers_own(batch_env: BatchEnv) -> None:
    ann = batch_env.openai("ann")
    uploaded = await ann.files.create(file=("in.jsonl", chat_jsonl(1)), purpose="batch")
    batch = await ann.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    # Another tenant and another user of the same tenant see nothing; the tenant's admin does.
    for who in ("carl", "bob"):
        with pytest.raises(openai.NotFoundError):
            await batch_env.openai(who).batches.retrieve(batch.id)
        assert [b.id async for b in batch_env.openai(who).batches.list()] == []
        with pytest.raises(openai.NotFoundError):
            await batch_env.openai(who).batches.cancel(batch.id)
        # Nor may they start a batch on ann's file.
        with pytest.raises(openai.BadRequestError):
            await batch_env.openai(who).batches.create(
                input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h"
            )
    assert (await batch_env.openai("admin").batches.retrieve(batch.id)).id == batch.id
    await batch_env.finished(batch.id)
    # A viewer may not call models, so may not batch them.
    response = await batch_env.client.get("/v1/batches", headers=batch_env.auth("viewer"))
    assert response.status_code == 403


async def test_list_pages_newest_first(batch_env: BatchEnv) -> None:
    client = batch_env.openai("ann")
    uploaded = await client.files.create(file=("in.jsonl", chat_jsonl(1)), purpose="batch")
    ids = [
        (await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")).id
        for _ in range(3)
    ]
    first = await client.batches.list(limit=2)
    assert [b.id for b in first.data] == [ids[2], ids[1]] and first.has_more
    assert [b.id async for b in client.batches.list(limit=2)] == ids[::-1]
    for batch_id in ids:
        await batch_env.finished(batch_id)


async def test_cancel_a_batch_that_has_not_started(batch_env: BatchEnv) -> None:
    env = batch_env
    pool = env.gateway.services.jobs.pool
    assert pool is not None
    await pool.stop()  # no worker: the batch stays queued
    env.gateway.services.jobs.pool = None
    client = env.openai("ann")
    uploaded = await client.files.create(file=("in.jsonl", chat_jsonl(2)), purpose="batch")
    batch = await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    cancelled = await client.batches.cancel(batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at and cancelled.cancelling_at
    with pytest.raises(openai.ConflictError):
        await client.batches.cancel(batch.id)
    assert env.fake.requests(CHAT_UPSTREAM) == []


async def test_cancel_a_running_batch_keeps_what_finished(batch_env: BatchEnv) -> None:
    env = batch_env
    env.fake.default(CHAT_UPSTREAM, Behaviour.parse("ok:0.2"))
    client = env.openai("ann")
    uploaded = await client.files.create(file=("in.jsonl", chat_jsonl(40)), purpose="batch")
    batch = await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")

    async def running() -> bool:
        return len(env.fake.requests(CHAT_UPSTREAM)) >= 4

    await wait_until(running, what="lines started")
    cancelling = await client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    done = await env.finished(batch.id)
    assert done.status == "cancelled"
    final = await client.batches.retrieve(batch.id)
    assert final.request_counts is not None
    assert 0 < final.request_counts.completed < 40
    # The lines in flight at the cancel finished; nothing new started after it.
    assert len(env.fake.requests(CHAT_UPSTREAM)) == final.request_counts.completed
    assert final.output_file_id and final.error_file_id
    unrun = read_jsonl((await client.files.content(final.error_file_id)).content)
    assert len(unrun) == 40 - final.request_counts.completed
    assert {line["error"]["code"] for line in unrun} == {"batch_cancelled"}
