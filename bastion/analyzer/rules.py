"""Patterns turned into rules: ``match`` (report where regular expressions match), ``absent``
(report a structure element that none of its expressions finds) and ``builtin`` (a detector in
code, named in the pattern file, with parameters from it). Regular expressions are compiled once,
each pattern's alternatives into one expression, so a rule is one linear scan per part."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from bastion.analyzer.library import LibraryError, Pattern
from bastion.analyzer.model import Finding, Part, Span
from bastion.analyzer.scan import Scan, finding, lower_pattern

#: Spans reported per finding at most (the count is in the detail).
MAX_SPANS = 20
#: Structure spans kept per element.
STRUCTURE_SPANS = 3


class Rule(Protocol):
    pattern: Pattern

    def run(self, scan: Scan) -> Finding | None: ...


#: A built-in detector: made from its pattern and the pattern's ``params`` (a class, usually).
Builtin = Callable[[Pattern, dict[str, Any]], Rule]
BUILTINS: dict[str, Builtin] = {}
B = TypeVar("B", bound=Builtin)


def builtin(name: str) -> Callable[[B], B]:
    """Register a built-in detector under the name pattern files use (``detector.name``)."""

    def register(factory: B) -> B:
        BUILTINS[name] = factory
        return factory

    return register


def compile_alternatives(pattern: Pattern, expressions: Any, case_sensitive: bool = False) -> re.Pattern[str]:
    if not isinstance(expressions, list) or not expressions or not all(isinstance(e, str) for e in expressions):
        raise LibraryError(f"{pattern.id}: detector.patterns must be a non-empty list of regular expressions")
    source = "|".join(f"(?:{expression})" for expression in expressions)
    try:
        # Case-insensitive rules run on the lower-cased text (``Scan.lower``), without IGNORECASE.
        return re.compile(source if case_sensitive else lower_pattern(source), re.MULTILINE)
    except re.error as exc:
        raise LibraryError(f"{pattern.id}: a regular expression does not compile: {exc}") from None


def _parts(pattern: Pattern, detector: dict[str, Any]) -> tuple[Part, ...]:
    part = detector.get("part", "any")
    if part == "any":
        return ("system", "template")
    if part in ("system", "template"):
        return (part,)
    raise LibraryError(f"{pattern.id}: detector.part must be system, template or any")


def _int(pattern: Pattern, detector: dict[str, Any], name: str, default: int) -> int:
    value = detector.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise LibraryError(f"{pattern.id}: detector.{name} must be an integer")
    return value


class MatchRule:
    """Every match of the expressions is a span; ``replacement`` (what a match should become)
    gives the token delta, else ``delta_per_match``."""

    def __init__(self, pattern: Pattern) -> None:
        detector = pattern.detector
        self.pattern = pattern
        self.case_sensitive = bool(detector.get("case_sensitive"))
        self.regex = compile_alternatives(pattern, detector.get("patterns"), self.case_sensitive)
        self.parts = _parts(pattern, detector)
        self.min_matches = _int(pattern, detector, "min_matches", 1)
        self.delta_per_match = _int(pattern, detector, "delta_per_match", 0)
        replacement = detector.get("replacement")
        if replacement is not None and not isinstance(replacement, str):
            raise LibraryError(f"{pattern.id}: detector.replacement must be a string")
        self.replacement = replacement

    def run(self, scan: Scan) -> Finding | None:
        spans: list[Span] = []
        delta = 0
        for part in self.parts:
            text = scan.prompt.text(part)
            if not text:
                continue
            for match in self.regex.finditer(text if self.case_sensitive else scan.lower(part)):
                if match.end() == match.start():
                    continue
                spans.append(Span(part, match.start(), match.end()))
                if self.replacement is not None:
                    delta += scan.tokens(self.replacement) - scan.tokens(text[match.start() : match.end()])
                else:
                    delta += self.delta_per_match
        if len(spans) < self.min_matches:
            return None
        return finding(self.pattern, spans[:MAX_SPANS], delta, f"{len(spans)} occurrence(s)")


class AbsentRule:
    """A structure element: present where an expression matches (kept for the report), reported
    when none does in a prompt of at least ``min_words`` words."""

    def __init__(self, pattern: Pattern) -> None:
        detector = pattern.detector
        self.pattern = pattern
        element = detector.get("element")
        if not isinstance(element, str) or not element:
            raise LibraryError(f"{pattern.id}: detector.element is required")
        self.element = element
        self.case_sensitive = bool(detector.get("case_sensitive"))
        self.regex = compile_alternatives(pattern, detector.get("patterns"), self.case_sensitive)
        self.parts = _parts(pattern, detector)
        self.min_words = _int(pattern, detector, "min_words", 0)
        self.delta = _int(pattern, detector, "delta", 0)

    def run(self, scan: Scan) -> Finding | None:
        spans: list[Span] = []
        for part in self.parts:
            text = scan.prompt.text(part)
            if not text:
                continue
            for match in self.regex.finditer(text if self.case_sensitive else scan.lower(part)):
                spans.append(Span(part, match.start(), match.end()))
                if len(spans) >= STRUCTURE_SPANS:
                    break
            if len(spans) >= STRUCTURE_SPANS:
                break
        scan.structure[self.element] = tuple(spans)
        if spans or sum(scan.word_count(part) for part in self.parts) < self.min_words:
            return None
        return finding(self.pattern, (), self.delta, f"no {self.element} found")


def build_rule(pattern: Pattern) -> Rule:
    kind = pattern.detector["kind"]
    if kind == "match":
        return MatchRule(pattern)
    if kind == "absent":
        return AbsentRule(pattern)
    name = pattern.detector.get("name")
    factory = BUILTINS.get(name) if isinstance(name, str) else None
    if factory is None:
        raise LibraryError(f"{pattern.id}: unknown builtin detector {name!r} (known: {', '.join(sorted(BUILTINS))})")
    params = pattern.detector.get("params") or {}
    if not isinstance(params, dict):
        raise LibraryError(f"{pattern.id}: detector.params must be a mapping")
    return factory(pattern, params)
