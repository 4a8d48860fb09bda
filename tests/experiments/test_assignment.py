"""Assignment and the request rewrite without a gateway: the experiment's variant is GrowthBook's
(the SDKs' own "run" cases with hash v2 pass through ``variant_for``), coverage keeps units out
without moving the others, and ``apply_variant`` rewrites exactly what the variant names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.dialects.extension import BastionExtension
from bastion.experiments.model import Arm, Experiment, Target, Variant
from bastion.experiments.service import variant_for
from bastion.gateway.context import RequestContext, Timing
from bastion.gateway.stages.experiment import apply_variant, targets, unit_id
from bastion.stats.assignment import assign

CASES = json.loads((Path(__file__).parents[1] / "data" / "growthbook" / "cases.json").read_text(encoding="utf-8"))
_PLAIN = {"key", "variations", "weights", "coverage", "hashVersion", "seed", "hashAttribute"}
V2_RUNS = [
    case
    for case in CASES["run"]
    if case[2].get("hashVersion") == 2 and set(case[2]) <= _PLAIN and set(case[1]) == {"attributes"}
]


def _experiment(count: int, seed: str, weights: list[float] | None = None, coverage: float = 1.0) -> Experiment:
    return Experiment(
        id="e1", tenant_id="t1", name="e", hypothesis="", target=Target(model="m"),
        variants=tuple(Variant(f"v{i}") for i in range(count)),
        weights=tuple(weights) if weights is not None else tuple([1.0 / count] * count),
        coverage=coverage, unit="user", metrics=("error_rate",), seed=seed, status="running",
        method="bayesian", bandit=False, correction="holm",
    )  # fmt: skip


@pytest.mark.parametrize(("name", "context", "spec", "value", "in_experiment", "hash_used"), V2_RUNS)
def test_growthbook_v2_runs(name: str, context: dict[str, Any], spec: dict[str, Any], value: Any,
                            in_experiment: bool, hash_used: bool) -> None:  # fmt: skip
    unit = context["attributes"].get(spec.get("hashAttribute", "id"))
    variations = spec["variations"]
    experiment = _experiment(len(variations), spec.get("seed", spec["key"]), spec.get("weights"),
                             spec.get("coverage", 1.0))  # fmt: skip
    variant = variant_for(experiment, None if unit is None else str(unit))
    assert (variant is not None) is in_experiment, name
    index = int(variant.name[1:]) if variant is not None else 0
    assert variations[index] == value, name


def test_there_are_growthbook_v2_cases() -> None:
    assert len(V2_RUNS) >= 2  # the SDK suite has two plain hash-v2 runs (seed "foo")


def test_variant_for_is_the_statistics_assignment_and_coverage_moves_nobody() -> None:
    weights = [0.2, 0.3, 0.5]
    full, partial = _experiment(3, "seed-1", weights), _experiment(3, "seed-1", weights, coverage=0.4)
    outside = 0
    for i in range(3000):
        unit = f"u{i}"
        index = assign("seed-1", unit, 3, weights=weights)
        assert variant_for(full, unit) == full.variants[index]
        narrow = variant_for(partial, unit)
        if narrow is None:
            outside += 1
        else:
            assert narrow == full.variants[index]  # inside the coverage: the same variant as at 100%
    assert 0.55 < outside / 3000 < 0.65
    assert variant_for(full, None) is None and variant_for(full, "") is None


def _ctx(model: str, body: dict[str, Any] | None = None, extension: BastionExtension | None = None) -> RequestContext:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **(body or {})}
    return RequestContext("req_1", "openai", "chat", body, model, Timing(), extension=extension,
                          headers={"x-bastion-user": "from-header"})  # fmt: skip


def _arm(variant: Variant, target: Target) -> Arm:
    return Arm("e1", "exp", variant, "u", target)


def test_targets_and_units() -> None:
    assert targets(_ctx("gpt")) == [Target(model="gpt")]
    assert targets(_ctx("prompt:bot@staging")) == [Target(prompt_id="bot")]
    assert targets(_ctx("gpt", extension=BastionExtension(prompt_id="bot"))) == [
        Target(prompt_id="bot"),
        Target(model="gpt"),
    ]
    ctx = _ctx("gpt", {"user": "from-body"})
    assert unit_id(ctx, "user") == "from-body" and unit_id(ctx, "request") == "req_1"
    assert unit_id(_ctx("gpt"), "user") == "from-header"
    assert unit_id(ctx, "key") is None and unit_id(ctx, "session") is None


def test_apply_variant_model_and_parameters() -> None:
    ctx = _ctx("gpt", {"temperature": 0.9, "max_completion_tokens": 100})
    ctx.passthrough = {"as": "sent"}
    apply_variant(
        ctx, _arm(Variant("b", model="gpt-mini", params={"temperature": 0.1, "max_tokens": 5}), Target(model="gpt"))
    )
    assert ctx.model == ctx.body["model"] == "gpt-mini"
    assert ctx.body["temperature"] == 0.1 and ctx.body["max_tokens"] == 5
    assert "max_completion_tokens" not in ctx.body  # one token cap, the variant's
    assert ctx.passthrough is None


def test_apply_variant_prompt_versions() -> None:
    target = Target(prompt_id="bot")
    by_model = _ctx("prompt:bot@staging")
    apply_variant(by_model, _arm(Variant("v2", prompt_version=2), target))
    assert by_model.model == "prompt:bot" and by_model.extension == BastionExtension("bot", None, 2)
    switched = _ctx("prompt:bot")
    apply_variant(switched, _arm(Variant("mini", prompt_label="concise", model="gpt-mini"), target))
    assert switched.model == switched.body["model"] == "gpt-mini"
    assert switched.extension == BastionExtension("bot", "concise", None)
    by_field = _ctx("gpt", extension=BastionExtension("bot", version=3, variables={"x": 1}))
    apply_variant(by_field, _arm(Variant("lbl", prompt_label="production"), target))
    assert by_field.model == "gpt" and by_field.extension == BastionExtension("bot", "production", None, {"x": 1})
    untouched = _ctx("prompt:bot@7")
    apply_variant(untouched, _arm(Variant("control"), target))
    assert untouched.model == "prompt:bot@7" and untouched.extension is None
