"""End to end, on SQLite and PostgreSQL: an experiment over two versions of a vault prompt, each
version on its own model, in front of a fake upstream that fails 30% of version 1's requests and
10% of version 2's (seeded). Requests are assigned, rewritten and recorded; clients send feedback;
the results and the report (over HTTP and from the CLI) name version 2 the winner with a stated
chance to win."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.experiments.model import HEADER
from tests.experiments.support import MODELS, ExperimentGateway
from tests.support.fake_upstream import FakeUpstream

REQUESTS = 300


def _script(fake: FakeUpstream, upstream: str, failure: float, seed: int) -> None:
    rng = random.Random(seed)
    fake.script(upstream, ["500" if rng.random() < failure else "ok" for _ in range(REQUESTS)])


async def test_two_prompt_versions_the_better_one_wins(
    experiment_gateway: ExperimentGateway, fake: FakeUpstream, database_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    env = experiment_gateway
    await env.prompt(
        "support",
        [
            {"system_prompt": "You are a support agent. Be thorough.", "model": "exp-a"},
            {"system_prompt": "You are a support agent. Be brief.", "model": "exp-b"},
        ],
    )
    _script(fake, MODELS["exp-a"], 0.30, seed=1)
    _script(fake, MODELS["exp-b"], 0.10, seed=2)
    experiment = await env.create(
        {
            "name": "brief-support",
            "hypothesis": "The brief version fails less often.",
            "target": {"prompt_id": "support"},
            "variants": [{"name": "thorough", "prompt_version": 1}, {"name": "brief", "prompt_version": 2}],
            "unit": "request",
            "metrics": ["error_rate", "latency_ms", "feedback", "cost_per_success"],
            "method": "bayesian",
        }
    )
    statuses: dict[str, list[int]] = {"thorough": [], "brief": []}
    answered: list[tuple[str, str]] = []
    for i in range(REQUESTS):
        response = await env.chat({"model": "prompt:support", "messages": [{"role": "user", "content": f"q{i}"}]})
        variant = response.headers[HEADER].removeprefix("brief-support=")
        statuses[variant].append(response.status_code)
        if response.status_code == 200:
            answered.append((variant, response.headers["x-request-id"]))
    assert all(len(s) > REQUESTS // 3 for s in statuses.values())  # a fair split of 300 requests
    # The thorough version's model got exactly the thorough requests, and vice versa.
    assert len(fake.requests(MODELS["exp-a"])) == len(statuses["thorough"])
    assert len(fake.requests(MODELS["exp-b"])) == len(statuses["brief"])
    await env.rows(REQUESTS, experiment["id"])
    for variant, interaction in answered[:40]:
        thumbs = "up" if variant == "brief" else "down"
        sent = await env.client.post(
            "/v1/feedback", json={"interaction_id": interaction, "thumbs": thumbs}, headers=env.auth("acme-service")
        )
        assert sent.status_code == 201, sent.text

    results = (await env.api("GET", f"/{experiment['id']}/results", who="acme-viewer")).json()
    assert results["units"] == {name: len(s) for name, s in statuses.items()}
    errors = next(m for m in results["metrics"] if m["name"] == "error_rate")
    observed = {v["name"]: v["mean"] for v in errors["variants"]}
    for name, codes in statuses.items():
        assert observed[name] == pytest.approx(sum(1 for c in codes if c >= 400) / len(codes))
    comparison = errors["comparisons"][0]
    assert comparison["variant"] == "brief" and comparison["chance_to_win"] > 0.95
    assert comparison["expected"] < 0  # fewer errors
    decision = results["decision"]
    assert decision["action"] == "ship" and decision["variant"] == "brief"
    assert f"{comparison['chance_to_win']:.1%} chance to beat control on error_rate" in decision["reason"]
    feedback = next(m for m in results["metrics"] if m["name"] == "feedback")
    assert {v["name"]: v["mean"] for v in feedback["variants"]} == {"thorough": 0.0, "brief": 1.0}
    report = await env.api("GET", f"/{experiment['id']}/report", who="acme-viewer")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/plain")
    assert "Decision: ship brief" in report.text and "Be brief" not in report.text

    # The CLI reads the same database and says the same.
    config = tmp_path / "bastion.yaml"
    config.write_text(yaml.safe_dump({"database_url": database_url, "data_dir": str(tmp_path / "cli"),
                                      "local": {"enabled": False}}))  # fmt: skip
    for name in [name for name in os.environ if name.startswith("BASTION_")]:
        monkeypatch.delenv(name)

    def cli(*args: str) -> Any:
        result = CliRunner().invoke(app, ["experiments", *args, "--config", str(config)])
        assert result.exit_code == 0, result.output
        return result.output

    printed = await asyncio.to_thread(cli, "report", experiment["id"])
    assert "Decision: ship brief" in printed
    listed = await asyncio.to_thread(cli, "list", "--tenant", "acme")
    assert experiment["id"] in listed and "running" in listed
    stopped = await asyncio.to_thread(cli, "stop", "brief-support", "--tenant", "acme")
    assert '"status": "stopped"' in stopped
    shown = await asyncio.to_thread(cli, "results", experiment["id"])
    assert '"action": "ship"' in shown
