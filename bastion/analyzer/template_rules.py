"""Built-in detectors over variables: template hygiene (undeclared and unused variables,
placeholders the vault never fills, ``set`` variables never read) and cache-friendliness
(dynamic values early in the prompt, before a long static stretch that could be cached).

The user template is Jinja2 as the vault renders it (``bastion.vault.render``); the system prompt
is sent as written, so a placeholder in it reaches the model literally."""

from __future__ import annotations

import re
from typing import Any

from jinja2 import TemplateSyntaxError, meta

from bastion.analyzer.library import LibraryError, Pattern
from bastion.analyzer.model import Finding, Part, Span
from bastion.analyzer.rules import MAX_SPANS, builtin
from bastion.analyzer.scan import Scan, finding
from bastion.vault.render import TEMPLATES

_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_NAME = re.compile(r"(?<![\w.'\"])([A-Za-z_]\w*)(?!\s*=[^=])")
_SET = re.compile(r"\{%-?\s*set\s+([A-Za-z_]\w*)\s*=.*?%\}", re.DOTALL)
#: Placeholders of other template languages, which Jinja leaves as they are.
_FOREIGN = re.compile(
    r"\$\{[A-Za-z_]\w*\}|(?<![{\w$])\{[A-Za-z_]\w*\}(?!\})|<<[A-Za-z_]\w*>>|\[\[[A-Za-z_]\w*\]\]|%\([A-Za-z_]\w*\)s"
)
#: What marks a dynamic value: Jinja blocks in the template; in the system prompt (filled in by
#: the application, if at all) Jinja-style and single-brace placeholders.
_DYNAMIC_SYSTEM = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|(?<![{\w$])\{[A-Za-z_]\w*\}(?!\})", re.DOTALL)
_DYNAMIC_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_KEYWORDS = frozenset(
    [
        "if",
        "else",
        "elif",
        "endif",
        "for",
        "endfor",
        "in",
        "not",
        "and",
        "or",
        "is",
        "set",
        "endset",
        "true",
        "false",
        "none",
        "True",
        "False",
        "None",
        "loop",
        "block",
        "endblock",
        "macro",
        "endmacro",
        "call",
        "endcall",
        "filter",
        "endfilter",
        "with",
        "endwith",
        "raw",
        "endraw",
        "include",
        "import",
        "from",
        "as",
        "recursive",
    ]
)


def used_variables(template: str) -> set[str]:
    """Variables the template reads (as the vault records them), or by a scan of its blocks when
    it does not compile."""
    try:
        return set(meta.find_undeclared_variables(TEMPLATES.parse(template))) - set(TEMPLATES.globals)
    except TemplateSyntaxError:
        names: set[str] = set()
        for block in _BLOCK.finditer(template):
            names.update(m.group(1) for m in _NAME.finditer(block.group()) if m.group(1) not in _KEYWORDS)
        return names - set(TEMPLATES.globals)


def name_spans(template: str, names: set[str]) -> list[Span]:
    """Where the names occur inside the template's blocks."""
    spans: list[Span] = []
    for block in _BLOCK.finditer(template):
        if block.group().startswith("{#"):
            continue
        for m in _NAME.finditer(block.group()):
            if m.group(1) in names:
                start = block.start() + m.start(1)
                spans.append(Span("template", start, start + len(m.group(1))))
    return spans


@builtin("template_variables")
class TemplateVariables:
    """One of the hygiene checks, chosen by ``params.check``."""

    CHECKS = ("undeclared", "unused", "system_placeholder", "foreign_placeholder", "set_unused")

    def __init__(self, pattern: Pattern, params: dict[str, Any]) -> None:
        self.pattern = pattern
        self.check = params.get("check")
        if self.check not in self.CHECKS:
            raise LibraryError(f"{pattern.id}: params.check must be one of {', '.join(self.CHECKS)}")

    def run(self, scan: Scan) -> Finding | None:
        prompt = scan.prompt
        template = prompt.template or ""
        spans: list[Span] = []
        count = 0
        if self.check == "system_placeholder":
            spans = [Span("system", *m.span()) for m in _BLOCK.finditer(prompt.system)]
            count = len(spans)
        elif self.check == "foreign_placeholder":
            for part, text in scan.parts():
                spans.extend(Span(part, *m.span()) for m in _FOREIGN.finditer(text))
            count = len(spans)
        elif self.check == "set_unused":
            assigned = {m.group(1) for m in _SET.finditer(template)}
            unused = assigned - {template[span.start : span.end] for span in name_spans(template, assigned)}
            spans = [Span("template", *m.span()) for m in _SET.finditer(template) if m.group(1) in unused]
            count = len(unused)
        elif prompt.declared is not None and template:
            used = used_variables(template)
            declared = set(prompt.declared)
            if self.check == "undeclared":
                missing = used - declared
                spans = name_spans(template, missing)
                count = len(missing)
            else:
                count = len(declared - used)
        if not count:
            return None
        return finding(self.pattern, spans[:MAX_SPANS], 0, f"{count} occurrence(s)")


@builtin("dynamic_before_static")
class DynamicBeforeStatic:
    """The first dynamic value comes before at least ``min_static_tokens`` tokens of static text:
    a provider's prompt cache (OpenAI and Anthropic cache prefixes of 1,024 tokens and more) stops
    at the first byte that changes between requests, so that text is paid in full every time."""

    def __init__(self, pattern: Pattern, params: dict[str, Any]) -> None:
        self.pattern = pattern
        value = params.get("min_static_tokens", 1024)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise LibraryError(f"{pattern.id}: params.min_static_tokens must be a positive integer")
        self.min_static_tokens = value

    def run(self, scan: Scan) -> Finding | None:
        first: Span | None = None
        static_after = 0
        tail: list[Span] = []
        for part, text in scan.parts():
            regex = _DYNAMIC_SYSTEM if part == "system" else _DYNAMIC_TEMPLATE
            position = 0
            for m in regex.finditer(text):
                if first is None:
                    first = Span(part, *m.span())
                else:
                    static_after += self._static(scan, part, text, position, m.start(), tail)
                position = m.end()
            if first is not None:
                static_after += self._static(scan, part, text, position, len(text), tail)
        if first is None or static_after < self.min_static_tokens:
            return None
        return finding(self.pattern, [first, *tail][:MAX_SPANS], 0, f"{static_after} static tokens after it")

    @staticmethod
    def _static(scan: Scan, part: Part, text: str, start: int, end: int, tail: list[Span]) -> int:
        if end <= start or not text[start:end].strip():
            return 0
        tail.append(Span(part, start, end))
        return scan.tokens(text[start:end])
