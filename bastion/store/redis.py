"""The shared Redis connection, when ``redis_url`` is configured (several gateway processes)."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    # Short timeouts: Redis sits on the request path, and a stall must turn into the configured
    # failure behaviour quickly rather than hold requests.
    return Redis.from_url(
        url,
        decode_responses=False,
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
        health_check_interval=15,
        max_connections=256,
    )
