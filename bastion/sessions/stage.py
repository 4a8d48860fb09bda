"""Sessions stage: no per-request work; it gives the session service the gateway's lifecycle
(the limiter's Redis connection, the periodic cleanup of expired sessions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.gateway.pipeline import Stage
from bastion.sessions.service import SessionService, sessions_for

if TYPE_CHECKING:
    from bastion.gateway.service import Gateway


class SessionStage(Stage):
    name = "sessions"

    def __init__(self, gateway: Gateway) -> None:
        self.service: SessionService = sessions_for(gateway)

    async def start(self) -> None:
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()
