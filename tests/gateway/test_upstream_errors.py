"""Upstream error answers through the real gateway: callers get a short, scrubbed description,
never the upstream's body. The deployments here carry a known provider key, and the fake upstream
quotes the key it received back in its errors, as real upstreams do; neither the caller (both
dialects, streamed or not, OpenAI-compatible and Anthropic upstreams) nor the DEBUG log may ever
see it. Huge messages and HTML pages come back as one short line."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.gateway.helpers import anthropic_body, assert_anthropic_error, assert_openai_error, chat_body
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.gateway import GatewayProcess, write_config
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

#: The deployments' provider key. No generic credential pattern matches it (28 characters, no
#: vendor prefix), so only the gateway's knowledge of its own key can keep it out of errors.
PROVIDER_KEY = "gwk-7Qp2Vx9LmA4kR8sT1zB6nW3c"
#: alias -> provider; the alias is also the deployment id and the upstream model name.
DEPLOYMENTS = {"k-openai": "openai", "k-anthropic": "anthropic"}
#: How long a described upstream error may be: status, deployment, type and a 200-character excerpt.
MAX_MESSAGE_CHARS = 320
CALLER_PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


def _config(fake: FakeUpstream, data_dir: Path) -> dict[str, Any]:
    def deployment(alias: str, provider: str) -> dict[str, Any]:
        base = fake.openai_base if provider == "openai" else fake.base_url
        return {"provider": provider, "model": alias, "id": alias, "api_base": base, "api_key": PROVIDER_KEY}

    return {
        "server": {"host": "127.0.0.1", "graceful_shutdown_s": 5},
        "models": [{"name": alias, "deployments": [deployment(alias, p)]} for alias, p in DEPLOYMENTS.items()],
        # One attempt per request and a breaker that never opens: each test sees its own error.
        "router": {"retries": 0, "breaker": {"failure_threshold": 1000, "cooldown_s": 1}},
        "local": {"enabled": False, "embeddings_enabled": False},
        "auth": {"enabled": False},
        "limits": {"enabled": False},
        "budgets": {"enabled": False},
        # DEBUG: the upstream bodies are logged, and the log must not hold the key either.
        "logging": {"level": "debug"},
        "data_dir": str(data_dir),
    }


@pytest.fixture(scope="module")
def keyed_gateway(fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("upstream-errors")
    config = write_config(workdir / "bastion.yaml", _config(fake_upstream, workdir / "data"))
    with GatewayProcess(config, workdir / "gateway.log") as process:
        yield process


@pytest.fixture
def client(keyed_gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=keyed_gateway.url, timeout=30) as http:
        yield http


def _request(client: httpx.Client, caller: str, alias: str, *, stream: bool = False) -> httpx.Response:
    body = chat_body(alias, stream=stream) if caller == "openai" else anthropic_body(alias, stream=stream)
    return client.post(CALLER_PATHS[caller], json=body)


def _error(caller: str, response: httpx.Response) -> dict[str, Any]:
    if caller == "openai":
        return assert_openai_error(response.json())
    return assert_anthropic_error(response.json())


def assert_no_key(text: str) -> None:
    """Neither the key nor a recognisable part or encoding of it."""
    forms = {
        "the key": PROVIDER_KEY,
        "its first 12 characters": PROVIDER_KEY[:12],
        "its last 12 characters": PROVIDER_KEY[-12:],
        "its base64": base64.b64encode(PROVIDER_KEY.encode()).decode().rstrip("="),
        "its hex": PROVIDER_KEY.encode().hex(),
    }
    for what, form in forms.items():
        assert form not in text, f"{what} reached the text: {text[:2000]}"


# -- the key never comes back ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "streamed"])
@pytest.mark.parametrize("caller", ["openai", "anthropic"])
@pytest.mark.parametrize("alias", list(DEPLOYMENTS))
def test_upstream_401_quoting_the_key_never_returns_it(
    fake: FakeUpstream, client: httpx.Client, alias: str, caller: str, stream: bool
) -> None:
    fake.default(alias, "reject_key")
    response = _request(client, caller, alias, stream=stream)
    # The caller's own credentials were fine; the deployment's were refused: a gateway fault.
    assert response.status_code == 502, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert_no_key(response.text)
    error = _error(caller, response)
    message = error["message"]
    assert message.startswith(f"upstream {alias} refused the deployment's credentials (401"), message
    assert "Incorrect API key provided" in message, "the scrubbed reason is still useful"
    assert "[REDACTED]" in message
    assert "127.0.0.1" not in message, "the upstream's URL is not the caller's business"
    assert len(message) <= MAX_MESSAGE_CHARS
    requests = fake.requests(alias)
    assert len(requests) == 1, "a refused credential is not retried"
    sent = {name.lower(): value for name, value in requests[0].headers.items()}
    assert PROVIDER_KEY in (sent.get("authorization", "") + sent.get("x-api-key", "")), "the key was sent upstream"


@pytest.mark.parametrize("caller", ["openai", "anthropic"])
@pytest.mark.parametrize("alias", list(DEPLOYMENTS))
def test_error_event_mid_stream_never_relays_the_key(
    fake: FakeUpstream, client: httpx.Client, alias: str, caller: str
) -> None:
    fake.default(alias, "stream_error")
    response = _request(client, caller, alias, stream=True)
    assert response.status_code == 200, "the stream had started when the upstream failed"
    text = response.text
    assert "Hello from" in text, "the content before the error reached the caller"
    assert "mid-stream" in text and "[REDACTED]" in text, text[-1000:]
    assert_no_key(text)


# -- bodies are described, not relayed ---------------------------------------------------------------


@pytest.mark.parametrize("caller", ["openai", "anthropic"])
@pytest.mark.parametrize("alias", list(DEPLOYMENTS))
def test_a_100_kb_error_message_is_cut_to_a_short_line(
    fake: FakeUpstream, client: httpx.Client, alias: str, caller: str
) -> None:
    message = "The server had an error while processing your request. " * 1900  # ~100 KB
    body = orjson.dumps({"error": {"message": message, "type": "server_error", "code": None}})
    assert len(body) > 100_000
    fake.default(alias, Behaviour.error_body(500, body))
    response = _request(client, caller, alias)
    assert response.status_code == 502
    error = _error(caller, response)
    assert len(error["message"]) <= MAX_MESSAGE_CHARS, len(error["message"])
    assert len(response.content) < 1000
    assert error["message"].startswith(f"upstream {alias} answered with an error (500 server_error): The server had")
    assert error["message"].endswith("…")


@pytest.mark.parametrize("caller", ["openai", "anthropic"])
def test_an_html_error_page_is_not_relayed(fake: FakeUpstream, client: httpx.Client, caller: str) -> None:
    page = (
        "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
        f"<!-- upstream auth {PROVIDER_KEY} --><hr><center>nginx/1.25.3</center>"
        + "<p>padding</p>" * 2000
        + "</body></html>"
    ).encode()
    fake.default("k-openai", Behaviour.error_body(502, page, content_type="text/html"))
    response = _request(client, caller, "k-openai")
    assert response.status_code == 502
    message = _error(caller, response)["message"]
    assert message == "upstream k-openai answered with an error (502); its HTML error page is not shown"
    assert_no_key(response.text)


def test_a_plain_text_error_body_is_not_relayed(fake: FakeUpstream, client: httpx.Client) -> None:
    body = f"upstream connect error or disconnect/reset before headers. auth={PROVIDER_KEY}".encode()
    fake.default("k-anthropic", Behaviour.error_body(503, body, content_type="text/plain"))
    response = _request(client, "openai", "k-anthropic")
    assert response.status_code == 503
    message = _error("openai", response)["message"]
    assert message == "upstream k-anthropic is unavailable (503); its non-JSON error body is not shown"
    assert_no_key(response.text)


# -- what clients rely on stays ------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["openai", "anthropic"])
@pytest.mark.parametrize("alias", list(DEPLOYMENTS))
def test_an_invalid_request_is_relayed_as_400_with_the_scrubbed_reason(
    fake: FakeUpstream, client: httpx.Client, alias: str, caller: str
) -> None:
    reason = "This model's maximum context length is 8192 tokens, however you requested 9000 tokens."
    message = f"{reason} (request authenticated as {PROVIDER_KEY})"
    if DEPLOYMENTS[alias] == "anthropic":
        payload: dict[str, Any] = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    else:
        payload = {"error": {"message": message, "type": "invalid_request_error", "param": "messages", "code": None}}
    fake.default(alias, Behaviour.error_body(400, orjson.dumps(payload)))
    response = _request(client, caller, alias)
    assert response.status_code == 400
    error = _error(caller, response)
    assert reason in error["message"], "the caller can fix the request"
    assert error["message"].startswith(f"upstream {alias} rejected the request (400 invalid_request_error): ")
    assert error["type"] == "invalid_request_error"
    assert_no_key(response.text)


def test_a_429_keeps_its_status_and_retry_after(fake: FakeUpstream, client: httpx.Client) -> None:
    payload = {"error": {"message": f"Rate limit reached for key {PROVIDER_KEY}", "type": "requests"}}
    fake.default("k-openai", Behaviour.error_body(429, orjson.dumps(payload), retry_after="7"))
    response = _request(client, "openai", "k-openai")
    assert response.status_code == 429
    assert response.headers.get("retry-after") == "7"
    error = _error("openai", response)
    assert error["message"].startswith("upstream k-openai is rate limiting (429 requests): Rate limit reached")
    assert_no_key(response.text)


# -- the DEBUG log ------------------------------------------------------------------------------------


def test_the_debug_log_has_the_upstream_body_but_never_the_key(
    fake: FakeUpstream, client: httpx.Client, keyed_gateway: GatewayProcess
) -> None:
    marker = "log-marker-5b1e"
    payload = {"error": {"message": f"{marker}: invalid key {PROVIDER_KEY}", "type": "invalid_request_error"}}
    fake.default("k-openai", Behaviour.error_body(401, orjson.dumps(payload)))
    fake.script("k-anthropic", ["reject_key"])
    assert _request(client, "openai", "k-openai").status_code == 502
    assert _request(client, "anthropic", "k-anthropic", stream=True).status_code == 502

    def logged() -> str | None:
        text = keyed_gateway.log_path.read_text(encoding="utf-8", errors="replace")
        return text if marker in text else None

    log = wait_until(logged, timeout_s=10, what="the upstream error bodies in the DEBUG log")
    lines = [line for line in log.splitlines() if "upstream_error_body" in line]
    assert any(marker in line and "invalid key [REDACTED]" in line for line in lines), lines
    assert_no_key(log)
