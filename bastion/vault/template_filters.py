"""Jinja's filters, each wrapped so that it cannot build more than the template limits allow.

Three kinds:

* text filters turn their input into text (``center``, ``replace``, ``tojson``...): the input must
  print within the text cap, the arguments that decide the result's size (a width, a replacement,
  an indent) are checked before the call, and the result is measured after it;
* collection filters that build lists (``list``, ``sort``, ``batch``, ``sum``...): bounded in
  items, before (a count argument, a materialised input) and after;
* the rest select or look up what already exists (``first``, ``map``, ``length``...).

Every wrapped call also counts against the render's time limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import pass_environment
from jinja2.filters import make_attrgetter
from jinja2.utils import _PassArg

from bastion.vault.template_budget import (
    MAX_ITEMS,
    MAX_VALUE_CHARS,
    TemplateLimitExceeded,
    allow_items,
    allow_text,
    nested_items,
    spend,
    text_size,
)
from bastion.vault.template_ops import check_percent, check_result, replaced_size, take

#: (value, positional arguments after it, keyword arguments, the pass-through first argument or
#: None) -> the value to call the filter with (a materialised copy when the check consumed it).
Precheck = Callable[[Any, tuple[Any, ...], dict[str, Any], Any], Any]

#: Widest ``tojson`` indent accepted: nested output repeats it on every line of every level.
MAX_JSON_INDENT = 16
_HTML_SPECIAL = "&<>\"'"


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _as_text(value: Any) -> str:
    """``str(value)``, refused before printing it if it would be over the text cap."""
    if isinstance(value, str):
        return value
    if text_size(value) > MAX_VALUE_CHARS:
        raise TemplateLimitExceeded(f"it builds a text longer than {MAX_VALUE_CHARS} characters")
    return str(value)


def _text_input(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    if not isinstance(value, str) and text_size(value) > MAX_VALUE_CHARS:
        raise TemplateLimitExceeded(f"it builds a text longer than {MAX_VALUE_CHARS} characters")
    return value


def _lines(text: str) -> int:
    return text.count("\n") + 1


def _center(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    width = _arg(args, kwargs, 0, "width", 80)
    if isinstance(width, int):
        allow_text(max(text_size(value), width))
    return value


def _indent(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    width = _arg(args, kwargs, 0, "width", 4)
    text = _as_text(value)
    per_line = width if isinstance(width, int) else len(_as_text(width))
    allow_text(len(text) + _lines(text) * max(per_line, 0))
    return value


def _wordwrap(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    width = _arg(args, kwargs, 0, "width", 79)
    wrapstring = _arg(args, kwargs, 2, "wrapstring", None)
    text = _as_text(value)
    per_break = 1 if wrapstring is None else len(_as_text(wrapstring))
    # Greedy wrapping: two consecutive lines of a paragraph hold more than ``width`` characters.
    breaks = _lines(text) + (2 * len(text) // width if isinstance(width, int) and width > 0 else len(text))
    allow_text(len(text) + breaks * per_break)
    return value


def _escaping(value: Any, lead: Any) -> bool:
    return bool(getattr(lead, "autoescape", False)) or hasattr(value, "__html__")


def _replace(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    text = _as_text(value)
    old, new = _as_text(_arg(args, kwargs, 0, "old", "")), _as_text(_arg(args, kwargs, 1, "new", ""))
    count = _arg(args, kwargs, 2, "count", None)
    # Escaping (autoescape blocks, Markup input) can make each character up to 5 characters.
    allow_text(replaced_size(text, old, new, count) * (5 if _escaping(value, lead) else 1))
    return value


def _format(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    check_percent(_as_text(value), kwargs or args)
    return value


def _truncate(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    end = _as_text(_arg(args, kwargs, 2, "end", "..."))
    allow_text(len(_as_text(value)) + len(end))
    return value


def _urlize(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    text = _as_text(value)
    target, rel = _arg(args, kwargs, 3, "target", None), _arg(args, kwargs, 4, "rel", None)
    attributes = len(_as_text(target or "")) + len(_as_text(rel or "")) + 32
    escaped = len(text) + 4 * sum(text.count(c) for c in _HTML_SPECIAL)
    # Every link holds a dot, a colon or an at sign; its text appears twice (href and body).
    links = text.count(".") + text.count(":") + text.count("@")
    allow_text(2 * escaped + links * (64 + 5 * attributes))
    return value


def _tojson(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    indent = _arg(args, kwargs, 0, "indent", None)
    if indent is not None:
        width = indent if isinstance(indent, int) else len(_as_text(indent))
        if width > MAX_JSON_INDENT:
            raise TemplateLimitExceeded(f"it indents JSON by more than {MAX_JSON_INDENT}")
    return _text_input(value, args, kwargs, lead)


def _join(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    items = take(value)
    separator = _as_text(_arg(args, kwargs, 0, "d", ""))
    attribute = _arg(args, kwargs, 1, "attribute", None)
    parts = items
    if attribute is not None and lead is not None:
        getter = make_attrgetter(lead.environment, attribute)
        parts = [getter(item) for item in items]
    size = sum(text_size(part) for part in parts) + max(len(parts) - 1, 0) * len(separator)
    allow_text(size * (5 if _escaping(value, lead) else 1))
    return items


def _batch(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    linecount = _arg(args, kwargs, 0, "linecount", 1)
    if isinstance(linecount, int) and linecount > MAX_ITEMS:
        raise TemplateLimitExceeded(f"it builds a list or mapping of more than {MAX_ITEMS} items")
    return value


def _slice(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    slices = _arg(args, kwargs, 0, "slices", 1)
    if isinstance(slices, int) and slices > MAX_ITEMS:
        raise TemplateLimitExceeded(f"it builds a list or mapping of more than {MAX_ITEMS} items")
    return value


def _comparing(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    # Sorting and grouping compare items, whose cost grows with everything nested in them.
    if nested_items(value) > MAX_ITEMS:
        raise TemplateLimitExceeded(f"it sorts or groups more than {MAX_ITEMS} items")
    return value


def bounded_list(value: Any) -> list[Any]:
    return check_result(take(value))  # type: ignore[no-any-return]


@pass_environment
def bounded_sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    """``sum``, with lists and tuples concatenated in one bounded pass (Python's ``sum`` copies the
    running total at every step: quadratic, and unbounded in what it builds)."""
    values = take(iterable)
    if attribute is not None:
        getter = make_attrgetter(environment, attribute)
        values = [getter(value) for value in values]
    if isinstance(start, list | tuple):
        kind = list if isinstance(start, list) else tuple
        if not all(isinstance(value, kind) for value in values):
            raise TypeError(f"can only concatenate {kind.__name__}s")
        allow_items(nested_items(start) + sum(nested_items(value) for value in values))
        total = list(start)
        for value in values:
            total.extend(value)
        return total if kind is list else tuple(total)
    return sum(values, start)


def _no_check(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], lead: Any) -> Any:
    return value


def _checked_items(iterator: Iterator[Any]) -> Iterator[Any]:
    for item in iterator:
        yield check_result(item)


def _step(value: Any) -> Any:
    spend(1)
    return value


def _unchanged(value: Any) -> Any:
    return value


_TEXT = {
    name: _text_input
    for name in [
        "abs",
        "capitalize",
        "e",
        "escape",
        "filesizeformat",
        "float",
        "forceescape",
        "int",
        "lower",
        "pprint",
        "round",
        "safe",
        "string",
        "striptags",
        "title",
        "trim",
        "upper",
        "urlencode",
        "wordcount",
        "xmlattr",
    ]
}
#: name -> (check before, what to do with the result: measuring it also counts the step)
_CHECKS: dict[str, tuple[Precheck, Callable[[Any], Any]]] = {
    **{name: (check, check_result) for name, check in _TEXT.items()},
    # These checks bound the result before the call and pay for it: nothing to measure after.
    "center": (_center, _unchanged),
    "indent": (_indent, _unchanged),
    "wordwrap": (_wordwrap, _unchanged),
    "replace": (_replace, _unchanged),
    "format": (_format, _unchanged),
    "truncate": (_truncate, _unchanged),
    "urlize": (_urlize, _unchanged),
    "join": (_join, _unchanged),
    "tojson": (_tojson, check_result),  # escaping: up to 12 characters for one
    "batch": (_batch, _checked_items),
    "slice": (_slice, _checked_items),
    "sort": (_comparing, check_result),
    "dictsort": (_comparing, check_result),
    "groupby": (_comparing, check_result),
    "unique": (_comparing, _step),
    "min": (_comparing, _step),
    "max": (_comparing, _step),
    "reverse": (_no_check, check_result),
}
#: Filters that only select or look up what exists: no size to check, only the time.
PASS_THROUGH = frozenset(
    [
        "attr",
        "count",
        "d",
        "default",
        "first",
        "items",
        "last",
        "length",
        "map",
        "random",
        "reject",
        "rejectattr",
        "select",
        "selectattr",
    ]
)
#: Filters replaced outright rather than wrapped.
REPLACED: dict[str, Callable[..., Any]] = {"list": bounded_list, "sum": bounded_sum}


def _wrap(func: Callable[..., Any], check: Precheck, after: Callable[[Any], Any]) -> Callable[..., Any]:
    pass_arg = _PassArg.from_obj(func)
    leading = 0 if pass_arg is None else 1

    def bounded(*args: Any, **kwargs: Any) -> Any:
        value = args[leading]
        checked = check(value, args[leading + 1 :], kwargs, args[0] if leading else None)
        if checked is not value:  # the check consumed an iterable: call with its copy
            args = (*args[:leading], checked, *args[leading + 1 :])
        return after(func(*args, **kwargs))

    if pass_arg is not None:
        bounded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    bounded.__name__ = getattr(func, "__name__", "filter")
    return bounded


def _timed(func: Callable[..., Any]) -> Callable[..., Any]:
    pass_arg = _PassArg.from_obj(func)

    def timed(*args: Any, **kwargs: Any) -> Any:
        spend(1)
        return func(*args, **kwargs)

    if pass_arg is not None:
        timed.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    timed.__name__ = getattr(func, "__name__", "filter")
    return timed


def bounded_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Every filter of ``filters`` wrapped; one this module does not know is treated as a text
    filter (its input must print within the cap, its result is measured)."""
    bounded: dict[str, Callable[..., Any]] = {}
    for name, func in filters.items():
        if name in REPLACED:
            bounded[name] = REPLACED[name]
        elif name in PASS_THROUGH:
            bounded[name] = _timed(func)
        else:
            check, after = _CHECKS.get(name, (_text_input, check_result))
            bounded[name] = _wrap(func, check, after)
    return bounded
