"""Built-in detectors over sentences: repeated sentences, instructions given twice in other words,
length instructions that contradict each other, several tasks in one prompt. Each is one pass over
the sentences with hash lookups (linear in the prompt's length)."""

from __future__ import annotations

import re
from typing import Any

from bastion.analyzer.library import LibraryError, Pattern
from bastion.analyzer.model import Finding, Span
from bastion.analyzer.rules import MAX_SPANS, builtin
from bastion.analyzer.scan import Scan, finding

_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "by",
        "from",
        "as",
        "is",
        "are",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "you",
        "your",
        "yours",
        "i",
        "we",
        "our",
        "they",
        "them",
        "their",
        "he",
        "she",
        "his",
        "her",
        "please",
        "also",
        "just",
        "so",
        "then",
        "there",
        "here",
        "which",
        "who",
        "what",
        "when",
        "where",
        "how",
        "all",
        "any",
        "each",
        "every",
        "very",
        "really",
    ]
)
#: Words that make a sentence an instruction but not which one (dropped from its signature).
_IGNORED = _STOPWORDS | frozenset(
    [
        "must",
        "should",
        "shall",
        "always",
        "ensure",
        "make",
        "sure",
        "need",
        "needs",
        "have",
        "required",
        "require",
        "important",
        "remember",
        "do",
        "dont",
        "never",
        "not",
        "no",
    ]
)
_NEGATION = re.compile(r"\b(?:do not|don't|never|must not|should not|no)\b")
_INSTRUCTION = re.compile(
    r"\b(?:must|always|never|do not|don't|should|shall|make sure|ensure|only|avoid|remember|need to|have to|"
    r"required?|important)\b",
)


def _param(pattern: Pattern, params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise LibraryError(f"{pattern.id}: params.{name} must be a positive integer")
    return value


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@builtin("repeated_sentences")
class RepeatedSentences:
    """The same sentence (case, spacing and punctuation aside) more than once: every repeat after
    the first is a span, and its tokens are the saving."""

    def __init__(self, pattern: Pattern, params: dict[str, Any]) -> None:
        self.pattern = pattern
        self.min_words = _param(pattern, params, "min_words", 4)

    def run(self, scan: Scan) -> Finding | None:
        seen: set[str] = set()
        spans: list[Span] = []
        delta = 0
        for sentence in scan.all_sentences():
            key = sentence.normalized()
            if key.count(" ") + 1 < self.min_words:
                continue
            if key in seen:
                spans.append(sentence.span)
                delta -= scan.span_tokens(sentence.span)
            else:
                seen.add(key)
        if not spans:
            return None
        return finding(self.pattern, spans[:MAX_SPANS], delta, f"{len(spans)} repeated sentence(s)")


@builtin("duplicated_instructions")
class DuplicatedInstructions:
    """An instruction given twice in different words: two instruction sentences with the same
    content words (stop words dropped, simple stemming, any order) that are not the same sentence."""

    def __init__(self, pattern: Pattern, params: dict[str, Any]) -> None:
        self.pattern = pattern
        self.min_words = _param(pattern, params, "min_content_words", 2)

    def run(self, scan: Scan) -> Finding | None:
        first: dict[frozenset[str], str] = {}
        spans: list[Span] = []
        delta = 0
        for sentence in scan.all_sentences():
            lowered = sentence.text.lower()
            if not _INSTRUCTION.search(lowered):
                continue
            words = frozenset(_stem(w) for w in sentence.words() if w.replace("'", "") not in _IGNORED)
            if _NEGATION.search(lowered):
                words |= {"not"}
            if len(words) < self.min_words:
                continue
            normalized = sentence.normalized()
            earlier = first.get(words)
            if earlier is None:
                first[words] = normalized
            elif earlier != normalized:
                spans.append(sentence.span)
                delta -= scan.span_tokens(sentence.span)
        if not spans:
            return None
        return finding(self.pattern, spans[:MAX_SPANS], delta, f"{len(spans)} duplicated instruction(s)")


_UNITS = r"(words?|sentences?|paragraphs?|bullet points?|bullets?|lines?|characters?|tokens?|items?)"
_NUMBER = r"(\d{1,5}|one|two|three|four|five|six|seven|eight|nine|ten|twenty|fifty|hundred)"
_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "twenty": 20, "fifty": 50, "hundred": 100,
}  # fmt: skip
_MAXIMUM = re.compile(
    rf"\b(?:at most|no more than|not more than|under|fewer than|less than|a maximum of|maximum of|max(?:imum)?|"
    rf"up to|within|limit(?:ed)? to|keep it (?:to|under))\s+{_NUMBER}\s+{_UNITS}\b",
)
_MINIMUM = re.compile(
    rf"\b(?:at least|no fewer than|no less than|a minimum of|minimum of|more than)\s+{_NUMBER}\s+{_UNITS}\b",
)
_EXACT = re.compile(rf"\b(?:in|exactly|use|write)\s+{_NUMBER}\s+{_UNITS}\b|\b{_NUMBER}-{_UNITS}\b")
_SHORT = re.compile(
    r"\b(?:be (?:brief|concise|succinct)|briefly|concisely|succinctly|"
    r"keep (?:it|(?:your |the )?(?:answers?|responses?|replies)) (?:short|brief)|"
    r"short (?:answers?|responses?|replies)|one-line|in (?:a )?(?:single|one) (?:sentence|line))\b",
)
_LONG = re.compile(
    r"\b(?:in (?:great |full )?detail|detailed (?:answers?|explanations?|responses?|descriptions?|summar(?:y|ies)|"
    r"reports?|analys[ie]s|walkthroughs?|steps?)|comprehensive(?:ly)?|thorough(?:ly)?|in[- ]depth|exhaustive(?:ly)?|"
    r"elaborate (?:on|at length)|at length|long-form|as (?:much detail|long) as possible)\b",
)


def _unit(text: str) -> str:
    unit = text.lower().rstrip("s")
    return "bullet" if unit.startswith("bullet") else unit


def _number(text: str) -> int:
    return int(text) if text.isdigit() else _NUMBERS[text.lower()]


@builtin("conflicting_length")
class ConflictingLength:
    """Length instructions that cannot all hold: "be brief" with "in detail", two different limits
    of the same unit, or a minimum above a maximum."""

    def __init__(self, pattern: Pattern, params: dict[str, Any]) -> None:
        self.pattern = pattern
        ratio = params.get("ratio", 1.5)
        if not isinstance(ratio, int | float) or ratio <= 1:
            raise LibraryError(f"{pattern.id}: params.ratio must be a number above 1")
        self.ratio = float(ratio)

    def run(self, scan: Scan) -> Finding | None:
        short: list[Span] = []
        long: list[Span] = []
        limits: dict[str, list[tuple[str, int, Span]]] = {}
        for part, _ in scan.parts():
            text = scan.lower(part)
            short.extend(Span(part, *m.span()) for m in _SHORT.finditer(text))
            long.extend(Span(part, *m.span()) for m in _LONG.finditer(text))
            for kind, regex in (("max", _MAXIMUM), ("min", _MINIMUM), ("exact", _EXACT)):
                for m in regex.finditer(text):
                    number, unit = [group for group in m.groups() if group]
                    limits.setdefault(_unit(unit), []).append((kind, _number(number), Span(part, *m.span())))
        conflicting: list[Span] = []
        if short and long:
            conflicting.extend(short + long)
        for entries in limits.values():
            exact = [n for kind, n, _ in entries if kind == "exact"]
            caps = [n for kind, n, _ in entries if kind == "max"]
            floors = [n for kind, n, _ in entries if kind == "min"]
            clash = (
                len(set(exact)) > 1
                or (bool(caps) and max(caps) > self.ratio * min(caps))
                or (bool(floors + exact) and bool(caps + exact) and max(floors + exact) > min(caps + exact))
            )
            if clash:
                conflicting.extend(s for _, _, s in entries)
        if not conflicting:
            return None
        spans = sorted(set(conflicting), key=lambda s: (s.part != "system", s.start))
        delta = -min(scan.span_tokens(span) for span in spans)
        return finding(self.pattern, spans[:MAX_SPANS], delta, f"{len(spans)} conflicting length instruction(s)")


_TASK_VERBS = (
    "summarize|summarise|translate|classify|categorize|categorise|extract|generate|write|draft|compose|rewrite|"
    "paraphrase|analyze|analyse|compare|evaluate|grade|score|rank|outline|describe|calculate|compute|convert|"
    "implement|debug|proofread|detect|identify|tag|predict|recommend|plan|design|create|list|explain|review|"
    "critique|brainstorm|transcribe|solve|answer"
)
_TASK = re.compile(rf"\b({_TASK_VERBS})\b")
#: What may come right before a task verb in imperative position (checked on the text before it).
_BEFORE_TASK = re.compile(
    r"(?:^|\n|[.!?:;]\s+|\band then\s+|\bthen\s+|\balso\s+|\bafter that,?\s+|\bnext,?\s+|\bfinally,?\s+|,\s*and\s+)"
    r"[ \t]*(?:[-*•]\s*|\d+[.)]\s*)?(?:please\s+)?(?:(?:also|then|now)\s+)?\Z"
)
#: How far back the imperative context is looked for.
_BEFORE_CHARS = 40
_NUMBERED_TASK = re.compile(r"\btask\s*#?\s*(\d+)\s*[:.)-]")
_SPELLING = {"summarise": "summarize", "categorise": "categorize", "analyse": "analyze"}


@builtin("multiple_tasks")
class MultipleTasks:
    """Several distinct tasks in one prompt (imperative task verbs, or "Task 1:", "Task 2:" ...)."""

    def __init__(self, pattern: Pattern, params: dict[str, Any]) -> None:
        self.pattern = pattern
        self.min_tasks = _param(pattern, params, "min_tasks", 3)

    def run(self, scan: Scan) -> Finding | None:
        verbs: dict[str, Span] = {}
        numbered: dict[str, Span] = {}
        for part, _ in scan.parts():
            text = scan.lower(part)
            for m in _TASK.finditer(text):
                start = m.start(1)
                before = text[max(0, start - _BEFORE_CHARS) : start]
                if start > _BEFORE_CHARS:
                    before = "x" + before  # the window is not the text's start: ``^`` must not match
                if not _BEFORE_TASK.search(before):
                    continue
                verb = m.group(1)
                verbs.setdefault(_SPELLING.get(verb, verb), Span(part, start, m.end(1)))
            for m in _NUMBERED_TASK.finditer(text):
                numbered.setdefault(m.group(1), Span(part, *m.span()))
        tasks = max(len(verbs), len(numbered))
        if tasks < self.min_tasks:
            return None
        spans = list(verbs.values()) if len(verbs) >= len(numbered) else list(numbered.values())
        return finding(self.pattern, spans[:MAX_SPANS], 0, f"{tasks} distinct tasks")
