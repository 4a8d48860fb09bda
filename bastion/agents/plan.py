"""The plan format: a versioned template of steps (YAML), validated into pydantic models.

A step names an arm, builds its input from the run's input and earlier steps' outputs
(``"$input.question"``, ``"$steps.retrieve.passages"``; a step not run yet, or skipped, gives
None, which is how a loop's first round sees the judge's feedback), declares JSON Schemas for that input and
for its output, a per-attempt budget, what to do on failure and success checks. Consecutive steps
with the same ``parallel`` group run together; ``loop_to`` sends the run back to an earlier step
until ``loop_until`` holds (bounded by the run's iteration budget)."""

from __future__ import annotations

import enum
import re
from typing import Any, Literal

import jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bastion.agents.arms import ArmKind
from bastion.agents.budget import RunBudget, StepBudget

PLAN_FORMAT_VERSION = 1
_ID = r"^[a-z][a-z0-9_-]{0,63}$"


class PlanError(ValueError):
    """A template that is not a valid plan; the message names where and why."""


class FailureAction(enum.StrEnum):
    RETRY = "retry"
    SKIP = "skip"
    ABORT = "abort"


class OnFailure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: FailureAction = FailureAction.ABORT
    retries: int = Field(default=0, ge=0, le=10)
    then: Literal["skip", "abort"] = "abort"  # after the retries are spent

    @model_validator(mode="after")
    def _retries_only_with_retry(self) -> OnFailure:
        if self.retries and self.action is not FailureAction.RETRY:
            raise ValueError("retries is only meaningful with action: retry")
        if self.action is FailureAction.RETRY and self.retries < 1:
            raise ValueError("action: retry needs retries >= 1")
        return self


class Check(BaseModel):
    """A deterministic success check on a step's output (``path`` is dotted, into the output)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    op: Literal["present", "non_empty", "truthy", "equals", "min_items"] = "present"
    value: Any = None

    def holds(self, output: dict[str, Any]) -> bool:
        found, got = lookup(output, self.path)
        if not found:
            return False
        match self.op:
            case "present":
                return True
            case "non_empty":
                return got is not None and got != "" and got != [] and got != {}
            case "truthy":
                return bool(got)
            case "equals":
                return bool(got == self.value)
            case "min_items":
                return isinstance(got, (list, dict, str)) and len(got) >= int(self.value or 0)
        return False  # pragma: no cover - exhaustive


class TemplateMatch(BaseModel):
    """Which tasks a template suits (the ``template`` and ``constrained`` planner modes pick by it):
    ``keywords`` are matched as whole words, ``patterns`` are regular expressions searched in the
    task; both ignore case. A template's score is the number of keywords and patterns that hit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keywords: list[str] = Field(default_factory=list, max_length=200)
    patterns: list[str] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _compiles(self) -> TemplateMatch:
        for keyword in self.keywords:
            if not keyword.strip():
                raise ValueError("a keyword must not be blank")
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a regular expression: {exc}") from None
        return self

    def hits(self, task: str) -> list[str]:
        """The keywords and patterns that match ``task``, in declaration order."""
        found = [k for k in self.keywords if re.search(rf"(?<!\w){re.escape(k.strip())}(?!\w)", task, re.I)]
        return found + [p for p in self.patterns if re.search(p, task, re.I)]


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    arm: ArmKind
    input: dict[str, Any] = Field(default_factory=dict)
    input_schema: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] = Field(default_factory=dict)
    budget: StepBudget = StepBudget()
    on_failure: OnFailure = OnFailure()
    checks: list[Check] = Field(default_factory=list)
    parallel: str | None = Field(default=None, pattern=_ID)
    loop_to: str | None = None
    loop_until: Check | None = None


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    name: str = Field(pattern=_ID)
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=dict)
    match: TemplateMatch = TemplateMatch()
    budget: RunBudget = RunBudget()
    steps: list[StepSpec] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _coherent(self) -> Plan:
        if self.version != PLAN_FORMAT_VERSION:
            raise ValueError(f"unsupported plan version {self.version} (this release reads {PLAN_FORMAT_VERSION})")
        for where, schema in [("input_schema", self.input_schema)] + [
            (f"steps.{s.id}.{k}", getattr(s, k)) for s in self.steps for k in ("input_schema", "output_schema")
        ]:
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"{where} is not a valid JSON Schema: {exc.message}") from None
        properties = self.input_schema.get("properties")
        for slot, spec in (properties if isinstance(properties, dict) else {}).items():
            if isinstance(spec, dict) and "default" in spec and (errors := schema_errors(spec["default"], spec)):
                raise ValueError(f"input_schema.properties.{slot}.default does not match its schema: {errors[0]}")
        position: dict[str, int] = {}
        for i, step in enumerate(self.steps):
            if step.id in position:
                raise ValueError(f"step id {step.id!r} is used twice")
            position[step.id] = i
        groups = [u[0].parallel for u in units(self.steps) if u[0].parallel]
        for group in groups:
            if groups.count(group) > 1:
                raise ValueError(f"parallel group {group!r} must be consecutive steps")
        for unit in units(self.steps):
            ids = {s.id for s in unit}
            for step in unit:
                if len(unit) > 1 and step.loop_to:
                    raise ValueError(f"step {step.id!r}: a step of a parallel group cannot loop")
                for ref in references(step.input):
                    head = ref.split(".")
                    if head[0] == "input":
                        continue
                    if head[0] != "steps" or len(head) < 2:
                        raise ValueError(f"step {step.id!r}: reference ${ref} must start with input. or steps.")
                    if head[1] not in position or head[1] in ids:
                        raise ValueError(f"step {step.id!r}: ${ref} does not name another step outside its group")
        for step in self.steps:
            if step.loop_until and not step.loop_to:
                raise ValueError(f"step {step.id!r}: loop_until needs loop_to")
            if step.loop_to and (step.loop_to not in position or position[step.loop_to] > position[step.id]):
                raise ValueError(f"step {step.id!r}: loop_to {step.loop_to!r} does not name this or an earlier step")
        return self


def units(steps: list[StepSpec]) -> list[list[StepSpec]]:
    """The plan's execution units: a single step, or consecutive steps of one parallel group."""
    out: list[list[StepSpec]] = []
    for step in steps:
        if out and step.parallel and out[-1][0].parallel == step.parallel:
            out[-1].append(step)
        else:
            out.append([step])
    return out


def references(value: Any) -> list[str]:
    """The ``$...`` references in a step's input mapping (in nested lists and mappings too)."""
    if isinstance(value, str):
        return [value[1:]] if value.startswith("$") and not value.startswith("$$") else []
    if isinstance(value, dict):
        return [r for v in value.values() for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def resolve(value: Any, scope: dict[str, Any]) -> Any:
    """``value`` with its references replaced from ``scope`` (``input`` and ``steps``); a missing
    value (a skipped step's output) resolves to None. ``$$`` escapes a literal ``$``."""
    if isinstance(value, str):
        if value.startswith("$$"):
            return value[1:]
        if value.startswith("$"):
            return lookup(scope, value[1:])[1]
        return value
    if isinstance(value, dict):
        return {k: resolve(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, scope) for v in value]
    return value


def lookup(data: Any, path: str) -> tuple[bool, Any]:
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return False, None
    return True, data


def schema_errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    """The validation errors of ``instance`` against ``schema``, each with its JSON path."""
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{e.json_path}: {e.message}" for e in sorted(validator.iter_errors(instance), key=lambda e: e.json_path)]


def parse_plan(text: str, source: str = "<plan>") -> Plan:
    """A plan from YAML (or JSON) text; :class:`PlanError` names the source and each problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlanError(f"{source}: not valid YAML: {exc}") from None
    return plan_from_data(data, source)


def plan_from_data(data: Any, source: str = "<plan>") -> Plan:
    if not isinstance(data, dict):
        raise PlanError(f"{source}: a plan is a mapping with version, name and steps")
    try:
        return Plan.model_validate(data)
    except RecursionError:  # the JSON Schema checks walk schemas recursively
        raise PlanError(f"{source}: nested too deep") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "plan"
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}")
        raise PlanError(f"{source}: " + "; ".join(problems)) from None
