"""Batch input files: the JSONL format of OpenAI's Batch API, one request per line::

    {"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": ..., ...}}

``validate_batch_input`` checks a whole file (uploads with purpose ``batch`` are checked with it,
and batch creation can call it again with the batch's endpoint); ``iter_batch_lines`` yields the
requests of a file already known to be valid. Both read lines as a file object opened in binary
mode yields them, so a 200 MB file is never held in memory whole.

The rules, and OpenAI's limits: every non-blank line is a JSON object with exactly a non-empty
string ``custom_id`` (unique within the file), ``method`` ``POST``, ``url`` one of
``BATCH_URLS`` and an object ``body`` naming its ``model``; at most ``MAX_REQUESTS`` lines.
Blank lines are skipped. Problems are reported with their 1-based line numbers, the first
``MAX_PROBLEMS_SHOWN`` in the message and all of them (up to a bound) on the exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson

from bastion.errors import InvalidRequest

BATCH_URLS: Final = ("/v1/chat/completions", "/v1/embeddings")
MAX_REQUESTS: Final = 50_000
#: Longest ``custom_id`` (Anthropic's batches allow 64 characters; OpenAI names no limit).
MAX_CUSTOM_ID: Final = 512
MAX_PROBLEMS_SHOWN: Final = 10
#: Problems kept on the exception (the count goes on past it).
_MAX_PROBLEMS_KEPT: Final = 1000
_FIELDS: Final = frozenset({"custom_id", "method", "url", "body"})


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One request of a batch input file."""

    #: 1-based line number in the file.
    line: int
    custom_id: str
    method: str
    url: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BatchInputSummary:
    requests: int
    urls: frozenset[str]
    models: frozenset[str]


class BatchInputError(InvalidRequest):
    """A batch input file that breaks the rules: ``problems`` are ``(line, message)``, line 0
    for the file as a whole; ``total`` counts them all."""

    def __init__(self, problems: list[tuple[int, str]], total: int) -> None:
        shown = "; ".join(f"line {line}: {text}" if line else text for line, text in problems[:MAX_PROBLEMS_SHOWN])
        more = total - min(len(problems), MAX_PROBLEMS_SHOWN)
        suffix = f" ({more} more {'problem' if more == 1 else 'problems'} not shown)" if more > 0 else ""
        super().__init__(f"Invalid batch input file: {shown}{suffix}.", param="file", code="invalid_batch_input")
        self.problems = problems
        self.total = total


class _LineProblem(ValueError):
    pass


def _text(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _LineProblem("not UTF-8 text") from None


def parse_batch_line(raw: bytes | str, line: int, endpoint: str | None = None) -> BatchLine:
    """One line as a ``BatchLine``; ``ValueError`` saying what is wrong (without the line number)."""
    try:
        value = orjson.loads(_text(raw))
    except orjson.JSONDecodeError as exc:
        raise _LineProblem(f"not valid JSON ({str(exc).split(':', 1)[0]})") from None
    if not isinstance(value, dict):
        raise _LineProblem("must be a JSON object with custom_id, method, url and body")
    missing = [name for name in ("custom_id", "method", "url", "body") if name not in value]
    if missing:
        raise _LineProblem(f"missing {', '.join(missing)}")
    unknown = sorted(set(value) - _FIELDS)
    if unknown:
        raise _LineProblem(f"unknown field {', '.join(repr(name[:64]) for name in unknown[:5])}")
    custom_id, method, url, body = value["custom_id"], value["method"], value["url"], value["body"]
    if not isinstance(custom_id, str) or not custom_id:
        raise _LineProblem("custom_id must be a non-empty string")
    if len(custom_id) > MAX_CUSTOM_ID:
        raise _LineProblem(f"custom_id is longer than {MAX_CUSTOM_ID} characters")
    if method != "POST":
        raise _LineProblem(f"method must be POST, not {str(method)[:32]!r}")
    if url not in BATCH_URLS:
        raise _LineProblem(f"url must be one of {', '.join(BATCH_URLS)}, not {str(url)[:64]!r}")
    if endpoint is not None and url != endpoint:
        raise _LineProblem(f"url {url} does not match the batch's endpoint {endpoint}")
    if not isinstance(body, dict):
        raise _LineProblem("body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _LineProblem("body.model must be a non-empty string")
    return BatchLine(line=line, custom_id=custom_id, method=method, url=url, body=body)


def _blank(raw: bytes | str) -> bool:
    return not raw.strip()


def validate_batch_input(
    lines: Iterable[bytes | str], *, endpoint: str | None = None, max_requests: int = MAX_REQUESTS
) -> BatchInputSummary:
    """Check a batch input file (its lines, as a binary file object yields them); raise
    ``BatchInputError`` (400) listing the problems with their line numbers.

    ``endpoint``: the batch's endpoint, which every line's ``url`` must then name."""
    problems: list[tuple[int, str]] = []
    total = 0
    seen: dict[str, int] = {}
    urls: set[str] = set()
    models: set[str] = set()
    requests = 0

    def problem(line: int, text: str) -> None:
        nonlocal total
        total += 1
        if len(problems) < _MAX_PROBLEMS_KEPT:
            problems.append((line, text))

    for number, raw in enumerate(lines, start=1):
        if _blank(raw):
            continue
        requests += 1
        if requests > max_requests:
            problem(number, f"more than {max_requests:,} requests (a batch input file may hold {max_requests:,})")
            break
        try:
            parsed = parse_batch_line(raw, number, endpoint)
        except _LineProblem as exc:
            problem(number, str(exc))
            continue
        first = seen.setdefault(parsed.custom_id, number)
        if first != number:
            problem(number, f"duplicate custom_id {parsed.custom_id[:64]!r} (first on line {first})")
            continue
        urls.add(parsed.url)
        models.add(str(parsed.body["model"]))
    if requests == 0:
        problem(0, "the file holds no requests")
    if problems:
        raise BatchInputError(problems, total)
    return BatchInputSummary(requests=requests, urls=frozenset(urls), models=frozenset(models))


def iter_batch_lines(lines: Iterable[bytes | str]) -> Iterator[BatchLine]:
    """The requests of a batch input file, in order (blank lines skipped). A line that breaks
    the rules raises ``BatchInputError`` naming it; validate first to hear of all of them."""
    for number, raw in enumerate(lines, start=1):
        if _blank(raw):
            continue
        try:
            yield parse_batch_line(raw, number)
        except _LineProblem as exc:
            raise BatchInputError([(number, str(exc))], 1) from None
