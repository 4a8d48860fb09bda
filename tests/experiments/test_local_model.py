"""End to end on the embedded model (SmolLM2): an experiment over two versions of a vault prompt
that differ in their token cap. Requests are assigned, answered by the local model, recorded, and
the results give the short version a stated chance to win on latency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.experiments.model import HEADER
from bastion.stats.assignment import assign
from bastion.store.db import Database
from tests.experiments.support import ExperimentGateway, gateway_settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import running_gateway
from tests.vault.gateway_support import seed_keys

pytestmark = pytest.mark.local_model("chat")
LOCAL = "local/smollm2"
PER_ARM = 4


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    """SQLite only: the model's time, not the database's, is under test here (and it is slow)."""
    return sqlite_database_url


@pytest.fixture
async def local_gateway(
    database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream
) -> AsyncIterator[ExperimentGateway]:
    local_model = {"name": LOCAL, "deployments": [{"provider": "local", "model": "smollm2", "id": "local-smollm2"}]}
    settings = gateway_settings(database_url, tmp_path / "data", fake, [local_model],
                                local={"enabled": True, "embeddings_enabled": False, "n_ctx": 1024})  # fmt: skip
    keys = await seed_keys(database, ("acme",))
    async with running_gateway(settings, timeout_s=120) as running:
        yield ExperimentGateway(running.gateway, running.client, database, settings, keys)


async def test_two_prompt_versions_on_the_local_model(local_gateway: ExperimentGateway) -> None:
    env = local_gateway
    params = {"temperature": 0, "seed": 1}
    await env.prompt(
        "counter",
        [
            {"system_prompt": "You count.", "model": LOCAL, "params": {**params, "max_tokens": 1}},
            {"system_prompt": "You count.", "model": LOCAL, "params": {**params, "max_tokens": 48}},
        ],
    )
    experiment = await env.create(
        {
            "name": "token-cap",
            "target": {"prompt_id": "counter"},
            "variants": [{"name": "long", "prompt_version": 2}, {"name": "short", "prompt_version": 1}],
            "unit": "user",
            "metrics": ["latency_ms", "completion_tokens"],
        }
    )
    # Users known to land PER_ARM in each arm, so both arms have data whatever the experiment's id.
    users: dict[str, list[str]] = {"long": [], "short": []}
    for i in range(200):
        arm = users["long" if assign(experiment["seed"], f"u{i}", 2) == 0 else "short"]
        if len(arm) < PER_ARM:
            arm.append(f"u{i}")
    # Load the model first, outside the experiment (not its target): no arm pays for the loading.
    warm = await env.chat({"model": LOCAL, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})
    assert warm.status_code == 200 and HEADER not in warm.headers
    served: dict[str, int] = {"long": 0, "short": 0}
    for i, user in enumerate(users["long"] + users["short"]):
        content = f"Count from {i} to 100."
        body = {"model": "prompt:counter", "user": user, "messages": [{"role": "user", "content": content}]}
        response = await env.chat(body)
        assert response.status_code == 200, response.text
        served[response.headers[HEADER].removeprefix("token-cap=")] += 1
    assert served == {"long": PER_ARM, "short": PER_ARM}
    rows = await env.rows(2 * PER_ARM, experiment["id"])
    assert {(r.experiment_variant, r.prompt_version, r.model) for r in rows} == {
        ("long", 2, LOCAL),
        ("short", 1, LOCAL),
    }
    assert all(r.completion_tokens <= 1 for r in rows if r.experiment_variant == "short")
    results = (await env.api("GET", f"/{experiment['id']}/results")).json()
    latency = results["metrics"][0]
    comparison = latency["comparisons"][0]
    assert comparison["variant"] == "short" and comparison["chance_to_win"] > 0.95  # lower latency
    assert results["decision"]["action"] == "keep running"  # fewer than 100 units per arm
    assert "below 100 units" in results["decision"]["reason"]
