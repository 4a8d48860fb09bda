"""What a caller asks of a red-team run (``POST /v1/redteam/runs``, ``bastion redteam run``),
validated into a :class:`RunSpec`; bad input is an ``InvalidRequest`` naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.errors import InvalidRequest
from bastion.redteam.plan import PERTURBATIONS, Selection
from bastion.redteam.schema import CATEGORIES

MAX_CONCURRENCY = 16
MAX_ATTEMPTS = 5000
DEFAULT_MAX_TOKENS = 256
#: ``mode``, an alias of ``guard``: through the gateway's guard, or the model alone.
MODES = ("gateway", "model")
_FIELDS = frozenset(
    {
        "model",
        "prompt",
        "guard",
        "mode",
        "categories",
        "techniques",
        "attack_ids",
        "perturbations",
        "max_attempts",
        "seed",
        "concurrency",
        "max_tokens",
    }
)


@dataclass(frozen=True, slots=True)
class RunSpec:
    model: str
    prompt: str | None = None
    guard: bool = True
    selection: Selection = field(default_factory=Selection)
    seed: int = 0
    concurrency: int = 4
    max_tokens: int = DEFAULT_MAX_TOKENS

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": self.prompt,
            "guard": self.guard,
            "categories": list(self.selection.categories),
            "techniques": list(self.selection.techniques),
            "attack_ids": list(self.selection.attack_ids),
            "perturbations": list(self.selection.perturbations),
            "max_attempts": self.selection.max_attempts,
            "seed": self.seed,
            "concurrency": self.concurrency,
            "max_tokens": self.max_tokens,
        }


def _bad(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid request: {message}", param=param)


def _text(body: Mapping[str, Any], name: str, *, required: bool = False, limit: int = 256) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
        raise _bad(f"{name} must be a non-empty string of at most {limit} characters.", name)
    return value


def _names(body: Mapping[str, Any], name: str, known: tuple[str, ...] | None = None) -> tuple[str, ...]:
    value = body.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 128 for v in value):
        raise _bad(f"{name} must be a list of names.", name)
    if known is not None:
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise _bad(f"unknown {name} {unknown[:5]}; known: {', '.join(known)}.", name)
    return tuple(dict.fromkeys(value))


def _int(body: Mapping[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f"{name} must be an integer from {low} to {high}.", name)
    return value


def parse_run_spec(body: Any) -> RunSpec:
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object.", "body")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _bad(f"unknown field {unknown[0][:64]!r}.", unknown[0][:64])
    guard = body.get("guard", True)
    if not isinstance(guard, bool):
        raise _bad("guard must be true or false.", "guard")
    mode = body.get("mode")
    if mode is not None:
        # The names of the issue: "gateway" (through the guard) or "model" (the guard bypassed).
        if mode not in MODES:
            raise _bad("mode must be 'gateway' or 'model'.", "mode")
        if "guard" in body and guard != (mode == "gateway"):
            raise _bad(f"mode {mode!r} contradicts guard {str(guard).lower()}.", "mode")
        guard = mode == "gateway"
    perturbations = _names(body, "perturbations", PERTURBATIONS) if "perturbations" in body else PERTURBATIONS
    selection = Selection(
        categories=_names(body, "categories", CATEGORIES),
        techniques=_names(body, "techniques"),
        attack_ids=_names(body, "attack_ids"),
        perturbations=perturbations,
        max_attempts=_int(body, "max_attempts", None, 1, MAX_ATTEMPTS),
    )
    return RunSpec(
        model=_text(body, "model", required=True) or "",
        prompt=_text(body, "prompt", limit=128),
        guard=guard,
        selection=selection,
        seed=_int(body, "seed", 0, 0, 2**31 - 1) or 0,
        concurrency=_int(body, "concurrency", 4, 1, MAX_CONCURRENCY) or 4,
        max_tokens=_int(body, "max_tokens", DEFAULT_MAX_TOKENS, 1, 8192) or DEFAULT_MAX_TOKENS,
    )


def spec_from_json(stored: Mapping[str, Any]) -> RunSpec:
    """A spec as ``to_json`` stored it (already validated)."""
    return parse_run_spec(dict(stored))
