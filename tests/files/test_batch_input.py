"""The batch input format on its own: ``validate_batch_input`` and ``iter_batch_lines`` (the
functions batch creation calls), with no gateway."""

from __future__ import annotations

import io

import orjson
import pytest

from bastion.config.work_settings import FilesSettings
from bastion.files import BatchInputError, iter_batch_lines, validate_batch_input
from tests.files.support import batch_jsonl, batch_line, jsonl


def _lines(content: bytes) -> io.BytesIO:
    return io.BytesIO(content)  # iterates lines as a file opened in binary mode does


def test_a_valid_file_is_summarised() -> None:
    content = jsonl([batch_line("a"), batch_line("b", url="/v1/embeddings"), b"   ", batch_line("c")])
    summary = validate_batch_input(_lines(content))
    assert summary.requests == 3
    assert summary.urls == {"/v1/chat/completions", "/v1/embeddings"}
    assert summary.models == {"gpt-4o-mini", "text-embedding-3-small"}
    # Text lines work too (a file opened in text mode, a list).
    assert validate_batch_input(content.decode().splitlines()).requests == 3
    lines = list(iter_batch_lines(_lines(content)))
    assert [(line.line, line.custom_id, line.url) for line in lines] == [
        (1, "a", "/v1/chat/completions"),
        (2, "b", "/v1/embeddings"),
        (4, "c", "/v1/chat/completions"),
    ]
    assert lines[0].body["messages"] == [{"role": "user", "content": "Say a."}]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8 text"),
        (b'"text"', "must be a JSON object"),
        (orjson.dumps({"custom_id": "x", "method": "POST", "url": "/v1/embeddings"}), "missing body"),
        (orjson.dumps({**batch_line("x"), "extra": 1}), "unknown field 'extra'"),
        (orjson.dumps(batch_line("")), "custom_id must be a non-empty string"),
        (orjson.dumps(batch_line("x" * 513)), "custom_id is longer than 512 characters"),
        (orjson.dumps({**batch_line("x"), "custom_id": 7}), "custom_id must be a non-empty string"),
        (orjson.dumps(batch_line("x", method="PUT")), "method must be POST, not 'PUT'"),
        (orjson.dumps(batch_line("x", url="/v1/responses")), "url must be one of"),
        (orjson.dumps({**batch_line("x"), "body": []}), "body must be a JSON object"),
        (orjson.dumps({**batch_line("x"), "body": {"messages": []}}), "body.model must be a non-empty string"),
    ],
)
def test_each_rule_is_named_with_its_line(line: bytes, problem: str) -> None:
    with pytest.raises(BatchInputError) as refused:
        validate_batch_input(_lines(jsonl([batch_line("ok"), line])))
    assert refused.value.problems == [(2, refused.value.problems[0][1])]
    assert problem in refused.value.problems[0][1]
    assert f"line 2: {problem}" in refused.value.message
    assert (refused.value.status, refused.value.param, refused.value.code) == (400, "file", "invalid_batch_input")


def test_duplicates_limits_and_the_endpoint() -> None:
    with pytest.raises(BatchInputError) as duplicate:
        validate_batch_input(_lines(jsonl([batch_line("a"), batch_line("b"), batch_line("a")])))
    assert duplicate.value.problems == [(3, "duplicate custom_id 'a' (first on line 1)")]

    assert validate_batch_input(_lines(batch_jsonl(5)), max_requests=5).requests == 5
    with pytest.raises(BatchInputError) as too_many:
        validate_batch_input(_lines(batch_jsonl(6)), max_requests=5)
    assert too_many.value.problems == [(6, "more than 5 requests (a batch input file may hold 5)")]

    mixed = jsonl([batch_line("a"), batch_line("b", url="/v1/embeddings")])
    with pytest.raises(BatchInputError) as other_endpoint:
        validate_batch_input(_lines(mixed), endpoint="/v1/chat/completions")
    assert other_endpoint.value.problems == [
        (2, "url /v1/embeddings does not match the batch's endpoint /v1/chat/completions")
    ]

    with pytest.raises(BatchInputError) as empty:
        validate_batch_input(_lines(b"\n \n"))
    assert empty.value.problems == [(0, "the file holds no requests")]
    assert empty.value.message == "Invalid batch input file: the file holds no requests."


def test_many_problems_are_counted_and_the_first_ten_shown() -> None:
    content = jsonl([batch_line(f"r{i}", method="GET") for i in range(25)])
    with pytest.raises(BatchInputError) as refused:
        validate_batch_input(_lines(content))
    assert refused.value.total == 25 and len(refused.value.problems) == 25
    message = refused.value.message
    assert "line 10:" in message and "line 11:" not in message
    assert message.endswith("(15 more problems not shown).")


def test_iterating_an_invalid_file_stops_at_its_first_bad_line() -> None:
    lines = iter_batch_lines(_lines(jsonl([batch_line("a"), b"{oops"])))
    assert next(lines).custom_id == "a"
    with pytest.raises(BatchInputError) as refused:
        next(lines)
    assert refused.value.problems[0][0] == 2


def test_the_default_limits_are_openais() -> None:
    assert FilesSettings().max_bytes == 200 * 1024 * 1024
    assert FilesSettings().batch_max_requests == 50_000
