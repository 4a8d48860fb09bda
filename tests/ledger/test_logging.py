"""Secrets never reach the logs: structlog events and standard-library records alike."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from bastion.auth.keys import generate_key
from bastion.config.settings import LoggingSettings
from bastion.observability.logging import (
    REDACTED,
    RedactingFilter,
    configure_logging,
    is_secret_key,
    redact_secret_text,
    redact_secrets,
)

BASTION_KEY = generate_key()
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZUBhY21lLmlvIn0.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
SECRETS = {
    "bastion key": BASTION_KEY,
    "openai key": "sk-proj-" + "Ab1" * 16,
    "anthropic key": "sk-ant-api03-" + "x9Y" * 20,
    "aws key": "AKIAIOSFODNN7EXAMPLE",
    "github token": "ghp_" + "a1B2" * 9,
    "slack token": "xoxb-1234567890-abcdefghij",
    "google key": "AIza" + "S" * 35,
    "stripe key": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "hugging face token": "hf_" + "abcdEFGH" * 5,
    "jwt": JWT,
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_secret_shapes_are_redacted_anywhere_in_text(name: str) -> None:
    secret = SECRETS[name]
    text = f"calling upstream with {secret} now"
    redacted = redact_secret_text(text)
    assert secret not in redacted and REDACTED in redacted
    assert redacted.startswith("calling upstream with ") and redacted.endswith(" now")


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("Authorization: Bearer abcdefghijklmnop123", "abcdefghijklmnop123"),
        ("authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("postgresql://bastion:hunter2secret@db.internal:5432/bastion", "hunter2secret"),
        ("GET /v1/models?api_key=abc123def456&x=1", "abc123def456"),
        ("config password=correct-horse-battery", "correct-horse-battery"),
        ('{"client_secret": "s3cr3t-value-here"}', "s3cr3t-value-here"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow"),
    ],
)
def test_secret_contexts_are_redacted(text: str, leak: str) -> None:
    assert leak not in redact_secret_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=100 prompt_tokens: 12345",
        "model gpt-4o-mini answered in 12 ms",
        "request req_0123456789abcdef01234567 key_id=5f2c9a",
        "the skeleton key is a metaphor",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_secret_text(text) == text


def test_secret_field_names() -> None:
    for name in ("authorization", "api_key", "x-api-key", "password", "auth_token", "client_secret", "cookie", "jwt"):
        assert is_secret_key(name), name
    for name in ("prompt_tokens", "max_tokens", "tokens", "token_count", "key_id", "key_prefix", "model", "tokens_in"):
        assert not is_secret_key(name), name


def test_structlog_processor_walks_nested_values() -> None:
    event = {
        "event": "upstream_call",
        "headers": {"Authorization": "Bearer abcdefghijklmnop", "x-request-id": "req_1"},
        "api_key": "anything-at-all",
        "prompt_tokens": 12,
        "attempts": [{"error": f"401 for key {BASTION_KEY}"}],
        "raw": f"body={BASTION_KEY}".encode(),
        "exc": ValueError(f"bad credential {JWT}"),
        "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": f"x {BASTION_KEY}"}}}}}}}}},
    }
    out = redact_secrets(None, "info", event)
    text = json.dumps(out, default=str)
    assert BASTION_KEY not in text and JWT not in text and "abcdefghijklmnop" not in text
    assert out["api_key"] == REDACTED and out["prompt_tokens"] == 12
    assert out["headers"]["x-request-id"] == "req_1"


def test_configured_logging_redacts_structlog_and_stdlib_output(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Under pytest the root logger's handlers are pytest's own (caplog): the filter goes on them.
    configure_logging(LoggingSettings(level="info", json_logs=True))
    try:
        structlog.get_logger("test").info("key_used", key=BASTION_KEY, authorization=f"Bearer {BASTION_KEY}")
        logging.getLogger("uvicorn.error").error("client sent %s", BASTION_KEY)
        try:
            raise RuntimeError(f"upstream refused {SECRETS['openai key']}")
        except RuntimeError:
            logging.getLogger("sqlalchemy").exception("failed")
        err = capsys.readouterr().err
        stdlib = caplog.text
        assert "key_used" in err and "client sent" in stdlib and "upstream refused" in stdlib
        for secret in (BASTION_KEY, SECRETS["openai key"]):
            assert secret not in err and secret not in stdlib
        line = next(line for line in err.splitlines() if "key_used" in line)
        assert json.loads(line)["authorization"] == REDACTED
    finally:
        structlog.reset_defaults()


def test_stdlib_filter_on_a_handler_of_its_own() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("bastion.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("dsn %s and %r", "postgresql://u:pw12345@h/db", {"api_key": BASTION_KEY})
        logger.warning("broken format %s %s", "only one")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "pw12345" not in text and BASTION_KEY not in text and "broken format" in text
