"""Bounds of the template operations whose result size an argument decides.

``'a' * n``, ``'%500000000s' % x``, ``'{:>500000000}'.format(x)``, ``s.center(n)``,
``s.replace('', big)``, ``sep.join(items)``, ``n ** m``, ``lipsum(n)``: each would allocate its
result in one C call, so the size is worked out from the arguments first and checked against the
limits of ``template_budget`` (which also charges it to the render's budget). What an operation
returns is measured too, which keeps the invariant "no value built is over the caps" for the
operations whose growth is bounded by their input (``upper``, ``encode``, escaping...).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from typing import Any

from jinja2.sandbox import SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum

from bastion.vault.template_budget import (
    MAX_ITEMS,
    MAX_VALUE_CHARS,
    TemplateLimitExceeded,
    allow_items,
    allow_text,
    nested_items,
    text_size,
)

#: Largest integer (in bits) a template may compute: far beyond any count or price, and small
#: enough that arithmetic on it stays instant.
MAX_INT_BITS = 16_384

_NUMBER = re.compile(r"\d+")
# One %-conversion: optional mapping key, flags, width, precision, length modifier, type.
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?.", re.S)
#: Slack per conversion or field for what its value's text does not account for (signs, exponents...).
_FIELD_SLACK = 32
#: The longest lorem ipsum word plus punctuation and space.
_LIPSUM_WORD_CHARS = 16


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sequence_size(value: Any) -> int:
    """What a text or list costs: characters for text, items (nested ones counted) for lists."""
    if isinstance(value, str | bytes):
        return len(value)
    return nested_items(value)


def _repeat(sequence: Any, count: int) -> None:
    times = max(count, 0)
    if isinstance(sequence, str | bytes):
        allow_text(len(sequence) * times)
    elif times:
        allow_items(nested_items(sequence, MAX_ITEMS // times + 1) * times)


def _check_multiply(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimitExceeded(f"it computes a number over {MAX_INT_BITS} bits")
    elif isinstance(left, str | bytes | list | tuple) and isinstance(right, int):
        _repeat(left, right)
    elif isinstance(right, str | bytes | list | tuple) and isinstance(left, int):
        _repeat(right, left)


def _check_add(left: Any, right: Any) -> None:
    if isinstance(left, str | bytes) and isinstance(right, str | bytes):
        # Markup + str escapes the right side: up to 5 characters for one (``&amp;``).
        factor = 5 if hasattr(left, "__html__") or hasattr(right, "__html__") else 1
        allow_text(len(left) + factor * len(right))
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        allow_items(nested_items(left) + nested_items(right))


def _check_power(base: Any, exponent: Any) -> None:
    growing = _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1
    if growing and base.bit_length() * exponent > MAX_INT_BITS:
        raise TemplateLimitExceeded(f"it computes a number over {MAX_INT_BITS} bits")


def _format_arguments(arguments: Any) -> list[Any]:
    if isinstance(arguments, tuple):
        return list(arguments)
    if isinstance(arguments, dict):
        return list(arguments.values())
    return [arguments]


def check_percent(template: str | bytes, arguments: Any) -> None:
    """Refuse ``template % arguments`` if its result could be over the text cap.

    At most one conversion per ``%``, each printing one argument (at most the largest) padded to
    at most the largest width or precision written in the template or, for ``*``, passed in.
    """
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    conversions = text.count("%")
    if not conversions:
        allow_text(len(text))
        return
    values = _format_arguments(arguments)
    widest = 0
    for match in _PERCENT_SPEC.finditer(text):
        for part in match.groups():
            if part == "*":
                widest = max([widest, *(abs(v) for v in values if _is_int(v))])
            elif part:
                widest = max(widest, int(part))
    largest = max((text_size(value, MAX_VALUE_CHARS) for value in values), default=0)
    allow_text(len(text) + conversions * (max(largest, widest) + _FIELD_SLACK))


def check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        _check_multiply(left, right)
    elif operator == "+":
        _check_add(left, right)
    elif operator == "%":
        if isinstance(left, str | bytes):
            check_percent(left, right)
    elif operator == "**":
        _check_power(left, right)


def check_result(value: Any) -> Any:
    """Measure what an operation returned (texts and containers) and charge it; return it."""
    if isinstance(value, str | bytes):
        allow_text(len(value))
    elif isinstance(value, list | tuple | dict | set | frozenset):
        allow_items(nested_items(value))
    return value


# -- str and bytes methods --------------------------------------------------------------------


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def replaced_size(text: str | bytes, old: Any, new: Any, count: Any) -> int:
    """Exact length of ``text.replace(old, new, count)`` (``count`` < 0 or None: all)."""
    if not isinstance(old, str | bytes) or not isinstance(new, str | bytes) or type(old) is not type(text):
        return len(text)  # the call will fail on the types; nothing gets built
    occurrences = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]
    if _is_int(count) and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * max(len(new) - len(old), 0)


def joined_size(separator: str | bytes, items: list[Any]) -> int:
    return sum(text_size(item, MAX_VALUE_CHARS) for item in items) + max(len(items) - 1, 0) * len(separator)


def take(iterable: Iterable[Any], limit: int = MAX_ITEMS) -> list[Any]:
    """The items of ``iterable`` as a list, refusing more than ``limit`` of them."""
    if isinstance(iterable, list | tuple | str | dict | set | frozenset) and len(iterable) > limit:
        raise TemplateLimitExceeded(f"it builds a list or mapping of more than {limit} items")
    items: list[Any] = []
    for item in iterable:
        items.append(item)
        if len(items) > limit:
            raise TemplateLimitExceeded(f"it builds a list or mapping of more than {limit} items")
    return items


def _translated_size(text: str | bytes, table: Any) -> int:
    if isinstance(table, dict):
        longest = max((len(v) for v in table.values() if isinstance(v, str | bytes)), default=1)
        return len(text) * max(longest, 1)
    return len(text)


def _method_bound(receiver: str | bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """Upper bound of the result of ``receiver.name(*args)`` for the methods whose arguments decide
    it; None for those whose result is at most a few times the receiver (measured afterwards)."""
    size = len(receiver)
    if name in ("center", "ljust", "rjust", "zfill"):
        width = _argument(args, kwargs, 0, "width", 0)
        return max(size, width) if _is_int(width) else size
    if name == "expandtabs":
        tabsize = _argument(args, kwargs, 0, "tabsize", 8)
        tabs = receiver.count("\t" if isinstance(receiver, str) else b"\t")  # type: ignore[arg-type]
        return size + tabs * max(tabsize, 0) if _is_int(tabsize) else size
    if name == "replace":
        return replaced_size(receiver, _argument(args, kwargs, 0, "old", ""), _argument(args, kwargs, 1, "new", ""),
                             _argument(args, kwargs, 2, "count", -1))  # fmt: skip
    if name == "translate":
        return _translated_size(receiver, _argument(args, kwargs, 0, "table", None))
    return None


def call_text_method(
    invoke: Callable[..., Any], name: str, receiver: str | bytes, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Call ``receiver.name`` (through ``invoke``) after checking what it would build."""
    if name == "join" and args:
        items = take(args[0])
        allow_text(joined_size(receiver, items) * (5 if hasattr(receiver, "__html__") else 1))
        return check_result(invoke(items, *args[1:], **kwargs))
    bound = _method_bound(receiver, name, args, kwargs)
    if bound is not None:
        allow_text(bound)
    return check_result(invoke(*args, **kwargs))


def check_int_method(method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if getattr(method, "__name__", "") == "to_bytes":
        length = _argument(args, kwargs, 0, "length", 1)
        if _is_int(length):
            allow_text(length)


# -- str.format ---------------------------------------------------------------------------------


class _FieldBudget:
    """Counts what one ``str.format`` call has built so far, field by field."""

    def __init__(self) -> None:
        self.built = 0

    def add(self, value: Any, spec: str) -> None:
        widest = max((int(number) for number in _NUMBER.findall(spec)), default=0)
        self.built += max(text_size(value, MAX_VALUE_CHARS), widest) + _FIELD_SLACK
        if self.built > MAX_VALUE_CHARS:
            raise TemplateLimitExceeded(f"it builds a text longer than {MAX_VALUE_CHARS} characters")


class BoundedFormatter(SandboxedFormatter):
    """The sandbox's formatter, refusing a field or a total over the text cap before building it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields = _FieldBudget()

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None and text_size(value, MAX_VALUE_CHARS) > MAX_VALUE_CHARS:
            raise TemplateLimitExceeded(f"it builds a text longer than {MAX_VALUE_CHARS} characters")
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        self.fields.add(value, format_spec)
        return super().format_field(value, format_spec)


class BoundedEscapeFormatter(SandboxedEscapeFormatter):
    """``Markup.format``'s formatter, bounded the same way."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields = _FieldBudget()

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None and text_size(value, MAX_VALUE_CHARS) > MAX_VALUE_CHARS:
            raise TemplateLimitExceeded(f"it builds a text longer than {MAX_VALUE_CHARS} characters")
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        self.fields.add(value, format_spec)
        return super().format_field(value, format_spec)


def formatter_for(env: Any, text: str) -> string.Formatter:
    if hasattr(text, "__html__"):
        return BoundedEscapeFormatter(env, escape=text.escape)  # type: ignore[attr-defined]
    return BoundedFormatter(env)


# -- globals ------------------------------------------------------------------------------------


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's ``lipsum``, refusing more paragraphs and words than the text cap holds."""
    if _is_int(n) and _is_int(min) and _is_int(max) and n > 0:
        words = max if max > min else min
        allow_text(n * (words * _LIPSUM_WORD_CHARS + _LIPSUM_WORD_CHARS))
    return str(check_result(generate_lorem_ipsum(n, html, min, max)))
