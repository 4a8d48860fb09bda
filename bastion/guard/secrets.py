"""Secrets: cloud and API credentials, private keys, JWTs, passwords in URLs and assignments.

Vendor formats with a fixed prefix are matched exactly; each rule also has literal "hints" so a text
that contains none of them skips the regex (most prompts skip nearly all rules). Generic
``key = value`` assignments are accepted only when the value looks like a real secret (long and
high-entropy for keys and tokens; non-placeholder for passwords), never a variable reference.

A finding covers the secret value only, so redaction keeps the surrounding syntax readable:
``api_key = "[GENERIC_SECRET]"``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import bastion.guard.budget as budget
import bastion.guard.runs as runs
from bastion.guard.models import Finding
from bastion.guard.segments import SEGMENT_CHARS, segment_bounds


@dataclass(frozen=True, slots=True)
class SecretRule:
    type: str
    pattern: re.Pattern[str]
    #: Literal substrings, at least one of which must occur for the rule to run. By default they are
    #: looked for in the text's long tokens (vendor prefixes: a key is one long token); rules with
    #: ``hints_case_insensitive`` look in the whole lower-cased text (words such as "password").
    hints: tuple[str, ...]
    #: Regex group holding the secret (0 = whole match).
    group: int = 0
    hints_case_insensitive: bool = False
    validate: Callable[[str], bool] | None = None
    #: A literal every match ends shortly after. The search stops past its last occurrence: a
    #: lazily matched body (``[\s\S]*?``) with no terminator left would otherwise rescan the rest of
    #: the text from every header, which is quadratic in the number of headers.
    last_anchor: str | None = None


def shannon_entropy(value: str) -> float:
    """Bits per character."""
    if not value:
        return 0.0
    length = len(value)
    return -sum(count / length * math.log2(count / length) for count in Counter(value).values())


def _jwt_valid(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    except (binascii.Error, ValueError):
        return False
    return b'"alg"' in decoded or b'"typ"' in decoded


def _high_entropy(value: str) -> bool:
    return len(value) >= 20 and shannon_entropy(value) >= 3.5


_PLACEHOLDER_RE = re.compile(
    r"^(?:x+|\*+|\.+|-+|_+|#+|\?+|null|none|nil|true|false|undefined|changeme|change_me|password|passwd|"
    r"secret|token|apikey|api_key|example|sample|dummy|test|placeholder|redacted|hidden|your[_-].*|my[_-].*|"
    r"<.*>|\[.*\]|\{.*\}|\$.*|%.*|.*\.\.\.|.*(?:process\.env|os\.environ|getenv|env\[).*)$",
    re.I,
)
_REFERENCE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+(?:\(.*)?$")


def _real_value(value: str) -> bool:
    """Not a placeholder, template, environment lookup or dotted code reference."""
    if _PLACEHOLDER_RE.match(value) or _REFERENCE_RE.match(value):
        return False
    return len(set(value)) > 2


def _password_value(value: str) -> bool:
    return len(value) >= 6 and _real_value(value)


def _token_value(value: str) -> bool:
    if len(value) < 16 or not _real_value(value):
        return False
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value)))
    return classes >= 2 and shannon_entropy(value) >= 3.0


def _spoken_password(value: str) -> bool:
    # "my password is hunter2": needs a digit or symbol, or the sentence word ("incorrect") is taken.
    return _password_value(value) and any(not c.isalpha() for c in value)


_C = re.compile
_I = re.IGNORECASE

SECRET_RULES: tuple[SecretRule, ...] = (
    SecretRule(
        "PRIVATE_KEY",
        _C(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
            r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)"
        ),
        ("private key",),
        hints_case_insensitive=True,
    ),
    SecretRule(
        "PRIVATE_KEY",
        _C(r"PuTTY-User-Key-File-\d:[\s\S]*?Private-MAC: [0-9a-f]+"),
        ("putty-user",),
        hints_case_insensitive=True,
        last_anchor="Private-MAC: ",
    ),
    SecretRule(
        "AWS_ACCESS_KEY_ID",
        _C(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}(?![A-Za-z0-9])"),
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
    ),
    SecretRule(
        "AWS_SECRET_ACCESS_KEY",
        _C(
            r"(?i:aws.{0,20}?)?(?i:secret(?:_access)?_?key|secretaccesskey|aws_secret)['\"]?\s*(?:[:=]|=>)\s*"
            r"['\"]?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        ("secret",),
        group=1,
        hints_case_insensitive=True,
    ),
    SecretRule("GOOGLE_API_KEY", _C(r"AIza[0-9A-Za-z_-]{35}(?![\w-])"), ("AIza",)),
    SecretRule("GOOGLE_OAUTH_SECRET", _C(r"GOCSPX-[0-9A-Za-z_-]{28}"), ("GOCSPX-",)),
    SecretRule("GOOGLE_OAUTH_TOKEN", _C(r"ya29\.[0-9A-Za-z_-]{20,}"), ("ya29.",)),
    SecretRule(
        "GCP_SERVICE_ACCOUNT_KEY_ID", _C(r'"private_key_id"\s*:\s*"([a-f0-9]{40})"'), ("private_key_id",), group=1
    ),
    SecretRule(
        "AZURE_STORAGE_KEY",
        _C(r"(?:AccountKey|SharedAccessKey)=([A-Za-z0-9+/]{40,90}={0,2})"),
        ("AccountKey=", "SharedAccessKey="),
        group=1,
    ),
    SecretRule("AZURE_SAS_TOKEN", _C(r"[?&]sig=([A-Za-z0-9%+/]{40,}(?:%3[Dd]|=){0,2})"), ("sig=",), group=1),
    SecretRule(
        "AZURE_CLIENT_SECRET", _C(r"(?<![\w~.-])[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![\w~.-])"), ("Q~",)
    ),
    SecretRule(
        "GITHUB_TOKEN",
        _C(r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    SecretRule(
        "GITLAB_TOKEN",
        _C(r"(?:gl(?:pat|dt|ptt|rt|cbt|oas|soat|ffct|imt|agent)-[0-9A-Za-z_-]{20,}|GR1348941[0-9A-Za-z_-]{20,})"),
        (
            "glpat-",
            "gldt-",
            "glptt-",
            "glrt-",
            "glcbt-",
            "gloas-",
            "glsoat-",
            "glffct-",
            "glimt-",
            "glagent-",
            "GR1348941",
        ),
    ),
    SecretRule(
        "SLACK_TOKEN", _C(r"xox[abposre]-(?:\d+-)*[A-Za-z0-9-]{10,}|xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+"), ("xox", "xapp-")
    ),
    SecretRule(
        "SLACK_WEBHOOK",
        _C(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}"),
        ("hooks.slack.com",),
    ),
    SecretRule(
        "STRIPE_SECRET_KEY",
        _C(r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}|whsec_[A-Za-z0-9]{24,}"),
        ("_live_", "_test_", "whsec_"),
    ),
    SecretRule("ANTHROPIC_API_KEY", _C(r"sk-ant-[A-Za-z0-9_-]{20,}"), ("sk-ant-",)),
    SecretRule(
        "OPENAI_API_KEY",
        _C(
            r"sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}"
            r"|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}"
            r"|sk-(?!ant-)[A-Za-z0-9]{32,}(?![\w-])"
        ),
        ("sk-",),
    ),
    SecretRule("HUGGINGFACE_TOKEN", _C(r"(?<![\w-])hf_[A-Za-z0-9]{30,}"), ("hf_",)),
    SecretRule("GROQ_API_KEY", _C(r"gsk_[A-Za-z0-9]{48,}"), ("gsk_",)),
    SecretRule("XAI_API_KEY", _C(r"xai-[A-Za-z0-9]{60,}"), ("xai-",)),
    SecretRule("NPM_TOKEN", _C(r"npm_[A-Za-z0-9]{36}"), ("npm_",)),
    SecretRule("PYPI_TOKEN", _C(r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"), ("pypi-",)),
    SecretRule("SENDGRID_API_KEY", _C(r"SG\.[\w-]{22}\.[\w-]{43}"), ("SG.",)),
    SecretRule("TWILIO_API_KEY", _C(r"(?<![A-Za-z0-9])SK[0-9a-f]{32}(?![A-Za-z0-9])"), ("SK",)),
    SecretRule("DIGITALOCEAN_TOKEN", _C(r"do[opr]_v1_[a-f0-9]{64}"), ("_v1_",)),
    SecretRule("SHOPIFY_TOKEN", _C(r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"), ("shp",)),
    SecretRule("DATABRICKS_TOKEN", _C(r"dapi[a-f0-9]{32}(?:-\d)?"), ("dapi",)),
    SecretRule("TELEGRAM_BOT_TOKEN", _C(r"(?<!\d)\d{8,10}:AA[0-9A-Za-z_-]{33}(?![\w-])"), (":AA",)),
    SecretRule(
        "DISCORD_WEBHOOK",
        _C(r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[\w-]{50,}"),
        ("/api/webhooks/",),
    ),
    SecretRule("HASHICORP_VAULT_TOKEN", _C(r"hv[sb]\.[A-Za-z0-9_-]{24,}"), ("hvs.", "hvb.")),
    SecretRule("ATLASSIAN_API_TOKEN", _C(r"ATATT3[A-Za-z0-9_=-]{100,}"), ("ATATT3",)),
    SecretRule("LINEAR_API_KEY", _C(r"lin_api_[A-Za-z0-9]{40}"), ("lin_api_",)),
    SecretRule("MAILGUN_API_KEY", _C(r"(?<![\w-])key-[0-9a-f]{32}(?![\w-])"), ("key-",)),
    SecretRule(
        "JWT",
        _C(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
        ("eyJ",),
        validate=_jwt_valid,
    ),
    SecretRule(
        "URL_PASSWORD",
        _C(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@\"'<>]{1,128}:([^\s/@\"'<>]{1,128})@[\w.-]+"),
        ("://",),
        group=1,
        validate=_real_value,
    ),
    SecretRule(
        "GENERIC_SECRET",
        _C(
            r"(?:pass(?:word|wd|phrase)?|pwd)['\"]?\s*(?:[:=]|=>|:=)\s*['\"]?([^\s\"',;`]{6,200})",
            _I,
        ),
        ("password", "passwd", "passphrase", "pwd", "pass=", "pass:", "pass =", "pass :", 'pass"', "pass'"),
        group=1,
        hints_case_insensitive=True,
        validate=_password_value,
    ),
    SecretRule(
        "GENERIC_SECRET",
        _C(
            r"(?:api[_-]?key|apikey|secret(?:[_-]?key)?|client[_-]?secret|access[_-]?token|auth[_-]?token"
            r"|bearer[_-]?token|private[_-]?token|session[_-]?token|refresh[_-]?token|token|credentials?)"
            r"['\"]?\s*(?:[:=]|=>|:=)\s*['\"]?([^\s\"',;`]{16,300})",
            _I,
        ),
        ("apikey", "api_key", "api-key", "secret", "token", "credential"),
        group=1,
        hints_case_insensitive=True,
        validate=_token_value,
    ),
    SecretRule(
        "GENERIC_SECRET",
        _C(r"authorization['\"]?\s*[:=]\s*['\"]?(?:bearer|basic|token)\s+([A-Za-z0-9._~+/=-]{16,})", _I),
        ("authorization",),
        group=1,
        hints_case_insensitive=True,
        validate=_token_value,
    ),
    SecretRule(
        "GENERIC_SECRET",
        _C(r"\b(?:my|the|our|your)\s+(?:password|passcode|passphrase|pin)\s+(?:is|was|=|:)\s+['\"]?(\S{6,64})", _I),
        ("password", "passcode", "passphrase", "pin is", "pin was", "pin:", "pin ="),
        group=1,
        hints_case_insensitive=True,
        validate=lambda value: _spoken_password(value.rstrip(".,;:!?)'\"")),
    ),
)

# The shortest vendor key this detector knows ("xoxb-" plus ten characters).
_MIN_KEY_TOKEN = 14
# How far past its anchor a match may end (``Private-MAC: `` and a SHA-256 hex digest).
_ANCHOR_TAIL = 160
_BARE_AWS_SECRET_RE = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


class SecretDetector:
    """Runs the secret rules. Build once; ``scan`` is thread-safe."""

    def __init__(self, rules: tuple[SecretRule, ...] = SECRET_RULES) -> None:
        self.rules = rules
        self._all_token_hints = tuple({h for r in rules if not r.hints_case_insensitive for h in r.hints})
        # The word hints (looked for in the lower-cased text), each looked for once per text however
        # many rules share it; and the rules that need only those, for texts with no vendor prefix.
        self._word_hints = tuple(dict.fromkeys(h for r in rules if r.hints_case_insensitive for h in r.hints))
        self._hint_groups = _hint_groups(self._word_hints)
        self._word_rules = tuple((i, r) for i, r in enumerate(rules) if r.hints_case_insensitive)

    def scan(self, text: str) -> list[Finding]:
        if not text:
            return []
        if len(text) <= SEGMENT_CHARS:
            return _dedupe([finding for _, finding in self._scan_segment(text)])
        found: list[tuple[int, Finding]] = []
        for start, end in segment_bounds(text):
            budget.check()
            found.extend(
                (rule, Finding(f.type, f.start + start, f.end + start, f.score))
                for rule, f in self._scan_segment(text[start:end])
            )
        found.sort(key=lambda item: item[0])  # stable: rule order first, as within one text
        return _dedupe([finding for _, finding in found])

    def _scan_segment(self, text: str) -> list[tuple[int, Finding]]:
        """Findings of one text, each with the index of the rule that found it (rule order)."""
        lowered = text.lower()
        # Vendor keys are single long tokens: look for their prefixes in the long tokens only, which
        # is far cheaper than dozens of substring searches over a whole prompt.
        long_tokens = " ".join(runs.long_tokens(text, _MIN_KEY_TOKEN))
        any_vendor_hint = bool(long_tokens) and any(map(long_tokens.__contains__, self._all_token_hints))
        word_hints = self._present_hints(lowered)
        found: list[tuple[int, Finding]] = []
        candidates: Iterable[tuple[int, SecretRule]] = (
            enumerate(self.rules) if any_vendor_hint else self._word_rules if word_hints else ()
        )
        for index, rule in candidates:
            if rule.hints_case_insensitive:
                if word_hints.isdisjoint(rule.hints):
                    continue
            elif not any(hint in long_tokens for hint in rule.hints):
                continue
            end = len(text)
            if rule.last_anchor is not None:
                anchor = text.rfind(rule.last_anchor)
                if anchor < 0:
                    continue
                end = min(end, anchor + len(rule.last_anchor) + _ANCHOR_TAIL)
            for match in rule.pattern.finditer(text, 0, end):
                value = match.group(rule.group)
                if rule.type == "GENERIC_SECRET":
                    value = value.rstrip(".,;:!?)]}'\"")
                if not value or (rule.validate is not None and not rule.validate(value)):
                    continue
                start = match.start(rule.group)
                found.append((index, Finding(rule.type, start, start + len(value), 1.0)))
        key_ids = [f for _, f in found if f.type == "AWS_ACCESS_KEY_ID"]
        if key_ids:
            found.extend((len(self.rules), f) for f in self._bare_aws_secrets(text, key_ids))
        return found

    def _present_hints(self, lowered: str) -> frozenset[str]:
        """The word hints that occur in ``lowered``. A substring search costs a few µs per 2 KB
        whatever the needle, so hints sharing a prefix ("pass=", "passwd", "password"...) are
        looked for only once that prefix has been found."""
        present: list[str] = []
        for prefix, members in self._hint_groups:
            if prefix in lowered:
                present.extend(members if len(members) == 1 else filter(lowered.__contains__, members))
        return frozenset(present)

    @staticmethod
    def _bare_aws_secrets(text: str, key_ids: list[Finding]) -> list[Finding]:
        """A 40-character high-entropy string near an access key id is its secret key."""
        extra = []
        # The windows around nearby key ids are merged, so each stretch of text is searched once.
        windows: list[list[int]] = []
        for key in sorted(key_ids, key=lambda f: f.start):
            start, end = max(0, key.start - 300), min(len(text), key.end + 300)
            if windows and start <= windows[-1][1]:
                windows[-1][1] = max(windows[-1][1], end)
            else:
                windows.append([start, end])
        for start, end in windows:
            for match in _BARE_AWS_SECRET_RE.finditer(text, start, end):
                if _high_entropy(match.group()) and any(c.isupper() for c in match.group()):
                    extra.append(Finding("AWS_SECRET_ACCESS_KEY", match.start(), match.end(), 0.9))
        return extra


def _hint_groups(hints: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``hints`` grouped by their first three characters, each group with its members' longest
    common prefix (a group of one: the hint itself)."""
    groups: dict[str, list[str]] = {}
    for hint in hints:
        groups.setdefault(hint[:3], []).append(hint)
    return tuple((_common_prefix(members), tuple(members)) for members in groups.values())


def _common_prefix(words: list[str]) -> str:
    """The longest string every one of ``words`` starts with (that of the first and last in order)."""
    first, last = min(words), max(words)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """Keep the first rule's finding where spans overlap (specific rules come before generic ones);
    a longer finding of the same type replaces the one it overlaps, when it overlaps nothing else.

    The kept findings are disjoint, so occupancy maps over the covered range find the one a finding
    overlaps with a ``bytearray.find`` instead of a comparison with every kept finding.
    """
    if len(findings) <= 1:
        return findings
    low = min(f.start for f in findings)
    size = max(f.end for f in findings) - low
    occupied = bytearray(size)  # 1 where a kept finding covers the character
    starts = bytearray(size + 1)  # 1 where a kept finding starts
    kept: dict[int, Finding] = {}
    for finding in findings:
        start, end = finding.start - low, finding.end - low
        if end <= start:
            continue
        hit = occupied.find(1, start, end)
        if hit >= 0:
            overlap = kept[starts.rfind(1, 0, hit + 1)]
            longer = finding.end - finding.start > overlap.end - overlap.start
            if not longer or overlap.type != finding.type or occupied.find(1, overlap.end - low, end) >= 0:
                continue
            occupied[overlap.start - low : overlap.end - low] = bytes(overlap.end - overlap.start)
            starts[overlap.start - low] = 0
            del kept[overlap.start - low]
        occupied[start:end] = b"\x01" * (end - start)
        starts[start] = 1
        kept[start] = finding
    return [kept[start] for start in sorted(kept)]
