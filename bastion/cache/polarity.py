"""The deterministic check a semantic match must also pass: the two requests may differ in wording,
never in polarity, negation, numbers, named things or the order of what they share.

Sentence embeddings place "turn on dark mode" and "turn off dark mode" almost on top of each other
(cosine above 0.9 with MiniLM), so cosine alone would answer one with the other. ``Signature``
holds what must match exactly:

- **negations**: how many (not, no, never, none, nothing, nor, cannot, and every ``n't``);
- **polarity**: the multiset of (axis, sign) of opposite-intent words: on / enable / activate are
  (switch, +) and off / disable / deactivate (switch, -); increase / decrease, with / without,
  allow / deny, show / hide, start / stop, buy / sell, in / out, light / dark, ... (``_AXES``).
  Synonyms on one side of an axis match each other, so "turn on" still meets "enable";
- **numbers**: digits and number words ("5 km" never answers "6 km");
- **names**: capitalised words after the first, and words in capitals (France is not Germany);

and ``same_order`` rejects a pair whose shared words come in a different order ("from English to
French" / "from French to English"). Every rule only ever turns a hit into a miss.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_WORD_RE = re.compile(r"[0-9]+(?:[.,][0-9]+)*|[^\W\d_]+(?:'[^\W\d_]+)?")
_SENTENCE_END = frozenset(".!?")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NEGATIONS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "cannot"})
#: Contractions typed without the apostrophe.
_BARE_NEGATIONS = _words(
    "dont doesnt didnt cant wont isnt arent wasnt werent shouldnt wouldnt couldnt hasnt havent hadnt mustnt neednt aint"
)

_NUMBER_WORDS = _words(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million "
    "billion trillion half quarter double twice triple dozen once"
)

#: axis -> (words on the + side, words on the - side). Inflections are generated (``_forms``).
_AXES: dict[str, tuple[str, str]] = {
    "switch": ("on enable activate", "off disable deactivate"),
    "run": ("start begin resume launch continue restart", "stop halt pause cancel terminate abort quit end finish"),
    "open": ("open unlock unfreeze unmute unblock unban", "close shut lock freeze mute ban"),
    "permission": (
        "allow permit grant accept approve authorize authorise whitelist allowlist",
        "deny forbid prohibit reject refuse decline revoke block disallow blacklist blocklist disapprove restrict",
    ),
    "amount": (
        "increase raise grow boost more higher highest maximize maximise maximum max up upgrade extend enlarge "
        "increment expand",
        "decrease reduce lower lowest shrink less fewer minimize minimise minimum min down downgrade shorten decrement",
    ),
    "presence": (
        "with include add insert attach keep plus append",
        "without exclude remove delete drop detach omit minus strip discard subtract erase",
    ),
    "visibility": ("show display reveal unhide visible expose", "hide conceal invisible collapse"),
    "truth": ("true yes correct valid success pass succeed", "false incorrect wrong invalid failure fail"),
    "side": ("left", "right"),
    "vertical": ("above top over upper upstairs north", "below bottom under beneath downstairs south"),
    "east": ("east", "west"),
    "time": (
        "before earlier earliest past yesterday previous prev first oldest old early morning",
        "after later latest future tomorrow next last newest new late evening",
    ),
    "order": ("ascending asc forward forwards", "descending desc backward backwards reverse"),
    "inside": (
        "in into inside internal inbound incoming login signin",
        "out outside external outbound outgoing logout signout",
    ),
    "online": (
        "online connect connected subscribe follow install",
        "offline disconnect unsubscribe unfollow uninstall",
    ),
    "trade": (
        "buy purchase import upload send push deposit lend credit income",
        "sell export download receive pull withdraw borrow debit expense",
    ),
    "crypt": ("encrypt encode compress zip", "decrypt decode decompress unzip"),
    "arith": ("multiply", "divide"),
    "heat": ("hot warm heat", "cold cool chill"),
    "size": (
        "big large long wide tall heavy biggest largest longest widest",
        "small little short narrow tiny smallest shortest",
    ),
    "speed": ("fast quick faster fastest quickly", "slow slower slowest slowly"),
    "theme": ("light white day bright", "dark black night dim"),
    "value": (
        "good better best positive pros advantage advantages benefit benefits strength strengths profit gain "
        "win like love agree happy easy cheap safe legal possible likely able public",
        "bad worse worst negative cons disadvantage disadvantages drawback drawbacks risk risks weakness weaknesses "
        "loss lose dislike hate disagree sad hard difficult expensive unsafe dangerous illegal impossible unlikely "
        "unable private",
    ),
    "same": ("same similar equal identical", "different unequal distinct"),
    "always": ("always often", "rarely seldom sometimes"),
    "gender": ("he him his man men male boy boys father", "she her hers woman women female girl girls mother"),
}


def _forms(word: str) -> set[str]:
    """The word and its regular inflections (over-generating is harmless: it only adds words)."""
    forms = {word, word + "s", word + "es", word + "ed", word + "d", word + "ing"}
    if word.endswith("e"):
        forms |= {word[:-1] + "ing", word[:-1] + "ed"}
    if word.endswith("y"):
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    if len(word) >= 3 and word[-1] not in "aeiouwxy" and word[-2] in "aeiou" and word[-3] not in "aeiou":
        forms |= {word + word[-1] + "ed", word + word[-1] + "ing"}
    return forms


def _build_polarity() -> dict[str, tuple[str, int]]:
    table: dict[str, tuple[str, int]] = {}
    for axis, (positive, negative) in _AXES.items():
        for sign, words in ((1, positive), (-1, negative)):
            for word in words.split():
                for form in _forms(word):
                    # A base word listed explicitly wins over another word's generated form.
                    if form == word or form not in table:
                        table[form] = (axis, sign)
    return table


_POLARITY = _build_polarity()


def tokens(text: str) -> list[str]:
    return [match.group(0) for match in _WORD_RE.finditer(text.replace("\u2019", "'"))]


@dataclass(frozen=True, slots=True)
class Signature:
    negations: int
    polarity: tuple[tuple[str, int, int], ...]
    numbers: tuple[tuple[str, int], ...]
    names: tuple[tuple[str, int], ...]


def _is_negation(word: str) -> bool:
    return word in _NEGATIONS or word in _BARE_NEGATIONS or word.endswith("n't")


def _starts_sentence(text: str, start: int) -> bool:
    before = text[:start].rstrip()
    return not before or before[-1] in _SENTENCE_END


def signature(text: str) -> Signature:
    text = text.replace("\u2019", "'")
    negations = 0
    polarity: Counter[tuple[str, int]] = Counter()
    numbers: Counter[str] = Counter()
    names: Counter[str] = Counter()
    for match in _WORD_RE.finditer(text):
        raw = match.group(0)
        word = raw.lower()
        if raw[0].isdigit() or word in _NUMBER_WORDS:
            numbers[word.replace(",", "")] += 1
            continue
        if _is_negation(word):
            negations += 1
        else:
            hit = _POLARITY.get(word)
            if hit is not None:
                polarity[hit] += 1
        shouted = len(raw) > 1 and raw.isupper()
        if shouted or (raw[0].isupper() and raw != "I" and not _starts_sentence(text, match.start())):
            names[word] += 1
    return Signature(
        negations=negations,
        polarity=tuple(sorted((axis, sign, count) for (axis, sign), count in polarity.items())),
        numbers=tuple(sorted(numbers.items())),
        names=tuple(sorted(names.items())),
    )


def same_order(a: list[str], b: list[str]) -> bool:
    """True when the words ``a`` and ``b`` share appear in the same relative order in both
    (their longest common subsequence is the whole multiset intersection)."""
    left = [word.lower() for word in a]
    right = [word.lower() for word in b]
    shared = sum((Counter(left) & Counter(right)).values())
    if shared == 0:
        return True
    # Only the shared words matter; drop the rest before the quadratic part.
    common = set(left) & set(right)
    left = [word for word in left if word in common]
    right = [word for word in right if word in common]
    previous = [0] * (len(right) + 1)
    for word in left:
        current = [0] * (len(right) + 1)
        for j, other in enumerate(right, 1):
            current[j] = previous[j - 1] + 1 if word == other else max(previous[j], current[j - 1])
        previous = current
    return previous[-1] == shared


def compatible(a: str, b: str) -> bool:
    """Whether a semantic match between two texts may stand (the rules above)."""
    return signature(a) == signature(b) and same_order(tokens(a), tokens(b))
