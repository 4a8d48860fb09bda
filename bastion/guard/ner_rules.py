"""Rule recognisers of the named-entity tier: street addresses, personal titles, postal codes.

A statistical model trained on news text (OntoNotes) finds names, organisations and places, but
not street addresses (its ``FAC`` label is rare and imprecise) and not the parts of an address a
form asks for. These rules cover the common written shapes, in several languages:

* number first, street type last: ``1668 Glyn St``, ``14 Crown Street, Suite 321, London``;
* street type first, number last: ``Rua do Arenque 1634``, ``Via Franscini 71``, ``Calle Mayor, 5``;
* number first, street type first: ``12 rue de la Paix``, ``7 avenue Foch``;
* one word with a street suffix, then the number: ``Koskikatu 25``, ``Søndergade 52``,
  ``Brucker Bundesstrasse 31``, ``Dalmatinova ulica 4``;
* unit designators (``Apt. 864``, ``Suite 501``), post-office and military boxes (``P.O. Box 12``,
  ``PSC 0413, Box 8144``).

An address match is extended over a following unit, and over a ``City, ST 12345`` or
``City 12345`` tail on the same or the next line. Titles (``Mr.``, ``Dr``, ``Prof.``...) count only
before a capitalised word; a postal code only after a word that says so ("zip", "postal code",
"PLZ", "code postal") or in a ``City, ST 12345`` tail.
"""

from __future__ import annotations

from collections.abc import Iterable

import regex

from bastion.guard.models import Finding

_UPPER = r"[\p{Lu}]"
_CAP_WORD = rf"{_UPPER}(?:[\p{{L}}\p{{M}}'\u2019-]|\.(?=\p{{L}})){{0,40}}"

# Street types written after the name ("Main Street"), English.
_SUFFIX_TYPES = (
    "Street|Streets|St|Avenue|Ave|Av|Road|Roads|Rd|Boulevard|Blvd|Lane|Lanes|Ln|Drive|Dr|Court|Ct|Place|Pl|"
    "Square|Squares|Sq|Terrace|Ter|Way|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Crescent|Cres|Close|Row|Trail|Trl|"
    "Alley|Plaza|Ridge|Grove|Gardens|Mews|Wharf|Quay|Loop|Pike|Turnpike|Expressway|Freeway|Causeway|Bypass"
)
# Street types written before the name ("rue de la Paix", "Via Roma", "Calle Mayor").
_PREFIX_TYPES = (
    "rue|avenue|av|boulevard|bd|chemin|place|allée|allee|impasse|quai|route|cours|"
    "calle|c/|avenida|avda|paseo|plaza|camino|carrer|carretera|ronda|travesía|"
    "rua|travessa|largo|praça|praca|estrada|alameda|"
    "via|viale|piazza|corso|vicolo|strada|piazzale|"
    "ulica|ul|ulice|aleja|al|plac|"
    "odos|leoforos|οδός|λεωφόρος"
)
# Connecting words between a prefix type and the name.
_CONNECTORS = r"(?:(?:de|del|de la|de las|de los|des|du|de l'|d'|da|do|dos|das|della|dello|delle|degli|di|dei)\s+)?"
# One-word streets: a name ending in a street word ("Koskikatu", "Bahnhofstraße", "Søndergade").
_COMPOUND_SUFFIXES = (
    "straße|strasse|str\\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee|steig|"
    "gade|vej|vænget|vaenget|stræde|allé|"
    "gatan|gata|vägen|väg|gränd|torget|"
    "veien|vegen|gate|gata|"
    "katu|tie|kuja|polku|kaari|raitti|"
    "straat|laan|gracht|plein|kade|dreef|singel|"
    "utca|útja|tér|"
    "ova|ská|ská ulice|ulica|"
    "iela|gatvė|gatve|tänav|"
    "sokak|soka\u011f\u0131|caddesi|bulvar\u0131"
)
_NUMBER = r"\d{1,5}(?:(?:[A-Za-z]|[ ][A-Z])(?![\p{L}]))?(?:\s?[-/]\s?\d{1,4}[A-Za-z]?)?"
_UNIT = r"(?:Apt|Apartment|Suite|Ste|Unit|Flat|Fl|Floor|Room|Rm|Bldg|Building|#)\.?\s?#?\s?\d{1,5}[A-Za-z]?"
_UNIT_RE = regex.compile(rf"(?<![\p{{L}}\d]){_UNIT}(?![\p{{L}}\d])")

_NUMBER_FIRST_RE = regex.compile(
    rf"(?<![\p{{L}}\d.,-]){_NUMBER}\s+(?:{_CAP_WORD}\s+){{1,4}}?(?i:{_SUFFIX_TYPES})\.?(?![\p{{L}}\d])"
)
_PREFIX_FIRST_RE = regex.compile(
    rf"(?<![\p{{L}}\d])(?i:{_PREFIX_TYPES})\.?\s+{_CONNECTORS}(?:{_CAP_WORD}\s+){{0,3}}?{_CAP_WORD},?\s+"
    rf"(?:(?i:n[º°o]\.?|nr\.?|no\.?|núm\.?|num\.?)\s?)?{_NUMBER}(?![\p{{L}}\d])"
)
_NUMBER_PREFIX_RE = regex.compile(
    rf"(?<![\p{{L}}\d.,-])\d{{1,5}}(?:\s?(?:bis|ter))?,?\s+(?i:{_PREFIX_TYPES})\.?\s+{_CONNECTORS}"
    rf"(?:{_CAP_WORD}\s+){{0,3}}?{_CAP_WORD}(?![\p{{L}}\d])"
)
_COMPOUND_RE = regex.compile(
    rf"(?<![\p{{L}}\d.,-])(?:\d{{1,5}}\s+)?(?:{_CAP_WORD}\s+)?{_UPPER}[\p{{L}}\p{{M}}-]{{0,30}}?(?i:{_COMPOUND_SUFFIXES})\s+{_NUMBER}"
    rf"(?![\p{{L}}\d])"
)
_SEPARATE_GERMANIC_RE = regex.compile(
    rf"(?<![\p{{L}}\d]){_CAP_WORD}\s+(?:Straße|Strasse|Str\.|Weg|Allee|Platz|Gasse|Ring|Damm|Ufer|Vej|Gade|Gatan|"
    rf"Katu|Tie|Straat|Laan|Utca|Ulica)\s+{_NUMBER}(?![\p{{L}}\d])"
)
_BOX_RE = regex.compile(
    r"(?<![\p{L}\d])(?:(?i:P\.?\s?O\.?\s?Box|Post\s+Office\s+Box|Postfach|Apartado|Boîte\s+postale|BP)\s+\d{1,6}"
    r"|PSC\s+\d{3,5},?\s+Box\s+\d{1,5}(?:\s*\n?\s*(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5})?"
    r"|(?:Unit|USNS|USS|USNV|USCGC)\s+\d{3,5},?\s+Box\s+\d{1,5}(?:\s*\n?\s*(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5})?)"
    r"(?![\p{L}\d])"
)
# Postal codes of common shapes: US (ZIP+4), five or four digits, "394 13", "53-320", "3610-114", Canadian,
# British, Dutch ("7412 SL").
_POSTCODE = (
    r"(?:\d{5}(?:-\d{4})?|\d{4}-\d{3}|\d{4}(?:[ \t]?[A-Z]{2}(?![\p{L}\d]))?|\d{3}[ \t]\d{2}|\d{2}-\d{3}"
    r"|[A-Z]\d[A-Z][ \t]?\d[A-Z]\d|[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2})"
)
# What may follow a street on the same or the next lines: a unit, then up to three short lines or
# comma-separated parts of capitalised words (city, region, country) that end in a postal code, or
# a postal code and a city ("75002 Paris").
_UNIT_TAIL_RE = regex.compile(rf",?[ \t]{{0,8}}\n?[ \t]{{0,8}}{_UNIT}(?![\p{{L}}\d])")
_TAIL_SEPARATOR = r"(?:[ \t]{0,8}[,\n][ \t]{0,8}(?:,[ \t]{0,8})?|[ \t]{1,8})"
_PLACE_TAIL_RE = regex.compile(
    rf"(?:{_TAIL_SEPARATOR}\n?[ \t]{{0,8}}{_CAP_WORD}(?:[ \t]{{1,8}}{_CAP_WORD}){{0,2}}){{1,3}}"
    rf"{_TAIL_SEPARATOR}\n?[ \t]{{0,8}}{_POSTCODE}(?![\p{{L}}\d])"
    rf"|{_TAIL_SEPARATOR}\n?[ \t]{{0,8}}{_POSTCODE}[ \t]{{1,8}}{_CAP_WORD}(?:[ \t]{{1,8}}{_CAP_WORD})?(?![\p{{L}}\d])"
)
#: Characters that may separate two parts of one address (street and unit, number and street).
_JOIN_GAP = 3

_TITLE_RE = regex.compile(
    r"(?<![\p{L}\d.])(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sir|Dame|Rev|Revd|Hon|Capt|Lt|Col|Gen|Sgt|Fr|"
    r"Herr|Frau|Mme|Mlle|Sr|Sra|Srta|Dña|Dott|Dott\.ssa|Sig|Sig\.ra|Ing|Mag|Univ\.-Prof)"
    r"(?:\.|(?=\s))(?=\s+[\p{Lu}])"
)

_ZIP_CONTEXT_RE = regex.compile(
    r"(?i:zip(?:\s*code)?|postal\s*code|post\s*code|postcode|plz|code\s+postal|c\.?\s?p\.?|cap|"
    r"código\s+postal|postnummer|postinumero|irányítószám|kod\s+pocztowy|psč)"
    r"\s*(?:is|:|#|=|-)?\s*"
    r"(?P<zip>\d{5}(?:-\d{4})?|\d{4}(?:\s?[A-Z]{2})?|\d{3}[ \t]?\d{2}|\d{2}-\d{3}|\d{4}-\d{3}|\d{3}|"
    r"[A-Z]\d[A-Z][ \t]?\d[A-Z]\d|[A-Z]{1,2}\d[A-Z\d]?[ \t]?\d[A-Z]{2})"
    r"(?![\p{L}\d])"
)
# "Springfield, IL 62704": a US state code right before a five-digit code.
_STATE_ZIP_RE = regex.compile(r"(?<=,[ \t]?[A-Z]{2}[ \t])(?P<zip>\d{5}(?:-\d{4})?)(?![\p{L}\d])")


# Words that say a name follows (or, for the second pattern, precedes). Only a capitalised run of
# one to three words right after (before) them counts; the model's reading of that run as a place
# or an organisation is overridden.
_NOT_NAMES = (
    r"(?:Apt|Apartment|Suite|Unit|Flat|Street|Road|Avenue|And|The|Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sir|Dame)(?![\p{L}])"
)
_NAME_WORD = rf"(?!{_NOT_NAMES}){_UPPER}[\p{{Ll}}\p{{M}}'\u2019-]{{1,30}}"
_NAME_RUN = rf"{_NAME_WORD}(?:\s(?:{_UPPER}\.|{_NAME_WORD})){{0,2}}"
_NAME_AFTER = rf"\s+(?P<name>{_NAME_RUN})(?![\p{{L}}])"
# One pattern per kind of cue: an alternation of all three scans several times slower.
_PERSON_BEFORE_RES = (
    regex.compile(
        rf"(?i:\bmy\s+name\s+is|\bname\s*:|\bnamed|\bcalled|\bsigned|\bregards,|\bsincerely,|\bdear){_NAME_AFTER}"
    ),
    regex.compile(
        rf"\b(?i:my|our|his|her)\s+(?i:son|daughter|kid|child|wife|husband|partner|mother|father|mom|mum|dad|"
        rf"brother|sister|friend|colleague|boss|manager|neighbou?r|grandson|granddaughter|uncle|aunt|cousin)"
        rf"{_NAME_AFTER}"
    ),
    regex.compile(rf"(?<![\p{{L}}])(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sir|Dame)\.?{_NAME_AFTER}"),
)
_PERSON_AFTER_RE = regex.compile(
    rf"(?<![\p{{L}}])(?P<name>{_NAME_RUN})\s+(?:lives\s+(?:at|in|on)|was\s+born|is\s+from|moved\s+to)\b"
)


def person_cues(text: str) -> Iterable[Finding]:
    """Names marked by the words around them ("my name is ...", "Mrs. ...", "... lives at")."""
    for pattern in (*_PERSON_BEFORE_RES, _PERSON_AFTER_RE):
        for match in pattern.finditer(text):
            yield Finding("PERSON", match.start("name"), match.end("name"), 0.8)


def addresses(text: str) -> list[Finding]:
    """Street addresses (with the unit and a city/postcode tail when they follow), and bare units."""
    found: list[Finding] = []
    for pattern in (_NUMBER_FIRST_RE, _PREFIX_FIRST_RE, _NUMBER_PREFIX_RE, _COMPOUND_RE, _SEPARATE_GERMANIC_RE):
        for match in pattern.finditer(text):
            found.append(Finding("STREET_ADDRESS", match.start(), _extend(text, match.end()), 0.85))
    for match in _BOX_RE.finditer(text):
        found.append(Finding("STREET_ADDRESS", match.start(), _extend(text, match.end()), 0.9))
    for match in _UNIT_RE.finditer(text):
        found.append(Finding("STREET_ADDRESS", match.start(), match.end(), 0.6))
    return _merge(text, found)


def _merge(text: str, found: list[Finding]) -> list[Finding]:
    """Overlapping candidates, and candidates separated only by a comma or spaces, become one."""
    merged: list[Finding] = []
    for finding in sorted(found, key=lambda f: (f.start, -f.end)):
        if merged:
            last = merged[-1]
            gap = text[last.end : finding.start]
            if finding.start <= last.end or (len(gap) <= _JOIN_GAP and not gap.strip(" ,\t\n")):
                if finding.end > last.end:
                    merged[-1] = Finding("STREET_ADDRESS", last.start, finding.end, max(last.score, finding.score))
                continue
        merged.append(finding)
    return merged


def _extend(text: str, end: int) -> int:
    """``end`` moved over a unit and a "City, ST 12345" tail that follow the street."""
    unit = _UNIT_TAIL_RE.match(text, end)
    if unit is not None:
        end = unit.end()
    place = _PLACE_TAIL_RE.match(text, end, min(len(text), end + 80))
    if place is not None:
        end = place.end()
    return end


def titles(text: str) -> Iterable[Finding]:
    for match in _TITLE_RE.finditer(text):
        yield Finding("TITLE", match.start(), match.end(), 0.8)


def zip_codes(text: str) -> Iterable[Finding]:
    for pattern in (_ZIP_CONTEXT_RE, _STATE_ZIP_RE):
        for match in pattern.finditer(text):
            yield Finding("ZIP_CODE", match.start("zip"), match.end("zip"), 0.8)
