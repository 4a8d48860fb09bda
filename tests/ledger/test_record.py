"""Building records from request contexts: every field, content modes, what other stages left."""

from __future__ import annotations

import time

import orjson

from bastion.errors import RateLimited
from bastion.gateway.stages.ledger import build_record
from bastion.guard import GuardPolicy, GuardResult, Verdict
from bastion.guard.state import GuardState
from bastion.ledger.record import content_mode, encode_record, to_row
from bastion.ledger.redact import ContentRedactor
from bastion.routing.trace import Attempt
from bastion.vault.model import PromptInUse
from tests.ledger.support import make_context, principal


def test_every_field_comes_from_the_context() -> None:
    ctx = make_context(principal=principal())
    ctx.trace.attempts = [Attempt("fast-0", "error", 0.01, 500), Attempt("fast-0", "ok", 0.02)]
    ctx.trace.upstream_s = 0.03
    ctx.first_chunk_at = ctx.timing.started + 0.015
    ctx.stream = True
    ctx.finished_at = ctx.timing.started + 0.05
    record = build_record(ctx, "full")
    assert record["id"] == ctx.request_id
    assert (record["tenant_id"], record["key_id"], record["user_id"]) == ("a" * 32, "b" * 32, "c" * 32)
    assert (record["model"], record["deployment"], record["upstream_model"]) == ("fast", "fast-0", "gpt-4o-mini")
    assert (record["prompt_tokens"], record["completion_tokens"], record["cached_tokens"]) == (12, 3, 4)
    assert record["cost_usd"] == 0.0042 and record["retries"] == 1 and record["stream"] is True
    assert abs(record["latency_ms"] - 50.0) < 1e-6 and abs(record["ttft_ms"] - 15.0) < 1e-6
    assert abs(record["overhead_ms"] - 20.0) < 1e-6
    assert record["user_agent"] == "pytest-agent/1.0" and record["finish_reason"] == "stop"
    assert record["status"] == 200 and record["error_code"] is None
    assert record["request_messages"] == [{"role": "user", "content": "hi"}]
    assert record["response_text"] == "Hello there."
    assert abs(record["ts"] - time.time()) < 5


def test_errors_are_recorded() -> None:
    ctx = make_context(principal=principal(), output="")
    ctx.error = RateLimited("Rate limit of 10 requests per minute reached for key.")
    ctx.status = 429
    ctx.usage = None
    record = build_record(ctx, "full")
    assert (record["status"], record["error_code"]) == (429, "rate_limit_exceeded")
    assert "Rate limit" in record["error_message"]
    assert record["prompt_tokens"] == 0 and record["response_text"] is None


def test_anonymous_requests_have_no_principal() -> None:
    record = build_record(make_context(principal=None), "metadata")
    assert record["tenant_id"] is None and record["key_id"] is None


def test_content_mode_comes_from_the_tenant_else_the_default() -> None:
    assert content_mode(None, "full") == "full"
    assert content_mode(principal(), "redacted") == "redacted"
    assert content_mode(principal(mode="metadata"), "full") == "metadata"
    assert content_mode(principal(mode="redacted-later"), "full") == "redacted"
    # An unknown mode stores the least, never more than the tenant may have meant.
    assert content_mode(principal(mode="everything"), "full") == "metadata"


def test_metadata_mode_keeps_no_content() -> None:
    record = build_record(make_context(principal=principal(mode="metadata")), "metadata")
    assert record["request_messages"] is None and record["response_text"] is None
    assert record["prompt_tokens"] == 12


def test_embeddings_record_their_input() -> None:
    ctx = make_context(body={"model": "emb", "input": ["one", "two"]}, endpoint="embeddings", output="")
    record = build_record(ctx, "full")
    assert record["request_messages"] == ["one", "two"] and record["response_text"] is None


def test_what_other_stages_left_on_the_context() -> None:
    ctx = make_context(principal=principal())
    flagged = GuardResult("flag", "", [Verdict("injection", 0.93, True, action="flag")])
    ctx.guard = GuardState(GuardPolicy(), input=flagged)
    ctx.prompt = PromptInUse("support-bot", 3, "production")
    ctx.session_id = "sess-1"
    ctx.ledger_extra = {"arm": "B"}
    ctx.ledger_messages = [{"role": "user", "content": "what the client sent"}]
    ctx.body["messages"].insert(0, {"role": "system", "content": "SECRET VAULT PROMPT"})
    record = build_record(ctx, "full")
    assert record["flagged"] is True and record["guard"]["action"] == "flag"
    assert record["guard"]["input"]["scanners"]["injection"]["flagged"] is True
    assert (record["prompt_id"], record["prompt_version"], record["session_id"]) == ("support-bot", 3, "sess-1")
    assert record["extra"] == {"arm": "B"}
    assert "SECRET VAULT PROMPT" not in encode_record(record).decode()


def test_a_flag_reason_is_kept() -> None:
    ctx = make_context(principal=principal())
    ctx.flag_reason = "injection score 0.93"
    record = build_record(ctx, "full")
    assert record["flagged"] is True and record["extra"] == {"flag_reason": "injection score 0.93"}


def test_unencodable_values_do_not_break_the_journal_line() -> None:
    ctx = make_context(principal=principal())
    ctx.ledger_extra = {"when": object(), "tags": {"a"}}
    line = encode_record(build_record(ctx, "full"))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line)["extra"]["tags"] == ["a"]


def test_to_row_clips_long_strings_and_redacts_in_redacted_mode() -> None:
    ctx = make_context(principal=principal(mode="redacted"))
    ctx.body["messages"] = [{"role": "user", "content": "mail bob@corp-mail.io, key bst_" + "A" * 40}]
    ctx.output_text[:] = ["Sure, call +1 415 555 0100"]
    ctx.user_agent = "x" * 2000
    record = orjson.loads(encode_record(build_record(ctx, "redacted")))
    # The journal keeps the content as sent: redaction happens in the background writer.
    assert "bob@corp-mail.io" in record["request_messages"][0]["content"]
    row = to_row(record, ContentRedactor())
    content = row["request_messages"][0]["content"]
    assert "bob@corp-mail.io" not in content and "bst_AAAA" not in content
    assert "555 0100" not in row["response_text"]
    assert len(row["user_agent"]) == 512
    assert row["created_at"].tzinfo is not None
