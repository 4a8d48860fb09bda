"""What every rule of one analysis shares: the prompt's parts, their sentences and word counts,
and token counts of pieces of it (each computed once, lazily)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bastion.analyzer.library import Pattern
from bastion.analyzer.model import PARTS, Finding, Part, PromptText, Span
from bastion.analyzer.tokens import Counter, count_tokens

#: A sentence: up to and including its end mark, or up to a line break (list items, headings).
SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?](?=[^\s.!?]))+[.!?]*")
_NON_WORD = re.compile(r"[\W_]+")
_WORD = re.compile(r"[A-Za-z0-9']+")


@dataclass(slots=True)
class Sentence:
    part: Part
    start: int
    end: int
    text: str

    @property
    def span(self) -> Span:
        return Span(self.part, self.start, self.end)

    def normalized(self) -> str:
        return _NON_WORD.sub(" ", self.text.lower()).strip()

    def words(self) -> list[str]:
        return _WORD.findall(self.text.lower())


@dataclass(slots=True)
class Scan:
    prompt: PromptText
    #: Counts tokens with the model's tokenizer if we have it, else SmolLM2's.
    count: Counter = count_tokens
    _sentences: dict[Part, list[Sentence]] = field(default_factory=dict)
    _words: dict[Part, int] = field(default_factory=dict)
    _tokens: dict[str, int] = field(default_factory=dict)
    _lower: dict[Part, str] = field(default_factory=dict)
    structure: dict[str, tuple[Span, ...]] = field(default_factory=dict)

    def parts(self) -> list[tuple[Part, str]]:
        """The non-empty parts, system first (the order they reach the model)."""
        return [(part, text) for part in PARTS if (text := self.prompt.text(part))]

    def sentences(self, part: Part) -> list[Sentence]:
        found = self._sentences.get(part)
        if found is None:
            text = self.prompt.text(part)
            found = []
            for match in SENTENCE.finditer(text):
                start, end = match.span()
                while start < end and text[start].isspace():
                    start += 1
                if start < end:
                    found.append(Sentence(part, start, end, text[start:end]))
            self._sentences[part] = found
        return found

    def lower(self, part: Part) -> str:
        """The part in lower case, with the same offsets (rules match it without IGNORECASE,
        several times faster than matching the original with it)."""
        found = self._lower.get(part)
        if found is None:
            found = self._lower[part] = same_length_lower(self.prompt.text(part))
        return found

    def all_sentences(self) -> list[Sentence]:
        return [sentence for part, _ in self.parts() for sentence in self.sentences(part)]

    def word_count(self, part: Part) -> int:
        count = self._words.get(part)
        if count is None:
            count = self._words[part] = len(self.prompt.text(part).split())
        return count

    def tokens(self, text: str) -> int:
        count = self._tokens.get(text)
        if count is None:
            count = self._tokens[text] = self.count(text)
        return count

    def span_tokens(self, span: Span) -> int:
        return self.tokens(self.prompt.text(span.part)[span.start : span.end])


def same_length_lower(text: str) -> str:
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    # A few characters lower-case to two (U+0130): keep those as they are, so offsets hold.
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def lower_pattern(source: str) -> str:
    """A regular expression for lower-cased text: literal letters lowered, escapes (``\\S``,
    ``\\W``, ``\\B`` ...) kept as they are."""
    out: list[str] = []
    index = 0
    while index < len(source):
        char = source[index]
        if char == "\\" and index + 1 < len(source):
            out.append(source[index : index + 2])
            index += 2
            continue
        out.append(char.lower())
        index += 1
    return "".join(out)


def finding(
    pattern: Pattern, spans: list[Span] | tuple[Span, ...], token_delta: int, detail: str | None = None
) -> Finding:
    return Finding(
        pattern_id=pattern.id,
        pattern_version=pattern.version,
        category=pattern.category,
        title=pattern.title,
        rationale=pattern.rationale,
        suggestion=pattern.suggestion,
        confidence=pattern.confidence,
        token_delta=token_delta,
        spans=tuple(spans),
        detail=detail,
    )
