"""Scans of large texts run in a worker thread, so the event loop keeps serving while they run.

A scan is linear in its input, but a multi-megabyte prompt still costs a second or more of CPU:
run inline it would freeze every other request (and the health check) for that long. Small texts,
the common case, are scanned inline, where a thread hand-off would cost more than the scan.

The request's scan budget (``GuardPolicy.scan_budget_ms``) starts when the scan is submitted, so time
spent waiting for a worker counts too: under a flood of large requests they are refused (or
flagged) on time instead of queueing without end. The workers are few on purpose: each holds the
interpreter lock while it runs, and the event loop must keep getting it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import bastion.guard.budget as budget
from bastion.guard.engine import InputGuard, OutputGuard
from bastion.guard.models import GuardResult

T = TypeVar("T")

#: Texts up to this many characters (in all) are scanned on the event loop: a few milliseconds.
INLINE_MAX_CHARS = 32_768
_WORKERS = 2

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="bastion-guard")
        return _executor


async def run_scan(work: Callable[[], T], *, chars: int, budget_ms: float, slow: bool = False) -> T:
    """Run ``work`` (a scan of ``chars`` characters) under a ``budget_ms`` deadline: inline when
    small, in a guard worker thread when large or ``slow`` (a scan that runs a model)."""
    if chars <= INLINE_MAX_CHARS and not slow:
        return work()  # the guard's scan sets the deadline itself; here it would start at the same time
    started = time.monotonic()

    def bounded() -> T:
        with budget.ScanDeadline(budget_ms, started=started):
            return work()

    return await asyncio.get_running_loop().run_in_executor(_pool(), bounded)


async def scan_messages(guard: InputGuard, messages: Sequence[Mapping[str, Any]]) -> GuardResult:
    """``guard.scan_messages(messages)``, off the event loop when the messages are large."""
    roles = guard.scan_roles
    chars = 0
    for message in messages:
        if isinstance(message, dict) and message.get("role") in roles:
            content = message.get("content")
            # Plain text is the common case; parts and other shapes are walked.
            chars += len(content) if type(content) is str else text_chars(content)
    policy = guard.policy
    # The named-entity tier takes milliseconds even for a short text: never on the event loop.
    return await run_scan(
        lambda: guard.scan_messages(messages),
        chars=chars,
        budget_ms=policy.scan_budget_ms,
        slow=bool(policy.ner_entities),
    )


async def scan_text(guard: OutputGuard, text: str) -> GuardResult:
    """``guard.scan_text(text)``, off the event loop when the text is large."""
    return await run_scan(lambda: guard.scan_text(text), chars=len(text), budget_ms=guard.policy.scan_budget_ms)


def text_chars(value: Any) -> int:
    """Characters of text in a JSON-shaped value (strings in nested lists and objects)."""
    total = 0
    stack = [value]  # no recursion: a body can nest deeper than the interpreter's stack
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, dict):  # parsed JSON: dicts and lists, never other mappings
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return total
