"""The gateway of one process: its services, its pipeline, and starting and stopping them."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from bastion.config.settings import Settings
from bastion.gateway.pipeline import Pipeline
from bastion.gateway.services import Lifecycle, Services
from bastion.routing.router import Router
from bastion.store.db import Database
from bastion.vault.crypto import VaultError
from bastion.vault.service import VaultService

log = structlog.get_logger("bastion.gateway")


class VaultStartup:
    """Starts the vault for serving: never with the wrong master key (a plain error and no
    start-up); a database that is not reachable or not migrated yet is checked on first use."""

    def __init__(self, vault: VaultService) -> None:
        self.vault = vault

    async def start(self) -> None:
        try:
            await self.vault.start()
        except VaultError as exc:
            log.error("vault_start_failed", error=str(exc))
            print(f"bastion: error: {exc}", file=sys.stderr, flush=True)
            raise
        except Exception as exc:
            log.warning("vault_check_deferred", error=f"{type(exc).__name__}: {exc}")

    async def stop(self) -> None:
        pass


@dataclass
class Gateway:
    services: Services
    pipeline: Pipeline
    #: Started in this order before the first request, stopped in reverse after the last.
    lifecycles: Sequence[Lifecycle] = ()
    ready: bool = False
    #: Unix time the gateway started serving (``created`` of ``/v1/models``).
    started_at: float = field(default=0.0)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def router(self) -> Router:
        return self.services.router

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def auto_migrate(self) -> bool:
        if self.settings.auto_migrate is not None:
            return self.settings.auto_migrate
        return self.db.is_sqlite

    async def start(self) -> None:
        if self.auto_migrate:
            from bastion.store.migrate import upgrade

            await upgrade(self.db.engine)
        started: list[Lifecycle] = []
        try:
            for service in self.lifecycles:
                await service.start()
                started.append(service)
        except BaseException:
            # A failed start (wrong master key, unreachable database, ...) must not leave
            # background tasks of the services that did start running.
            await self._stop(started)
            raise
        self.started_at = time.time()
        self.ready = True
        log.info("gateway_started", models=sorted(self.router.groups), database=self.db.url)

    async def stop(self) -> None:
        self.ready = False
        await self._stop(self.lifecycles)
        await self.db.dispose()

    @staticmethod
    async def _stop(services: Sequence[Lifecycle]) -> None:
        for service in reversed(services):
            try:
                await service.stop()
            except Exception:
                log.exception("service_stop_failed", service=type(service).__name__)
