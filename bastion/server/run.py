"""Build and run the uvicorn server for ``bastion serve``."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from bastion.config.settings import Settings
from bastion.server.limits import ConnectionLimits
from bastion.server.logs import uvicorn_log_config
from bastion.server.protocol import LimitedHttpToolsProtocol

APP = "bastion.api.asgi:create_from_env"
#: uvicorn's exit status when the app failed to start.
STARTUP_FAILURE = 3


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration plus Bastion's connection limits; pickled to worker processes whole,
    so every worker's protocol reads the same limits."""

    def __init__(self, *args: Any, connection_limits: ConnectionLimits, **kwargs: Any) -> None:
        self.connection_limits = connection_limits
        super().__init__(*args, **kwargs)


def server_config(settings: Settings, host: str, port: int, workers: int) -> ServerConfig:
    server = settings.server
    return ServerConfig(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=LimitedHttpToolsProtocol,
        lifespan="on",
        access_log=server.access_log,
        log_config=uvicorn_log_config(settings.logging.level, server.access_log),
        log_level=None,  # levels come from log_config (the access log's is its own)
        timeout_graceful_shutdown=int(server.graceful_shutdown_s) or None,
        timeout_keep_alive=server.keep_alive_timeout_s,  # uvicorn takes a float too
        limit_concurrency=None,  # the protocol enforces the limits, with a JSON 503
        connection_limits=ConnectionLimits.from_settings(server),
    )


def run(config: ServerConfig) -> None:
    """What ``uvicorn.run`` does with a ready config: one server, or a supervisor of workers."""
    server = uvicorn.Server(config=config)
    if config.workers > 1:
        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
        return
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
