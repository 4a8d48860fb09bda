"""Token counts for the analyzer, with the project's offline tokenizer (``bastion.usage``).

Counts are exact for models served by the embedded SmolLM2 (its own byte-level BPE); for every
other model they are estimates, and the report says how far off they may be (``bound``):

* 20% for text that is mostly ASCII (English prose, markup): the BPE vocabularies of OpenAI,
  Anthropic and SmolLM2 land within roughly 10-20% of each other there;
* 50% otherwise (code-heavy or non-Latin text, where vocabularies differ most), and whenever
  the BPE is not installed (the 4-characters-per-token heuristic).

Long texts are counted in pieces cut at a single space between two non-space characters, where
the pre-tokenizer splits anyway, so the sum equals the count of the whole text; each piece is
short enough for ``count_text``'s text cache, so analysing the same prompt again is cheap.
"""

from __future__ import annotations

from bastion.analyzer.model import PromptText, TokenReport
from bastion.usage import count_text, tokenizer_name

#: Largest piece counted at once (``count_text`` caches whole texts up to 8,192 characters).
PIECE_CHARS = 8000
PROSE_BOUND = 0.2
OTHER_BOUND = 0.5
#: Share of ASCII characters above which a text counts as prose for the bound.
ASCII_SHARE = 0.9


def _cut(text: str, limit: int) -> int:
    """Where to end the piece starting at 0: before a space between two non-space characters."""
    position = text.rfind(" ", 1, limit)
    while position > 0:
        if not text[position - 1].isspace() and position + 1 < len(text) and not text[position + 1].isspace():
            return position
        position = text.rfind(" ", 1, position)
    return limit  # no such space (one very long word, or only runs of blanks): a rare inexactness


def count_tokens(text: str) -> int:
    """Tokens of ``text`` with the offline tokenizer, counted piecewise (see the module)."""
    total = 0
    while len(text) > PIECE_CHARS:
        end = _cut(text, PIECE_CHARS)
        total += count_text(text[:end])
        text = text[end:]
    return total + count_text(text)


def exact_tokenizer() -> bool:
    """Whether the counts come from the SmolLM2 BPE (not the heuristic)."""
    return tokenizer_name().startswith("SmolLM2")


def estimate_bound(text: str) -> float:
    if not exact_tokenizer() or not text:
        return OTHER_BOUND
    ascii_chars = len(text.encode("ascii", "ignore"))
    return PROSE_BOUND if ascii_chars >= ASCII_SHARE * len(text) else OTHER_BOUND


def token_report(prompt: PromptText, *, exact_model: bool) -> TokenReport:
    """The prompt's tokens; ``exact_model``: the model is served by the embedded SmolLM2."""
    system = count_tokens(prompt.system)
    template = count_tokens(prompt.template or "")
    exact = exact_model and exact_tokenizer()
    bound = 0.0 if exact else estimate_bound(prompt.system + (prompt.template or ""))
    return TokenReport(system, template, exact, tokenizer_name(), bound)
