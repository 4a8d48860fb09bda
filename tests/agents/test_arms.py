"""The arms behind capability tokens, run by the orchestrator: deny rules block a tool call before
any process starts; secrets in tool output are redacted before the next model call; the judge's
deterministic checks; the retriever's grant; the shipped templates end to end on fakes."""

from __future__ import annotations

import asyncio
from typing import Any

from structlog.testing import capture_logs

from bastion.agents.arms_guardian import ArmGuard
from bastion.agents.arms_judge import judge
from bastion.agents.budget import RunBudget
from bastion.agents.capability import derive_jti
from bastion.agents.dispatch import RunGrants
from bastion.agents.orchestrator import CancelToken, Orchestrator, RunStatus
from bastion.agents.templates import get_template
from bastion.agents.trace import StepStarted
from bastion.config.guard_policy import GuardPolicy
from tests.agents.armfakes import FakeModel, FakeResult, FakeSandbox, FakeSearcher, RefusedFake, kit
from tests.agents.fakes import FakeClock, plan

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_" + "Zq8Kx2Lm9Pw4Rt7Yv1Nb3Hc6Jd5Fg0Ts2UeAa"


def execute_step(**data: Any) -> dict[str, Any]:
    return {"id": "run", "arm": "executor", "input": data, "budget": {"max_tool_calls": 1}}


async def test_an_executable_outside_the_grant_starts_no_process() -> None:
    sandbox = FakeSandbox()
    k = kit(sandbox=sandbox)
    with capture_logs() as logs:
        result = await Orchestrator(k.arms, clock=FakeClock()).run(plan([execute_step(argv=["rm", "-rf", "/"])]), {})
    assert result.status is RunStatus.BLOCKED
    assert result.reason == "step run: capability denied: executable 'rm' is outside the grant"
    assert sandbox.spawned == []  # zero processes
    assert any(e["event"] == "capability_denied" for e in logs)


async def test_a_file_outside_the_work_directory_starts_no_process() -> None:
    sandbox = FakeSandbox()
    step = execute_step(argv=["python3", "x.py"], files={"../../etc/cron.d/x": "* * * * * boom"})
    result = await Orchestrator(kit(sandbox=sandbox).arms, clock=FakeClock()).run(plan([step]), {})
    assert result.status is RunStatus.BLOCKED and "path '../../etc/cron.d/x' is outside the grant" in result.reason
    assert sandbox.spawned == []


async def test_a_command_the_guard_blocks_starts_no_process() -> None:
    sandbox = FakeSandbox()
    guard = ArmGuard(GuardPolicy(secrets="block"))
    step = execute_step(argv=["python3", "-c", f"print('{GITHUB_TOKEN}')"])
    result = await Orchestrator(kit(sandbox=sandbox, guard=guard).arms, clock=FakeClock()).run(plan([step]), {})
    assert result.status is RunStatus.BLOCKED and "blocked by the guard" in result.reason
    assert sandbox.spawned == []


async def test_a_command_the_sandbox_refuses_blocks_the_run() -> None:
    class Refusing(FakeSandbox):
        async def run(self, spec: Any, *, cancel: asyncio.Event | None = None) -> FakeResult:
            raise RefusedFake("no sandbox tier strong enough")

    result = await Orchestrator(kit(sandbox=Refusing()).arms, clock=FakeClock()).run(
        plan([execute_step(argv=["python3", "t.py"])]), {}
    )
    assert result.status is RunStatus.BLOCKED and "the sandbox refused the command" in result.reason


async def test_secrets_in_tool_output_are_redacted_before_the_next_model_call() -> None:
    sandbox = FakeSandbox([FakeResult(1, f"connecting with {AWS_KEY}\n1 failed".encode(), GITHUB_TOKEN.encode())])
    model = FakeModel([{"files": {"a.py": "x = 1"}}])
    steps = [
        execute_step(argv=["python3", "t.py"]),
        {
            "id": "fix",
            "arm": "coder",
            "input": {"task": "fix it", "stdout": "$steps.run.stdout", "stderr": "$steps.run.stderr"},
            "budget": {"max_tokens": 500},
        },
    ]
    result = await Orchestrator(kit(sandbox=sandbox, model=model).arms, clock=FakeClock()).run(plan(steps), {})
    assert result.status is RunStatus.SUCCEEDED, result.reason
    sent = str(model.calls[0])
    assert AWS_KEY not in sent and GITHUB_TOKEN not in sent
    assert "connecting with" in sent and "1 failed" in sent  # the rest of the output travels
    assert AWS_KEY not in str(result.outputs["run"])


async def test_cancelling_a_run_kills_the_sandboxed_process_and_revokes_its_tokens() -> None:
    sandbox = FakeSandbox(hang=True)
    token = CancelToken()
    k = kit(sandbox=sandbox, cancel=token.event)

    async def cancel_when_started() -> None:
        while not sandbox.spawned:
            await asyncio.sleep(0)
        token.cancel("cancelled by the owner")
        k.verifier.revoke_run("r1")

    canceller = asyncio.create_task(cancel_when_started())
    result = await Orchestrator(k.arms, clock=FakeClock()).run(
        plan([execute_step(argv=["python3", "t.py"]), {"id": "j", "arm": "judge", "input": {"result": "$steps.run"}}]),
        {},
        cancel=token,
        run_id="r1",
    )
    await canceller
    assert result.status is RunStatus.CANCELLED and result.reason == "cancelled by the owner"
    assert len(sandbox.spawned) == 1 and "j" not in result.outputs
    assert sandbox.killed_by_cancel
    assert k.verifier.uses.revoked("r1")


def test_the_judge_checks_exit_codes_test_summaries_citations_and_schemas() -> None:
    assert judge({"result": {"exit_code": 0, "stdout": "3 passed"}}) == (["exit_code"], [])
    assert judge({"result": {"exit_code": 0, "stdout": "3 passed, 0 failed"}}) == (["exit_code"], [])
    assert judge({"result": {"exit_code": 1, "stdout": "1 failed, 2 passed"}})[1] == [
        "exit code 1",
        "tests failed: 1 failed",
    ]
    assert judge({"result": None})[1] == ["result: no command result (the command did not run)"]
    passages = [{"id": "c1", "text": "x"}]
    ok = {"answer": {"text": "x [c1]", "citations": ["c1"]}, "passages": passages, "require_citations": True}
    assert judge(ok) == (["citations"], [])
    bad = {**ok, "answer": {"text": "x", "citations": ["c9"]}}
    assert judge(bad)[1] == ["citations: c9 name no retrieved passage"]
    assert judge({**ok, "answer": {"text": "x", "citations": []}})[1] == ["citations: none given"]
    checks, reasons = judge({"value": {"a": 1}, "schema": {"type": "object", "required": ["b"]}})
    assert checks == ["schema"] and reasons == ["schema: $: 'b' is a required property"]


async def test_answer_with_citations_runs_end_to_end_and_records_a_token_per_attempt() -> None:
    searcher = FakeSearcher()
    model = FakeModel([{"text": "Paris [c1].", "citations": ["c1"]}])
    k = kit(model=model, searcher=searcher)
    data = {"question": "Capital of France?", "collection": "docs"}
    result = await Orchestrator(k.arms, clock=FakeClock()).run(get_template("answer-with-citations"), data, run_id="r9")
    assert result.status is RunStatus.SUCCEEDED, result.reason
    assert result.output == {"passed": True, "reasons": [], "checks": ["citations"]}
    assert searcher.calls == [("Capital of France?", ["docs"], 5)]
    started = [e for e in result.trace if isinstance(e, StepStarted)]
    assert [e.token_jti for e in started] == [
        derive_jti("r9", s, n) for n, s in enumerate(("retrieve", "answer", "judge"), 1)
    ]
    assert all(e.remaining is not None for e in started)


async def test_a_collection_outside_the_grant_is_blocked_before_searching() -> None:
    searcher = FakeSearcher()
    k = kit(model=FakeModel([{}]), searcher=searcher, grants=RunGrants(collections=("docs",)))
    data = {"question": "q", "collection": "hr-private"}
    result = await Orchestrator(k.arms, clock=FakeClock()).run(get_template("answer-with-citations"), data)
    assert result.status is RunStatus.BLOCKED and "collection 'hr-private' is outside the grant" in result.reason
    assert searcher.calls == []


async def test_code_until_tests_pass_loops_on_the_judges_feedback() -> None:
    sandbox = FakeSandbox([FakeResult(1, b"1 failed"), FakeResult(0, b"2 passed")])
    model = FakeModel([{"files": {"sol.py": "def f(): return 0"}}, {"files": {"sol.py": "def f(): return 1"}}])
    k = kit(sandbox=sandbox, model=model)
    data = {"task": "write f returning 1", "tests": "from sol import f\ndef test_f(): assert f() == 1\n"}
    result = await Orchestrator(k.arms, clock=FakeClock()).run(get_template("code-until-tests-pass"), data)
    assert result.status is RunStatus.SUCCEEDED, result.reason
    assert len(sandbox.spawned) == 2 and len(model.calls) == 2
    assert "exit code 1" in str(model.calls[1])  # the judge's reasons reached the second attempt
    assert sandbox.spawned[1].files["sol.py"] == b"def f(): return 1"
    assert "test_solution.py" in sandbox.spawned[1].files


async def test_template_mode_gives_the_same_trace_hash_ten_times_in_ten() -> None:
    hashes = set()
    for _ in range(10):
        model = FakeModel([{"files": {"s.py": "x"}}])
        k = kit(sandbox=FakeSandbox(), model=model)
        result = await Orchestrator(k.arms, clock=FakeClock()).run(
            get_template("code-until-tests-pass"), {"task": "t"}, budget=RunBudget(), run_id="same"
        )
        assert result.status is RunStatus.SUCCEEDED
        hashes.add(result.trace_hash)
    assert len(hashes) == 1
