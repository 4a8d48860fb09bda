"""The lean upstream HTTP/1.1 client (bastion.providers.transport) against small real servers.

Raw asyncio servers (tests/providers/transport_support.py) misbehave on purpose: they cut bodies,
stall, close kept-alive connections, answer with gzip; aiohttp.web stands in for a real HTTP
server. Byte-level splitting of answers is in test_transport_parsing.py.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
from pathlib import Path

import pytest
import uvloop
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.typedefs import Handler

from bastion.config.settings import TimeoutSettings
from bastion.errors import UpstreamConnectionError, UpstreamError, UpstreamTimeout
from bastion.providers.http import iter_sse_data, make_client, proxy_for, transport_error
from bastion.providers.proxied import AiohttpClient
from bastion.providers.transport import (
    ConnectError,
    ConnectionLost,
    HTTPClient,
    InvalidResponse,
    TruncatedResponse,
)
from bastion.providers.transport.connection import HIGH_WATER, Connection
from tests.providers.transport_support import (
    CHUNKED_HEAD,
    RawServer,
    chunked,
    keep_alive,
    read_request,
    response,
    self_signed,
)

HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-test"}


def client(
    url: str, *, read_timeout: float = 5.0, limit: int = 0, ssl_context: ssl.SSLContext | None = None
) -> HTTPClient:
    return HTTPClient(
        url, HEADERS, connect_timeout=5.0, read_timeout=read_timeout, limit=limit, ssl_context=ssl_context
    )


# -- bodies and the request head ------------------------------------------------------------------


async def test_content_length_body_and_the_request_head() -> None:
    requests: list[bytes] = []
    async with RawServer(keep_alive(response(b'{"ok": true}'), requests)) as server:
        upstream = client(server.url("/v1"))
        answer = await upstream.post("/chat/completions", b'{"model": "m"}')
        assert answer.status == 200 and answer.headers["content-length"] == "12"
        assert await answer.read() == b'{"ok": true}'
        await upstream.aclose()
    head, _, body = requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert {b"Accept-Encoding: identity", b"content-type: application/json", b"Content-Length: 14"} <= set(lines)
    assert b"authorization: Bearer sk-test" in lines
    assert body == b'{"model": "m"}'


async def test_chunked_body_from_aiohttp() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        stream = web.StreamResponse(headers={"X-Trace": "a"})
        await stream.prepare(request)
        for part in (b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"):
            await stream.write(part)
        await stream.write_eof()
        return stream

    async with _aiohttp_server(handler) as url:
        upstream = client(url)
        answer = await upstream.post("/x", b"{}")
        assert answer.headers["transfer-encoding"] == "chunked" and answer.headers["x-trace"] == "a"
        events = [data async for _event, data in iter_sse_data(answer)]
        assert events == [b"1", b"2", b"[DONE]"]
        # Read to its end: the connection went back to the pool.
        assert upstream.pool.idle == 1 and upstream.pool.in_use == 0
        await upstream.aclose()


async def test_responses_iterate_as_chunks_then_release() -> None:
    body = chunked(b"abc", b"def")
    async with RawServer(keep_alive(CHUNKED_HEAD + body)) as server:
        upstream = client(server.url())
        for _ in range(3):  # one connection, its parser carried from one answer to the next
            answer = await upstream.post("/x", b"{}")
            assert b"".join([chunk async for chunk in answer]) == b"abcdef"
            assert upstream.pool.idle == 1
        assert server.accepted == 1


async def test_informational_answers_before_the_real_one_are_skipped() -> None:
    answer_bytes = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + response(b"real", headers="X-Real: 1\r\n")
    async with RawServer(keep_alive(answer_bytes)) as server:
        answer = await client(server.url()).post("/x", b"{}")
        assert answer.status == 200 and "link" not in answer.headers and answer.headers["x-real"] == "1"
        assert await answer.read() == b"real"


async def test_a_body_delimited_by_the_connection_closing() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()

    async with RawServer(handler) as server:
        upstream = client(server.url())
        assert await (await upstream.post("/x", b"{}")).read() == b"until the end"
        assert upstream.pool.idle == 0


async def test_gzip_answers_are_decoded() -> None:
    payload = b'{"choices": []}' * 50
    compressed = gzip.compress(payload)
    async with RawServer(keep_alive(response(compressed, headers="Content-Encoding: gzip\r\n"))) as server:
        upstream = client(server.url())
        assert await (await upstream.post("/x", b"{}")).read() == payload
        # Streamed in pieces too (a decompressor per response).
        half = len(compressed) // 2
        streamed = CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n", 1)
        server.handler = keep_alive(streamed + chunked(compressed[:half], compressed[half:]))
        answer = await client(server.url()).post("/x", b"{}")
        assert b"".join([chunk async for chunk in answer]) == payload


async def test_an_encoding_we_cannot_decode_is_an_invalid_response() -> None:
    async with RawServer(keep_alive(response(b"\x1b\x00", headers="Content-Encoding: br\r\n"))) as server:
        upstream = client(server.url())
        with pytest.raises(InvalidResponse):
            await upstream.post("/x", b"{}")
        assert upstream.pool.in_use == 0 and upstream.pool.idle == 0


async def test_gzip_from_aiohttp_with_compression_on() -> None:
    async def handler(request: web.Request) -> web.Response:
        reply = web.Response(body=b"squeeze me " * 200)
        reply.enable_compression(web.ContentCoding.gzip)
        return reply

    async with _aiohttp_server(handler) as url:
        assert await (await client(url).post("/x", b"{}")).read() == b"squeeze me " * 200


# -- keep-alive and its failure modes ----------------------------------------------------------------


async def test_kept_alive_connection_is_reused() -> None:
    async with RawServer(keep_alive(response(b"one"))) as server:
        upstream = client(server.url())
        for _ in range(3):
            assert await (await upstream.post("/x", b"{}")).read() == b"one"
        assert server.accepted == 1 and upstream.pool.opened == 1


async def test_connection_close_is_not_reused() -> None:
    async with RawServer(keep_alive(response(b"bye", headers="Connection: close\r\n"))) as server:
        upstream = client(server.url())
        for _ in range(2):
            assert await (await upstream.post("/x", b"{}")).read() == b"bye"
        assert server.accepted == 2 and upstream.pool.idle == 0


async def test_http_1_0_without_keep_alive_is_not_reused() -> None:
    async with RawServer(keep_alive(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")) as server:
        upstream = client(server.url())
        for _ in range(2):
            assert await (await upstream.post("/x", b"{}")).read() == b"ok"
        assert server.accepted == 2


async def test_server_closing_an_idle_connection_means_a_new_one() -> None:
    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(b"fine"))  # kept alive as far as the client knows, then closed
        await writer.drain()

    async with RawServer(answer_once) as server:
        upstream = client(server.url())
        assert await (await upstream.post("/x", b"{}")).read() == b"fine"
        await server.closed.wait()
        assert await (await upstream.post("/x", b"{}")).read() == b"fine"
        assert server.accepted == 2


async def test_stale_connection_is_resent_once_on_a_new_one() -> None:
    # The server reads the second request on the kept-alive connection and closes without a word:
    # the race every keep-alive client meets when the server times the connection out.
    async def close_on_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(b"first"))
        await writer.drain()
        await read_request(reader)

    async with RawServer(close_on_second) as server:
        upstream = client(server.url())
        assert await (await upstream.post("/x", b"{}")).read() == b"first"
        assert await (await upstream.post("/x", b"{}")).read() == b"first"
        assert server.accepted == 2 and upstream.pool.in_use == 0


async def test_a_new_connection_closed_without_an_answer_is_an_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with RawServer(hang_up) as server:
        upstream = client(server.url())
        with pytest.raises(ConnectionLost) as caught:
            await upstream.post("/x", b"{}")
        assert server.accepted == 1, "a fresh connection is not resent: the upstream may have acted on it"
        error = transport_error(caught.value, "upstream u")
        assert isinstance(error, UpstreamConnectionError) and error.status == 502 and error.retryable


async def test_truncated_bodies_are_errors() -> None:
    cut_length = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"
    cut_chunked = CHUNKED_HEAD + b"5\r\nhello\r\n"
    for answer_bytes in (cut_length, cut_chunked):

        async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes = answer_bytes) -> None:
            await read_request(reader)
            writer.write(data)
            await writer.drain()

        async with RawServer(cut) as server:
            upstream = client(server.url())
            answer = await upstream.post("/x", b"{}")
            with pytest.raises(TruncatedResponse) as caught:
                await answer.read()
            assert "truncated" in transport_error(caught.value, "upstream u").message
            assert upstream.pool.in_use == 0 and upstream.pool.idle == 0


async def test_malformed_answers_are_invalid_responses() -> None:
    async with RawServer(keep_alive(b"HTTP/1.1 2x0 Nope\r\n\r\n")) as server:
        with pytest.raises(InvalidResponse) as caught:
            await client(server.url()).post("/x", b"{}")
        error = transport_error(caught.value, "upstream u")
        assert "invalid response" in error.message and error.retryable


# -- timeouts and connection failures -----------------------------------------------------------------


async def _stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await reader.read()  # until the client goes away


async def test_read_timeout_waiting_for_the_head() -> None:
    async with RawServer(_stall) as server:
        upstream = client(server.url(), read_timeout=0.2)
        with pytest.raises(TimeoutError) as caught:
            await upstream.post("/x", b"{}")
        error = transport_error(caught.value, "upstream u")
        assert isinstance(error, UpstreamTimeout) and error.status == 504
        await server.closed.wait()  # the timed-out connection was closed, the upstream saw it
        assert upstream.pool.in_use == 0


async def test_read_timeout_on_a_reused_connection() -> None:
    async def answer_then_stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(b"first"))
        await writer.drain()
        await _stall(reader, writer)

    async with RawServer(answer_then_stall) as server:
        upstream = client(server.url(), read_timeout=0.3)
        assert await _post_and_read(upstream) == b"first"
        with pytest.raises(TimeoutError):
            await upstream.post("/x", b"{}")
        assert server.accepted == 1 and upstream.pool.in_use == 0


async def test_read_timeout_between_body_bytes() -> None:
    async def stall_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(CHUNKED_HEAD + b"5\r\nfirst\r\n")
        await writer.drain()
        await reader.read()

    async with RawServer(stall_mid_body) as server:
        answer = await client(server.url(), read_timeout=0.2).post("/x", b"{}")
        assert await answer.read_chunk() == b"first"
        with pytest.raises(TimeoutError):
            await answer.read_chunk()
        await server.closed.wait()


async def test_connection_refused_is_a_retryable_502() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectError) as caught:
        await client(f"http://127.0.0.1:{port}").post("/x", b"{}")
    error = transport_error(caught.value, "upstream u")
    assert isinstance(error, UpstreamConnectionError) and error.status == 502 and error.retryable


async def test_connect_timeout_covers_the_tls_handshake() -> None:
    # A TCP server that never speaks TLS: the handshake hangs until connect_s.
    async with RawServer(_stall) as server:
        upstream = HTTPClient(f"https://127.0.0.1:{server.port}", HEADERS, connect_timeout=0.2, read_timeout=5)
        with pytest.raises(TimeoutError) as caught:
            await upstream.post("/x", b"{}")
        assert transport_error(caught.value, "upstream u").status == 504
        assert upstream.pool.in_use == 0


# -- streams closed early, the connection limit, flow control -----------------------------------------


async def test_closing_a_stream_early_closes_the_socket() -> None:
    saw_close = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(CHUNKED_HEAD + b"9\r\ndata: 1\n\n\r\n")
        await writer.drain()
        assert await reader.read() == b""  # EOF: the client closed the connection
        saw_close.set()

    async with RawServer(endless) as server:
        upstream = client(server.url())
        answer = await upstream.post("/x", b"{}")
        assert await answer.read_chunk() == b"data: 1\n\n"
        answer.close()
        await asyncio.wait_for(saw_close.wait(), 5)
        assert upstream.pool.in_use == 0 and upstream.pool.idle == 0


async def test_released_stream_is_pooled_once_its_terminator_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    send_rest = asyncio.Event()

    async def late_terminator(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(CHUNKED_HEAD + b"e\r\ndata: [DONE]\n\n\r\n")
            await writer.drain()
            await send_rest.wait()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async with RawServer(late_terminator) as server:
        upstream = client(server.url())
        checked_in = asyncio.Event()
        checkin = upstream.pool.checkin

        def checkin_and_tell(conn: Connection) -> None:
            checkin(conn)
            checked_in.set()

        monkeypatch.setattr(upstream.pool, "checkin", checkin_and_tell)
        answer = await upstream.post("/x", b"{}")
        async for _event, data in iter_sse_data(answer):
            if data == b"[DONE]":
                break  # as the providers do
        answer.release()  # before the terminator: the connection drains
        assert upstream.pool.idle == 0 and upstream.pool.in_use == 1
        send_rest.set()
        await asyncio.wait_for(checked_in.wait(), 5)
        assert upstream.pool.idle == 1 and upstream.pool.in_use == 0
        send_rest.clear()
        answer = await upstream.post("/x", b"{}")
        answer.close()
        assert server.accepted == 1


async def test_connection_limit_holds_under_concurrency() -> None:
    async with RawServer(keep_alive(response(b"ok"))) as server:
        upstream = client(server.url(), limit=2)
        answers = await asyncio.gather(*(_post_and_read(upstream) for _ in range(20)))
        assert answers == [b"ok"] * 20
        assert server.max_open <= 2 and server.accepted <= 2 and upstream.pool.in_use == 0


async def test_cancelled_waiters_do_not_leak_slots() -> None:
    async with RawServer(_stall) as server:
        upstream = client(server.url(), limit=1)
        first = asyncio.ensure_future(upstream.post("/x", b"{}"))
        queued = asyncio.ensure_future(upstream.post("/x", b"{}"))
        await asyncio.sleep(0)
        queued.cancel()
        first.cancel()
        await asyncio.gather(first, queued, return_exceptions=True)
        assert upstream.pool.in_use == 0
        server.handler = keep_alive(response(b"ok"))
        assert await _post_and_read(upstream) == b"ok"


async def _post_and_read(upstream: HTTPClient) -> bytes:
    return await (await upstream.post("/x", b"{}")).read()


class _WatchedConnection(Connection):
    """Tells the test when reading paused, and how much was buffered then."""

    paused = asyncio.Event()
    buffered_at_pause = 0

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self._paused and not _WatchedConnection.paused.is_set():
            _WatchedConnection.buffered_at_pause = self.buffered
            _WatchedConnection.paused.set()


async def test_large_bodies_with_flow_control() -> None:
    block = bytes(range(256)) * 1024  # 256 KiB
    blocks = 32  # 8 MiB
    _WatchedConnection.paused = asyncio.Event()
    async with RawServer(keep_alive(CHUNKED_HEAD + chunked(*([block] * blocks)))) as server:
        upstream = client(server.url())
        upstream.pool.connection_class = _WatchedConnection
        answer = await upstream.post("/x", b"{}")
        # Nobody reads: the client stops reading the socket past the high-water mark.
        await asyncio.wait_for(_WatchedConnection.paused.wait(), 5)
        assert HIGH_WATER < _WatchedConnection.buffered_at_pause <= HIGH_WATER + 2 * len(block)
        total = bytearray()
        async for chunk in answer:  # reading resumes as the buffer drains
            total += chunk
        assert total == block * blocks
        assert upstream.pool.idle == 1
        # The whole of a big body in one read() (no flow control there: no deadlock either).
        server.handler = keep_alive(response(block * blocks))
        assert await _post_and_read(upstream) == block * blocks


# -- TLS, proxies, uvloop -------------------------------------------------------------------------


async def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with RawServer(keep_alive(response(b"secret")), ssl_context=server_context) as server:
        upstream = client(server.url(), ssl_context=trusting)
        for _ in range(2):
            assert await _post_and_read(upstream) == b"secret"
        assert server.accepted == 1
        # The system trust store does not know the certificate: refused, mapped to a 502.
        with pytest.raises(ConnectError) as caught:
            await client(server.url()).post("/x", b"{}")
        assert transport_error(caught.value, "upstream u").status == 502


async def test_proxy_settings_send_the_provider_to_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    timeouts = TimeoutSettings()
    assert proxy_for("https://api.openai.com/v1") is None
    assert isinstance(make_client("https://api.openai.com/v1", HEADERS, timeouts), HTTPClient)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,.corp.example")
    assert proxy_for("https://api.openai.com/v1") == "http://proxy.internal:3128"
    assert proxy_for("http://127.0.0.1:8000/v1") is None, "HTTPS_PROXY is for https origins"
    assert proxy_for("https://llm.corp.example/v1") is None, "NO_PROXY"
    assert isinstance(make_client("https://api.openai.com/v1", HEADERS, timeouts), AiohttpClient)
    monkeypatch.setenv("ALL_PROXY", "http://proxy.internal:3128")
    assert proxy_for("http://10.1.2.3:8000/v1") == "http://proxy.internal:3128"
    assert proxy_for("http://127.0.0.1:8000/v1") is None


async def test_behind_a_proxy_the_aiohttp_client_answers_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    # The "proxy" answers itself: enough to see aiohttp send it the absolute URL.
    requests: list[bytes] = []
    sse = CHUNKED_HEAD + chunked(b"data: 1\n\n", b"data: [DONE]\n\n")
    async with RawServer(keep_alive(sse, requests)) as proxy:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        upstream = make_client("http://upstream.invalid/v1", HEADERS, TimeoutSettings())
        assert isinstance(upstream, AiohttpClient)
        answer = await upstream.post("/chat/completions", b"{}")
        assert answer.status == 200 and answer.headers["transfer-encoding"] == "chunked"
        assert [data async for _e, data in iter_sse_data(answer)] == [b"1", b"[DONE]"]
        answer.release()
        await upstream.aclose()
    assert requests[0].startswith(b"POST http://upstream.invalid/v1/chat/completions HTTP/1.1\r\n")


def test_transport_error_mapping() -> None:
    assert isinstance(transport_error(TimeoutError(), "u"), UpstreamTimeout)
    assert isinstance(transport_error(ConnectError("x"), "u"), UpstreamConnectionError)
    assert isinstance(transport_error(ConnectionResetError(), "u"), UpstreamConnectionError)
    truncated = transport_error(TruncatedResponse("x"), "u")
    assert type(truncated) is UpstreamError and truncated.message == "u sent a truncated response"


def test_aiohttp_errors_reach_the_providers_as_transport_errors() -> None:
    import aiohttp

    from bastion.providers.proxied import _transport_errors

    def raised(error: BaseException) -> BaseException:
        with pytest.raises(BaseException) as caught, _transport_errors():
            raise error
        return caught.value

    assert isinstance(raised(aiohttp.ClientPayloadError("cut")), TruncatedResponse)
    assert transport_error(raised(aiohttp.ServerDisconnectedError()), "u").status == 502
    assert isinstance(transport_error(raised(aiohttp.ServerTimeoutError()), "u"), UpstreamTimeout)
    key = ConnectionKey("upstream.invalid", 443, True, True, None, None, None)
    assert isinstance(raised(aiohttp.ClientConnectorError(key, OSError(111, "refused"))), OSError)


def test_the_same_paths_under_uvloop() -> None:
    # The gateway runs on uvloop, whose transports differ from asyncio's in small ways.
    async def scenario() -> None:
        await test_kept_alive_connection_is_reused()
        await test_stale_connection_is_resent_once_on_a_new_one()
        await test_truncated_bodies_are_errors()
        await test_read_timeout_between_body_bytes()
        await test_closing_a_stream_early_closes_the_socket()
        await test_large_bodies_with_flow_control()
        await test_connection_limit_holds_under_concurrency()

    uvloop.run(scenario())


class _aiohttp_server:  # a context manager, named as it reads in a with statement
    def __init__(self, handler: Handler) -> None:
        self.app = web.Application()
        self.app.router.add_post("/x", handler)
        self.runner = web.AppRunner(self.app)

    async def __aenter__(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()
