"""Token counts for the analyzer, with the tokenizers the project ships (``bastion.usage``).

Counts are **exact** when the prompt's model uses a tokenizer we have:

* ``smollm2``: the embedded SmolLM2's byte-level BPE (models served by the ``local`` provider);
* ``cl100k``: OpenAI's cl100k_base (GPT-4, GPT-4 Turbo, GPT-3.5 Turbo, ``text-embedding-3-*``,
  ``ada-002``), from the vocabulary shipped in ``bastion/usage/data``.

For every other model they are **estimates** with SmolLM2's BPE, and the report says how far off
they may be (``bound``):

* 20% for text that is mostly ASCII (English prose, markup): the BPE vocabularies of OpenAI,
  Anthropic and SmolLM2 land within roughly 10-20% of each other there;
* 50% otherwise (code-heavy or non-Latin text, where vocabularies differ most), and whenever
  the BPE is not installed (the 4-characters-per-token heuristic).

SmolLM2 counts of long texts are taken in pieces cut at a single space between two non-space
characters, where the pre-tokenizer splits anyway, so the sum equals the count of the whole text;
each piece is short enough for ``count_text``'s text cache, so analysing the same prompt again is
cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from bastion.analyzer.model import PromptText, TokenReport
from bastion.usage import cl100k_count, count_text, tokenizer_name

Tokenizer = Literal["smollm2", "cl100k"]
Counter = Callable[[str], int]
#: Largest piece counted at once (``count_text`` caches whole texts up to 8,192 characters).
PIECE_CHARS = 8000
PROSE_BOUND = 0.2
OTHER_BOUND = 0.5
#: Share of ASCII characters above which a text counts as prose for the bound.
ASCII_SHARE = 0.9
#: Upstream model names that use cl100k_base (gpt-4o, o1 and later use o200k_base: not shipped).
_CL100K_MODELS = re.compile(
    r"^(?:gpt-4(?![o.])(?:-\d{4}|-turbo|-32k|-\d{4}-preview|-vision)?\S*|gpt-3\.5-turbo\S*|"
    r"text-embedding-(?:3-small|3-large|ada-002))$"
)


def _cut(text: str, limit: int) -> int:
    """Where to end the piece starting at 0: before a space between two non-space characters."""
    position = text.rfind(" ", 1, limit)
    while position > 0:
        if not text[position - 1].isspace() and position + 1 < len(text) and not text[position + 1].isspace():
            return position
        position = text.rfind(" ", 1, position)
    return limit  # no such space (one very long word, or only runs of blanks): a rare inexactness


def count_tokens(text: str) -> int:
    """Tokens of ``text`` with SmolLM2's BPE (or the heuristic), counted piecewise (see the module)."""
    total = 0
    while len(text) > PIECE_CHARS:
        end = _cut(text, PIECE_CHARS)
        total += count_text(text[:end])
        text = text[end:]
    return total + count_text(text)


def exact_tokenizer() -> bool:
    """Whether SmolLM2 counts come from its BPE (not the heuristic)."""
    return tokenizer_name().startswith("SmolLM2")


def tokenizer_of_model(name: str | None) -> Tokenizer | None:
    """The tokenizer an upstream model name implies, if we ship it (``openai/gpt-4`` -> cl100k)."""
    if not name:
        return None
    bare = name.rsplit("/", 1)[-1].lower()
    return "cl100k" if _CL100K_MODELS.match(bare) else None


def counter(tokenizer: Tokenizer | None) -> tuple[Counter, str]:
    if tokenizer == "cl100k":
        return cl100k_count.count_tokens, cl100k_count.NAME
    return count_tokens, tokenizer_name()


def estimate_bound(text: str) -> float:
    if not exact_tokenizer() or not text:
        return OTHER_BOUND
    ascii_chars = len(text.encode("ascii", "ignore"))
    return PROSE_BOUND if ascii_chars >= ASCII_SHARE * len(text) else OTHER_BOUND


def token_report(prompt: PromptText, tokenizer: Tokenizer | None) -> TokenReport:
    """The prompt's tokens; ``tokenizer``: the model's own, if we have it (exact counts)."""
    count, name = counter(tokenizer)
    system = count(prompt.system)
    template = count(prompt.template or "")
    exact = tokenizer == "cl100k" or (tokenizer == "smollm2" and exact_tokenizer())
    bound = 0.0 if exact else estimate_bound(prompt.system + (prompt.template or ""))
    return TokenReport(system, template, exact, name, bound)
