"""Planner modes: how a run gets its plan and its input.

* ``template``: the request names a template, or the templates' ``match`` rules pick one from the
  task text; the input is the caller's, checked against the template's ``input_schema``.
* ``constrained``: the template as above, or (no name, no rule matches) the model picks one from
  an enum of the allowed names; then the model fills the template's typed slots under a JSON
  Schema (a grammar on the local model), and every missing or invalid slot takes its default. The
  input always validates, whatever the model writes.
* ``delegate``: the model writes a whole plan; it runs only if it is a valid plan within the
  policy and accepts the input, else the fallback template runs (named, or picked by the rules)
  and the reason is kept.

Only templates within the policy are chosen (their run budget is first capped by the policy's).
The model's answers never raise: a failing call, text that is not JSON or a plan outside the
policy only lead to defaults or the fallback, with the reason in ``PlanChoice.reason``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from bastion.agents import planner_prompts as prompts
from bastion.agents.budget import Usage
from bastion.agents.plan import Plan, schema_errors
from bastion.agents.policy import PlanPolicy, delegated_or_fallback, policy_violations
from bastion.agents.slots import Slot, defaults_only, fill_slots, missing_defaults, slots_schema, template_slots
from bastion.agents.templates import shipped_templates

#: Answer budgets of the model calls (tokens). Slot values are bounded by the grammar, so a
#: complete answer fits; a plan is longer.
CHOICE_MAX_TOKENS = 24
SLOT_TOKENS_BASE = 16
SLOT_TOKENS_EACH = 24
PLAN_MAX_TOKENS = 1024


class PlannerMode(StrEnum):
    TEMPLATE = "template"
    CONSTRAINED = "constrained"
    DELEGATE = "delegate"


@dataclass(frozen=True, slots=True)
class PlanChoice:
    plan: Plan
    input: dict[str, Any]
    mode: PlannerMode
    reason: str
    usage: Usage


class JsonModel(Protocol):
    """A model that answers with JSON text under ``schema`` (reached through the gateway as the
    run's owner, or the embedded model), and the usage of the call."""

    async def complete_json(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], *, max_tokens: int, seed: int | None = None
    ) -> tuple[str, Usage]: ...


class PlannerError(ValueError):
    """The request cannot be planned as asked (the caller's error: a 400)."""


class UnknownTemplateError(PlannerError):
    """The request names a template that does not exist."""


class TemplateNotAllowedError(PlannerError):
    """The named template asks for more than the policy allows (or no template is allowed)."""


class NoTemplateMatchedError(PlannerError):
    """No template was named and no template's rules match the task."""


class PlannerInputError(PlannerError):
    """The input does not match the chosen template's ``input_schema``."""


class ModelRequiredError(PlannerError):
    """The mode needs a model and none was given (a configuration error of the caller)."""


async def choose_plan(
    mode: PlannerMode,
    *,
    template: str | None,
    task: str | None,
    input: dict[str, Any],
    policy: PlanPolicy,
    model: JsonModel | None,
    templates: Mapping[str, Plan] | None = None,
) -> PlanChoice:
    """The plan and input of a run in ``mode``. ``templates`` defaults to the shipped ones.

    Raises a :class:`PlannerError` for the caller's mistakes only (unknown or disallowed template,
    no match, an input that does not fit, no model for a mode that needs one)."""
    catalogue = _Catalogue(templates if templates is not None else shipped_templates(), policy)
    if mode is PlannerMode.TEMPLATE:
        plan, why = catalogue.pick(template, task)
        return PlanChoice(plan, _checked_input(plan, input), mode, why, Usage())
    if model is None:
        raise ModelRequiredError(f"planner mode {mode.value!r} needs a model")
    seed = _seed(mode, template, task)
    if mode is PlannerMode.CONSTRAINED:
        return await _constrained(catalogue, template, task, input, model, seed)
    return await _delegated(catalogue, template, task, input, model, seed)


async def _constrained(
    catalogue: _Catalogue, template: str | None, task: str | None, given: dict[str, Any], model: JsonModel, seed: int
) -> PlanChoice:
    usage = Usage()
    if template is not None or catalogue.rule_match(task) is not None:
        plan, why = catalogue.pick(template, task)
    elif len(catalogue.allowed) == 1:
        plan = next(iter(catalogue.allowed.values()))
        why = f"template {plan.name}, the only one within the policy"
    elif not catalogue.allowed:
        raise TemplateNotAllowedError("no template is within the policy")
    else:
        plan, why, usage = await _model_pick(catalogue, task, model, seed)
    absent = missing_defaults(plan, given)
    if absent:
        raise PlannerInputError(
            f"template {plan.name!r} has no default for {', '.join(absent)}: "
            f"give {'it' if len(absent) == 1 else 'them'} in the input"
        )
    slots = [slot for slot in template_slots(plan) if slot.name not in given]
    if not slots:
        return PlanChoice(plan, _checked_input(plan, given), PlannerMode.CONSTRAINED, f"{why}; every slot given", usage)
    try:
        answer, used = await model.complete_json(
            prompts.slot_messages(plan, slots, task),
            slots_schema(slots),
            max_tokens=SLOT_TOKENS_BASE + SLOT_TOKENS_EACH * len(slots),
            seed=seed,
        )
        usage += used
        summary, data = _filled(slots, given, answer)
    except Exception as exc:  # any failure of the model call: the defaults fill every slot
        summary, data = f"the model failed ({_describe(exc)}); defaults for every slot", defaults_only(plan, given)
    if schema_errors(data, plan.input_schema):  # a rule across properties the slots alone miss
        data = defaults_only(plan, given)
        summary += "; the filled input did not validate as a whole, so the defaults were used"
    return PlanChoice(plan, _checked_input(plan, data), PlannerMode.CONSTRAINED, f"{why}; {summary}", usage)


def _filled(slots: list[Slot], given: dict[str, Any], answer: Any) -> tuple[str, dict[str, Any]]:
    try:
        filled = fill_slots(slots, given, answer)
    except RecursionError:  # JSON nested too deep to read: no slot value is taken from it
        filled = fill_slots(slots, given, None)
        return "the answer is nested too deep; defaults for every slot", filled.input
    return filled.summary(), filled.input


async def _model_pick(catalogue: _Catalogue, task: str | None, model: JsonModel, seed: int) -> tuple[Plan, str, Usage]:
    names = sorted(catalogue.allowed)
    first = catalogue.allowed[names[0]]
    try:
        answer, usage = await model.complete_json(
            prompts.choice_messages([catalogue.allowed[n] for n in names], task),
            prompts.choice_schema(names),
            max_tokens=CHOICE_MAX_TOKENS,
            seed=seed,
        )
    except Exception as exc:
        return first, f"the model failed to choose a template ({_describe(exc)}); using {first.name}", Usage()
    try:
        picked = json.loads(answer)["template"]
    except (ValueError, TypeError, KeyError, RecursionError):
        picked = None
    if isinstance(picked, str) and picked in catalogue.allowed:
        return catalogue.allowed[picked], f"the model chose template {picked}", usage
    return first, f"the model's choice was not an allowed template name; using {first.name}", usage


async def _delegated(
    catalogue: _Catalogue, template: str | None, task: str | None, given: dict[str, Any], model: JsonModel, seed: int
) -> PlanChoice:
    fallback, why = catalogue.pick(template, task)
    given = _checked_input(fallback, given)  # the fallback must be runnable with this input
    mode = PlannerMode.DELEGATE

    def fall_back(reason: str, usage: Usage) -> PlanChoice:
        return PlanChoice(fallback, given, mode, f"{reason}; fell back to {fallback.name} ({why})", usage)

    try:
        answer, usage = await model.complete_json(
            prompts.plan_messages(catalogue.policy, fallback, task),
            prompts.plan_schema(catalogue.policy),
            max_tokens=PLAN_MAX_TOKENS,
            seed=seed,
        )
    except Exception as exc:
        return fall_back(f"the model failed ({_describe(exc)})", Usage())
    try:
        data = json.loads(answer)
    except (ValueError, TypeError, RecursionError) as exc:
        return fall_back(f"the model's answer is not JSON ({_describe(exc)})", usage)
    plan, refused = delegated_or_fallback(data, catalogue.policy, fallback)
    if refused is not None:
        return fall_back(refused, usage)
    try:
        errors = schema_errors(given, plan.input_schema)
    except RecursionError:  # a schema that passed the checks can still be deep to validate against
        return fall_back("delegated plan: its input_schema is nested too deep", usage)
    if errors:
        return fall_back("delegated plan: its input_schema refuses the input: " + "; ".join(errors), usage)
    return PlanChoice(plan, given, mode, f"the model's plan {plan.name} is valid and within the policy", usage)


class _Catalogue:
    """The templates a request may use: all of them by name, those within the policy for a run."""

    def __init__(self, templates: Mapping[str, Plan], policy: PlanPolicy) -> None:
        self.templates = templates
        self.policy = policy
        self.allowed: dict[str, Plan] = {}
        self.refused: dict[str, list[str]] = {}
        for name in sorted(templates):
            fitted = _within_budget(templates[name], policy)
            problems = policy_violations(fitted, policy)
            if problems:
                self.refused[name] = problems
            else:
                self.allowed[name] = fitted

    def pick(self, name: str | None, task: str | None) -> tuple[Plan, str]:
        if name is not None:
            if name in self.allowed:
                return self.allowed[name], f"template {name} named by the request"
            if name in self.refused:
                raise TemplateNotAllowedError(
                    f"template {name!r} is outside the policy: " + "; ".join(self.refused[name])
                )
            available = ", ".join(sorted(self.templates)) or "none"
            raise UnknownTemplateError(f"no template named {name!r} (available: {available})")
        matched = self.rule_match(task)
        if matched is None:
            if not self.allowed:
                raise TemplateNotAllowedError("no template is within the policy")
            raise NoTemplateMatchedError(
                f"no template named and no template's rules match the task (name one of: {', '.join(self.allowed)})"
            )
        return matched

    def rule_match(self, task: str | None) -> tuple[Plan, str] | None:
        """The allowed template whose rules hit most often (ties: the first by name), and why."""
        if not task or not task.strip():
            return None
        best: tuple[Plan, list[str]] | None = None
        for plan in self.allowed.values():
            hits = plan.match.hits(task)
            if hits and (best is None or len(hits) > len(best[1])):
                best = (plan, hits)
        if best is None:
            return None
        plan, hits = best
        return plan, f"template {plan.name} picked by its rules ({', '.join(repr(h) for h in hits[:5])})"


def _within_budget(plan: Plan, policy: PlanPolicy) -> Plan:
    """``plan`` with its run budget capped by the policy's ceiling (a template's budget is a default)."""
    capped = plan.budget.capped_by(policy.max_budget)
    return plan if capped == plan.budget else plan.model_copy(update={"budget": capped})


def _checked_input(plan: Plan, data: dict[str, Any]) -> dict[str, Any]:
    errors = schema_errors(data, plan.input_schema)
    if errors:
        raise PlannerInputError(f"input does not match template {plan.name!r}: " + "; ".join(errors))
    return data


def _seed(mode: PlannerMode, template: str | None, task: str | None) -> int:
    """The same request gets the same seed, so a seeded model answers it the same way."""
    digest = hashlib.sha256(json.dumps([mode.value, template, task]).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
