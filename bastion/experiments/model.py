"""Experiments as plain values: the definition (target, variants, weights, coverage, unit, metrics,
method), its validation from JSON, and the arm a request was assigned to.

Which requests enter an experiment: those of the experiment's tenant whose **target** matches.
A target is either a model alias (``{"model": "gpt-4o"}``: requests whose ``model`` is that alias)
or a vault prompt (``{"prompt_id": "support-bot"}``: requests that name that prompt, with
``"model": "prompt:support-bot..."`` or the ``bastion.prompt_id`` field). At most one experiment
per tenant and target runs at a time.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, cast

from bastion.errors import InvalidRequest

Status = Literal["draft", "running", "stopped"]
Unit = Literal["user", "session", "key", "request"]
Method = Literal["frequentist", "bayesian", "sequential"]

STATUSES: Final = ("draft", "running", "stopped")
UNITS: Final = ("user", "session", "key", "request")
METHODS: Final = ("frequentist", "bayesian", "sequential")
CORRECTIONS: Final = ("holm", "benjamini-hochberg")
#: Request parameters a variant may override.
PARAMETERS: Final = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "stop",
        "reasoning_effort",
    }
)
#: The metrics a report can compute from the ledger (and feedback); see ``metrics.py``.
METRIC_NAMES: Final = (
    "error_rate",
    "latency_ms",
    "ttft_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "guard_flag_rate",
    "feedback",
    "review_score",
    "cost_per_success",
)
DEFAULT_METRICS: Final = ("error_rate", "latency_ms", "total_tokens", "cost_usd", "feedback")
NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_VARIANTS: Final = 10
#: The response header naming the assigned arm: ``<experiment name>=<variant name>``.
HEADER: Final = "x-bastion-experiment"


class ExperimentError(InvalidRequest):
    """A malformed experiment definition (400, naming the field)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Which requests enter: one model alias or one vault prompt."""

    model: str | None = None
    prompt_id: str | None = None

    def key(self) -> str:
        return f"model:{self.model}" if self.model is not None else f"prompt:{self.prompt_id}"

    def to_json(self) -> dict[str, str]:
        return {"model": self.model} if self.model is not None else {"prompt_id": cast(str, self.prompt_id)}


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm: a vault prompt version or label, a model alias, parameter overrides (any of them)."""

    name: str
    prompt_version: int | None = None
    prompt_label: str | None = None
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prompt_version": self.prompt_version,
            "prompt_label": self.prompt_label,
            "model": self.model,
            "params": dict(self.params),
        }


@dataclass(frozen=True, slots=True)
class Definition:
    """What a client defines (everything but id, tenant, status and times)."""

    name: str
    hypothesis: str
    target: Target
    variants: tuple[Variant, ...]
    weights: tuple[float, ...]
    coverage: float
    unit: Unit
    metrics: tuple[str, ...]
    #: The assignment seed; "" until stored (then the experiment's id, unless set).
    seed: str
    method: Method
    bandit: bool
    correction: str


@dataclass(frozen=True, slots=True)
class Experiment(Definition):
    id: str
    tenant_id: str
    status: Status
    created_at: datetime | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "experiment",
            "name": self.name,
            "hypothesis": self.hypothesis,
            "target": self.target.to_json(),
            "variants": [v.to_json() for v in self.variants],
            "weights": list(self.weights),
            "coverage": self.coverage,
            "unit": self.unit,
            "metrics": list(self.metrics),
            "seed": self.seed,
            "status": self.status,
            "method": self.method,
            "bandit": self.bandit,
            "correction": self.correction,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "stopped_at": _iso(self.stopped_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class Arm:
    """The arm a request got: recorded in the ledger, named in the response header."""

    experiment_id: str
    experiment_name: str
    variant: Variant
    unit_id: str
    #: What the request matched (the experiment's target).
    target: Target

    def header(self) -> str:
        return f"{self.experiment_name}={self.variant.name}"

    @property
    def unit_key(self) -> str:
        """What the ledger keeps of the unit: a digest (a user id may be an email), stable enough to
        group a unit's requests."""
        return hashlib.sha256(self.unit_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# -- validation ------------------------------------------------------------------------------------

CREATE_FIELDS: Final = frozenset(
    {
        "name",
        "hypothesis",
        "target",
        "variants",
        "weights",
        "coverage",
        "unit",
        "metrics",
        "seed",
        "method",
        "bandit",
        "correction",
    }
)
#: Fields that decide who gets which arm: fixed once the experiment has started.
ASSIGNMENT_FIELDS: Final = frozenset({"target", "variants", "weights", "coverage", "unit", "seed"})


def _fail(message: str, param: str) -> ExperimentError:
    return ExperimentError(f"Invalid experiment: {message}", param=param)


def check_name(value: Any, param: str = "name") -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise _fail(f"{param} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit.", param)
    return value


def _text(value: Any, param: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise _fail(f"{param} must be a string of at most {limit} characters.", param)
    return value


def _number(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(f"{param} must be a number.", param)
    return float(value)


def parse_target(value: Any) -> Target:
    if not isinstance(value, Mapping) or len(value) != 1 or not ({"model", "prompt_id"} & set(value)):
        raise _fail('target must be {"model": ALIAS} or {"prompt_id": ID}.', "target")
    (key, name), *_ = value.items()
    if not isinstance(name, str) or not name or len(name) > 128:
        raise _fail(f"target.{key} must be a non-empty string of at most 128 characters.", f"target.{key}")
    return Target(model=name) if key == "model" else Target(prompt_id=name)


def _params(value: Any, param: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(f"{param} must be an object.", param)
    unknown = sorted(set(value) - PARAMETERS)
    if unknown:
        raise _fail(f"{param} may override {', '.join(sorted(PARAMETERS))} (not {unknown[0][:40]!r}).", param)
    return dict(value)


def parse_variant(value: Any, index: int, target: Target) -> Variant:
    param = f"variants[{index}]"
    if not isinstance(value, Mapping):
        raise _fail(f"{param} must be an object with a name.", param)
    unknown = sorted(set(value) - {"name", "prompt_version", "prompt_label", "model", "params"})
    if unknown:
        raise _fail(f"{param} has an unknown field {unknown[0][:40]!r}.", param)
    name = check_name(value.get("name"), f"{param}.name")
    version = value.get("prompt_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise _fail(f"{param}.prompt_version must be a positive integer.", f"{param}.prompt_version")
    label = value.get("prompt_label")
    if label is not None and (not isinstance(label, str) or not NAME.match(label)):
        raise _fail(f"{param}.prompt_label must be a label name.", f"{param}.prompt_label")
    if version is not None and label is not None:
        raise _fail(f"{param} names a prompt version and a label: name one.", param)
    if (version is not None or label is not None) and target.prompt_id is None:
        raise _fail(f"{param} names a prompt version or label, so the target must be a prompt_id.", param)
    model = value.get("model")
    if model is not None and (not isinstance(model, str) or not model or len(model) > 256):
        raise _fail(f"{param}.model must be a model alias.", f"{param}.model")
    return Variant(name, version, label, model, _params(value.get("params"), f"{param}.params"))


def parse_weights(value: Any, count: int) -> tuple[float, ...]:
    if value is None:
        return tuple([1.0 / count] * count)
    if not isinstance(value, list) or len(value) != count:
        raise _fail("weights must be a list with one number per variant.", "weights")
    weights = tuple(_number(w, "weights") for w in value)
    if any(w < 0 for w in weights) or not math.isclose(sum(weights), 1.0, abs_tol=0.001):
        raise _fail("weights must be non-negative and sum to 1.", "weights")
    return weights


def _choice(value: Any, options: tuple[str, ...], param: str, default: str) -> str:
    value = default if value is None else value
    if value not in options:
        raise _fail(f"{param} must be one of {', '.join(options)}.", param)
    return cast(str, value)


def parse_metrics(value: Any) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_METRICS
    if not isinstance(value, list) or not value or any(m not in METRIC_NAMES for m in value):
        raise _fail(f"metrics must be a non-empty list of {', '.join(METRIC_NAMES)}.", "metrics")
    if len(set(value)) != len(value):
        raise _fail("metrics must not repeat a metric.", "metrics")
    return tuple(value)


def parse_definition(body: Mapping[str, Any], base: Experiment | None = None) -> Definition:
    """A definition from a JSON body; with ``base``, the body updates it (absent fields stay)."""
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise _fail(f"unknown field {unknown[0][:40]!r}; allowed: {', '.join(sorted(CREATE_FIELDS))}.", unknown[0][:40])
    merged: dict[str, Any] = {} if base is None else _definition_json(base)
    merged.update(body)
    if "name" not in merged:
        raise _fail("name is required.", "name")
    if "target" not in merged:
        raise _fail("target is required.", "target")
    target = parse_target(merged["target"])
    raw_variants = merged.get("variants")
    if not isinstance(raw_variants, list) or not 2 <= len(raw_variants) <= MAX_VARIANTS:
        raise _fail(f"variants must be a list of 2 to {MAX_VARIANTS} variants (the first is the control).", "variants")
    variants = tuple(parse_variant(v, i, target) for i, v in enumerate(raw_variants))
    if len({v.name for v in variants}) != len(variants):
        raise _fail("variant names must be unique.", "variants")
    coverage = _number(merged.get("coverage", 1.0), "coverage")
    if not 0.0 < coverage <= 1.0:
        raise _fail("coverage must be in (0, 1].", "coverage")
    seed = merged.get("seed")
    if seed is not None and (not isinstance(seed, str) or not seed or len(seed) > 128):
        raise _fail("seed must be a non-empty string of at most 128 characters.", "seed")
    bandit = merged.get("bandit", False)
    if not isinstance(bandit, bool):
        raise _fail("bandit must be true or false.", "bandit")
    return Definition(
        name=check_name(merged["name"]),
        hypothesis=_text(merged.get("hypothesis"), "hypothesis", 2000),
        target=target,
        variants=variants,
        weights=parse_weights(merged.get("weights"), len(variants)),
        coverage=coverage,
        unit=cast(Unit, _choice(merged.get("unit"), UNITS, "unit", "user")),
        metrics=parse_metrics(merged.get("metrics")),
        seed=seed or "",
        method=cast(Method, _choice(merged.get("method"), METHODS, "method", "bayesian")),
        bandit=bandit,
        correction=_choice(merged.get("correction"), CORRECTIONS, "correction", "holm"),
    )


def check_models(definition: Definition, is_chat_model: Callable[[str], bool]) -> None:
    """400 when the target or a variant names a model alias the gateway does not serve for chat."""
    named = [("target.model", definition.target.model)] + [
        (f"variants[{i}].model", v.model) for i, v in enumerate(definition.variants)
    ]
    for param, alias in named:
        if alias is not None and not is_chat_model(alias):
            raise _fail(f"{param}: {alias[:64]!r} is not a chat model of this gateway.", param)


def _definition_json(experiment: Experiment) -> dict[str, Any]:
    data = experiment.to_json()
    return {name: data[name] for name in CREATE_FIELDS}
