"""The check made when a template is stored: refuse what is hostile before anyone renders it.

The render-time limits (``template_budget``) hold for every template; this check only refuses early,
with the line, what can be told without the client's variables:

* every constant sub-expression (``'a' * 500000000``, ``'x'|center(10**9)``, ``range(10)|batch(n)``
  with literal arguments) is evaluated in the bounded sandbox, and one over a limit is refused;
* a template that uses no variable at all is rendered once, and refused if the render is.

The time limit is not held against a template here: a busy machine could trip it on its own.
"""

from __future__ import annotations

from typing import Any

from jinja2 import meta, nodes
from jinja2.runtime import Context, Undefined, new_context
from jinja2.utils import _PassArg

from bastion.vault.render import TEMPLATES, TemplateInvalid, compile_template, render_within_limits
from bastion.vault.template_budget import RenderBudget, TemplateLimitExceeded, TemplateTooSlow, budgeted
from bastion.vault.template_sandbox import built, concat_values

_CONSTANT_CALLS = frozenset({"range", "lipsum", "dict"})


class _NotConstant(Exception):
    """The expression depends on something only known at render time."""


_UNKNOWN = object()


class ConstantEvaluator:
    """Evaluates the constant expressions of a template's syntax tree in the bounded sandbox, each
    once (values are remembered by node, so nested expressions are not evaluated again)."""

    def __init__(self) -> None:
        self.values: dict[int, Any] = {}
        self.context: Context = new_context(TEMPLATES, "check", {})
        self.eval_ctx = nodes.EvalContext(TEMPLATES)

    def value(self, node: nodes.Node) -> Any:
        known = self.values.get(id(node), _UNKNOWN)
        if known is _NotConstant:
            raise _NotConstant
        if known is not _UNKNOWN:
            return known
        try:
            result = self._evaluate(node)
        except TemplateLimitExceeded:
            raise
        except Exception:  # _NotConstant, or an error the render will report with the variables
            self.values[id(node)] = _NotConstant
            raise _NotConstant from None
        self.values[id(node)] = result
        return result

    def _arguments(self, node: nodes.Filter | nodes.Call) -> tuple[list[Any], dict[str, Any]]:
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            raise _NotConstant
        return [self.value(arg) for arg in node.args], {str(kw.key): self.value(kw.value) for kw in node.kwargs}

    def _evaluate(self, node: nodes.Node) -> Any:
        if isinstance(node, nodes.Const):
            return node.value
        if isinstance(node, nodes.TemplateData):
            return node.data
        if isinstance(node, nodes.List):
            return built([self.value(item) for item in node.items])
        if isinstance(node, nodes.Tuple) and node.ctx == "load":
            return built(tuple(self.value(item) for item in node.items))
        if isinstance(node, nodes.Dict):
            return built({self.value(pair.key): self.value(pair.value) for pair in node.items})
        if isinstance(node, nodes.Concat):
            return concat_values(tuple(self.value(part) for part in node.nodes), False)
        if isinstance(node, nodes.BinExpr) and node.operator in TEMPLATES.intercepted_binops:
            return TEMPLATES.call_binop(self.context, node.operator, self.value(node.left), self.value(node.right))
        if isinstance(node, nodes.Filter):
            return self._filter(node)
        if isinstance(node, nodes.Call):
            return self._call(node)
        if isinstance(node, nodes.Getattr):
            return self._defined(TEMPLATES.getattr(self.value(node.node), node.attr))
        if isinstance(node, nodes.BinExpr | nodes.UnaryExpr | nodes.Compare | nodes.CondExpr | nodes.Getitem):
            return node.as_const(self.eval_ctx)  # folded by Jinja itself (raises Impossible if not)
        raise _NotConstant

    @staticmethod
    def _defined(value: Any) -> Any:
        if isinstance(value, Undefined):
            raise _NotConstant
        return value

    def _filter(self, node: nodes.Filter) -> Any:
        func = TEMPLATES.filters.get(node.name)
        if func is None or node.node is None:
            raise _NotConstant
        pass_arg = _PassArg.from_obj(func)
        if pass_arg is _PassArg.context:
            raise _NotConstant
        args, kwargs = self._arguments(node)
        leads: dict[_PassArg | None, list[Any]] = {
            _PassArg.environment: [TEMPLATES],
            _PassArg.eval_context: [self.eval_ctx],
        }
        lead = leads.get(pass_arg, [])
        return func(*lead, self.value(node.node), *args, **kwargs)

    def _call(self, node: nodes.Call) -> Any:
        callee = node.node
        if isinstance(callee, nodes.Name) and callee.name in _CONSTANT_CALLS:
            target = TEMPLATES.globals[callee.name]
        elif isinstance(callee, nodes.Getattr):
            target = self._defined(TEMPLATES.getattr(self.value(callee.node), callee.attr))
        else:
            raise _NotConstant
        args, kwargs = self._arguments(node)
        return TEMPLATES.call(self.context, target, *args, **kwargs)


def _refuse(what: str, lineno: int | None) -> TemplateInvalid:
    where = f" (line {lineno})" if lineno else ""
    return TemplateInvalid(f"user template exceeds a rendering limit{where}: {what}")


def _uses_variables(source: str) -> bool:
    return bool(meta.find_undeclared_variables(TEMPLATES.parse(source)) - set(TEMPLATES.globals))


def check_template(source: str) -> None:
    """Raise ``TemplateInvalid`` if ``source`` does not compile or is over a limit whatever the
    variables; the message names the limit and a line, never the template's text."""
    compile_template(source)  # syntax errors, with their line
    tree = TEMPLATES.parse(source)
    evaluator = ConstantEvaluator()
    try:
        with budgeted(RenderBudget()):
            for node in tree.find_all(nodes.Expr):
                try:
                    evaluator.value(node)
                except _NotConstant:
                    continue
                except TemplateTooSlow:
                    break  # what was checked so far is fine; the render-time limits still hold
                except TemplateLimitExceeded as exc:
                    raise _refuse(exc.what, node.lineno) from None
    finally:
        evaluator.values.clear()
    if not _uses_variables(source):
        try:
            render_within_limits(compile_template(source), {})
        except TemplateTooSlow:
            pass
        except TemplateLimitExceeded as exc:
            raise _refuse(exc.what, None) from None
        except Exception:
            pass
