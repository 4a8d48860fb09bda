"""Latency of the prompt analyzer on one core: an 8,000-token prompt, p50 / p95 / p99. Prints
numbers; asserts nothing.

    .venv/bin/python bench/analyzer_bench.py                 # 200 iterations per case
    .venv/bin/python bench/analyzer_bench.py --iterations 500 --json

The prompt is a generated support-bot system prompt (role, policies, a product catalogue, FAQ
entries, worked examples, output rules, some of the defects the library looks for) plus a user
template with variables, about 8,000 tokens in all (the count is printed). Cases:

* ``same prompt``: the same prompt analysed again and again (the tokenizer's caches warm);
* ``new prompt each time``: every iteration's prompt differs (other numbers and names), so the
  text cache misses and only the word cache helps, as when authors edit and re-analyse;
* ``first analysis``: one analysis in a fresh process state, after the tokenizer is loaded
  (its one-off load time is printed separately);
* ``exact cl100k``: the same prompt for ``gpt-4``, counted exactly with cl100k_base.

Token counts use SmolLM2's BPE (estimates, the default) except in the last case.

The process is pinned to one CPU (``--cpu``, default 0) where the OS allows it. Each case is
reported as wall-clock time and as CPU time of the analysing thread: on a machine shared with
other work the wall time includes waiting for the core, the CPU time is what one core spends.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import statistics
import time

from bastion.analyzer.engine import Analyzer
from bastion.analyzer.model import PromptText
from bastion.analyzer.tokens import count_tokens
from bastion.usage import tokenizer_name

PRODUCTS = ["router", "modem", "mesh extender", "smart plug", "camera", "doorbell", "thermostat", "hub", "sensor"]
ADJECTIVES = ["compact", "outdoor", "premium", "basic", "wireless", "dual-band", "weatherproof", "refurbished"]
ISSUES = [
    "does not power on",
    "drops the connection every few hours",
    "shows a red light",
    "cannot be paired with the app",
    "reports the wrong temperature",
    "records only at night",
    "is slower than the plan promises",
    "beeps at random",
]
STEPS = [
    "ask for the serial number printed under the device",
    "check the firmware version in the app",
    "ask the customer to restart the device and wait two minutes",
    "confirm the plan on the customer's account",
    "check the outage map for the customer's postcode",
    "offer a replacement if the warranty is still valid",
    "escalate to the second-line team with the diagnostic code",
    "send the reset guide by email",
]


def build_prompt(seed: int, target_tokens: int = 8000) -> PromptText:
    rng = random.Random(seed)
    lines = [
        "# Role",
        "You are Nova, the support assistant of Lumen Networks, a home-internet and smart-home company. "
        "You write to customers in a friendly, calm and precise tone.",
        "",
        "# Task",
        "Answer the customer's question using only the policies, the catalogue and the answers below. "
        "Please note that you must not promise refunds or compensation that the policies do not grant.",
        "",
        "# Policies",
    ]
    policy = 0
    while policy < 40:
        policy += 1
        days = rng.choice([14, 30, 60, 90])
        lines.append(
            f"{policy}. Policy {seed % 97}-{policy}: a {rng.choice(ADJECTIVES)} {rng.choice(PRODUCTS)} bought "
            f"less than {days} days ago that {rng.choice(ISSUES)} may be returned; {rng.choice(STEPS)}, and "
            f"if that does not help, {rng.choice(STEPS)}. Try to keep the customer informed at every step."
        )
    lines += ["", "# Catalogue"]
    for item in range(120):
        price = rng.randint(19, 499)
        lines.append(
            f"- LN-{seed % 1000:03d}-{item:03d}: {rng.choice(ADJECTIVES)} {rng.choice(PRODUCTS)}, {price}.99 EUR, "
            f"warranty {rng.choice([1, 2, 3])} years, ships in {rng.randint(1, 5)} days."
        )
    lines += ["", "# Frequent questions"]
    faq = 0
    while count_tokens("\n".join(lines)) < target_tokens - 120:
        faq += 1
        product = rng.choice(PRODUCTS)
        lines.append(f"Q{faq}: My {product} {rng.choice(ISSUES)}. What should I do?")
        lines.append(f"A{faq}: First {rng.choice(STEPS)}. Then {rng.choice(STEPS)}. Finally {rng.choice(STEPS)}.")
        if faq % 25 == 0:
            lines.append("Always answer in English. Make sure your answers are in English.")
    lines += [
        "",
        "# Examples",
        "Customer: My camera records only at night.",
        "Nova: I'm sorry about that. Could you tell me the serial number printed under the camera?",
        "",
        "# Output",
        "Be concise. Explain each step in detail. Give a few bullet points with the next steps, etc.",
        "Reply in plain text, at most 150 words, and sign as Nova.",
    ]
    template = (
        "Customer: {{ customer_name }} (plan {{ plan }}, since {{ customer_since }})\n"
        "{% set greeting = 'Hello' %}"
        "Question: {{ question }}\n"
        "Reply in {language}."
    )
    return PromptText(
        "\n".join(lines), template, declared=("customer_name", "plan", "question", "region"), model="bench"
    )


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "mean": statistics.fmean(ordered)}


def _timed(analyzer: Analyzer, prompts: list[PromptText]) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each analysis (on a shared machine the CPU time is the
    one-core figure: wall time there includes waiting for the core)."""
    wall: list[float] = []
    cpu: list[float] = []
    for prompt in prompts:
        c0, t0 = time.thread_time(), time.perf_counter()
        analyzer.analyze(prompt)
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.thread_time() - c0) * 1000.0)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {args.cpu})
    started = time.perf_counter()
    tokenizer_name()  # loads the tokenizer (once per process)
    count_tokens("warm up")
    load_ms = (time.perf_counter() - started) * 1000.0
    analyzer = Analyzer()
    prompt = build_prompt(1)
    tokens = count_tokens(prompt.system) + count_tokens(prompt.template or "")
    prompts = [build_prompt(seed) for seed in range(2, args.iterations + 2)]

    gc.collect()
    cpu0 = time.thread_time()
    first = analyzer.analyze(prompt)
    first_cpu_ms = (time.thread_time() - cpu0) * 1000.0
    first_ms = first.elapsed_ms
    same, same_cpu = _timed(analyzer, [prompt] * args.iterations)
    fresh, fresh_cpu = _timed(analyzer, prompts)
    gpt4 = PromptText(prompt.system, prompt.template, prompt.declared, model="gpt-4")
    analyzer.analyze(gpt4)  # builds cl100k's rank table once
    cl100k, cl100k_cpu = _timed(analyzer, [gpt4] * args.iterations)
    result = {
        "python": platform.python_version(),
        "tokenizer": tokenizer_name(),
        "tokenizer_load_ms": round(load_ms, 1),
        "prompt_tokens": tokens,
        "prompt_chars": len(prompt.system) + len(prompt.template or ""),
        "findings": [f.pattern_id for f in first.findings],
        "first_analysis_ms": round(first_ms, 2),
        "first_analysis_cpu_ms": round(first_cpu_ms, 2),
        "same_prompt_ms": {k: round(v, 2) for k, v in _percentiles(same).items()},
        "same_prompt_cpu_ms": {k: round(v, 2) for k, v in _percentiles(same_cpu).items()},
        "new_prompt_each_time_ms": {k: round(v, 2) for k, v in _percentiles(fresh).items()},
        "new_prompt_each_time_cpu_ms": {k: round(v, 2) for k, v in _percentiles(fresh_cpu).items()},
        "exact_cl100k_ms": {k: round(v, 2) for k, v in _percentiles(cl100k).items()},
        "exact_cl100k_cpu_ms": {k: round(v, 2) for k, v in _percentiles(cl100k_cpu).items()},
        "iterations": args.iterations,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"tokenizer: {result['tokenizer']} (loaded in {load_ms:.0f} ms)")
    print(f"prompt: {tokens} tokens, {result['prompt_chars']} characters; {len(first.findings)} findings")
    print(f"first analysis: {first_ms:.2f} ms wall, {first_cpu_ms:.2f} ms CPU")
    for name in (
        "same_prompt_ms",
        "same_prompt_cpu_ms",
        "new_prompt_each_time_ms",
        "new_prompt_each_time_cpu_ms",
        "exact_cl100k_ms",
        "exact_cl100k_cpu_ms",
    ):
        figures = result[name]
        assert isinstance(figures, dict)
        print(
            f"{name[:-3].replace('_', ' '):<28} p50 {figures['p50']:.2f} ms  p95 {figures['p95']:.2f} ms  "
            f"p99 {figures['p99']:.2f} ms  ({args.iterations} runs)"
        )


if __name__ == "__main__":
    main()
