"""Plan templates: the shipped ones load and run; bad templates give clear errors; the same input
and timings give the same trace."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bastion.agents.arms import ArmResult, StepInput
from bastion.agents.budget import BudgetView, Usage
from bastion.agents.orchestrator import Orchestrator, RunInputError, RunStatus
from bastion.agents.plan import PlanError, parse_plan
from bastion.agents.templates import get_template, load_template, shipped_templates
from bastion.agents.trace import LoopTaken, StepFinished, chain, event_dict, first_broken_link
from tests.agents.fakes import FakeArm, FakeClock, arms, plan


def citation_arms(clock: FakeClock) -> dict[str, FakeArm]:
    async def retrieve(step: StepInput, budget: BudgetView) -> ArmResult:
        clock.t += 0.25
        return ArmResult({"passages": [{"id": "c1", "text": "Paris is the capital of France."}]}, Usage(tool_calls=1))

    async def answer(step: StepInput, budget: BudgetView) -> ArmResult:
        clock.t += 1.5
        assert budget.max_tokens == 1024
        return ArmResult({"text": "Paris [1].", "citations": ["c1"]}, Usage(tokens=300, cost_usd=0.002))

    async def judge(step: StepInput, budget: BudgetView) -> ArmResult:
        cited = step.data["answer"]["citations"]
        return ArmResult({"passed": all(c in {p["id"] for p in step.data["passages"]} for c in cited)})

    return {
        "retriever": FakeArm(behaviour=retrieve),
        "coder": FakeArm(behaviour=answer),
        "judge": FakeArm(behaviour=judge),
    }


async def run_citations() -> tuple[str, list[dict[str, object]], RunStatus]:
    clock = FakeClock()
    result = await Orchestrator(arms(**citation_arms(clock)), clock=clock).run(
        get_template("answer-with-citations"), {"question": "Capital of France?", "collection": "geo"}, run_id="r1"
    )
    return result.trace_hash, [event_dict(e) for e in result.trace], result.status


def test_the_shipped_templates_load() -> None:
    assert set(shipped_templates()) >= {"answer-with-citations", "code-until-tests-pass"}
    with pytest.raises(PlanError, match="no template named 'nope' \\(available: answer-with-citations"):
        get_template("nope")


async def test_answer_with_citations_runs_and_its_trace_is_deterministic() -> None:
    first_hash, first_trace, status = await run_citations()
    assert status is RunStatus.SUCCEEDED
    kinds = [e["kind"] for e in first_trace]
    assert kinds == ["budget_check", "breaker", "step_started", "step_finished"] * 3 + ["run_ended"]
    assert first_trace[-1]["at_s"] == 1.75 and first_trace[-1]["spent"] == {
        "tokens": 300,
        "cost_usd": 0.002,
        "tool_calls": 1,
    }
    for _ in range(9):
        again_hash, again_trace, _ = await run_citations()
        assert again_hash == first_hash and again_trace == first_trace


async def test_code_until_tests_pass_loops_until_the_judge_passes() -> None:
    verdicts = iter([False, False, True])

    async def judge(step: StepInput, budget: BudgetView) -> ArmResult:
        passed = next(verdicts)
        return ArmResult({"passed": passed, "reasons": [] if passed else ["test_x failed"]})

    async def execute(step: StepInput, budget: BudgetView) -> ArmResult:
        return ArmResult({"exit_code": 0}, Usage(tool_calls=1))

    coder = FakeArm(behaviour=lambda s, b: _files())
    orchestrator = Orchestrator(
        arms(guardian=FakeArm(), coder=coder, executor=FakeArm(behaviour=execute), judge=FakeArm(behaviour=judge)),
        clock=FakeClock(),
    )
    result = await orchestrator.run(get_template("code-until-tests-pass"), {"task": "add two numbers"})
    assert result.status is RunStatus.SUCCEEDED and result.output == {"passed": True, "reasons": []}
    assert [c[0].data["feedback"] for c in coder.calls] == [None, ["test_x failed"], ["test_x failed"]]
    assert sum(isinstance(e, LoopTaken) for e in result.trace) == 2
    assert result.iterations == 1 + 3 * 3


async def _files() -> ArmResult:
    return ArmResult({"files": {"add.py": "def add(a, b):\n    return a + b\n"}}, Usage(tokens=50))


async def test_bad_run_input_and_missing_arms_are_clear_errors() -> None:
    template = get_template("answer-with-citations")
    with pytest.raises(RunInputError, match="\\$: 'collection' is a required property"):
        await Orchestrator(arms(**citation_arms(FakeClock()))).run(template, {"question": "q"})
    with pytest.raises(PlanError, match="arms that are not available: judge, retriever"):
        await Orchestrator(arms(coder=FakeArm())).run(template, {"question": "q", "collection": "c"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nname: x\nsteps: [", "<plan>: not valid YAML"),
        ("- 1\n- 2\n", "a plan is a mapping"),
        ("version: 2\nname: x\nsteps: [{id: a, arm: coder}]", "unsupported plan version 2"),
        ("version: 1\nname: x\nsteps: []", "steps: List should have at least 1 item"),
        ("version: 1\nname: x\nsteps: [{id: a, arm: wizard}]", "steps.0.arm: Input should be 'planner'"),
        ("version: 1\nname: x\nsteps: [{id: a, arm: coder, colour: red}]", "steps.0.colour: Extra inputs"),
        ("version: 1\nname: x\nsteps: [{id: a, arm: coder}, {id: a, arm: judge}]", "step id 'a' is used twice"),
        (
            "version: 1\nname: x\nsteps: [{id: a, arm: coder, input: {q: $steps.zz.out}}]",
            "step 'a': $steps.zz.out does not name another step",
        ),
        (
            "version: 1\nname: x\nsteps: [{id: a, arm: coder, input: {q: $other}}]",
            "must start with input. or steps.",
        ),
        (
            "version: 1\nname: x\nsteps: [{id: a, arm: coder, output_schema: {type: banana}}]",
            "steps.a.output_schema is not a valid JSON Schema",
        ),
        (
            "version: 1\nname: x\nsteps: [{id: a, arm: coder, on_failure: {action: retry}}]",
            "action: retry needs retries >= 1",
        ),
        (
            "version: 1\nname: x\nsteps: [{id: a, arm: coder, on_failure: {action: skip, retries: 2}}]",
            "retries is only meaningful with action: retry",
        ),
        (
            "version: 1\nname: x\nsteps: [{id: a, arm: coder, loop_to: b}, {id: b, arm: judge}]",
            "loop_to 'b' does not name this or an earlier step",
        ),
        (
            "version: 1\nname: x\nsteps: [{id: a, arm: coder, loop_until: {path: ok}}]",
            "loop_until needs loop_to",
        ),
        (
            "version: 1\nname: x\nsteps: [{id: a, arm: coder, parallel: g}, {id: b, arm: judge},"
            " {id: c, arm: coder, parallel: g}]",
            "parallel group 'g' must be consecutive steps",
        ),
        (
            "version: 1\nname: x\nsteps: [{id: a, arm: coder, parallel: g}, {id: b, arm: judge, parallel: g,"
            " input: {x: $steps.a.y}}]",
            "$steps.a.y does not name another step outside its group",
        ),
        ("version: 1\nname: x\nbudget: {max_iterations: 0}\nsteps: [{id: a, arm: coder}]", "budget.max_iterations"),
    ],
)
def test_bad_templates_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(text)
    assert message in str(caught.value)


def test_a_template_file_is_named_in_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nname: Bad Name\nsteps: [{id: a, arm: coder}]\n")
    with pytest.raises(PlanError, match=f"{path}: name: String should match pattern"):
        load_template(path)
    with pytest.raises(PlanError, match="cannot read the template"):
        load_template(tmp_path / "missing.yaml")
    assert plan([{"id": "a", "arm": "coder"}]).name == "test-plan"


async def test_the_trace_hash_chain_detects_an_edited_removed_or_added_event() -> None:
    clock = FakeClock()
    result = await Orchestrator(arms(**citation_arms(clock)), clock=clock).run(
        get_template("answer-with-citations"), {"question": "q", "collection": "c"}
    )
    events = result.trace
    links = chain(events)
    assert links[-1] == result.trace_hash and first_broken_link(events, links) is None
    finished = next(i for i, e in enumerate(events) if isinstance(e, StepFinished))
    original = events[finished]
    assert isinstance(original, StepFinished)
    edited = list(events)
    edited[finished] = dataclasses.replace(original, usage=Usage(tokens=1))
    assert first_broken_link(edited, links) == finished
    assert first_broken_link(events[:-1], links) == len(events) - 1
    assert first_broken_link([*events, events[0]], links) == len(events)
    # Each step's budget before (the check) and after (the settled attempt) are in the trace.
    step = events[finished]
    assert isinstance(step, StepFinished) and step.remaining.tool_calls == 3
