"""Structured JSON logs (structlog) with secrets redacted before anything is written.

Two layers, because secrets reach logs in two ways:

- by name: a field called ``authorization``, ``api_key``, ``password``, ``x-api-key`` ... is masked
  whatever its value (``prompt_tokens``, ``key_id``, ``max_tokens`` are counts and ids, not secrets);
- by shape, anywhere in any string (messages, exception text, URLs): Bastion keys (``bst_...``),
  bearer and basic credentials, JWTs, provider keys (OpenAI, Anthropic, AWS, GitHub, Slack, Google,
  Stripe, Hugging Face, GitLab), PEM private keys, passwords in URLs, and ``name=value`` /
  ``"name": "value"`` pairs whose name says secret; and payment card numbers (Luhn-checked).

Records from the standard library's loggers (uvicorn, SQLAlchemy, asyncio, ...) go through the
same redaction via a logging filter on every handler.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from bastion.config.settings import LoggingSettings

REDACTED = "[REDACTED]"
_MAX_DEPTH = 8

#: Field names whose value is a secret. Matched against the whole name, lower-cased, so
#: ``auth_token`` and ``x-api-key`` match while ``prompt_tokens``, ``token_count`` and ``key_id`` don't.
_SECRET_KEYS = re.compile(
    r"(?:^|.*[_-])(?:authorization|proxy[_-]authorization|api[_-]?key|apikey|x[_-]api[_-]key|token|"
    r"access[_-]?token|refresh[_-]?token|id[_-]?token|bearer|secret|client[_-]?secret|password|passwd|pwd|"
    r"pass|cookie|set[_-]cookie|master[_-]?key|private[_-]?key|secret[_-]?key|signing[_-]?key|"
    r"credentials?|jwt|session[_-]?token|dsn|connection[_-]?string)$",
    re.I,
)

_SECRET_NAME = (
    r"(?:api[_-]?key|apikey|access[_-]?token|refresh[_-]?token|auth[_-]?token|token|secret|client[_-]?secret|"
    r"password|passwd|pwd|private[_-]?key|secret[_-]?key|credentials?)"
)
#: Each alternative keeps its group 1 (a harmless lead-in) and masks the rest of the match.
_SECRET_VALUES = re.compile(
    "|".join(
        (
            r"(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
            r"(\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=-]{8,}",
            # scheme://user:password@host
            r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)",
            # ?api_key=... &token=... in URLs and query strings
            r"([?&;](?:" + _SECRET_NAME + r"|key|sig|signature)=)[^&\s#\"']+",
            # api_key=..., "password": "...", secret: ...
            r"(\b" + _SECRET_NAME + r"[\"']?\s*[:=]\s*[\"']?)(?!\[REDACTED)[^\s\"'&,;}\]]{4,}",
            r"()\bbst_[A-Za-z0-9_-]{12,}",
            r"()\bsk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{12,}",
            r"()\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
            r"()\bgh[pousr]_[A-Za-z0-9]{30,}",
            r"()\bgithub_pat_[A-Za-z0-9_]{30,}",
            r"()\bglpat-[A-Za-z0-9_-]{20,}",
            r"()\bxox[abprs]-[A-Za-z0-9-]{10,}",
            r"()\bAIza[0-9A-Za-z_-]{35}",
            r"()\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
            r"()\bhf_[A-Za-z0-9]{30,}",
            r"()\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        )
    ),
    re.I,
)
# Cheap pre-check: strings with none of these cannot match, and most log strings are short and clean.
_HINTS = re.compile(
    r"bearer|basic|token|-----|://|bst_|sk-|akia|asia|gh[pousr]_|github_pat|glpat|xox|aiza|k_live|k_test|hf_|eyj"
    r"|key|secret|passw|pwd|credential|sig",
    re.I,
)


def _mask(match: re.Match[str]) -> str:
    lead = next((g for g in match.groups() if g is not None), "")
    return lead + REDACTED


#: Payment card numbers: 13 to 19 digits, spaces or dashes between them; masked if Luhn-valid.
_CARD_NUMBER = re.compile(r"(?<![\d.-])\d(?:[ -]?\d){12,18}(?!\d|\.\d)")
_FOUR_DIGITS = re.compile(r"\d{4}")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return REDACTED if _luhn_valid(digits) else match.group(0)


def redact_secret_text(value: str) -> str:
    """``value`` with every secret-shaped part (and payment card number) replaced by ``[REDACTED]``."""
    if _FOUR_DIGITS.search(value):
        value = _CARD_NUMBER.sub(_mask_card, value)
    if not _HINTS.search(value):
        return value
    return _SECRET_VALUES.sub(_mask, value)


def is_secret_key(name: str) -> bool:
    return _SECRET_KEYS.match(name) is not None


def _redact(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_secret_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= _MAX_DEPTH:
        # Too deep to walk: keep a redacted rendering rather than the raw structure.
        return redact_secret_text(repr(value))
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and is_secret_key(k) else _redact(v, depth + 1) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(v, depth + 1) for v in value]
    if isinstance(value, bytes | bytearray):
        return redact_secret_text(bytes(value).decode("utf-8", "replace"))
    # Anything else (exceptions, headers objects, models) is rendered as text by the JSON renderer
    # anyway: render it here so its text is redacted too.
    return redact_secret_text(str(value))


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-named keys and secret-shaped values anywhere in the event."""
    return _redact(dict(event_dict))  # type: ignore[no-any-return]


class RedactingFilter(logging.Filter):
    """Redacts standard-library log records (their formatted message and exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        record.msg = redact_secret_text(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact_secret_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_FILTER = RedactingFilter()


def _install_filter(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        # Handlers that hand records to structlog are redacted there (and need the raw arguments).
        if getattr(handler, "bastion_self_redacting", False):
            continue
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def install_stdlib_redaction() -> None:
    """Put the redacting filter on the handlers of the root logger and of every configured logger
    (uvicorn configures its own handlers before the app is built)."""
    _install_filter(logging.getLogger())
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            _install_filter(logger)


#: Libraries whose DEBUG lines carry data (aiosqlite logs each call with its SQL parameters):
#: they log at INFO at most, whatever the configured level.
_DATA_LOGGERS = ("aiosqlite", "asyncpg", "sqlalchemy.engine", "sqlalchemy.pool", "httpcore", "hpack")


def configure_logging(settings: LoggingSettings) -> None:
    level = getattr(logging, settings.level.upper())
    for name in _DATA_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.INFO))
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
    install_stdlib_redaction()
