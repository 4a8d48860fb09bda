"""The server's own log lines (uvicorn's errors and the access log) as structlog events.

uvicorn formats its records as plain text, and its access formatter reads the record's raw
arguments, which the redacting filter replaces: every access line failed with a traceback. Here
both go through structlog instead, so they are JSON like every other line and pass the same
redaction. The access line carries the path without its query string, where credentials
(``?api_key=...``) and personal data travel.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

#: Records already redacted by structlog: the stdlib redacting filter leaves these handlers alone.
SELF_REDACTING = "bastion_self_redacting"


class StructlogHandler(logging.Handler):
    """Re-emits standard-library records through structlog (level, logger name, exception)."""

    def __init__(self) -> None:
        super().__init__()
        setattr(self, SELF_REDACTING, True)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        fields: dict[str, Any] = {"logger": record.name}
        if record.exc_info and record.exc_info[0] is not None:
            fields["exc_info"] = record.exc_info
        structlog.get_logger(record.name).log(record.levelno, message, **fields)


class AccessLogHandler(logging.Handler):
    """uvicorn's access records as ``http_access`` events: client, method, path, version, status."""

    def __init__(self) -> None:
        super().__init__()
        setattr(self, SELF_REDACTING, True)
        self._log = structlog.get_logger("bastion.access")

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            # Not uvicorn's access record shape: keep it, as text without arguments.
            self._log.info("http_access", line=str(record.msg))
            return
        client, method, full_path, http_version, status = args
        path, _, query = str(full_path).partition("?")
        self._log.info(
            "http_access",
            client=client,
            method=method,
            path=path,
            query=bool(query),
            http_version=http_version,
            status=status,
        )


def uvicorn_log_config(level: str, access_log: bool) -> dict[str, Any]:
    """``logging.config.dictConfig`` for uvicorn's loggers (its ``log_config``)."""
    level_name = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "structlog": {"()": "bastion.server.logs.StructlogHandler"},
            "access": {"()": "bastion.server.logs.AccessLogHandler"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["structlog"], "level": level_name, "propagate": False},
            "uvicorn.error": {"level": level_name},
            # The access log is its own switch: on, it logs at INFO whatever the general level.
            "uvicorn.access": {
                "handlers": ["access"] if access_log else [],
                "level": "INFO" if access_log else "WARNING",
                "propagate": False,
            },
        },
    }
