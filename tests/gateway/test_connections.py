"""Connection limits and server logging, against a real ``bastion serve`` with short limits.

Raw sockets play the hostile clients: one that never speaks, one that trickles its headers
(slowloris), one that never finishes its body, one that leaves mid-upload. The gateway runs with
the access log on and DEBUG logging, so its log shows whatever the server and the SQL driver
would write.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.helpers import chat_body
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import GatewayProcess, gateway_config, write_config
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
KEEP_ALIVE_S = 1.0
MAX_CONNECTIONS = 4
#: How much later than its limit a connection may be closed (a loaded 2-core CI machine).
SLACK_S = 3.0
CARD = "4111 1111 1111 1111"
QUERY_SECRET = "sk-proj-QueryStringSecretValue0123456789"


@pytest.fixture(scope="module")
def limited(fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("limited")
    config = gateway_config(fake_upstream.base_url, workdir / "data", local=False)
    config["server"].update(
        header_timeout_s=HEADER_TIMEOUT_S,
        body_timeout_s=BODY_TIMEOUT_S,
        keep_alive_timeout_s=KEEP_ALIVE_S,
        max_connections=MAX_CONNECTIONS,
        access_log=True,
    )
    config["logging"] = {"level": "debug"}
    # The guard would redact the card before the ledger stores it: off, the statement carries it.
    config["guard"] = {"enabled": False}
    process = GatewayProcess(write_config(workdir / "bastion.yaml", config), workdir / "gateway.log")
    with process:
        yield process


def _connect(gateway: GatewayProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=10)


def _read_until_closed(sock: socket.socket, timeout_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed (monotonic)."""
    deadline = time.monotonic() + timeout_s
    received = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"connection still open after {timeout_s} s; got {received[:200]!r}")
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received, time.monotonic()
        if not data:
            return received, time.monotonic()
        received += data


def _json_body(response: bytes) -> dict[str, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def _log_lines(gateway: GatewayProcess) -> list[str]:
    return gateway.log_path.read_text(encoding="utf-8", errors="replace").splitlines()


def test_a_connection_that_never_speaks_is_closed(limited: GatewayProcess) -> None:
    with _connect(limited) as sock:
        opened = time.monotonic()
        received, closed = _read_until_closed(sock, HEADER_TIMEOUT_S + SLACK_S)
    assert received == b"", "a connection that sent nothing gets no answer, only a close"
    assert closed - opened >= HEADER_TIMEOUT_S * 0.9


def test_headers_trickled_a_byte_at_a_time_get_408_and_a_close(limited: GatewayProcess) -> None:
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" + b"x-pad: a" * 200
    with _connect(limited) as sock:
        started = time.monotonic()
        response = b""
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.settimeout(0.05)  # the trickle's pace: waiting for an answer between bytes
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            response += data
            break
        assert time.monotonic() - started < HEADER_TIMEOUT_S + SLACK_S, "the trickle was never cut off"
        rest, closed = _read_until_closed(sock, SLACK_S)
    response += rest
    assert response.startswith(b"HTTP/1.1 408 "), response[:200]
    assert _json_body(response)["error"]["code"] == "request_timeout"
    assert closed - started < HEADER_TIMEOUT_S + SLACK_S


def test_a_body_that_never_completes_gets_408_and_a_close(limited: GatewayProcess) -> None:
    body = json.dumps(chat_body("fake-ok")).encode()
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(body)
    )
    with _connect(limited) as sock:
        sock.sendall(head + body[:10])
        started = time.monotonic()
        response, closed = _read_until_closed(sock, BODY_TIMEOUT_S + SLACK_S)
    assert response.startswith(b"HTTP/1.1 408 "), response[:200]
    error = _json_body(response)["error"]  # the OpenAI shape, as the path says
    assert error["code"] == "request_timeout" and set(error) == {"message", "type", "param", "code"}
    assert BODY_TIMEOUT_S * 0.9 <= closed - started < BODY_TIMEOUT_S + SLACK_S


def test_an_idle_kept_alive_connection_is_closed(limited: GatewayProcess) -> None:
    with _connect(limited) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        sock.settimeout(5)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        answered = time.monotonic()
        rest, closed = _read_until_closed(sock, KEEP_ALIVE_S + SLACK_S)
    assert rest == b"" and closed - answered >= KEEP_ALIVE_S * 0.9


def test_a_connection_beyond_the_limit_gets_a_json_503(limited: GatewayProcess, fake: FakeUpstream) -> None:
    fake.default("m-slow-stream", "slow_stream")
    body = json.dumps(chat_body("m-slow-stream", stream=True)).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(body) + body
    )
    holders = [_connect(limited) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in holders:
            sock.sendall(request)
            sock.settimeout(5)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")  # each holds a streaming answer
        with _connect(limited) as extra:
            extra.sendall(request)
            response, _ = _read_until_closed(extra, 5)
    finally:
        for sock in holders:
            sock.close()
    assert response.startswith(b"HTTP/1.1 503 "), response[:200]
    assert b"retry-after: 1" in response.lower()
    assert _json_body(response)["error"]["code"] == "server_overloaded"

    def refused() -> float:
        metrics = httpx.get(limited.url + "/metrics", timeout=5).text
        lines = [line for line in metrics.splitlines() if line.startswith('bastion_http_refused_total{reason="over_')]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

    assert wait_until(refused, timeout_s=10, what="the over_capacity refusal counted") >= 1


def test_access_lines_are_structured_and_carry_no_query_string(limited: GatewayProcess) -> None:
    response = httpx.get(limited.url + f"/v1/models?api_key={QUERY_SECRET}&user=alice", timeout=10)
    assert response.status_code == 200

    def access_line() -> dict[str, Any] | None:
        for line in _log_lines(limited):
            if '"http_access"' in line and '"/v1/models"' in line:
                entry: dict[str, Any] = json.loads(line)
                return entry
        return None

    entry = wait_until(access_line, timeout_s=10, what="an access line for /v1/models")
    assert entry["method"] == "GET" and entry["status"] == 200 and entry["path"] == "/v1/models"
    assert entry["query"] is True
    text = limited.log_path.read_text(encoding="utf-8", errors="replace")
    assert QUERY_SECRET not in text and "api_key=" not in text and "user=alice" not in text
    assert "Traceback" not in text and "--- Logging error ---" not in text


def test_leaving_mid_upload_is_one_info_line(limited: GatewayProcess) -> None:
    body = json.dumps(chat_body("fake-ok", messages=[{"role": "user", "content": "x" * 4000}])).encode()
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(body)
    )
    before = len(_log_lines(limited))
    for _ in range(3):
        with _connect(limited) as sock:
            sock.sendall(head + body[: len(body) // 2])

    def disconnect_lines() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in _log_lines(limited)[before:] if line.startswith("{")]
        return [line for line in lines if line.get("event") == "client_disconnected"]

    def three_or_more() -> list[dict[str, Any]] | None:
        lines = disconnect_lines()
        return lines if len(lines) >= 3 else None

    found = wait_until(three_or_more, timeout_s=10)
    assert all(line["level"] == "info" for line in found)
    new = _log_lines(limited)[before:]
    assert not [line for line in new if "Traceback" in line or '"level": "error"' in line], new


def test_debug_logs_carry_no_card_number_nor_sql_parameters(limited: GatewayProcess, fake: FakeUpstream) -> None:
    content = f"Please charge my card {CARD} (also written {CARD.replace(' ', '')}) today."
    body = chat_body("fake-ok", messages=[{"role": "user", "content": content}])
    assert httpx.post(limited.url + "/v1/chat/completions", json=body, timeout=30).status_code == 200
    # The ledger writes the exchange to the database in the background: wait for its INSERT.
    wait_until(
        lambda: any("INSERT INTO interactions" in line for line in _log_lines(limited)),
        timeout_s=15,
        what="the ledger's INSERT logged at DEBUG",
    )
    text = Path(limited.log_path).read_text(encoding="utf-8", errors="replace")
    assert CARD not in text and CARD.replace(" ", "") not in text
    assert "charge my card" not in text, "statement parameters (the prompt) reached the log"
