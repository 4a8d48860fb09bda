"""Per-request cost of the guard stages (not collected by pytest). Prints numbers; asserts nothing.

    .venv/bin/python -m bench.guard_stages_bench [--iterations 2000] [--repeat 3]

Each case runs a stage hook exactly as the pipeline does (a fresh ``RequestContext`` per request,
the vault system prompt and canary in it as the prompt stage leaves them), driven without an event
loop round trip so only the stage's own work is timed:

* ``in``: ``GuardInStage.on_request`` (policy resolution, input scan, the guard state);
* ``out``: ``GuardOutStage.on_response`` on a complete answer;
* ``stream``: ``GuardOutStage.on_stream`` over the answer in 4-character deltas (about one token
  each) or 20-character ones (as ``bench/guard_bench.py`` feeds), every chunk pulled through the
  wrapper, ``finish`` included.

Every request carries a new user message (the stage remembers scans of texts it has seen before,
which the ``history`` case shows). Next to each, the bare scanner call on the same text
(``scanner`` rows) shows what the stage adds.
Texts come from ``bench/guard_bench.py``: a benign 2 KB prompt, a 2 KB answer, its system prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

from bastion.auth.principal import Principal, Role
from bastion.config.settings import Settings
from bastion.gateway.context import RequestContext, Timing
from bastion.gateway.stages.guard_in import GuardInStage
from bastion.gateway.stages.guard_out import GuardOutStage
from bastion.guard import GuardPolicy, InputGuard, OutputGuard, StreamingOutputGuard, make_canary, plant_canary
from bastion.guard.service import GuardService
from bastion.guard.state import PlantedPrompt
from bastion.providers.base import ChatResponse
from bench import guard_bench

SHORT_QUESTION = "Hi! What time is breakfast served, and can I bring my dog to the restaurant?"
SHORT_ANSWER = "Breakfast is served from seven to eleven in the garden room. Dogs are welcome on the terrace."
DELTA = 4


def _letters(number: int) -> str:
    """``number`` as 8 lower-case letters (base 26)."""
    out = []
    for _ in range(8):
        number, digit = divmod(number, 26)
        out.append(chr(97 + digit))
    return "".join(out)


def drive(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits on I/O to completion, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine waited on something")


def drain(stream: AsyncGenerator[Any, None]) -> int:
    count = 0
    while True:
        try:
            drive(stream.__anext__())
        except StopAsyncIteration:
            return count
        count += 1


def chunks_of(text: str, delta: int = DELTA) -> list[dict[str, Any]]:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for i in range(0, len(text), delta):
        out.append(
            {**base, "choices": [{"index": 0, "delta": {"content": text[i : i + delta]}, "finish_reason": None}]}
        )
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out.append({**base, "choices": [], "usage": {"prompt_tokens": 500, "completion_tokens": 500, "total_tokens": 1000}})
    return out


async def upstream(chunks: list[dict[str, Any]]) -> AsyncGenerator[dict[str, Any], None]:
    for chunk in chunks:
        yield chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1, help="keep, per case, the run with the lowest wall p95")
    args = parser.parse_args()

    settings = Settings()
    # The stages' one collaborator, as the composition root builds it (not started: no warm-up).
    guard = GuardService(settings.guard, prompt_cache_ttl_s=settings.vault.cache_ttl_s)
    guard_in, guard_out = GuardInStage(guard), GuardOutStage(guard)
    system = guard_bench.SYSTEM_PROMPT
    canary = make_canary()
    planted = plant_canary(system, canary)
    principal = Principal(
        tenant_id="t",
        tenant_name="acme",
        role=Role.SERVICE,
        key_id="k",
        tenant_settings={"guard": {"injection": "flag"}},
        key_settings={"guard": {"pii": "redact"}},
    )

    serial = itertools.count()

    def fresh(question: str) -> str:
        # A new message every time (its last 8 characters replaced by a serial spelled in letters:
        # digits would wake the PII recognizers and change the work measured): the stage
        # remembers scans of texts it has seen, which is what the ``history`` case measures.
        return question[: len(question) - 8] + _letters(next(serial))

    def context(
        question: str, *, stream: bool = False, with_principal: bool = False, history: list[Any] | None = None
    ) -> RequestContext:
        ctx = RequestContext(
            request_id="req_bench",
            dialect="openai",
            endpoint="chat",
            body={
                "model": "m",
                "messages": [
                    {"role": "system", "content": planted},
                    *(history or []),
                    {"role": "user", "content": fresh(question)},
                ],
            },
            model="m",
            timing=Timing(),
            stream=stream,
            principal=principal if with_principal else None,
        )
        ctx.planted_prompt = PlantedPrompt(system, canary)  # as the prompt stage leaves it
        return ctx

    def stage_in(question: str, with_principal: bool = False, history: list[Any] | None = None) -> Callable[[], object]:
        return lambda: drive(guard_in.on_request(context(question, with_principal=with_principal, history=history)))

    def stage_out(question: str, answer: str) -> Callable[[], object]:
        def run() -> object:
            ctx = context(question)
            drive(guard_in.on_request(ctx))
            body = {
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]
            }
            return drive(guard_out.on_response(ctx, ChatResponse(body=body)))

        return run

    def stage_stream(question: str, answer: str, delta: int = DELTA) -> Callable[[], object]:
        chunks = chunks_of(answer, delta)

        def run() -> object:
            ctx = context(question, stream=True)
            drive(guard_in.on_request(ctx))
            return drain(guard_out.on_stream(ctx, upstream(chunks)))

        return run

    def scanner_in(question: str) -> Callable[[], object]:
        guard = InputGuard.for_policy(GuardPolicy())
        return lambda: guard.scan_messages(
            [{"role": "system", "content": planted}, {"role": "user", "content": fresh(question)}]
        )

    def scanner_out(answer: str, stream: bool = False, delta: int = DELTA) -> Callable[[], object]:
        guard = OutputGuard(GuardPolicy(), system_prompt=system, canary=canary)  # built once, as a cache would
        if not stream:
            return lambda: guard.scan_text(answer)

        def run() -> object:
            streaming = StreamingOutputGuard(guard)
            out = [streaming.feed(answer[i : i + delta]) for i in range(0, len(answer), delta)]
            out.append(streaming.finish())
            return out

        return run

    long_question, long_answer = guard_bench.fill(guard_bench.BENIGN), guard_bench.fill(guard_bench.ANSWER)
    small_deltas, large_deltas = chunks_of(long_answer), chunks_of(long_answer, 20)
    cases: dict[str, Callable[[], object]] = {
        "short chat   in      stage": stage_in(SHORT_QUESTION),
        "short chat   in      stage + key/tenant policy": stage_in(SHORT_QUESTION, with_principal=True),
        "short chat   in      scanner": scanner_in(SHORT_QUESTION),
        "short chat   in+out  stages (complete)": stage_out(SHORT_QUESTION, SHORT_ANSWER),
        "short chat   in+out  stages (stream)": stage_stream(SHORT_QUESTION, SHORT_ANSWER),
        "2KB          in      stage": stage_in(long_question),
        "2KB history + short  in      stage (history seen before)": stage_in(
            SHORT_QUESTION,
            history=[
                {"role": "user", "content": long_question},
                {"role": "assistant", "content": guard_bench.fill(guard_bench.ANSWER)},
            ],
        ),
        "2KB          in      scanner": scanner_in(long_question),
        "2KB          out     scanner (complete)": scanner_out(long_answer),
        "2KB in + 2KB out     stages (complete)": stage_out(long_question, long_answer),
        "2KB          out     scanner (stream, 4-char deltas)": scanner_out(long_answer, stream=True),
        "2KB in + 2KB out     stages (stream, 4-char deltas)": stage_stream(long_question, long_answer),
        "2KB          out     scanner (stream, 20-char deltas)": scanner_out(long_answer, stream=True, delta=20),
        # Pulling the chunks through async generators costs this much without any stage: the
        # pipeline pays it anyway, so subtract it from the stream rows to get the stages' cost.
        "2KB          harness (stream, 4-char deltas)": lambda: drain(upstream(small_deltas)),
        "2KB          harness (stream, 20-char deltas)": lambda: drain(upstream(large_deltas)),
        "2KB in + 2KB out     stages (stream, 20-char deltas)": stage_stream(long_question, long_answer, 20),
    }
    results: dict[str, dict[str, float]] = {}
    for _ in range(max(1, args.repeat)):
        for name, function in cases.items():
            numbers = guard_bench.measure(function, args.iterations)
            if name not in results or numbers["p95_us"] < results[name]["p95_us"]:
                results[name] = numbers
    print(
        f"guard stages, {args.iterations} iterations per case (best of {args.repeat}), Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs, "
        f"calibration loop {guard_bench.calibration_ms():.1f} ms"
    )
    print(f"{'case':<56}{'wall p50':>9}{'p95':>7}{'p99':>7}   {'cpu p50':>8}{'p95':>7}{'p99':>7}   (us)")
    for name, n in results.items():
        print(
            f"{name:<56}{n['p50_us']:>9.0f}{n['p95_us']:>7.0f}{n['p99_us']:>7.0f}"
            f"   {n['cpu_p50_us']:>8.0f}{n['cpu_p95_us']:>7.0f}{n['cpu_p99_us']:>7.0f}"
        )


if __name__ == "__main__":
    asyncio.run(asyncio.sleep(0))  # import-time warm-up of asyncio, outside the measurements
    main()
