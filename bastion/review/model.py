"""The review package's plain values: what ``prepare`` selects, what a reviewer submits, who a
reviewer is. Parsed from the API's and the CLI's JSON with a 400 naming the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from bastion.auth.principal import Principal
from bastion.errors import InvalidRequest
from bastion.review.models import DIMENSIONS

SINGLE: Final = "single"
PAIRWISE: Final = "pairwise"
KINDS: Final = (SINGLE, PAIRWISE)
APPROVE, REJECT, NEEDS_EDIT = "approve", "reject", "needs-edit"
VERDICTS: Final = (APPROVE, REJECT, NEEDS_EDIT)
#: Most items one ``prepare`` queues.
MAX_PREPARE: Final = 10_000
DEFAULT_PREPARE: Final = 1_000
MAX_REVIEWERS: Final = 10
MAX_TEXT: Final = 100_000
MIN_LEASE_S, MAX_LEASE_S = 10, 86_400
FILTER_FIELDS: Final = frozenset(
    {
        "from", "to", "model", "prompt_id", "prompt_version", "key_id", "user_id", "session_id", "flagged",
        "guard_action", "guard_scanner", "experiment_id", "experiment_arm", "limit",
    }
)  # fmt: skip
PREPARE_FIELDS: Final = frozenset({"name", "purpose", "kind", "filter", "reviewers_per_item", "lease_s"})
REVIEW_FIELDS: Final = frozenset({"scores", "feedback", "verdict", "corrected_answer", "preferred", *DIMENSIONS})


#: How the ``bastion`` command line acts: a principal of this method whose ``user_email`` holds
#: the audit label of the person at the terminal (``cli:<login>``).
CLI_METHOD: Final = "cli"
#: Work the gateway does on its own (the flagged-interactions task), labelled the same way.
SYSTEM_METHOD: Final = "system"


def actor_of(principal: Principal) -> str:
    """The audit label of a principal (the terminal's user for the command line)."""
    if principal.method in (CLI_METHOD, SYSTEM_METHOD) and principal.user_email:
        return principal.user_email
    return principal.actor


def reviewer_of(principal: Principal) -> str:
    """Who reviews: the user behind the credentials (two keys of one person are one reviewer),
    else the key (or the terminal's user)."""
    if principal.user_id:
        return f"user:{principal.user_id}"
    return actor_of(principal)


def text_field(body: dict[str, Any], name: str, max_length: int, default: str | None = None) -> str | None:
    value = body.get(name, default)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise InvalidRequest(
            f"Invalid request: {name} must be a string of at most {max_length} characters (no NUL).", param=name
        )
    return value


def int_field(body: dict[str, Any], name: str, low: int, high: int, default: int | None = None) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(f"Invalid request: {name} must be an integer from {low} to {high}.", param=name)
    return value


def bool_field(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise InvalidRequest(f"Invalid request: {name} must be true or false.", param=name)


def time_field(body: dict[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidRequest(f"Invalid request: {name} must be an ISO 8601 time.", param=name) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def only_fields(body: Any, allowed: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest(f"Invalid request: {what} must be a JSON object.")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"Invalid request: unknown field {unknown[0]!r} in {what}.", param=unknown[0])
    return body


@dataclass(frozen=True, slots=True)
class CandidateFilter:
    """Which ledger interactions a batch takes (all of them: AND). Only successful chat calls whose
    content the ledger kept are candidates."""

    since: datetime | None = None
    until: datetime | None = None
    model: str | None = None
    prompt_id: str | None = None
    prompt_version: int | None = None
    key_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    flagged: bool | None = None
    #: The guard's overall action (allow, flag, redact, block) and/or a scanner that flagged.
    guard_action: str | None = None
    guard_scanner: str | None = None
    #: The experiment and the variant (arm) the experiment stage recorded in the ledger.
    experiment_id: str | None = None
    experiment_arm: str | None = None
    limit: int = DEFAULT_PREPARE

    @classmethod
    def parse(cls, body: Any) -> CandidateFilter:
        body = only_fields(body or {}, FILTER_FIELDS, "filter")
        since, until = time_field(body, "from"), time_field(body, "to")
        if since is not None and until is not None and since >= until:
            raise InvalidRequest("Invalid request: filter.from must be earlier than filter.to.", param="from")
        return cls(
            since=since,
            until=until,
            model=text_field(body, "model", 256),
            prompt_id=text_field(body, "prompt_id", 128),
            prompt_version=int_field(body, "prompt_version", 1, 999_999_999),
            key_id=text_field(body, "key_id", 32),
            user_id=text_field(body, "user_id", 32),
            session_id=text_field(body, "session_id", 64),
            flagged=bool_field(body, "flagged"),
            guard_action=text_field(body, "guard_action", 16),
            guard_scanner=text_field(body, "guard_scanner", 64),
            experiment_id=text_field(body, "experiment_id", 32),
            experiment_arm=text_field(body, "experiment_arm", 64),
            limit=int_field(body, "limit", 1, MAX_PREPARE, DEFAULT_PREPARE) or DEFAULT_PREPARE,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("model", "prompt_id", "prompt_version", "key_id", "user_id", "session_id", "flagged"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for name in ("guard_action", "guard_scanner", "experiment_id", "experiment_arm"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.since is not None:
            out["from"] = self.since.isoformat()
        if self.until is not None:
            out["to"] = self.until.isoformat()
        out["limit"] = self.limit
        return out


@dataclass(frozen=True, slots=True)
class PrepareSpec:
    name: str
    purpose: str
    kind: str
    filter: CandidateFilter
    reviewers_per_item: int
    lease_s: int

    @classmethod
    def parse(cls, body: Any, *, reviewers_per_item: int = 2, lease_s: int = 900) -> PrepareSpec:
        body = only_fields(body, PREPARE_FIELDS, "the body")
        kind = text_field(body, "kind", 16, SINGLE) or SINGLE
        if kind not in KINDS:
            raise InvalidRequest("Invalid request: kind must be single or pairwise.", param="kind")
        purpose = text_field(body, "purpose", 64, "sft" if kind == SINGLE else "preference") or "sft"
        if not purpose.strip():
            raise InvalidRequest("Invalid request: purpose must not be empty.", param="purpose")
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
        return cls(
            name=(text_field(body, "name", 128) or f"{purpose} {stamp}").strip() or purpose,
            purpose=purpose,
            kind=kind,
            filter=CandidateFilter.parse(body.get("filter")),
            reviewers_per_item=int_field(body, "reviewers_per_item", 1, MAX_REVIEWERS, reviewers_per_item) or 1,
            lease_s=int_field(body, "lease_s", MIN_LEASE_S, MAX_LEASE_S, lease_s) or lease_s,
        )


@dataclass(frozen=True, slots=True)
class ReviewInput:
    """One reviewer's review of one item."""

    scores: dict[str, int] = field(default_factory=dict)
    feedback: str | None = None
    verdict: str | None = None
    corrected_answer: str | None = None
    preferred: str | None = None

    @classmethod
    def parse(cls, body: Any, kind: str) -> ReviewInput:
        body = only_fields(body, REVIEW_FIELDS, "the review")
        raw = body.get("scores")
        if raw is None:  # seed 000's flat shape: the six dimensions at the top level
            raw = {name: body[name] for name in DIMENSIONS if name in body}
        elif not isinstance(raw, dict) or any(name in body for name in DIMENSIONS):
            raise InvalidRequest("Invalid request: scores must be an object of the six dimensions.", param="scores")
        unknown = sorted(set(raw) - set(DIMENSIONS))
        if unknown:
            raise InvalidRequest(f"Invalid request: unknown score dimension {unknown[0]!r}.", param="scores")
        scores = {name: int_field(raw, name, 1, 5) for name in DIMENSIONS if raw.get(name) is not None}
        feedback = text_field(body, "feedback", MAX_TEXT)
        corrected = text_field(body, "corrected_answer", MAX_TEXT)
        verdict = text_field(body, "verdict", 16)
        preferred = text_field(body, "preferred", 1)
        if kind == SINGLE:
            missing = [name for name in DIMENSIONS if name not in scores]
            if missing:
                raise InvalidRequest(f"Invalid request: score {missing[0]} (1-5) is required.", param=missing[0])
            if verdict not in VERDICTS:
                raise InvalidRequest("Invalid request: verdict must be approve, reject or needs-edit.", param="verdict")
            if preferred is not None:
                raise InvalidRequest("Invalid request: preferred is for pairwise items.", param="preferred")
            if corrected is not None and not corrected.strip():
                raise InvalidRequest("Invalid request: corrected_answer must not be blank.", param="corrected_answer")
        else:
            if preferred not in ("a", "b"):
                raise InvalidRequest("Invalid request: preferred must be a or b.", param="preferred")
            if verdict is not None or corrected is not None:
                raise InvalidRequest("Invalid request: a pairwise review chooses an answer (preferred) only.")
        return cls({k: v for k, v in scores.items() if v is not None}, feedback, verdict, corrected, preferred)
