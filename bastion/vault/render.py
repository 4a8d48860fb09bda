"""User-prompt templates: Jinja2 in a sandbox, strict about missing variables, bounded in size.

Templates are written by prompt authors, variables come from API clients. The sandbox keeps a
template from reaching Python internals, and ``template_sandbox`` from building more than a few MB
or running longer than ``MAX_RENDER_SECONDS``; ``StrictUndefined`` turns a variable the client
forgot into a clear 400 instead of an empty string silently sent to the model. Every failure is an
``InvalidRequest`` whose message names at most a variable (declared names are not secret) and
never quotes the template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, UndefinedError, meta
from jinja2.environment import Template
from jinja2.exceptions import SecurityError

from bastion.errors import InvalidRequest
from bastion.vault.template_budget import (
    MAX_VALUE_CHARS,
    OutputTooLong,
    RenderBudget,
    TemplateLimitExceeded,
    budgeted,
)
from bastion.vault.template_sandbox import BoundedSandbox

#: Largest rendered user prompt, in characters (also the largest text a template may build).
MAX_RENDERED_CHARS = MAX_VALUE_CHARS
#: Limits on what a client may pass as variables.
MAX_VARIABLES = 100
MAX_DEPTH = 8
VARIABLES_PARAM = "bastion.variables"

#: The one environment every prompt template is compiled and rendered in.
TEMPLATES = BoundedSandbox()
_UNDEFINED_NAME = re.compile(r"^'([^']{1,128})' is undefined$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class TemplateInvalid(ValueError):
    """A template that does not compile (raised when a version is created, never at request time)."""


def compile_template(source: str) -> Template:
    try:
        # Compiling folds constant expressions, running template code: on a budget like a render.
        with budgeted(RenderBudget()):
            return TEMPLATES.from_string(source)
    except TemplateSyntaxError as exc:
        # The line number helps the author; the message is Jinja's, about syntax, not content.
        raise TemplateInvalid(f"user template does not compile (line {exc.lineno}): {exc.message}") from None


def declared_variables(source: str) -> list[str]:
    """Variables a template refers to, for the version's (non-secret) metadata."""
    try:
        return sorted(meta.find_undeclared_variables(TEMPLATES.parse(source)))
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(f"user template does not compile (line {exc.lineno}): {exc.message}") from None


def _check_value(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidRequest(f"Invalid request: {path} is nested too deeply.", param=VARIABLES_PARAM)
    if isinstance(value, str):
        if len(value) > MAX_RENDERED_CHARS:
            raise InvalidRequest(
                f"Invalid request: {path} is longer than {MAX_RENDERED_CHARS} characters.", param=VARIABLES_PARAM
            )
        return
    if value is None or isinstance(value, int | float | bool):
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRequest(f"Invalid request: {path} has a non-string key.", param=VARIABLES_PARAM)
            _check_value(item, f"{path}.{key}", depth + 1)
        return
    raise InvalidRequest(
        f"Invalid request: {path} must be a JSON string, number, boolean, null, list or object.",
        param=VARIABLES_PARAM,
    )


def check_variables(variables: Any) -> dict[str, Any]:
    """The client's variables, validated: an object of JSON values with identifier names."""
    if variables is None:
        return {}
    if not isinstance(variables, Mapping):
        raise InvalidRequest("Invalid request: bastion.variables must be an object.", param=VARIABLES_PARAM)
    if len(variables) > MAX_VARIABLES:
        raise InvalidRequest(
            f"Invalid request: at most {MAX_VARIABLES} prompt variables are allowed.", param=VARIABLES_PARAM
        )
    for name, value in variables.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidRequest(
                f"Invalid request: prompt variable names must be identifiers (got {str(name)[:40]!r}).",
                param=VARIABLES_PARAM,
            )
        _check_value(value, f"bastion.variables.{name}", 1)
    return dict(variables)


def render_within_limits(template: Template, variables: Mapping[str, Any]) -> str:
    """Render on a budget of its own; a limit gone over raises ``TemplateLimitExceeded``."""
    parts: list[str] = []
    size = 0
    with budgeted(RenderBudget()):
        # generate() yields as it goes, so an oversized result is stopped early, not after the fact.
        for part in template.generate(**variables):
            if not part:
                continue
            size += len(part)
            if size > MAX_RENDERED_CHARS:
                raise OutputTooLong(f"the rendered prompt is longer than {MAX_RENDERED_CHARS} characters")
            parts.append(part)
    return "".join(parts)


def render(template: Template, variables: Mapping[str, Any]) -> str:
    """Render with the client's variables; any failure is a 400 that does not quote the template."""
    try:
        return render_within_limits(template, variables)
    except OutputTooLong:
        raise InvalidRequest(
            f"The rendered prompt is longer than {MAX_RENDERED_CHARS} characters.", param=VARIABLES_PARAM
        ) from None
    except TemplateLimitExceeded as exc:
        raise InvalidRequest(
            f"The prompt template exceeds a rendering limit: {exc.what}.", param=VARIABLES_PARAM
        ) from None
    except RecursionError:
        raise InvalidRequest("The prompt template nests or recurses too deeply.", param=VARIABLES_PARAM) from None
    except UndefinedError as exc:
        match = _UNDEFINED_NAME.match(str(exc.message or ""))
        if match:
            raise InvalidRequest(f"prompt variable '{match.group(1)}' is missing", param=VARIABLES_PARAM) from None
        raise InvalidRequest(
            "A prompt variable lacks a field or item the template uses.", param=VARIABLES_PARAM
        ) from None
    except SecurityError:
        raise InvalidRequest("The prompt template attempted an unsafe operation.", param=VARIABLES_PARAM) from None
    except Exception as exc:  # anything a template can raise on odd input (TypeError, ZeroDivision...)
        raise InvalidRequest(
            f"The prompt template could not be rendered with these variables ({type(exc).__name__}).",
            param=VARIABLES_PARAM,
        ) from None
