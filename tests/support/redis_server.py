"""A ``redis-server`` of the test's own, without persistence, that the test may flush, stop and
restart empty: never the machine's shared Redis, which other tests use at the same time.

    server = PrivateRedis.start_new()
    try:
        ... server.url ... server.flushdb() ... server.restart() ...
    finally:
        server.stop()

or the ``private_redis`` fixture.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest
import redis

from tests.support.gateway import free_port
from tests.support.polling import wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class PrivateRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start_new(cls) -> PrivateRedis:
        server = cls(free_port())
        server.start()
        return server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        """Start the server (empty: nothing is saved, so a restart loses everything)."""
        assert self._process is None, "already running"
        self._process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, timeout_s=10, what=f"redis-server on port {self.port} answers")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        self._process.wait(timeout=10)
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def flushdb(self) -> None:
        with self.client() as client:
            client.flushdb()

    def get(self, key: str) -> bytes | None:
        with self.client() as client:
            value = client.get(key)
        assert value is None or isinstance(value, bytes), value
        return value


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis.start_new()
    try:
        yield server
    finally:
        server.stop()
