"""The experiment stage in the real pipeline, on SQLite and PostgreSQL: requests of the target are
rewritten to their variant (model, parameters, prompt version), get ``x-bastion-experiment``, and
are recorded with their arm in the ledger; units outside the coverage, other targets and other
tenants take the control path untouched; the same unit gets the same variant in a second gateway
on the same database, and as ``bastion.stats.assignment`` computes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bastion.experiments.model import HEADER
from bastion.stats.assignment import assign
from bastion.store.db import Database
from tests.experiments.support import MODELS, ExperimentGateway, chat_body, gateway_settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import running_gateway

MODEL_EXPERIMENT = {
    "name": "model-swap",
    "hypothesis": "Model b answers as well, cheaper.",
    "target": {"model": "exp-a"},
    "variants": [
        {"name": "control"},
        {"name": "b-cool", "model": "exp-b", "params": {"temperature": 0.1, "max_tokens": 7}},
    ],
    "unit": "user",
}
USERS = [f"user-{i}" for i in range(24)]


def expected_variant(seed: str, unit: str, names: list[str], coverage: float = 1.0) -> str | None:
    index = assign(seed, unit, len(names), coverage=coverage)
    return names[index] if index >= 0 else None


async def test_requests_get_their_variant_header_and_ledger_arm(
    experiment_gateway: ExperimentGateway, fake: FakeUpstream
) -> None:
    env = experiment_gateway
    experiment = await env.create(MODEL_EXPERIMENT)
    assert experiment["seed"] == experiment["id"]  # GrowthBook's default: the experiment's key
    seen: dict[str, str] = {}
    for user in USERS:
        response = await env.chat(chat_body(user=user, temperature=0.9))
        assert response.status_code == 200, response.text
        name, _, variant = response.headers[HEADER].partition("=")
        assert name == "model-swap"
        assert variant == expected_variant(experiment["seed"], user, ["control", "b-cool"])
        seen[user] = variant
    assert set(seen.values()) == {"control", "b-cool"}  # 24 users do not all land on one side
    # Sticky: the same user again, same variant.
    for user in USERS[:6]:
        again = await env.chat(chat_body(user=user))
        assert again.headers[HEADER] == f"model-swap={seen[user]}"
    # The treatment's requests went to model b with its overrides (they win over the client's).
    treated = fake.requests(MODELS["exp-b"])
    assert len(treated) == sum(1 for u in USERS if seen[u] == "b-cool") + sum(
        1 for u in USERS[:6] if seen[u] == "b-cool"
    )
    assert all(r.body["temperature"] == 0.1 and r.body["max_tokens"] == 7 for r in treated)
    control = fake.requests(MODELS["exp-a"])
    assert control and all("max_tokens" not in r.body for r in control)
    rows = await env.rows(len(USERS) + 6, experiment["id"])
    by_variant = {row.experiment_variant for row in rows}
    assert by_variant == {"control", "b-cool"}
    assert all(row.experiment_unit and len(row.experiment_unit) == 32 for row in rows)
    assert all(row.model == ("exp-b" if row.experiment_variant == "b-cool" else "exp-a") for row in rows)
    # One unit, one digest: a user's rows share it; the raw user id is not stored.
    assert len({row.experiment_unit for row in rows}) == len(USERS)
    assert not any(row.experiment_unit in USERS for row in rows)
    # The ledger's admin listing filters by arm.
    listed = await env.client.get(
        "/api/v1/admin/interactions",
        params={"experiment_id": experiment["id"], "experiment_variant": "b-cool"},
        headers=env.auth("acme-viewer"),
    )
    assert listed.status_code == 200
    assert {row["experiment_variant"] for row in listed.json()["data"]} == {"b-cool"}
    assert len(listed.json()["data"]) == sum(1 for row in rows if row.experiment_variant == "b-cool")


async def test_outside_the_target_coverage_or_tenant_nothing_changes(
    experiment_gateway: ExperimentGateway, fake: FakeUpstream
) -> None:
    env = experiment_gateway
    experiment = await env.create({**MODEL_EXPERIMENT, "coverage": 0.3})
    names = ["control", "b-cool"]
    inside = [u for u in USERS if expected_variant(experiment["seed"], u, names, 0.3) is not None]
    outside = [u for u in USERS if u not in inside]
    assert inside and outside
    for user in outside:
        response = await env.chat(chat_body(user=user))
        assert response.status_code == 200 and HEADER not in response.headers
    for user in inside:
        response = await env.chat(chat_body(user=user))
        assert response.headers[HEADER] == f"model-swap={expected_variant(experiment['seed'], user, names, 0.3)}"
    # Another model, a request without a user, another tenant: the control path, no header.
    other = await env.chat(chat_body(model="exp-b", user=inside[0]))
    anonymous = await env.chat(chat_body())
    globex = await env.chat(chat_body(user=inside[0]), who="globex-service")
    for response in (other, anonymous, globex):
        assert response.status_code == 200 and HEADER not in response.headers
    rows = await env.rows(len(USERS) + 3)
    assigned = [row for row in rows if row.experiment_id is not None]
    assert len(assigned) == len(inside)  # not counted outside the coverage
    # A stopped experiment assigns nobody.
    stopped = await env.api("POST", f"/{experiment['id']}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    after = await env.chat(chat_body(user=inside[0]))
    assert HEADER not in after.headers


async def test_units_by_header_key_and_request(experiment_gateway: ExperimentGateway) -> None:
    env = experiment_gateway
    await env.create({**MODEL_EXPERIMENT, "name": "by-key", "unit": "key"})
    first = await env.chat(chat_body())
    second = await env.chat(chat_body())
    assert first.headers[HEADER] == second.headers[HEADER]  # one key, one variant
    await env.api("POST", "/by-key/stop")
    experiment = await env.create({**MODEL_EXPERIMENT, "name": "by-header"})
    response = await env.chat(chat_body(), **{"x-bastion-user": "user-7"})
    variant = expected_variant(experiment["seed"], "user-7", ["control", "b-cool"])
    assert response.headers[HEADER] == f"by-header={variant}"
    # A stream names its arm too, and the ledger has its time to first token for ttft_ms.
    streamed = await env.chat(chat_body(stream=True), **{"x-bastion-user": "user-7"})
    assert streamed.status_code == 200 and streamed.headers[HEADER] == f"by-header={variant}"
    rows = await env.rows(2, experiment["id"])
    assert [row.ttft_ms is not None for row in rows if row.stream] == [True]


async def test_prompt_versions_are_rendered_for_their_variant(
    experiment_gateway: ExperimentGateway, fake: FakeUpstream
) -> None:
    env = experiment_gateway
    await env.prompt(
        "helper",
        [
            {"system_prompt": "SYSTEM-ONE answer fully.", "model": "exp-a"},
            {"system_prompt": "SYSTEM-TWO answer briefly.", "model": "exp-a"},
        ],
    )
    experiment = await env.create(
        {
            "name": "concise",
            "target": {"prompt_id": "helper"},
            "variants": [{"name": "full", "prompt_label": "production"}, {"name": "brief", "prompt_version": 2}],
            "unit": "request",
        }
    )
    seen: dict[str, int] = {"full": 0, "brief": 0}
    for i in range(16):
        body: dict[str, Any] = {"model": "prompt:helper", "messages": [{"role": "user", "content": f"q{i}"}]}
        if i % 2:  # the same experiment by the bastion field, with the client's own model
            body = {**chat_body(), "bastion": {"prompt_id": "helper"}}
        response = await env.chat(body)
        assert response.status_code == 200, response.text
        header = response.headers[HEADER]
        assert "SYSTEM" not in header
        variant = header.partition("=")[2]
        seen[variant] += 1
        system = fake.requests()[-1].body["messages"][0]["content"]
        assert ("SYSTEM-TWO" if variant == "brief" else "SYSTEM-ONE") in system
    assert seen["full"] and seen["brief"]
    rows = await env.rows(16, experiment["id"])
    assert {(row.experiment_variant, row.prompt_version) for row in rows} == {("full", 1), ("brief", 2)}


async def test_assignment_is_the_same_in_a_second_gateway(
    experiment_gateway: ExperimentGateway, database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream
) -> None:
    env = experiment_gateway
    await env.create(MODEL_EXPERIMENT)
    first = {user: (await env.chat(chat_body(user=user))).headers[HEADER] for user in USERS}
    settings = gateway_settings(database_url, tmp_path / "data2", fake)
    async with running_gateway(settings, timeout_s=30) as other:
        headers = env.auth("acme-service")
        for user in USERS:
            response = await other.client.post("/v1/chat/completions", json=chat_body(user=user), headers=headers)
            assert response.headers[HEADER] == first[user]
