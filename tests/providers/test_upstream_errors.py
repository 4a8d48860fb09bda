"""Upstream error answers mapped to the errors callers see: the body is described (status, type,
a bounded scrubbed excerpt of a JSON error's message), never relayed; statuses and ``retryable``
keep the meaning clients and the router rely on."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from bastion.config.settings import DeploymentSettings, TimeoutSettings
from bastion.errors import InvalidRequest, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from bastion.providers import upstream_errors
from bastion.providers.anthropic import AnthropicProvider
from bastion.providers.anthropic_translate import AnthropicStreamTranslator
from bastion.providers.base import Deployment
from bastion.providers.openai import OpenAIProvider
from bastion.providers.scrub import REDACTED, CredentialScrubber
from bastion.providers.upstream_errors import (
    EXCERPT_CHARS,
    LOG_BODY_CHARS,
    BodyForm,
    ErrorBody,
    UpstreamErrors,
    loggable_body,
    read_error_body,
    read_error_object,
)

KEY = "gwk-7Qp2Vx9LmA4kR8sT1zB6nW3c"
SCRUBBER = CredentialScrubber([KEY])
ERRORS = UpstreamErrors("upstream d1", SCRUBBER)


def body(payload: Any) -> bytes:
    return orjson.dumps(payload)


# -- reading the body --------------------------------------------------------------------------------


OPENAI_ERROR = {"error": {"message": "Bad key", "type": "invalid_request_error", "param": None, "code": "bad_key"}}
ANTHROPIC_ERROR = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
GOOGLE_ERROR = [{"error": {"code": 400, "message": "API key not valid", "status": "INVALID_ARGUMENT"}}]
VLLM_ERROR = {"object": "error", "message": "max_tokens too large", "type": "BadRequestError"}


@pytest.mark.parametrize(
    ("payload", "kind", "message"),
    [
        (OPENAI_ERROR, "invalid_request_error", "Bad key"),
        (ANTHROPIC_ERROR, "authentication_error", "invalid x-api-key"),
        # OpenAI-compatible servers with only a code, or a bare string
        ({"error": {"message": "Model not loaded", "code": "model_not_found"}}, "model_not_found", "Model not loaded"),
        ({"error": "upstream overloaded"}, None, "upstream overloaded"),
        # Google wraps the object in a list and names the status
        (GOOGLE_ERROR, "INVALID_ARGUMENT", "API key not valid"),
        # FastAPI-style servers (vLLM)
        ({"detail": "Not Found"}, None, "Not Found"),
        (VLLM_ERROR, "BadRequestError", "max_tokens too large"),
    ],
)
def test_json_error_shapes(payload: Any, kind: str | None, message: str) -> None:
    assert read_error_body(body(payload), "application/json", SCRUBBER) == ErrorBody("json", kind, message)


def test_a_json_body_without_an_error_message_is_named_only() -> None:
    assert read_error_body(b'{"unexpected": true}', "application/json") == ErrorBody("json")
    assert read_error_body(b"[]", "application/json") == ErrorBody("json")


def test_an_error_type_that_is_not_an_identifier_or_holds_a_key_is_dropped() -> None:
    assert read_error_object({"error": {"type": "some words here", "message": "m"}}).kind is None
    assert read_error_object({"error": {"type": KEY, "message": "m"}}, SCRUBBER).kind is None
    assert read_error_object({"error": {"type": "x" * 100, "message": "m"}}).kind is None


@pytest.mark.parametrize(
    ("raw", "content_type", "form"),
    [
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html", "html"),
        (b"<!DOCTYPE html><title>Error</title>", None, "html"),  # no content type, still a page
        (b"  \n<html>", "text/plain", "html"),
        (b"upstream connect error or disconnect/reset before headers", "text/plain", "text"),
        (b'{"error": {"message": "cut', "application/json", "text"),  # not JSON after all
        (b"", "application/json", "empty"),
        (b"  \r\n ", None, "empty"),
    ],
)
def test_non_json_bodies_are_named_never_shown(raw: bytes, content_type: str | None, form: BodyForm) -> None:
    detail = read_error_body(raw, content_type)
    assert detail == ErrorBody(form)


def test_an_html_page_inside_a_json_message_is_not_shown() -> None:
    detail = read_error_object({"error": {"message": "<html><head><title>503</title></head></html>"}})
    assert detail.excerpt is None


def test_the_excerpt_is_bounded_and_one_line() -> None:
    message = "First line\nsecond\tline\r\n\x1b[31m" + "word " * 30_000
    detail = read_error_body(body({"error": {"message": message, "type": "server_error"}}), None)
    assert detail.excerpt is not None
    assert len(detail.excerpt) <= EXCERPT_CHARS
    assert detail.excerpt.startswith("First line second line [31mword word")
    assert detail.excerpt.endswith("word…")
    assert "\n" not in detail.excerpt and "\x1b" not in detail.excerpt


def test_a_key_straddling_the_cut_is_removed_whole() -> None:
    message = "x" * (EXCERPT_CHARS - 10) + " " + KEY + " and more"
    excerpt = read_error_object({"error": {"message": message}}, SCRUBBER).excerpt
    assert excerpt is not None and len(excerpt) <= EXCERPT_CHARS
    assert KEY[:4] not in excerpt, excerpt


def test_a_key_cut_by_the_scanned_window_leaves_no_fragment() -> None:
    # A 2042-character secret shrinks to one marker, pulling what follows into the excerpt: the
    # key's first five characters sit just inside the scanned window, the rest outside it.
    blob = ("Zm9v" * 511)[:2041] + "7"
    message = f"{blob} {KEY} trailing words"
    assert message.index(KEY) == upstream_errors._SCAN_CHARS - 5
    excerpt = read_error_object({"error": {"message": message}}, SCRUBBER).excerpt
    assert excerpt == REDACTED


def test_a_key_hidden_by_json_escapes_is_still_found() -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in KEY)
    raw = b'{"error": {"message": "bad key ' + escaped.encode() + b'"}}'
    detail = read_error_body(raw, "application/json", SCRUBBER)
    assert detail.excerpt == f"bad key {REDACTED}"
    assert KEY not in loggable_body(raw, SCRUBBER)


# -- statuses --------------------------------------------------------------------------------------


def anthropic_error(kind: str, message: str) -> bytes:
    return body({"type": "error", "error": {"type": kind, "message": message}})


def test_400_is_relayed_as_the_callers_error_with_the_reason() -> None:
    raw = anthropic_error("invalid_request_error", f"prompt is too long: 210000 tokens > 200000 maximum ({KEY})")
    error = ERRORS.for_status(400, {}, raw)
    assert isinstance(error, InvalidRequest) and error.status == 400
    assert error.message == (
        f"upstream d1 rejected the request (400 invalid_request_error): "
        f"prompt is too long: 210000 tokens > 200000 maximum ({REDACTED})"
    )


@pytest.mark.parametrize("status", [413, 422])
def test_other_request_errors_keep_their_status(status: int) -> None:
    error = ERRORS.for_status(status, {}, anthropic_error("request_too_large", "too big"))
    assert isinstance(error, InvalidRequest) and error.status == status


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_a_gateway_fault(status: int) -> None:
    raw = body({"error": {"message": f"Incorrect API key provided: {KEY}.", "type": "invalid_request_error"}})
    error = ERRORS.for_status(status, {}, raw)
    assert isinstance(error, UpstreamError) and error.status == 502
    assert error.retryable is False and error.upstream_status == status
    assert error.message == (
        f"upstream d1 refused the deployment's credentials ({status} invalid_request_error): "
        f"Incorrect API key provided: {REDACTED}"
    )


def test_429_keeps_its_status_and_retry_after() -> None:
    error = ERRORS.for_status(429, {"retry-after": "7"}, anthropic_error("rate_limit_error", "slow down"))
    assert isinstance(error, UpstreamError)
    assert (error.status, error.retry_after_s, error.retryable, error.code) == (429, 7.0, True, "upstream_rate_limited")
    assert error.message == "upstream d1 is rate limiting (429 rate_limit_error): slow down"


@pytest.mark.parametrize(("status", "kind"), [(503, UpstreamUnavailable), (529, UpstreamUnavailable)])
def test_unavailable(status: int, kind: type[UpstreamError]) -> None:
    error = ERRORS.for_status(status, {"retry-after": "2"}, b"<html>busy</html>")
    assert type(error) is kind and error.retryable and error.retry_after_s == 2.0
    assert error.message == f"upstream d1 is unavailable ({status}); its HTML error page is not shown"


@pytest.mark.parametrize("status", [408, 504])
def test_timeouts(status: int) -> None:
    error = ERRORS.for_status(status, {}, b"gateway timeout")
    assert isinstance(error, UpstreamTimeout) and error.retryable and error.status == 504


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (502, True), (404, False), (418, False)])
def test_other_statuses_are_502(status: int, retryable: bool) -> None:
    error = ERRORS.for_status(status, {}, body({"error": {"message": "boom", "type": "server_error"}}))
    assert isinstance(error, UpstreamError) and error.status == 502 and error.retryable is retryable
    assert error.message == f"upstream d1 answered with an error ({status} server_error): boom"


def test_an_empty_error_body_says_only_the_status() -> None:
    assert ERRORS.for_status(500, {}, b"").message == "upstream d1 answered with an error (500)"


# -- errors reported inside answers ------------------------------------------------------------------


def test_an_error_event_is_described_not_relayed() -> None:
    event = {"type": "error", "error": {"type": "overloaded_error", "message": f"Overloaded; key {KEY}"}}
    error = ERRORS.reported(event, mid_stream=True)
    assert error.retryable is False
    assert error.message == f"upstream d1 reported an error mid-stream (overloaded_error): Overloaded; key {REDACTED}"


def test_the_translator_alone_still_scrubs_credential_shapes() -> None:
    translator = AnthropicStreamTranslator("m", "upstream x")
    secret = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz"
    with pytest.raises(UpstreamError) as caught:
        translator.feed({"type": "error", "error": {"type": "api_error", "message": f"bad {secret}"}})
    assert secret not in caught.value.message and "api_error" in caught.value.message


# -- the DEBUG log -------------------------------------------------------------------------------------


class RecordingLog:
    """Stands in for the module's structlog logger, at a chosen level."""

    def __init__(self, level: int) -> None:
        self.level = level
        self.entries: list[dict[str, Any]] = []

    def is_enabled_for(self, level: int) -> bool:
        return level >= self.level

    def debug(self, event: str, **fields: Any) -> None:
        self.entries.append({"event": event, **fields})


def test_the_body_is_logged_at_debug_and_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    log = RecordingLog(logging.DEBUG)
    monkeypatch.setattr(upstream_errors, "log", log)
    raw = body({"error": {"message": f"refused {KEY}", "type": "authentication_error"}})
    ERRORS.for_status(401, {"content-type": "application/json"}, raw)
    (entry,) = log.entries
    assert entry["event"] == "upstream_error_body"
    assert entry["status"] == 401 and entry["upstream"] == "upstream d1" and entry["body_bytes"] == len(raw)
    assert KEY not in entry["body"] and f"refused {REDACTED}" in entry["body"]


def test_nothing_is_logged_above_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    log = RecordingLog(logging.INFO)
    monkeypatch.setattr(upstream_errors, "log", log)
    ERRORS.for_status(500, {}, b"x" * 1000)
    ERRORS.reported({"error": {"message": "m"}}, mid_stream=True)
    assert log.entries == []


def test_the_logged_body_is_bounded() -> None:
    logged = loggable_body(b"y" * (LOG_BODY_CHARS * 3), SCRUBBER)
    assert len(logged) == LOG_BODY_CHARS + 1 and logged.endswith("…")


# -- the providers' credentials ----------------------------------------------------------------------


def deployment(provider: str, **settings: Any) -> Deployment:
    config = DeploymentSettings(provider=provider, model="m", **settings)
    return Deployment(id="d1", alias="a", settings=config, timeouts=TimeoutSettings())


@pytest.mark.parametrize("provider_class", [OpenAIProvider, AnthropicProvider])
def test_providers_scrub_their_key_headers_and_url_secrets(provider_class: type[OpenAIProvider]) -> None:
    name = "openai" if provider_class is OpenAIProvider else "anthropic"
    provider = provider_class(
        deployment(
            name,
            api_key=KEY,
            api_base="https://svc:url-pass-0123456789@llm.internal/v1?sig=query-secret-abc",
            headers={"api-key": "header-secret-value-42"},
        )
    )
    text = f"{KEY} url-pass-0123456789 query-secret-abc header-secret-value-42"
    out = provider.errors.scrubber.scrub(text)
    assert out == " ".join([REDACTED] * 4), out


def test_the_environment_key_is_used_and_scrubbed_only_for_the_vendors_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key-for-anthropic-0123456")
    vendor = AnthropicProvider(deployment("anthropic"))
    assert vendor.headers["x-api-key"] == "env-key-for-anthropic-0123456"
    assert "env-key-for-anthropic-0123456" not in vendor.errors.scrubber.scrub("env-key-for-anthropic-0123456")
    other = AnthropicProvider(deployment("anthropic", api_base="http://127.0.0.1:9/v1"))
    assert "x-api-key" not in other.headers and other.api_base == "http://127.0.0.1:9"
