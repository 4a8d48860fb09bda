"""Structured JSON logs (structlog) with secrets redacted before anything is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from bastion.config.settings import LoggingSettings

_SECRET_KEYS = re.compile(r"(authorization|api[_-]?key|token|secret|password|passwd|cookie|master[_-]?key)", re.I)
_SECRET_VALUES = re.compile(
    r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(sk-(?:ant-)?[A-Za-z0-9_-]{12,})"
    r"|\b(bst_[A-Za-z0-9_-]{12,})"
    r"|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+"
)
REDACTED = "[REDACTED]"


def _redact_value(value: str) -> str:
    return _SECRET_VALUES.sub(lambda m: (m.group(1) or "") + REDACTED, value)


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return value
    if isinstance(value, str):
        return _redact_value(value)
    if isinstance(value, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and _SECRET_KEYS.search(k) and not k.endswith("_tokens")
            else _redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, depth + 1) for v in value]
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-looking keys and values anywhere in the event."""
    return _redact(dict(event_dict))  # type: ignore[no-any-return]


def configure_logging(settings: LoggingSettings) -> None:
    level = getattr(logging, settings.level.upper())
    renderer: Any = structlog.processors.JSONRenderer() if settings.json_logs else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
