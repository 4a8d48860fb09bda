"""Fake JSON models for the planner-mode tests."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from bastion.agents.budget import Usage


@dataclass
class ScriptedModel:
    """Answers each call with the next scripted item (an exception is raised); keeps every call."""

    answers: list[str | Exception]
    usage: Usage = field(default_factory=lambda: Usage(tokens=7))
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def complete_json(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], *, max_tokens: int, seed: int | None = None
    ) -> tuple[str, Usage]:
        self.calls.append({"messages": messages, "schema": schema, "max_tokens": max_tokens, "seed": seed})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer, self.usage


@dataclass
class SeededModel:
    """Writes a random value for each property of the schema it is given, from the call's seed:
    the same seed gives the same answer, as with a real model at a fixed seed."""

    calls: int = 0

    async def complete_json(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], *, max_tokens: int, seed: int | None = None
    ) -> tuple[str, Usage]:
        self.calls += 1
        rng = random.Random(seed)
        answer = {name: _value(rng, spec) for name, spec in schema.get("properties", {}).items()}
        return json.dumps(answer), Usage(tokens=10)


def _value(rng: random.Random, spec: dict[str, Any]) -> Any:
    if "enum" in spec:
        return rng.choice(spec["enum"])
    kind = spec.get("type")
    if kind == "string":
        return "".join(rng.choice("abcdefgh ") for _ in range(rng.randint(0, 12)))
    if kind == "integer":
        return rng.randint(-5, 50)
    if kind == "number":
        return rng.random() * 10
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        return [_value(rng, spec["items"]) for _ in range(rng.randint(0, 3))]
    return None
