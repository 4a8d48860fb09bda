"""What one template render may spend: text and items built, loop iterations and time.

A template is code written by a prompt author and run inside the gateway process. Jinja's sandbox
keeps it away from Python internals but not from memory or CPU: ``'a' * 500000000`` is one
expression. Every operation of ``template_sandbox`` that can build something large first asks this
module whether it may (``allow``), with an upper bound of what it will build, so an oversized
value is refused before it exists rather than measured after.

The limits:

* no text a template builds is longer than ``MAX_VALUE_CHARS`` (the rendered prompt's cap);
* no list, tuple or dict it builds holds more than ``MAX_ITEMS`` items, nested items counted as
  often as they appear (so sharing cannot hide an exponential structure);
* all it builds in one render adds up to at most ``MAX_WORK`` characters and items, which bounds
  what it can keep alive at once (a few MB) however it stores it;
* at most ``MAX_ITERATIONS`` loop iterations and ``MAX_RENDER_SECONDS`` per render.

The budget of the render in progress is a context variable, so concurrent renders (threads or
tasks) each have their own; outside a render (compile-time constant folding) only the per-value
caps apply.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from itertools import chain
from typing import Any

from jinja2.utils import Namespace

#: Longest text a template may build (and the longest rendered prompt).
MAX_VALUE_CHARS = 256 * 1024
#: Most items in one list, tuple or dict a template builds, nested items included.
MAX_ITEMS = 100_000
#: Characters and items a render may build in total.
MAX_WORK = 2 * 1024 * 1024
#: Loop iterations of a render, all loops together.
MAX_ITERATIONS = 1_000_000
#: Wall time of a render; checked between steps, each of which is bounded by the limits above.
MAX_RENDER_SECONDS = 0.25

#: The clock is read every this many steps (iterations, filters, calls...): a read costs more than
#: a step, and every step is bounded in size, so a few of them cannot take long.
_CLOCK_EVERY = 8
#: Characters an object of no known shape prints as (its repr is a fixed-size placeholder).
_OPAQUE_CHARS = 64


class TemplateLimitExceeded(Exception):
    """A template went over one of the limits. Deliberately not a ``ValueError``/``TypeError``:
    Jinja and its filters catch those in places, and this must reach ``render`` intact."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class TemplateTooSlow(TemplateLimitExceeded):
    """The time limit in particular: the one limit a machine under load can trip by itself."""


class OutputTooLong(TemplateLimitExceeded):
    """The rendered prompt itself is over ``MAX_VALUE_CHARS``."""


class RenderBudget:
    """The allowance of one render in progress."""

    __slots__ = ("deadline", "iterations_left", "steps", "work_left")

    def __init__(self, *, work: int = MAX_WORK, iterations: int = MAX_ITERATIONS, seconds: float = MAX_RENDER_SECONDS):
        self.work_left = work
        self.iterations_left = iterations
        self.deadline = time.monotonic() + seconds
        self.steps = 0

    def spend(self, amount: int) -> None:
        self.work_left -= amount
        if self.work_left < 0:
            raise TemplateLimitExceeded(f"it builds more than {MAX_WORK} characters and items in all")
        self.steps += 1
        if not self.steps % _CLOCK_EVERY:
            self.check_time()

    def iterate(self) -> None:
        self.iterations_left -= 1
        if self.iterations_left < 0:
            raise TemplateLimitExceeded(f"it runs more than {MAX_ITERATIONS} loop iterations")
        self.steps += 1
        if not self.steps % _CLOCK_EVERY:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateTooSlow(f"it takes longer than {MAX_RENDER_SECONDS} s")


_CURRENT: ContextVar[RenderBudget | None] = ContextVar("bastion_template_budget", default=None)


class budgeted:  # lower case: it reads as a function, ``with budgeted(RenderBudget()):``
    """Run a render (or a compilation, whose constant folding runs template code) on ``budget``.
    A class rather than ``@contextmanager``: it is entered on every request, and is cheaper."""

    __slots__ = ("_token", "budget")

    def __init__(self, budget: RenderBudget) -> None:
        self.budget = budget

    def __enter__(self) -> RenderBudget:
        self._token = _CURRENT.set(self.budget)
        return self.budget

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._token)


def current() -> RenderBudget | None:
    """The budget of the render in progress, or None outside one."""
    return _CURRENT.get()


def allow_text(chars: int) -> None:
    """Refuse building a text of (at most) ``chars`` characters if it is over a limit; else pay."""
    if chars > MAX_VALUE_CHARS:
        raise TemplateLimitExceeded(f"it builds a text longer than {MAX_VALUE_CHARS} characters")
    budget = _CURRENT.get()
    if budget is not None:
        budget.spend(chars)


def allow_items(items: int) -> None:
    """Refuse building a container of (at most) ``items`` nested items if over a limit; else pay."""
    if items > MAX_ITEMS:
        raise TemplateLimitExceeded(f"it builds a list or mapping of more than {MAX_ITEMS} items")
    budget = _CURRENT.get()
    if budget is not None:
        budget.spend(items)


def spend(amount: int) -> None:
    """Pay for something small that still takes memory (an entry appended to an output buffer)."""
    budget = _CURRENT.get()
    if budget is not None:
        budget.spend(amount)


def iterate() -> None:
    budget = _CURRENT.get()
    if budget is not None:
        budget.iterate()


# -- measuring values, without building them ------------------------------------------------------

_SEQUENCES: tuple[type[Iterable[Any]], ...] = (
    list,
    tuple,
    set,
    frozenset,
    type({}.keys()),
    type({}.values()),
    type({}.items()),
)
_END = object()


def _children(value: Any) -> Iterator[Any] | None:
    """The items of a container (a dict's keys and values), or None for a leaf."""
    if isinstance(value, dict):
        return chain.from_iterable(value.items())
    if isinstance(value, _SEQUENCES):
        return iter(value)
    if isinstance(value, Namespace):
        return _children(object.__getattribute__(value, "_Namespace__attrs"))
    return None


def nested_items(value: Any, limit: int = MAX_ITEMS) -> int:
    """Items in ``value`` counting nested ones as often as they appear; stops past ``limit``."""
    children = _children(value)
    if children is None:
        return 0
    total = 0
    stack = [children]
    while stack:
        child = next(stack[-1], _END)
        if child is _END:
            stack.pop()
            continue
        total += 1
        if total > limit:
            break
        if not isinstance(child, str | int | float) and (grand := _children(child)) is not None:
            stack.append(grand)
    return total


def text_size(value: Any, limit: int = MAX_VALUE_CHARS) -> int:
    """An upper estimate of ``len(str(value))``, containers as Python prints them; stops past
    ``limit``. Texts inside containers are counted at their length plus quotes: their repr can be
    longer when they hold unprintable characters, which bounds the excess at a small factor."""
    if isinstance(value, str):
        return len(value)
    total = 0
    stack = [iter((value,))]
    while stack and total <= limit:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, str):
            total += len(item) + 4  # quotes and the separator
        elif isinstance(item, bool) or item is None:
            total += 7
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 4  # decimal digits, generously
        elif isinstance(item, float):
            total += 28
        elif isinstance(item, bytes | bytearray):
            total += 4 * len(item) + 5
        elif (children := _children(item)) is not None:
            total += 16  # brackets, and a type name for views and sets
            stack.append(children)
        else:
            total += _OPAQUE_CHARS
    return total
