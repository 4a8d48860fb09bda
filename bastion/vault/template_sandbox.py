"""The Jinja environment prompt templates run in: bounded in memory and time.

Jinja's ``ImmutableSandboxedEnvironment`` (no Python internals, no mutation of lists and dicts),
plus every way a template can build something large routed through ``template_budget``:

* the operators ``*``, ``+``, ``%`` and ``**`` (intercepted, hence never folded at compile time);
* calls (``str`` methods, ``str.format``, ``lipsum``...) and every filter;
* what the compiled code does by itself, through a code generator that emits calls to this
  environment instead: ``~`` concatenation, list, tuple and dict literals, the output buffers of
  macros and ``{% set %}`` blocks (capped as they fill), and ``for`` loops (counted);
* printing ``{{ value }}`` (``finalize``: a container is measured before it is printed).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Iterator
from functools import partial, update_wrapper
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bastion.vault.template_budget import (
    MAX_VALUE_CHARS,
    RenderBudget,
    TemplateLimitExceeded,
    allow_items,
    allow_text,
    current,
    nested_items,
    spend,
    text_size,
)
from bastion.vault.template_filters import bounded_filters
from bastion.vault.template_ops import (
    bounded_lipsum,
    call_text_method,
    check_binop,
    check_int_method,
    check_result,
    formatter_for,
)

#: Calls whose result is a new container built from their arguments (measured after the call).
_CONSTRUCTOR_METHODS = frozenset({"fromkeys", "copy"})


class OutputBuffer(list[str]):
    """The output of a macro, call block or ``{% set %}`` block, capped as it fills: a loop
    appending to it would otherwise grow it without bound before it is joined."""

    __slots__ = ("chars",)

    def __init__(self) -> None:
        super().__init__()
        self.chars = 0

    def append(self, part: str) -> None:
        self.chars += len(part)
        if self.chars > MAX_VALUE_CHARS:
            raise TemplateLimitExceeded(f"it builds a text longer than {MAX_VALUE_CHARS} characters")
        spend(1)
        super().append(part)

    def extend(self, parts: Iterable[str]) -> None:
        for part in parts:
            self.append(part)


def join_output(parts: Iterable[str]) -> str:
    """``environment.concat``: joins an output buffer (or a render's parts), within the text cap."""
    if isinstance(parts, OutputBuffer):
        allow_text(parts.chars)
        return "".join(parts)
    collected: list[str] = []
    size = 0
    for part in parts:
        size += len(part)
        if size > MAX_VALUE_CHARS:
            raise TemplateLimitExceeded(f"it builds a text longer than {MAX_VALUE_CHARS} characters")
        collected.append(part)
    allow_text(size)
    return "".join(collected)


def concat_values(values: tuple[Any, ...], markup: bool) -> str:
    """``a ~ b ~ c``: measured (containers as they print) before anything is joined."""
    size = 0
    for value in values:
        size += text_size(value)
        if size > MAX_VALUE_CHARS:
            break
    allow_text(size)
    return markup_join(values) if markup else str_join(values)


def built(container: Any) -> Any:
    """A list, tuple or dict literal: refused if what it nests (shared parts counted as often as
    they appear) is over the item cap, so no structure can hide an exponential size."""
    allow_items(nested_items(container))
    return container


def finalize(value: Any) -> Any:
    """What ``{{ value }}`` prints: a container is measured before ``str`` builds its text."""
    if isinstance(value, str):
        return value
    allow_text(text_size(value))
    return value


class _CountedItems:
    """A ``for`` loop's iterable, counting each iteration against the render's budget. Keeps the
    source's length (``loop.length``) when it has one."""

    __slots__ = ("_budget", "_items", "_source")

    def __init__(self, source: Iterable[Any], budget: RenderBudget) -> None:
        self._source = source
        self._items = iter(source)
        self._budget = budget

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = next(self._items)
        self._budget.iterate()
        return item

    def __len__(self) -> int:
        return len(self._source)  # type: ignore[arg-type]


def loop_items(iterable: Iterable[Any]) -> Iterable[Any]:
    budget = current()
    return iterable if budget is None else _CountedItems(iterable, budget)


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, emitting calls to the environment where the plain generated code
    would build strings and containers, or loop, without asking anyone."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: ids of the ``for`` iterables still to be written (Jinja forbids custom node types, so the
        #: loop is marked here and wrapped when its iterable is visited).
        self._loop_iterables: set[int] = set()

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        if id(node) not in self._loop_iterables:
            return super().visit(node, *args, **kwargs)
        self._loop_iterables.discard(id(node))
        self.write("environment.loop_items(")
        super().visit(node, *args, **kwargs)
        self.write(")")
        return None

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.new_buffer()")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            markup = "context.eval_ctx.volatile"  # as Jinja's own generator decides it
        else:
            markup = "True" if frame.eval_ctx.autoescape else "False"
        self.write("environment.concat_values((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(f"), {markup})")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        self._loop_iterables.add(id(node.iter))
        super().visit_For(node, frame)

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.built(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment target, not a value
            super().visit_Tuple(node, frame)
            return
        self.write("environment.built(")
        super().visit_Tuple(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.built(")
        super().visit_Dict(node, frame)
        self.write(")")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The environment every prompt template is compiled and rendered in."""

    code_generator_class = BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "+", "%", "**"})
    # What the bounded generated code calls.
    concat = staticmethod(join_output)
    new_buffer = OutputBuffer
    loop_items = staticmethod(loop_items)
    concat_values = staticmethod(concat_values)
    built = staticmethod(built)

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=finalize)
        self.filters = bounded_filters(self.filters)
        self.globals["lipsum"] = bounded_lipsum

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return self.binop_table[operator](left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if not __self.is_safe_callable(__obj):
            raise SecurityError(f"{__obj!r} is not safely callable")
        spend(1)
        receiver = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(receiver, str | bytes) and not isinstance(__obj, type):
            return call_text_method(partial(__context.call, __obj), name, receiver, args, kwargs)
        if isinstance(receiver, int) and not isinstance(receiver, bool):
            check_int_method(__obj, args, kwargs)
        if name == "copy" and isinstance(receiver, list | dict | set):
            allow_items(len(receiver))
        result = __context.call(__obj, *args, **kwargs)
        if __obj is dict or name in _CONSTRUCTOR_METHODS:
            return check_result(result)
        if isinstance(result, str | bytes):
            allow_text(len(result))
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` through a formatter that measures each field first."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        text = value.__self__
        if not isinstance(text, str):
            return None
        is_format_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            spend(1)
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs, args = args[0], ()
            formatted = formatter_for(self, text).vformat(text, args, kwargs)
            return check_result(type(text)(formatted))  # type: ignore[no-any-return]

        return update_wrapper(wrapper, value)
