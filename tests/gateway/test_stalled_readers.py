"""Clients that ask for a long stream and never read it pin little memory, and give it back.

Each stalled client asks for a streamed answer of some 30 MB (the fake upstream sends it as fast
as the gateway reads) with the guard on, then reads nothing. Back-pressure must reach the
upstream: the capped socket send buffer, the small SSE buffer, the transport's read pause. The
gateway's RSS is read from /proc while the clients stall and after they leave.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway.helpers import chat_body
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import GatewayProcess, gateway_config, write_config
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

CLIENTS = 40
MAX_GROWTH_MB = 100.0
MB = 1 << 20


@pytest.fixture(scope="module")
def guarded(fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("stalled")
    config = gateway_config(fake_upstream.base_url, workdir / "data", local=False)
    config["guard"] = {"enabled": True}
    # The insights roll-ups and alert checks allocate on their own schedule (every 30 s), which
    # moves the RSS by about the tolerance below; this test measures the streams' memory only.
    config["insights"] = {"enabled": False}
    # Trim on a short timer, so the test needs not wait the default 10 s.
    config["server"]["memory_trim_interval_s"] = 2.0
    process = GatewayProcess(write_config(workdir / "bastion.yaml", config), workdir / "gateway.log")
    with process:
        yield process


def _rss(process: GatewayProcess) -> int:
    assert process.process is not None
    with open(f"/proc/{process.process.pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/<pid>/status")


def _stalled_reader(process: GatewayProcess) -> socket.socket:
    body = json.dumps(chat_body("m-slow-stream", stream=True)).encode()
    sock = socket.create_connection(("127.0.0.1", process.port), timeout=10)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(body) + body
    )
    return sock


def _settled_rss(process: GatewayProcess, timeout_s: float) -> int:
    """The RSS once it stopped moving (three readings 1 s apart within 1 MB), bounded."""
    readings: list[int] = []

    def settled() -> bool:
        readings.append(_rss(process))
        recent = readings[-3:]
        return len(recent) == 3 and max(recent) - min(recent) < MB

    wait_until(settled, timeout_s=timeout_s, interval_s=1.0, what="the gateway's RSS settling")
    return readings[-1]


def _stall_and_leave(process: GatewayProcess, fake: FakeUpstream) -> tuple[int, int]:
    """Stall ``CLIENTS`` readers; return the RSS while they stall and the lowest within 30 s after."""
    sockets = [_stalled_reader(process) for _ in range(CLIENTS)]
    try:
        wait_until(lambda: fake.attempts("m-slow-stream") >= CLIENTS, timeout_s=30, what="every stream started")
        stalled = _settled_rss(process, timeout_s=90)
    finally:
        for sock in sockets:
            sock.close()
    wait_until(
        lambda: len(fake.disconnects("m-slow-stream")) >= CLIENTS, timeout_s=30, what="every upstream call cancelled"
    )
    lowest = stalled
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lowest = min(lowest, _rss(process))
        time.sleep(0.5)  # sampling interval of the RSS curve, not a synchronisation
    return stalled, lowest


def test_stalled_stream_readers_pin_little_and_give_it_back(guarded: GatewayProcess, fake: FakeUpstream) -> None:
    fake.default("m-slow-stream", "long_stream")
    # Warm up what every process loads once (the tokenizer, the guard's detectors).
    with httpx.Client(base_url=guarded.url, timeout=30) as client:
        for _ in range(3):
            client.post("/v1/chat/completions", json=chat_body("fake-ok", stream=True)).raise_for_status()
    warm = [_stalled_reader(guarded) for _ in range(2)]
    wait_until(lambda: fake.attempts("m-slow-stream") >= 2, timeout_s=30)
    _settled_rss(guarded, timeout_s=60)
    for sock in warm:
        sock.close()
    wait_until(lambda: len(fake.disconnects("m-slow-stream")) >= 2, timeout_s=30)
    before = _settled_rss(guarded, timeout_s=60)
    fake.reset()
    fake.default("m-slow-stream", "long_stream")

    stalled, after = _stall_and_leave(guarded, fake)
    growth = stalled - before
    print(f"RSS {before / MB:.0f} MB, {CLIENTS} stalled readers {stalled / MB:.0f} MB, 30 s after {after / MB:.0f} MB")
    assert growth < MAX_GROWTH_MB * MB, f"{CLIENTS} stalled readers added {growth / MB:.0f} MB"
    # Freed memory is handed back: a good part of what the burst took is returned within 30 s (what
    # stays is bounded caches the burst filled, e.g. the tokenizer's words, and heap fragments) ...
    assert after < stalled - growth / 3, f"RSS {stalled / MB:.0f} MB -> {after / MB:.0f} MB after the clients left"
    # ... and what stays is reused, not leaked: a second burst does not raise the level.
    fake.reset()
    fake.default("m-slow-stream", "long_stream")
    stalled_again, after_again = _stall_and_leave(guarded, fake)
    print(f"second burst {stalled_again / MB:.0f} MB, 30 s after {after_again / MB:.0f} MB")
    # A leak of a stream's state shows in the second burst's level; the resting level may move by a
    # part of one burst's growth (arenas the first burst's survivors pin are reused, not returned),
    # never by a burst. Measured on two cores: 15 to 24 MB after a burst of 63 MB.
    assert stalled_again < stalled + 16 * MB, f"second burst {stalled_again / MB:.0f} MB vs {stalled / MB:.0f} MB"
    assert after_again < after + max(16 * MB, growth / 2), (
        f"after two bursts {after_again / MB:.0f} MB vs {after / MB:.0f} MB (one burst took {growth / MB:.0f} MB)"
    )
