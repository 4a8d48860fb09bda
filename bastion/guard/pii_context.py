"""PII recognizers that need context: phone numbers, dates of birth, ages, licences and passports.

None of these has a check digit, so each needs an unambiguous format or a context word nearby
("Phone:", "born on", "driver's license number"). They run on short windows around digit clusters
(see ``pii.PiiDetector``), never over a whole prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bastion.guard.models import Finding

# --- phone numbers -----------------------------------------------------------------------------

# A digit cluster: digits with the separators numbers are written with.
CLUSTER_RE = re.compile(r"[0-9][0-9 ()./:+-]*")
_PHONE_SHAPE_RE = re.compile(
    r"(?:(?:\+|00)[0-9]{1,3}[ \t.-]?)?"  # country code
    r"(?:\(0\)[ \t]?)?"  # trunk prefix shown in brackets: +44 (0)20 ...
    r"(?:\([0-9]{1,5}\)[ \t.-]?)?"  # area code in brackets
    r"[0-9]{1,12}(?:[ \t.-][0-9]{1,10}){0,5}"
)
_EXTENSION_RE = re.compile(r"[ \t]?(?:x|ext\.?|extension)[ \t]?[0-9]{1,5}", re.I)
_NANP_RE = re.compile(
    r"(?:\+?1[ .-]?|001[ .-])?(?:\([2-9][0-9][0-9]\)[ ]?|[2-9][0-9][0-9][ .-])[2-9][0-9][0-9][ .-][0-9]{4}"
)
_GROUP_SPLIT_RE = re.compile(r"[\s.()-]+")
_SSN_SHAPE_RE = re.compile(r"[0-9]{3}-[0-9]{2}-[0-9]{4}")
_DROP_SEPARATORS = str.maketrans("", "", " ()./:+-")
# Words that name a phone number, followed by up to 20 non-digit characters ("Phone:\n", "call me on").
# The look-ahead on the words' first letters lets the regex engine skip the other positions.
_PHONE_CONTEXT_BEFORE_RE = re.compile(
    r"(?=[acdfhlmnoprstw])(?:"
    r"(?:phone|tel|telephone|mobile|cell|fax|call|calling|sms|whatsapp|dial|hotline|landline|telefon|handy"
    r"|t[ée]l[ée]phone|portable|tel[ée]fono|celular|m[oó]vil|cellulare|telem[oó]vel)\b[^0-9]{0,20}$"
    # Weaker words count only right before the number: "Office: ...", "answering at ...".
    r"|(?:office|home|work|desk|contact|reach|text|answering|messages?|number|no|nr)\s*(?:[:#]|at|on|to)?\s*$)",
    re.I,
)
_PHONE_CONTEXT_AFTER_RE = re.compile(r"[\s,;:)\-]{0,3}(?:office|fax|mobile|cell|home|work|desk|phone|tel)\b", re.I)
_NOT_A_PHONE_CONTEXT_RE = re.compile(
    r"(?:account|order|invoice|card|ticket|case|reference|ref|tracking|serial|model|part)\s*(?:number|no|#)", re.I
)


def phones(text: str) -> Iterable[Finding]:
    for cluster in CLUSTER_RE.finditer(text):
        cluster_text = cluster.group()
        cluster_digits = len(cluster_text.translate(_DROP_SEPARATORS))
        if cluster_digits < 7:
            continue  # a phone number has at least seven digits
        if cluster_digits == 7 and cluster_text.isdigit():
            continue  # and seven bare digits are no format's (an international one has eight or more)
        start = cluster.start()
        if start > 0 and text[start - 1] in "+(":
            start -= 1
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "+/.:-_"):
            continue
        shape = _PHONE_SHAPE_RE.match(text, start, cluster.end())
        if shape is None:
            continue
        # Only separators may follow the phone shape inside the cluster: "10:40" or "12/03/1985"
        # leave ":40" or "/1985" over and are something else.
        if text[shape.end() : cluster.end()].strip(" .-()"):
            continue
        main = shape.group()
        end = shape.end()
        extension = _EXTENSION_RE.match(text, end)
        if extension is not None:
            end = extension.end()
        if end < len(text) and text[end].isalnum():
            continue
        digits = sum(map(str.isdigit, main))
        if not 7 <= digits <= 15:
            continue
        score = _phone_score(text, start, shape.end(), main, digits)
        if score >= 0.5:
            yield Finding("PHONE_NUMBER", start, end, score)


def _phone_score(text: str, start: int, end: int, main: str, digits: int) -> float:
    international = (main.startswith("+") or (main.startswith("00") and main[2:3] not in ("0", ""))) and digits >= 8
    if international:
        return 0.9  # unambiguous formats need no context
    if main.isdigit():
        # One bare run of digits (a list of numbers is full of them): no national format fits, so
        # only a context word makes it a phone number, and only with eight digits or more.
        return 0.8 if digits >= 8 and _has_phone_context(text, start, end) else 0.0
    if _NANP_RE.fullmatch(main):
        return 0.9
    context = _has_phone_context(text, start, end)
    if _SSN_SHAPE_RE.fullmatch(main):
        return 0.8 if context else 0.0  # the 3-2-4 shape of a US social security number
    groups = [g for g in _GROUP_SPLIT_RE.split(main.strip("+() ")) if g]
    if context and (len(groups) >= 2 or digits >= 8):
        return 0.8
    # National formats with a trunk zero and three or more groups: "0490 75 40 81", "03.93.92.16.85".
    if main.startswith("0") and len(groups) >= 3 and digits >= 9 and all(len(g) >= 2 for g in groups):
        separators = {ch for ch in main if ch in " .-"}
        if len(separators) == 1:
            return 0.6
    return 0.0


def _has_phone_context(text: str, start: int, end: int) -> bool:
    """A word naming a phone number just before ``text[start:end]`` or right after it."""
    before = text[max(0, start - 32) : start]
    # Every context word has letters: skip the (slow, many-branched) search where there are none,
    # as in a long list of numbers.
    has_letters = before.upper() != before.lower()
    context = (has_letters and bool(_PHONE_CONTEXT_BEFORE_RE.search(before))) or bool(
        _PHONE_CONTEXT_AFTER_RE.match(text, end)
    )
    # "order number 12345678" is not a phone number.
    return context and not (has_letters and _NOT_A_PHONE_CONTEXT_RE.search(before))


# --- dates -------------------------------------------------------------------------------------

_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
# Digit-first date forms share their first digit so the regex engine can skip to digits. Matched on
# lower-cased text.
_DIGIT_DATE_RE = re.compile(
    r"[0-9](?:"
    r"(?P<iso>[0-9]{3}-[0-9]{2}-[0-9]{2}"
    r"(?:[t ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:z|[+-][0-9]{2}:?[0-9]{2})?)?)"
    r"|(?P<num>[0-9]?[/.-][0-9]{1,2}[/.-](?:[0-9]{4}|[0-9]{2}))"
    rf"|(?P<dmy>[0-9]?(?:st|nd|rd|th)?\.?\s+(?:of\s+)?{_MONTHS}\.?,?\s+[0-9]{{4}})"
    r")(?![\w:/-]|\.[0-9])"
)
# "March 3, 1985": found from its digits, then the month is looked for just before them.
_DAY_YEAR_RE = re.compile(r"[0-9]{1,2}(?:st|nd|rd|th)?,?\s+[0-9]{4}(?![\w:/-])")
_MONTH_BEFORE_RE = re.compile(rf"\b{_MONTHS}\.?\s+$")
# Looser date mentions, reported only when every date is wanted: weekdays and "in 1977" style years.
_LOOSE_DATE_RE = re.compile(
    r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b"
    r"|(?<=\bin )(?:1[89]|20)[0-9][0-9]\b|(?<=\bduring )(?:1[89]|20)[0-9][0-9]\b"
    r"|(?<=\bsince )(?:1[89]|20)[0-9][0-9]\b|(?<=\bof )(?:1[89]|20)[0-9][0-9]\b"
    r"|\b(?:1[89]|20)[0-9][0-9](?=\s+(?:\w+\s+)?(?:action|drama|comedy|film|movie))",
    re.I,
)
# The look-ahead on the alternatives' first letters lets the regex engine skip other positions
# quickly (about eight times faster on a window of digits, where this runs most).
DOB_CONTEXT_RE = re.compile(
    r"(?=[bdgn])(?:born|birth|\bdob\b|d\.o\.b|geboren|geburts|\bnee?\b|naissance|nacid[oa]|nacimiento|nat[oa] il"
    r"|nascita|nascid[oa]|nascimento)",
    re.I,
)


def _numeric_date_valid(value: str, iso: bool) -> bool:
    parts = re.split(r"[/.\-T ]", value)
    if iso:
        return 1 <= int(parts[1]) <= 12 and 1 <= int(parts[2]) <= 31
    first, second = int(parts[0]), int(parts[1])
    # Either month/day or day/month; at least one reading must be a real date.
    return (1 <= first <= 12 and 1 <= second <= 31) or (1 <= second <= 12 and 1 <= first <= 31)


def dates(text: str, *, all_dates: bool) -> Iterable[Finding]:
    """Explicit dates: score 0.95 with birth context, 0.6 when every date is wanted, else 0.3."""
    lowered = text.lower()
    if len(lowered) != len(text):
        lowered = text  # a character whose lower case is longer: keep offsets, lose case folding
    spans: list[tuple[int, int, str | None]] = [
        (m.start(), m.end(), m.lastgroup) for m in _DIGIT_DATE_RE.finditer(lowered)
    ]
    for match in _DAY_YEAR_RE.finditer(lowered):
        month = _MONTH_BEFORE_RE.search(lowered, max(0, match.start() - 12), match.start())
        if month is not None:
            spans.append((month.start(), match.end(), "mdy"))
    for start, end, kind in spans:
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "._:/-"):
            continue
        if kind in ("iso", "num") and not _numeric_date_valid(text[start:end], kind == "iso"):
            continue
        if DOB_CONTEXT_RE.search(text, max(0, start - 40), start):
            yield Finding("DATE_TIME", start, end, 0.95)
        else:
            yield Finding("DATE_TIME", start, end, 0.6 if all_dates else 0.3)


def loose_dates(text: str) -> Iterable[Finding]:
    for match in _LOOSE_DATE_RE.finditer(text):
        yield Finding("DATE_TIME", match.start(), match.end(), 0.6)


# --- ages, licences, passports -----------------------------------------------------------------

AGE_HINT_RE = re.compile(r"old|y/?o\b|age|turn|year")
# Every alternative starts with a digit, "age" or "turn": the look-ahead lets the regex engine skip
# the other positions instead of trying five alternatives at each.
_AGE_RE = re.compile(
    r"(?=[0-9at])(?:"
    r"\b([0-9]{1,3})(?:[\s-]+|-)(?:years?|yrs?)[\s-]+old\b"
    r"|\b([0-9]{1,3})\s*y/?o\b"
    r"|\bage(?:d|\s+of)?\s+([0-9]{1,3})\b"
    r"|\bturn(?:ed|s|ing)?\s+([0-9]{1,3})\b(?!\s*(?:%|percent|degrees|times|pages))"
    r"|\b([0-9]{1,3})(?:-year-old|\s+year-old)\b)",
    re.I,
)
_DL_RE = re.compile(
    r"(?:driver'?s?|driving|drivers)[\s-]+licen[cs]e(?:\s+(?:number|no\.?|num|#|id))?"
    r"\s*(?:is|was|:|#|=|-)?\s*([A-Z0-9][A-Z0-9-]{3,18}[A-Z0-9])\b"
    r"|\bDL\s*(?:#|no\.?|number|:)\s*([A-Z0-9][A-Z0-9-]{3,18}[A-Z0-9])\b",
    re.I,
)
_PASSPORT_RE = re.compile(
    r"passport(?:\s+(?:number|no\.?|num|#|id))?\s*(?:is|was|:|#|=|-)?\s*([A-Z]{0,2}[0-9]{6,9})\b", re.I
)


def ages(text: str) -> Iterable[Finding]:
    for match in _AGE_RE.finditer(text):
        for group in range(1, 6):
            value = match.group(group)
            if value is not None:
                if 1 <= int(value) <= 120:
                    yield Finding("AGE", match.start(group), match.end(group), 0.85)
                break


def licences(text: str) -> Iterable[Finding]:
    for match in _DL_RE.finditer(text):
        group = 1 if match.group(1) else 2
        value = match.group(group)
        if sum(ch.isdigit() for ch in value) >= 4:
            yield Finding("US_DRIVER_LICENSE", match.start(group), match.end(group), 0.9)
    for match in _PASSPORT_RE.finditer(text):
        yield Finding("US_PASSPORT", match.start(1), match.end(1), 0.9)
