"""A rough language guess for Latin-script text from its most frequent function words.

Training uses it to find languages that occur (almost) only on one side of the labels — in the
corpus, several languages appear only in attacks — and leaves their rows out, so the model cannot
learn "this language means attack" (see ``train.one_sided_groups``). It is not a general language
identifier: a text with fewer than three function words of one language is "unknown".
"""

from __future__ import annotations

import re

# Short, frequent words that are (mostly) specific to one language.
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    name: frozenset(words.split())
    for name, words in {
        "en": "the and is are you your that this with for not what how have will from would should",
        "de": "und der die das ist nicht ich du sie mit für auf ein eine dem den sich auch wie",
        "fr": "le la les et est une des pour que qui pas vous dans sur avec ce cette sont",
        "es": "el los las y es una que para por con del se su como pero más este esta",
        "it": "il lo gli e è una che per non con del della sono come questo questa anche",
        "pt": "o os as e é uma que para não com do da dos das você como mais este esta",
        "nl": "de het een en is niet ik je van dat die voor met zijn op ook als",
        "id": "yang dan di ini itu dengan untuk tidak dari dalam akan saya kamu anda bisa adalah atau",
        "ms": "yang dan ini itu dengan untuk tidak dari dalam akan saya awak anda boleh ialah atau",
        "sq": "të në dhe një për është me që nga së janë më si ka do ju unë",
        "ga": "agus an na ar is le go bhí sé sí atá ag don ó sa mé tú",
        "gd": "agus an na air tha gu le ann bha aig ri mi thu seo sin",
        "zu": "ukuthi futhi kanye ngoba kodwa lapho wena mina uma noma kakhulu ngicela",
        "sw": "na ya wa kwa ni la za katika hii kuwa yake lakini sana",
        "tr": "ve bir bu da de için ile çok ne ben sen mi değil gibi daha",
        "vi": "và của là có không những được cho các một người này với trong",
        "tl": "ang ng mga sa na at ay si ko mo ito hindi",
        "pl": "i w nie na się jest to że z do jak co ale tak",
        "ro": "și în de la cu nu este o un pe că mai care pentru",
    }.items()
}
_WORD_RE = re.compile(r"[^\W\d_]+")
_MINIMUM_HITS = 3


def guess_language(text: str) -> str:
    """The language whose function words occur most often in ``text`` (at least three), else "unknown"."""
    words = _WORD_RE.findall(text.lower()[:4000])
    if not words:
        return "unknown"
    best, best_hits = "unknown", _MINIMUM_HITS - 1
    for name, vocabulary in _FUNCTION_WORDS.items():
        hits = sum(1 for word in words if word in vocabulary)
        if hits > best_hits:
            best, best_hits = name, hits
    return best
