"""CPU per upstream call: the providers' lean client (bastion.providers.transport) against aiohttp.

    .venv/bin/python bench/transport_bench.py [--requests 20000] [--concurrency 16]

A static HTTP/1.1 server (a uvloop Protocol in a child process, pinned to CPU 1) answers every
POST with a canned answer: ``chat`` a JSON body with Content-Length, ``stream`` an SSE answer of
eight events, chunked one event per HTTP chunk as OpenAI's API sends them. The client (pinned to
CPU 0, uvloop, like ``bastion serve``) makes the calls the providers make: POST the same JSON
body, then read it whole (chat) or read every SSE event (stream), and reports the CPU time of its
own process per call (user + system; the server's time is not counted). aiohttp runs as the
providers used it before (a session per deployment, ``response.content`` line iteration).
It is a benchmark: it prints numbers and never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import aiohttp
import httptools
import orjson
import uvloop

from bastion.config.settings import TimeoutSettings
from bastion.providers.http import iter_sse_data
from bastion.providers.proxied import new_session
from bastion.providers.transport import HTTPClient

REQUEST = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}],
        "max_tokens": 64,
        "temperature": 0.2,
    }
)
CHAT_BODY = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23},
    }
)


def _sse_events() -> list[bytes]:
    def chunk(delta: dict[str, object], **extra: object) -> bytes:
        choices = [{"index": 0, "delta": delta, "finish_reason": extra.pop("finish", None)}]
        body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": choices}
        return b"data: " + orjson.dumps({**body, **extra}) + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": word}) for word in ("Hello", " there", ",", " friend!")]
    events.append(chunk({}, finish="stop"))
    events.append(b"data: " + orjson.dumps({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 4}}))
    events[-1] += b"\n\n"
    events.append(b"data: [DONE]\n\n")
    return events


ANSWERS = {
    b"/v1/chat/completions": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
    % (len(CHAT_BODY), CHAT_BODY),
    b"/stream/v1/chat/completions": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"%x\r\n%b\r\n" % (len(e), e) for e in _sse_events())
    + b"0\r\n\r\n",
}


# -- the static server (child process) --------------------------------------------------------------


class _Static(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        assert self.transport is not None
        self.transport.write(ANSWERS[self.url])


def serve(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Static, "127.0.0.1", port)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


# -- the client ------------------------------------------------------------------------------------


async def _old_sse(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The providers' SSE reading before the lean client (line iteration over aiohttp)."""
    data: list[bytes] = []
    async for raw_line in response.content:
        line = raw_line.rstrip(b"\r\n")
        if not line:
            if data:
                yield b"\n".join(data)
            data = []
        elif line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))


def aiohttp_call(session: aiohttp.ClientSession, url: str, stream: bool) -> Callable[[], Awaitable[int]]:
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

    async def call() -> int:
        response = await session.post(url, data=REQUEST, headers=headers)
        if not stream:
            body = await response.read()
            response.release()
            return len(orjson.loads(body)["choices"])
        events = 0
        async for data in _old_sse(response):
            if data == b"[DONE]":
                break
            orjson.loads(data)
            events += 1
        response.release()
        return events

    return call


def lean_call(client: HTTPClient, path: str, stream: bool) -> Callable[[], Awaitable[int]]:
    async def call() -> int:
        response = await client.post(path, REQUEST)
        if not stream:
            return len(orjson.loads(await response.read())["choices"])
        events = 0
        async for _event, data in iter_sse_data(response):
            if data == b"[DONE]":
                break
            orjson.loads(data)
            events += 1
        response.release()
        return events

    return call


async def measure(call: Callable[[], Awaitable[int]], requests: int, concurrency: int) -> tuple[float, float]:
    """(CPU µs per call, calls per second) over ``requests`` calls, ``concurrency`` at a time."""
    for _ in range(200):  # warm-up: connections opened, code paths hot
        await call()
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu / requests * 1e6, requests / wall


async def run(port: int, requests: int, concurrency: int, rounds: int) -> None:
    base = f"http://127.0.0.1:{port}"
    timeouts = TimeoutSettings()
    session = new_session(timeouts)
    lean = {
        prefix: HTTPClient(base + prefix, {"content-type": "application/json", "authorization": "Bearer sk-bench"})
        for prefix in ("/v1", "/stream/v1")
    }
    print(f"{requests} calls per row, {concurrency} at a time, best of {rounds} rounds")
    print("CPU us/call: the client process's CPU time per call (lower is better)")
    print(f"{'mode':8} {'client':8} {'CPU us/call':>12} {'calls/s':>10}")
    for mode, prefix in (("chat", "/v1"), ("stream", "/stream/v1")):
        stream = mode == "stream"
        calls = {
            "aiohttp": aiohttp_call(session, base + prefix + "/chat/completions", stream),
            "lean": lean_call(lean[prefix], "/chat/completions", stream),
        }
        results: dict[str, tuple[float, float]] = {}
        for _ in range(rounds):  # interleaved, so a burst of other load hits both
            for name, call in calls.items():
                cpu, rate = await measure(call, requests, concurrency)
                if name not in results or cpu < results[name][0]:
                    results[name] = (cpu, rate)
        for name, (cpu, rate) in results.items():
            print(f"{mode:8} {name:8} {cpu:12.1f} {rate:10.0f}")
        saved = results["aiohttp"][0] - results["lean"][0]
        print(f"{mode:8} {'saved':8} {saved:12.1f}  ({saved / results['aiohttp'][0]:.0%} of the aiohttp client's CPU)")
    await session.close()
    for client in lean.values():
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=18931)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port)
        return
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {0})
    server = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, __file__, "--serve", "--port", str(args.port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        uvloop.run(run(args.port, args.requests, args.concurrency, args.rounds))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
