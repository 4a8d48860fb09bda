"""Planner modes with fake models: the choice of template, slot filling and every fallback path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bastion.agents.arms import ArmKind
from bastion.agents.budget import RunBudget, Usage
from bastion.agents.plan import Plan, PlanError, plan_from_data, schema_errors
from bastion.agents.planners import (
    ModelRequiredError,
    NoTemplateMatchedError,
    PlanChoice,
    PlannerError,
    PlannerInputError,
    PlannerMode,
    TemplateNotAllowedError,
    UnknownTemplateError,
    choose_plan,
)
from bastion.agents.policy import PlanPolicy
from bastion.agents.slots import complete_members, defaults_only
from bastion.agents.templates import get_template, shipped_templates
from tests.agents.planner_fakes import ScriptedModel, SeededModel

OPEN = PlanPolicy()
NO_EXECUTOR = PlanPolicy(allowed_arms=frozenset(ArmKind) - {ArmKind.EXECUTOR})
QUESTION = {"question": "Why is the sky blue?", "collection": "physics"}


async def choose(
    mode: PlannerMode,
    *,
    template: str | None = None,
    task: str | None = None,
    input: dict[str, Any] | None = None,
    policy: PlanPolicy = OPEN,
    model: Any = None,
    templates: dict[str, Plan] | None = None,
) -> PlanChoice:
    return await choose_plan(
        mode, template=template, task=task, input=input or {}, policy=policy, model=model, templates=templates
    )


def custom(name: str, properties: dict[str, Any], **schema: Any) -> Plan:
    return plan_from_data(
        {
            "version": 1,
            "name": name,
            "description": f"the {name} template",
            "input_schema": {"type": "object", "properties": properties, **schema},
            "steps": [{"id": "only", "arm": "coder"}],
        }
    )


# -- template mode -------------------------------------------------------------------------------


async def test_a_named_template_runs_with_the_callers_input() -> None:
    choice = await choose(PlannerMode.TEMPLATE, template="answer-with-citations", input=QUESTION)
    assert choice.plan == get_template("answer-with-citations")
    assert (choice.input, choice.mode, choice.usage) == (QUESTION, PlannerMode.TEMPLATE, Usage())
    assert choice.reason == "template answer-with-citations named by the request"


async def test_an_unknown_template_is_a_clear_error() -> None:
    with pytest.raises(UnknownTemplateError, match="no template named 'nope' \\(available: answer-with-citations, "):
        await choose(PlannerMode.TEMPLATE, template="nope", input=QUESTION)


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("Why is the sky blue?", "answer-with-citations"),
        ("According to the docs, which port does the gateway use", "answer-with-citations"),
        ("Fix the bug in my Python function and add unit tests", "code-until-tests-pass"),
        ("Implement quicksort in Rust", "code-until-tests-pass"),
        ("Can you write code for this?\n```\ndef f(x):\n```", "code-until-tests-pass"),
    ],
)
async def test_rules_pick_a_template_from_the_task(task: str, expected: str) -> None:
    given = QUESTION if expected == "answer-with-citations" else {"task": task}
    choice = await choose(PlannerMode.TEMPLATE, task=task, input=given)
    assert choice.plan.name == expected
    assert choice.reason.startswith(f"template {expected} picked by its rules (")


def test_keywords_match_whole_words_in_any_case() -> None:
    rules = get_template("code-until-tests-pass").match
    assert rules.hits("PYTHON Unit Test please") == ["test", "unit test", "python"]
    assert rules.hits("a bugle and a contest") == []


@pytest.mark.parametrize("task", [None, "", "   ", "banana"])
async def test_no_rule_match_is_a_clear_error(task: str | None) -> None:
    with pytest.raises(NoTemplateMatchedError, match="no template named and no template's rules match the task"):
        await choose(PlannerMode.TEMPLATE, task=task, input=QUESTION)


async def test_the_input_must_match_the_templates_schema() -> None:
    with pytest.raises(PlannerInputError, match="input does not match template 'answer-with-citations': "):
        await choose(PlannerMode.TEMPLATE, template="answer-with-citations", input={"question": ""})


async def test_templates_outside_the_policy_are_refused_by_name_and_skipped_by_the_rules() -> None:
    with pytest.raises(TemplateNotAllowedError, match="arm executor is not allowed"):
        await choose(PlannerMode.TEMPLATE, template="code-until-tests-pass", input={"task": "x"}, policy=NO_EXECUTOR)
    with pytest.raises(NoTemplateMatchedError):
        await choose(PlannerMode.TEMPLATE, task="implement a python function", policy=NO_EXECUTOR)


async def test_a_templates_run_budget_is_capped_by_the_policy() -> None:
    policy = PlanPolicy(max_budget=RunBudget(max_iterations=5, max_wall_s=60, max_tokens=4000, max_cost_usd=0.2))
    choice = await choose(PlannerMode.TEMPLATE, template="answer-with-citations", input=QUESTION, policy=policy)
    assert choice.plan.budget == RunBudget(
        max_iterations=5, max_wall_s=60, max_tokens=4000, max_cost_usd=0.2, max_tool_calls=4
    )
    assert choice.plan.steps == get_template("answer-with-citations").steps


def test_errors_are_planner_errors_and_value_errors() -> None:
    for error in (UnknownTemplateError, TemplateNotAllowedError, NoTemplateMatchedError, PlannerInputError):
        assert issubclass(error, PlannerError) and issubclass(error, ValueError)


async def test_modes_with_a_model_need_one() -> None:
    for mode in (PlannerMode.CONSTRAINED, PlannerMode.DELEGATE):
        with pytest.raises(ModelRequiredError, match=f"planner mode '{mode.value}' needs a model"):
            await choose(mode, template="answer-with-citations", input=QUESTION)


# -- constrained mode ----------------------------------------------------------------------------


async def test_the_model_fills_the_slots_under_their_schema() -> None:
    model = ScriptedModel([json.dumps({"question": "Why blue?", "collection": "physics"})])
    choice = await choose(PlannerMode.CONSTRAINED, template="answer-with-citations", task="why blue", model=model)
    assert choice.input == {"question": "Why blue?", "collection": "physics"}
    assert choice.usage == Usage(tokens=7)
    assert choice.reason == "template answer-with-citations named by the request; 2 slot(s) from the model"
    call = model.calls[0]
    assert call["schema"] == {
        "type": "object",
        "properties": {
            "question": {"type": "string", "minLength": 1, "maxLength": 40},
            "collection": {"type": "string", "minLength": 1, "maxLength": 40},
        },
        "required": ["question", "collection"],
        "additionalProperties": False,
    }
    assert call["messages"][-1] == {"role": "user", "content": "why blue"}
    assert call["max_tokens"] == 64


async def test_an_answer_that_is_not_json_gives_every_slot_its_default() -> None:
    model = ScriptedModel(["Sure! Here is the input you asked for."])
    choice = await choose(PlannerMode.CONSTRAINED, template="answer-with-citations", task="?", model=model)
    assert choice.input == {"question": "What are the main points of the collection?", "collection": "default"}
    assert "defaults for question (the answer is not JSON); collection (the answer is not JSON)" in choice.reason
    assert choice.usage == Usage(tokens=7)  # the call was made: its usage counts


async def test_a_slot_of_the_wrong_type_takes_its_default_and_the_others_are_kept() -> None:
    model = ScriptedModel([json.dumps({"question": 42, "collection": "docs"})])
    choice = await choose(PlannerMode.CONSTRAINED, template="answer-with-citations", task="q", model=model)
    assert choice.input == {"question": "What are the main points of the collection?", "collection": "docs"}
    assert "1 slot(s) from the model, defaults for question (invalid: 42 is not of type 'string')" in choice.reason


async def test_extra_keys_are_dropped_and_missing_slots_take_defaults() -> None:
    model = ScriptedModel([json.dumps({"task": "Sort a list", "rm -rf": True, "budget": 1e9})])
    choice = await choose(PlannerMode.CONSTRAINED, template="code-until-tests-pass", task="code", model=model)
    assert choice.input == {"task": "Sort a list", "tests": ""}
    assert "defaults for tests (missing)" in choice.reason


@pytest.mark.parametrize("answer", ["[1, 2]", '"just a string"', "null", ""])
async def test_json_that_is_not_an_object_gives_the_defaults(answer: str) -> None:
    model = ScriptedModel([answer])
    choice = await choose(PlannerMode.CONSTRAINED, template="code-until-tests-pass", task="x", model=model)
    assert choice.input == {"task": "Write a Python function solve() that returns None.", "tests": ""}


async def test_a_model_that_raises_gives_the_defaults_with_the_reason() -> None:
    model = ScriptedModel([TimeoutError("upstream took too long")])
    choice = await choose(PlannerMode.CONSTRAINED, template="code-until-tests-pass", task="x", model=model)
    assert choice.input == {"task": "Write a Python function solve() that returns None.", "tests": ""}
    assert "the model failed (TimeoutError: upstream took too long); defaults for every slot" in choice.reason
    assert choice.usage == Usage()


async def test_given_values_win_and_are_not_asked_of_the_model() -> None:
    model = ScriptedModel([json.dumps({"tests": "assert solve() is None"})])
    given = {"task": "Write solve()"}
    choice = await choose(PlannerMode.CONSTRAINED, template="code-until-tests-pass", input=given, model=model)
    assert choice.input == {"task": "Write solve()", "tests": "assert solve() is None"}
    assert list(model.calls[0]["schema"]["properties"]) == ["tests"]
    everything = await choose(
        PlannerMode.CONSTRAINED, template="code-until-tests-pass", input={"task": "t", "tests": ""}, model=model
    )
    assert everything.input == {"task": "t", "tests": ""} and len(model.calls) == 1
    assert everything.reason.endswith("; every slot given")


async def test_an_invalid_given_value_is_the_callers_error() -> None:
    with pytest.raises(PlannerInputError):
        await choose(
            PlannerMode.CONSTRAINED, template="code-until-tests-pass", input={"task": 3}, model=ScriptedModel(["{}"])
        )


async def test_the_model_picks_a_template_when_none_is_named_and_no_rule_matches() -> None:
    model = ScriptedModel([json.dumps({"template": "code-until-tests-pass"}), json.dumps({"task": "hello"})])
    choice = await choose(PlannerMode.CONSTRAINED, task="bonjour tout le monde", model=model)
    assert choice.plan.name == "code-until-tests-pass"
    assert choice.reason.startswith("the model chose template code-until-tests-pass; ")
    assert model.calls[0]["schema"]["properties"] == {"template": {"enum": sorted(shipped_templates())}}
    assert choice.usage == Usage(tokens=14)  # both calls


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (json.dumps({"template": "rm-everything"}), "the model's choice was not an allowed template name"),
        ("not json", "the model's choice was not an allowed template name"),
        (RuntimeError("boom"), "the model failed to choose a template (RuntimeError: boom)"),
    ],
)
async def test_a_bad_template_pick_takes_the_first_allowed_template(answer: str | Exception, why: str) -> None:
    model = ScriptedModel([answer, "{}"])
    choice = await choose(PlannerMode.CONSTRAINED, task="bonjour", model=model)
    assert choice.plan.name == "answer-with-citations"
    assert choice.reason.startswith(f"{why}; using answer-with-citations; ")


async def test_rules_come_before_the_model_and_the_policy_narrows_the_choice() -> None:
    model = ScriptedModel(["{}", "{}"])
    by_rules = await choose(PlannerMode.CONSTRAINED, task="Explain the refund policy", model=model)
    assert by_rules.plan.name == "answer-with-citations" and len(model.calls) == 1
    only = await choose(PlannerMode.CONSTRAINED, task="bonjour", model=model, policy=NO_EXECUTOR)
    assert only.reason.startswith("template answer-with-citations, the only one within the policy; ")
    assert len(model.calls) == 2  # the slots only: no pick among one


async def test_a_required_slot_without_a_default_must_be_given() -> None:
    plan = custom("strict", {"name": {"type": "string"}}, required=["name"])
    with pytest.raises(PlannerInputError, match="template 'strict' has no default for name: give it in the input"):
        await choose(PlannerMode.CONSTRAINED, template="strict", model=ScriptedModel([]), templates={"strict": plan})


async def test_typed_slots_are_checked_one_by_one() -> None:
    plan = custom(
        "typed",
        {
            "level": {"enum": ["low", "high"], "default": "low"},
            "count": {"type": "integer", "minimum": 1, "maximum": 9, "default": 3},
            "ratio": {"type": "number", "default": 0.5},
            "strict": {"type": "boolean", "default": False},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 2, "default": []},
            "extra": {"type": "object", "default": {}},
        },
    )
    answer = {"level": "medium", "count": 12, "ratio": 2.5, "strict": "yes", "tags": ["a", "b"], "extra": {"x": 1}}
    model = ScriptedModel([json.dumps(answer)])
    choice = await choose(PlannerMode.CONSTRAINED, template="typed", model=model, templates={"typed": plan})
    assert choice.input == {"level": "low", "count": 3, "ratio": 2.5, "strict": False, "tags": ["a", "b"]}
    properties = model.calls[0]["schema"]["properties"]
    assert properties == {
        "level": {"enum": ["low", "high"]},
        "count": {"type": "integer", "minimum": 1, "maximum": 9},
        "ratio": {"type": "number"},
        "strict": {"type": "boolean"},
        "tags": {
            "type": "array",
            "items": {"type": "string", "minLength": 0, "maxLength": 5},
            "minItems": 0,
            "maxItems": 2,
        },
    }  # an object is no slot: the model is not asked for it


async def test_values_valid_alone_but_not_together_fall_back_to_the_defaults() -> None:
    plan = custom(
        "paired",
        {"a": {"type": "string", "default": "w"}, "b": {"type": "string", "default": "z"}},
        **{"if": {"properties": {"a": {"const": "x"}}}, "then": {"properties": {"b": {"const": "y"}}}},
    )
    model = ScriptedModel([json.dumps({"a": "x", "b": "z"})])
    choice = await choose(PlannerMode.CONSTRAINED, template="paired", model=model, templates={"paired": plan})
    assert choice.input == {"a": "w", "b": "z"}
    assert choice.reason.endswith("the filled input did not validate as a whole, so the defaults were used")


async def test_constrained_mode_is_deterministic_for_a_seeded_model() -> None:
    first = await choose(PlannerMode.CONSTRAINED, task="bonjour", model=SeededModel())
    again = await choose(PlannerMode.CONSTRAINED, task="bonjour", model=SeededModel())
    other = await choose(PlannerMode.CONSTRAINED, task="hola", model=SeededModel())
    assert first == again
    assert (first.plan.name, first.input) != (other.plan.name, other.input)


# -- delegate mode -------------------------------------------------------------------------------

WRITTEN: dict[str, Any] = {
    "version": 1,
    "name": "look-it-up",
    "input_schema": {"type": "object"},
    "budget": {"max_iterations": 3, "max_tokens": 2000, "max_cost_usd": 0.1, "max_tool_calls": 1},
    "steps": [
        {"id": "find", "arm": "retriever", "input": {"query": "$input.question"}},
        {"id": "write", "arm": "coder", "input": {"passages": "$steps.find.passages"}},
    ],
}


async def delegate(answer: str | Exception, policy: PlanPolicy = OPEN) -> PlanChoice:
    model = ScriptedModel([answer])
    return await choose(
        PlannerMode.DELEGATE, template="answer-with-citations", task="why?", input=QUESTION, policy=policy, model=model
    )


async def test_a_valid_written_plan_within_the_policy_runs() -> None:
    choice = await delegate(json.dumps(WRITTEN))
    assert choice.plan.name == "look-it-up" and [s.arm for s in choice.plan.steps] == ["retriever", "coder"]
    assert choice.input == QUESTION and choice.usage == Usage(tokens=7)
    assert choice.reason == "the model's plan look-it-up is valid and within the policy"


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ('{"version": 1, "name": "x", "steps": [', "the model's answer is not JSON (JSONDecodeError: Expecting value"),
        ("[" * 100_000, "the model's answer is not JSON (RecursionError"),
        (json.dumps({**WRITTEN, "steps": "do it all"}), "delegated plan: steps: Input should be a valid list"),
        (json.dumps({**WRITTEN, "version": "one"}), "delegated plan: version: Input should be a valid integer"),
        (json.dumps({**WRITTEN, "shell": "rm -rf /"}), "delegated plan: shell: Extra inputs are not permitted"),
        (json.dumps([WRITTEN]), "delegated plan: a plan is a mapping"),
        (
            json.dumps({**WRITTEN, "budget": {"max_iterations": 500}}),
            "delegated plan: budget.max_iterations 500 exceeds 20",
        ),
        (json.dumps({**WRITTEN, "input_schema": {"required": ["nope"]}}), "delegated plan: its input_schema refuses"),
        (RuntimeError("gateway down"), "the model failed (RuntimeError: gateway down)"),
    ],
)
async def test_anything_but_a_valid_plan_falls_back_to_the_template(answer: str | Exception, why: str) -> None:
    choice = await delegate(answer)
    assert choice.plan == get_template("answer-with-citations") and choice.input == QUESTION
    assert choice.reason.startswith(why)
    assert choice.reason.endswith(
        "; fell back to answer-with-citations (template answer-with-citations named by the request)"
    )


async def test_a_written_plan_with_a_disallowed_arm_falls_back() -> None:
    policy = PlanPolicy(allowed_arms=frozenset({ArmKind.RETRIEVER, ArmKind.JUDGE, ArmKind.CODER}))
    executing = {**WRITTEN, "steps": [*WRITTEN["steps"], {"id": "run", "arm": "executor"}]}
    choice = await delegate(json.dumps(executing), policy)
    assert choice.plan.name == "answer-with-citations"
    assert choice.reason.startswith("delegated plan: step run: arm executor is not allowed")


async def test_the_plan_schema_carries_the_policy() -> None:
    policy = PlanPolicy(allowed_arms=frozenset({ArmKind.RETRIEVER, ArmKind.CODER, ArmKind.JUDGE}), max_steps=3)
    model = ScriptedModel([json.dumps(WRITTEN)])
    await choose(PlannerMode.DELEGATE, template="answer-with-citations", input=QUESTION, policy=policy, model=model)
    steps = model.calls[0]["schema"]["properties"]["steps"]
    assert steps["maxItems"] == 3 and steps["items"]["properties"]["arm"] == {"enum": ["coder", "judge", "retriever"]}


async def test_delegate_mode_needs_a_fallback_before_asking_the_model() -> None:
    model = ScriptedModel([json.dumps(WRITTEN)])
    with pytest.raises(NoTemplateMatchedError):
        await choose(PlannerMode.DELEGATE, task="bonjour", input=QUESTION, model=model)
    with pytest.raises(PlannerInputError):  # the fallback must accept the input
        await choose(PlannerMode.DELEGATE, template="answer-with-citations", input={}, model=model)
    assert model.calls == []


# -- answers cut short ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "members"),
    [
        ('{"question": "Why blue?", "collection": "phy', {"question": "Why blue?"}),
        ('{"question": "Why blue?" , "collection"', {"question": "Why blue?"}),
        ('  {"a": [1, 2], "b": {"c": null}, "n": 12', {"a": [1, 2], "b": {"c": None}}),  # 12 may be 123
        ('{"n": 12}', {"n": 12}),
        ('{"question": "Why', {}),
        ("{", {}),
        ('{"a" 1}', {}),
        ("[1, 2", None),
        ("", None),
    ],
)
def test_complete_members_of_a_cut_answer(answer: str, members: dict[str, Any] | None) -> None:
    assert complete_members(answer) == members


async def test_a_cut_answer_keeps_the_slots_written_in_full() -> None:
    model = ScriptedModel(['{"question": "Why is the sky blue?", "collection": "phys'])
    choice = await choose(PlannerMode.CONSTRAINED, template="answer-with-citations", task="sky", model=model)
    assert choice.input == {"question": "Why is the sky blue?", "collection": "default"}
    assert choice.reason.endswith("1 slot(s) from the model, defaults for collection (cut short or missing)")


# -- the plan format's additions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            {"match": {"patterns": ["(unclosed"]}},
            "match: pattern '(unclosed' is not a regular expression: missing ), unterminated subpattern at position 0",
        ),
        ({"match": {"keywords": ["  "]}}, "match: a keyword must not be blank"),
        ({"match": {"words": ["x"]}}, "match.words: Extra inputs are not permitted"),
        (
            {"input_schema": {"properties": {"n": {"type": "integer", "default": "three"}}}},
            "plan: input_schema.properties.n.default does not match its schema: $: 'three' is not of type 'integer'",
        ),
    ],
)
def test_match_rules_and_defaults_are_validated_at_load(extra: dict[str, Any], problem: str) -> None:
    with pytest.raises(PlanError) as refused:
        plan_from_data({"version": 1, "name": "t", "steps": [{"id": "a", "arm": "coder"}], **extra}, "t.yaml")
    assert str(refused.value) == f"t.yaml: {problem}"


def test_every_shipped_template_can_be_filled_from_its_defaults() -> None:
    for plan in shipped_templates().values():
        assert plan.match.keywords and plan.match.patterns
        assert schema_errors(defaults_only(plan, {}), plan.input_schema) == []


async def test_pathological_answers_never_crash_constrained_mode() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    for answer in (deep, '{"question": ' + deep[:-1], {"question": "not text"}):  # the last: a buggy adapter
        model = ScriptedModel([answer])  # type: ignore[list-item]
        choice = await choose(PlannerMode.CONSTRAINED, template="answer-with-citations", task="q", model=model)
        assert choice.input == {"question": "What are the main points of the collection?", "collection": "default"}
    picker = ScriptedModel(['{"template": ' + deep, "{}"])
    picked = await choose(PlannerMode.CONSTRAINED, task="bonjour", model=picker)
    assert picked.plan.name == "answer-with-citations"


async def test_a_plan_nested_too_deep_falls_back() -> None:
    schema = '{"not": ' * 300 + "{}" + "}" * 300  # JSON can hold it; the schema checks recurse
    answer = json.dumps(WRITTEN)[:-1] + ', "input_schema": ' + schema + "}"
    choice = await delegate(answer)
    assert choice.plan.name == "answer-with-citations"
    assert choice.reason.startswith("delegated plan: nested too deep; fell back")
