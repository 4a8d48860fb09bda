"""The connection limits of one worker, as the protocol reads them (a plain, picklable value)."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.config.settings import ServerSettings


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_connections: int = 1000
    max_concurrent_requests: int = 512
    send_buffer_bytes: int | None = 256 * 1024
    memory_trim_interval_s: float = 10.0

    @classmethod
    def from_settings(cls, server: ServerSettings) -> ConnectionLimits:
        return cls(
            header_timeout_s=server.header_timeout_s,
            body_timeout_s=server.body_timeout_s,
            max_connections=server.max_connections,
            max_concurrent_requests=server.max_concurrent_requests,
            send_buffer_bytes=server.send_buffer_bytes,
            memory_trim_interval_s=server.memory_trim_interval_s,
        )
