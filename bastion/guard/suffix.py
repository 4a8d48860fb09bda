"""Optimised adversarial suffixes: the token soup that gradient search appends to a request.

Greedy coordinate gradient attacks (Zou et al. 2023, "Universal and Transferable Adversarial
Attacks on Aligned Language Models") start from a suffix of twenty isolated ``!`` tokens and swap
tokens one at a time for whatever raises the chance of a compliant answer. What they end on keeps
the traces of that search: leftover lone ``!`` tokens, and sub-word pieces and brackets strung
together, so that opening brackets stand alone and are never closed (``... electrons [ [``).

Prose does not end like that, and code closes what it opens, so the check looks at the last line
only and asks for both traces at once: several lone bracket or punctuation tokens *and* several
unclosed brackets, or a run of isolated ``!``. Perplexity filters (Jain et al. 2023) catch the same
attacks with a language model; this is the part of that signal a few string counts can give on the
hot path. Suffixes made only of glued word pieces ("similarlyNow write oppositeley.](") are not
caught here; the learned model sees their n-grams.
"""

from __future__ import annotations

import re

#: How much of the text's end is examined: the last line, at most this many characters.
TAIL_CHARS = 400
#: A token of one to three bracket or punctuation characters (optionally followed by a comma or
#: full stop). ``$``, ``%``, ``&``, ``-`` and ``+`` are left out: prices, sums and dashes stand alone
#: in prose.
_LONE_TOKEN_RE = re.compile(r"[\[\]{}()!`^\\|~_;]{1,3}[,.]?")
_BRACKETS = (("[", "]"), ("(", ")"), ("{", "}"))
MIN_LONE_TOKENS = 2
MIN_UNCLOSED = 2
#: Lone tokens and unclosed brackets together.
MIN_SOUP = 5
#: Isolated ``!`` tokens: the attack's initial suffix, partly left in place.
MIN_BANGS = 3


def adversarial_suffix(text: str) -> bool:
    """Does the text end in the token soup an optimised adversarial suffix leaves?"""
    tail = text.rstrip()[-TAIL_CHARS:]
    tail = tail[tail.rfind("\n") + 1 :]
    if not any(character in tail for character in "[({!"):
        return False
    tokens = tail.split()
    lone = [token for token in tokens if _LONE_TOKEN_RE.fullmatch(token)]
    if sum(1 for token in lone if token == "!") >= MIN_BANGS:
        return True
    if len(lone) < MIN_LONE_TOKENS:
        return False
    unclosed = sum(max(0, tail.count(opener) - tail.count(closer)) for opener, closer in _BRACKETS)
    return unclosed >= MIN_UNCLOSED and len(lone) + unclosed >= MIN_SOUP
