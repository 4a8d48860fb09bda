"""Build and run the uvicorn server for ``bastion serve``."""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from bastion.config.settings import Settings
from bastion.server.limits import ConnectionLimits
from bastion.server.logs import uvicorn_log_config
from bastion.server.protocol import LimitedHttpToolsProtocol

APP = "bastion.api.asgi:create_from_env"
#: Exit status of ``bastion serve`` when the gateway could not start (bad configuration, port in
#: use, unreachable database, ...); uvicorn's own 1 and 3 are mapped to it.
STARTUP_FAILURE = 2


class StartupError(Exception):
    """A start-up failure whose message is the whole story (no traceback needed)."""


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


def bind_listener(config: ServerConfig) -> socket.socket:
    """The listening socket, bound before anything else starts, so that a port in use is one line
    (uvicorn would log it and exit from deep inside its loop)."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)  # worker processes serve the same socket
    return sock


def run(config: ServerConfig, listener: socket.socket) -> int:
    """What ``uvicorn.run`` does with a ready config: one server, or a supervisor of workers.
    Returns the process's exit status. The failure itself has been reported where it happened
    (``bastion.api.app`` and ``bastion.api.asgi`` print one line and log it)."""
    if config.workers > 1:
        Multiprocess(config, sockets=[listener]).run()
        return 0
    server = uvicorn.Server(config=config)
    try:
        server.run(sockets=[listener])
    except SystemExit as exc:  # uvicorn exits from inside its loop when the app fails to start
        return STARTUP_FAILURE if exc.code else 0
    return 0 if server.started else STARTUP_FAILURE
