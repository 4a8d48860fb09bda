"""Prompt-injection and jailbreak detection: weighted phrase rules over a de-obfuscated view, and a
learned model over them.

Rule score = noisy-OR over categories of the strongest rule match in each category, plus
obfuscation signals: encoded payloads are decoded and scored recursively, look-alike letters mixed
into Latin words and invisible characters inside words add weak evidence, and text smuggled in
Unicode tag characters (decoded by the invisible scanner) is scored like visible text.

The score the policy compares with its thresholds is the learned model's probability
(``injection_model.py``), which takes the rule categories as inputs next to hashed n-grams; with
``use_model=False`` it is the rule score alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import bastion.guard.budget as budget
import bastion.guard.runs as runs
from bastion.guard.decoders import (
    BINARY_HINT_WORDS,
    HEX_HINT_WORDS,
    REVERSED_HINT_WORDS,
    ROT13_HINT_WORDS,
    UNCOMMON_SINGLE_LETTERS,
    PayloadHints,
    find_payloads,
)
from bastion.guard.framed_harm import framed_harm
from bastion.guard.injection_model import InjectionModel, shared_model
from bastion.guard.injection_rules import (
    ADVERSARIAL_SUFFIX,
    DELIMITER,
    DELIMITER_RULES,
    ENGLISH_RULES,
    ESCAPED_NEWLINES_RE,
    FRAMED_HARM,
    OBFUSCATION,
    SEPARATOR_LINES_RE,
    InjectionRule,
)
from bastion.guard.injection_rules_agents import AGENT_RULES
from bastion.guard.injection_rules_extraction import EXTRACTION_RULES
from bastion.guard.injection_rules_intl import (
    CJK_RULES,
    GERMAN_RULES,
    MORE_LANGUAGE_RULES,
    OTHER_RULES,
    ROMANCE_RULES,
)
from bastion.guard.models import Finding
from bastion.guard.normalize import MatchView, build_view
from bastion.guard.phrase_context import is_instruction, narrowed_scope, quoted_mention
from bastion.guard.segments import SEGMENT_CHARS, segment_bounds
from bastion.guard.suffix import adversarial_suffix

ALL_RULES: tuple[InjectionRule, ...] = (
    *ENGLISH_RULES,
    *AGENT_RULES,
    *EXTRACTION_RULES,
    *DELIMITER_RULES,
    *GERMAN_RULES,
    *ROMANCE_RULES,
    *OTHER_RULES,
    *CJK_RULES,
    *MORE_LANGUAGE_RULES,
)

# An optimised suffix is strong evidence but not proof on its own: the model weighs it with the rest.
ADVERSARIAL_SUFFIX_WEIGHT = 0.8
# A harmful how-to in a story: at the rule floor. Both halves must occur, which no benign corpus row
# has; the model's n-grams read persuasion jailbreaks as the role-play they dress up as.
FRAMED_HARM_WEIGHT = 0.85

_WORD_RE = re.compile(r"[^\W\d_]+")
# bytes.translate table: ASCII letters kept, everything else becomes a space (fast tokenising).
_LETTERS_ONLY = bytes(c if 97 <= c <= 122 else 32 for c in range(256))


# Mixed-script words (Latin next to Cyrillic/Greek) and invisible characters inside Latin words.
# Soft hyphens are not counted: they are hyphenation hints in text copied from web pages, and the
# view the rules read drops them, so a keyword split by one is matched whole anyway.
_GREEK_CYRILLIC_RE = re.compile("[\u0370-\u03ff\u0400-\u04ff]")
_WORD_SPLITTER_RE = re.compile("[\u200b-\u200d\u2060\ufeff]")
_MIXED_SCRIPT_RE = re.compile(r"[A-Za-z][\u0370-\u03ff\u0400-\u04ff]|[\u0370-\u03ff\u0400-\u04ff][A-Za-z]")
_SPLIT_WORD_RE = re.compile(r"[A-Za-z][\u200b-\u200d\u2060\ufeff]+[A-Za-z]")
# Compact keywords for text spelled out letter by letter ("s a y  t h a t ...").
_SPACED_KEYWORDS_RE = re.compile(
    r"ignore|disregard|forget|instruction|systemprompt|prompt|jailbreak|hate|password|reveal|pretend|say|print"
    r"|output|repeat|secret|kill|bomb|hack"
)
_DECODE_REQUEST_RE = re.compile(
    r"\b(?:decode|decipher|translate|convert|interpret|read)\W+(?:\w+\W+){0,6}?(?:and|then)\W+(?:\w+\W+)?"
    r"(?:follow|execute|do|obey|run|act\W+on|carry\W+out|perform|comply)\b"
)
# The verbs ``_DECODE_REQUEST_RE`` starts with. It needs one as a whole word (a word boundary before,
# a non-word character after), so one of them is in the text's word set wherever it matches.
_DECODE_VERBS = ("decode", "decipher", "translate", "convert", "interpret", "read")
MAX_DEPTH = 2


def _decode_request(folded: str, words: set[str]) -> bool:
    """``_DECODE_REQUEST_RE.search(folded)``, which starts with a word boundary and so is tried at
    every position: only when one of its verbs is a word of the text, and from the first place one
    of them occurs (the boundary test still sees the character before it)."""
    verbs = [verb for verb in _DECODE_VERBS if verb in words]
    if not verbs:
        return False
    first = min(folded.find(verb) for verb in verbs)
    return _DECODE_REQUEST_RE.search(folded, first) is not None


@dataclass(frozen=True, slots=True)
class _HeadGroup:
    pattern: re.Pattern[str]
    #: Regex group name -> the rule whose head/tail that group is.
    rules: dict[str, InjectionRule]
    #: Word sets of the heads; the pattern runs only if one of them is wholly present in the text.
    head_words: tuple[frozenset[str], ...]


@dataclass(slots=True)
class InjectionScan:
    score: float = 0.0
    #: The rules' own score (equal to ``score`` when the learned model is not used).
    rule_score: float = 0.0
    #: The folded view the rules matched (kept only while ``scan`` hands it to the model).
    folded: str | None = None
    #: Strongest score per category.
    categories: dict[str, float] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def _combine(categories: dict[str, float]) -> float:
    remaining = 1.0
    # In a fixed order: categories arrive in the order of a set of words, and a product's last bits
    # would otherwise depend on the process's hash seed (and with them the trained weights).
    for value in sorted(categories.values()):
        remaining *= 1.0 - value
    return 1.0 - remaining


def _words(folded: str) -> set[str]:
    """The set of letter-only words of a folded view."""
    if folded.isascii():
        return set(folded.encode().translate(_LETTERS_ONLY).decode().split())
    return set(_WORD_RE.findall(folded))


class InjectionDetector:
    """Scores text for prompt injection. Build once; ``scan`` is thread-safe."""

    def __init__(
        self,
        *,
        decode_payloads: bool = True,
        rules: tuple[InjectionRule, ...] = ALL_RULES,
        use_model: bool = True,
    ) -> None:
        self.decode_payloads = decode_payloads
        self.rules = rules
        self.model: InjectionModel | None = shared_model() if use_model else None
        self._substring_rules = [(r, tuple(dict.fromkeys(s[0] for s in r.substrings))) for r in rules if r.substrings]
        # One pattern per (trigger word, category): the literal trigger lets the regex engine skip
        # to its occurrences, and one finditer covers every rule of the category with that word.
        grouped: dict[tuple[str, str], list[tuple[InjectionRule, str, frozenset[str]]]] = {}
        for injection_rule in rules:
            for (trigger, rest), head_words in zip(injection_rule.heads, injection_rule.head_words, strict=True):
                grouped.setdefault((trigger, injection_rule.category), []).append((injection_rule, rest, head_words))
        self._by_word: dict[str, list[_HeadGroup]] = {}
        for (trigger, _category), entries in grouped.items():
            entries.sort(key=lambda entry: -entry[0].weight)  # the strongest alternative wins a tie
            alternatives = "|".join(f"(?P<h{i}>{rest})" for i, (_, rest, _) in enumerate(entries))
            pattern = re.compile(re.escape(trigger) + "(?:" + alternatives + ")")
            if pattern.groups != len(entries):
                raise ValueError(f"injection rules for {trigger!r} must not use capturing groups")
            group = _HeadGroup(
                pattern,
                {f"h{i}": entry_rule for i, (entry_rule, _, _) in enumerate(entries)},
                # Empty when some head is the trigger word alone: the group then always runs.
                ()
                if any(len(words) <= 1 for _, _, words in entries)
                else tuple(dict.fromkeys(w for _, _, w in entries)),
            )
            self._by_word.setdefault(trigger, []).append(group)
        self._trigger_words = frozenset(self._by_word)

    def scan(self, text: str, *, hidden_text: str = "") -> InjectionScan:
        result = self._scan_long(text, depth=0)
        if hidden_text:
            hidden = self._scan_long(hidden_text, depth=1)
            # Instructions nobody can see are suspicious in themselves.
            self._bump(result, OBFUSCATION, max(0.6, hidden.score))
            result.findings.append(Finding("hidden_text", 0, len(text), max(0.6, hidden.score)))
            result.score = _combine(result.categories)
        result.rule_score = result.score
        if self.model is not None:
            if hidden_text:
                scored, folded = f"{text}\n{hidden_text}", None
            else:
                scored, folded = text, result.folded
            result.score = self.model.probability(scored, result.categories, result.rule_score, folded=folded)
        result.folded = None
        return result

    def _scan_long(self, text: str, depth: int) -> InjectionScan:
        """``_scan``, segment by segment for a long text: per category the strongest segment; then
        the end of the whole text for an adversarial suffix (a segment's end is not the text's)."""
        if len(text) <= SEGMENT_CHARS:
            result = self._scan(text, depth)
        else:
            result = InjectionScan()
            for start, end in segment_bounds(text):
                budget.check()
                part = self._scan(text[start:end], depth)
                for category, weight in part.categories.items():
                    self._bump(result, category, weight)
                result.findings.extend(Finding(f.type, f.start + start, f.end + start, f.score) for f in part.findings)
        if adversarial_suffix(text):
            self._bump(result, ADVERSARIAL_SUFFIX, ADVERSARIAL_SUFFIX_WEIGHT)
            result.findings.append(Finding("adversarial_suffix", 0, len(text), ADVERSARIAL_SUFFIX_WEIGHT))
        result.score = _combine(result.categories)
        return result

    def _scan(self, text: str, depth: int) -> InjectionScan:
        result = InjectionScan()
        if not text or text.isspace():
            return result
        view = build_view(text)
        result.folded = view.view
        words = _words(view.view)
        self._match_rules(view, words, result)
        if framed_harm(view.view, words):
            self._bump(result, FRAMED_HARM, FRAMED_HARM_WEIGHT)
            result.findings.append(Finding("framed_harm", 0, len(text), FRAMED_HARM_WEIGHT))
        if (
            ("\\" in text and ESCAPED_NEWLINES_RE.search(text))
            or "\n\n\n\n\n\n\n\n" in text
            or ("---" in text and SEPARATOR_LINES_RE.search(text))
        ):
            self._bump(result, DELIMITER, 0.5)
            result.findings.append(Finding("escaped_newlines", 0, len(text), 0.5))
        if not text.isascii():
            # Cheap charset scans first; the contact patterns only where those characters occur.
            # Both classes are non-ASCII: look inside the non-ASCII runs only, not the whole text.
            non_ascii = runs.non_ascii_runs(text)
            if runs.search_runs(_GREEK_CYRILLIC_RE, text, non_ascii) and _MIXED_SCRIPT_RE.search(text):
                self._bump(result, OBFUSCATION, 0.3)
                result.findings.append(Finding("mixed_script", 0, len(text), 0.3))
            if runs.search_runs(_WORD_SPLITTER_RE, text, non_ascii) and _SPLIT_WORD_RE.search(text):
                self._bump(result, OBFUSCATION, 0.3)
                result.findings.append(Finding("split_words", 0, len(text), 0.3))
        if self.decode_payloads and depth < MAX_DEPTH:
            self._scan_payloads(view, words, result, depth)
        result.score = _combine(result.categories)
        return result

    def _match_rules(self, view: MatchView, words: set[str], result: InjectionScan) -> None:
        folded = view.view
        best: dict[str, tuple[InjectionRule, float, int, int]] = {}
        for word in words & self._trigger_words:
            for group in self._by_word[word]:
                if group.head_words and not any(map(words.issuperset, group.head_words)):
                    continue
                for match in group.pattern.finditer(folded):
                    start = match.start()
                    if start > 0 and folded[start - 1].isalnum():
                        continue  # the trigger is the tail of a longer word
                    matched = group.rules[match.lastgroup or ""]
                    self._consider(best, matched, folded, start, match.end())
        ascii_text = folded.isascii()
        for substring_rule, first_chars in self._substring_rules:
            if ascii_text and not substring_rule.substrings[0].isascii():
                continue  # CJK rules on ASCII text
            if not any(map(folded.__contains__, first_chars)):
                continue  # one search per distinct first character ("<", "[") before the substrings
            if substring_rule.compiled is not None and any(s in folded for s in substring_rule.substrings):
                for match in substring_rule.compiled.finditer(folded):
                    self._consider(best, substring_rule, folded, match.start(), match.end())
        for matched, weight, start, end in best.values():
            self._bump(result, matched.category, weight)
            orig_start, orig_end = view.span(start, end)
            result.findings.append(Finding(matched.name, orig_start, orig_end, weight))

    def _consider(
        self,
        best: dict[str, tuple[InjectionRule, float, int, int]],
        matched: InjectionRule,
        folded: str,
        start: int,
        end: int,
    ) -> None:
        current = best.get(matched.name)
        if current is not None and current[1] >= matched.weight:
            return
        if matched.preceded_by is not None and not matched.preceded_by.search(
            folded, max(0, start - matched.preceded_window), start
        ):
            return
        if matched.not_preceded_by is not None and matched.not_preceded_by.search(
            folded, max(0, start - matched.preceded_window), start
        ):
            return
        weight = self._weight(matched, folded, start, end)
        if current is None or weight > current[1]:
            best[matched.name] = (matched, weight, start, end)

    @staticmethod
    def _weight(rule: InjectionRule, folded: str, start: int, end: int) -> float:
        if quoted_mention(folded, start, end):
            return min(rule.weight, rule.declarative_weight or 0.4)
        if rule.declarative_weight is None or (is_instruction(folded, start) and not narrowed_scope(folded, end)):
            return rule.weight
        return rule.declarative_weight

    def _scan_payloads(self, view: MatchView, words: set[str], result: InjectionScan, depth: int) -> None:
        hints = PayloadHints(
            spaced=len(words & UNCOMMON_SINGLE_LETTERS) >= 3,
            hex_words=not HEX_HINT_WORDS.isdisjoint(words),
            binary_words=not BINARY_HINT_WORDS.isdisjoint(words),
            rot13=not ROT13_HINT_WORDS.isdisjoint(words),
            reversed=not REVERSED_HINT_WORDS.isdisjoint(words),
        )
        payloads = find_payloads(view.original, view.view, hints)
        if not payloads:
            return
        if _decode_request(view.view, words):
            self._bump(result, OBFUSCATION, 0.6)
            result.findings.append(Finding("decode_and_follow", 0, len(view.original), 0.6))
        for payload in payloads:
            budget.check()
            if payload.kind == "spaced":
                weight = 0.7 if _SPACED_KEYWORDS_RE.search(payload.text) else 0.35
                start, end = view.span(payload.start, payload.end)
            else:
                inner = self._scan(payload.text, depth + 1)
                if inner.score < 0.3:
                    continue
                # Hiding an instruction in an encoding is evidence in itself: nudge the score up.
                weight = min(1.0, inner.score + 0.1)
                start, end = payload.start, payload.end
            self._bump(result, OBFUSCATION, weight)
            result.findings.append(Finding(f"encoded_{payload.kind}", start, end, weight))

    @staticmethod
    def _bump(result: InjectionScan, category: str, weight: float) -> None:
        if weight > result.categories.get(category, 0.0):
            result.categories[category] = weight
