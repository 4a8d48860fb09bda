"""``/api/v1/admin/experiments`` and ``POST /v1/feedback`` over HTTP with real keys: roles, tenant
isolation, the life cycle (draft, running, stopped), clear 4xx answers, and feedback only on the
caller's tenant's interactions."""

from __future__ import annotations

import typing

import pytest

from bastion.experiments import model
from bastion.experiments.metrics import METRICS
from bastion.openapi import experiment_operations as ops
from tests.experiments.support import ExperimentGateway, chat_body
from tests.experiments.test_gateway import MODEL_EXPERIMENT


def test_the_documented_values_are_the_package_s() -> None:
    assert typing.get_args(ops._Metric) == tuple(METRICS) == model.METRIC_NAMES
    assert typing.get_args(ops._Unit) == model.UNITS
    assert typing.get_args(ops._Method) == model.METHODS
    assert typing.get_args(ops._Status) == model.STATUSES


async def test_life_cycle_and_roles(experiment_gateway: ExperimentGateway) -> None:
    env = experiment_gateway
    created = await env.create(MODEL_EXPERIMENT, start=False, who="acme-developer")
    assert created["status"] == "draft" and created["weights"] == [0.5, 0.5] and created["method"] == "bayesian"
    ref = created["id"]
    # Viewers read, do not write; service keys do neither.
    assert (await env.api("GET", f"/{ref}", who="acme-viewer")).status_code == 200
    assert (await env.api("POST", f"/{ref}/start", who="acme-viewer")).status_code == 403
    assert (await env.api("GET", "", who="acme-service")).status_code == 403
    assert (await env.api("POST", "", json=MODEL_EXPERIMENT, who="acme-service")).status_code == 403
    # Draft: the definition may change; by name or id.
    changed = await env.api("PATCH", "/model-swap", json={"weights": [0.8, 0.2], "coverage": 0.5})
    assert changed.status_code == 200 and changed.json()["weights"] == [0.8, 0.2]
    started = await env.api("POST", f"/{ref}/start")
    assert started.status_code == 200 and started.json()["status"] == "running" and started.json()["started_at"]
    # Running: who-gets-what is fixed, the hypothesis is not.
    moved = await env.api("PATCH", f"/{ref}", json={"weights": [0.5, 0.5]})
    assert moved.status_code == 409 and "weights" in moved.json()["error"]["message"]
    noted = await env.api("PATCH", f"/{ref}", json={"hypothesis": "b is as good"})
    assert noted.status_code == 200 and noted.json()["hypothesis"] == "b is as good"
    assert (await env.api("POST", f"/{ref}/start")).status_code == 409
    assert (await env.api("DELETE", f"/{ref}")).status_code == 409  # stop it first
    # A second experiment on the same target cannot run at the same time.
    twin = await env.create({**MODEL_EXPERIMENT, "name": "twin"}, start=False)
    assert (await env.api("POST", f"/{twin['id']}/start")).status_code == 409
    listed = await env.api("GET", "?status=running", who="acme-viewer")
    assert [e["name"] for e in listed.json()["data"]] == ["model-swap"]
    assert (await env.api("POST", f"/{ref}/stop")).status_code == 200
    assert (await env.api("POST", f"/{ref}/stop")).status_code == 409
    assert (await env.api("DELETE", f"/{ref}")).status_code == 200
    assert (await env.api("GET", f"/{ref}")).status_code == 404


async def test_another_tenant_sees_nothing(experiment_gateway: ExperimentGateway) -> None:
    env = experiment_gateway
    created = await env.create(MODEL_EXPERIMENT)
    for path, method in [
        (f"/{created['id']}", "GET"),
        ("/model-swap", "GET"),
        (f"/{created['id']}/stop", "POST"),
        (f"/{created['id']}/results", "GET"),
        (f"/{created['id']}/report", "GET"),
        (f"/{created['id']}/weights", "GET"),
        (f"/{created['id']}", "DELETE"),
    ]:
        response = await env.api(method, path, who="globex-admin")
        assert response.status_code == 404, (method, path, response.text)
    assert (await env.api("GET", who="globex-admin")).json()["data"] == []
    # The same name is free in another tenant.
    assert (await env.api("POST", json=MODEL_EXPERIMENT, who="globex-admin")).status_code == 201
    assert (await env.api("GET", f"/{created['id']}")).json()["status"] == "running"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"name": "bad name!"}, "name"),
        ({"target": {"model": "a", "prompt_id": "b"}}, "target"),
        ({"variants": [{"name": "only"}]}, "variants"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "variants"),
        ({"variants": [{"name": "a"}, {"name": "b", "prompt_version": 2}]}, "variants[1]"),
        ({"variants": [{"name": "a"}, {"name": "b", "params": {"messages": []}}]}, "variants[1].params"),
        ({"weights": [0.7, 0.7]}, "weights"),
        ({"coverage": 0}, "coverage"),
        ({"unit": "team"}, "unit"),
        ({"metrics": ["happiness"]}, "metrics"),
        ({"method": "magic"}, "method"),
        ({"colour": "red"}, "colour"),
        ({"variants": [{"name": "a"}, {"name": "b", "model": "no-such-model"}]}, "variants[1].model"),
        ({"target": {"model": "no-such-model"}}, "target.model"),
    ],
)
async def test_bad_definitions_are_400_naming_the_field(
    experiment_gateway: ExperimentGateway, change: dict[str, object], param: str
) -> None:
    response = await experiment_gateway.api("POST", json={**MODEL_EXPERIMENT, **change})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_feedback_is_tenant_isolated(experiment_gateway: ExperimentGateway) -> None:
    env = experiment_gateway
    answer = await env.chat(chat_body(user="u1"))
    interaction = answer.headers["x-request-id"]
    await env.rows(1)
    url = "/v1/feedback"
    up = await env.client.post(
        url, json={"interaction_id": interaction, "thumbs": "up"}, headers=env.auth("acme-developer")
    )
    assert up.status_code == 201, up.text
    assert up.json()["score"] == 1.0 and up.json()["kind"] == "thumbs"
    rated = await env.client.post(
        url, json={"interaction_id": interaction, "score": 4, "comment": "good"}, headers=env.auth("acme-service")
    )
    assert rated.status_code == 201 and rated.json()["score"] == 4.0
    # Another tenant's key: the interaction does not exist for it.
    foreign = await env.client.post(
        url, json={"interaction_id": interaction, "thumbs": "down"}, headers=env.auth("globex-developer")
    )
    assert foreign.status_code == 404
    assert (await env.client.post(url, json={"interaction_id": "req_nope", "thumbs": "up"},
                                  headers=env.auth("acme-developer"))).status_code == 404  # fmt: skip
    viewer = await env.client.post(
        url, json={"interaction_id": interaction, "thumbs": "up"}, headers=env.auth("acme-viewer")
    )
    assert viewer.status_code == 403
    for body, param in [
        ({"interaction_id": interaction}, "score"),
        ({"interaction_id": interaction, "thumbs": "up", "score": 1}, "score"),
        ({"interaction_id": interaction, "thumbs": "sideways"}, "thumbs"),
        ({"interaction_id": interaction, "thumbs": {}}, "thumbs"),
        ({"interaction_id": interaction, "score": "high"}, "score"),
        ({"thumbs": "up"}, "interaction_id"),
    ]:
        bad = await env.client.post(url, json=body, headers=env.auth("acme-developer"))
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param, (body, bad.text)


async def test_summary_analysis_and_sample_size_endpoints(experiment_gateway: ExperimentGateway) -> None:
    """The same answers as the CLI; bad input is a 400 naming the problem; a viewer may call them,
    a service key may not."""
    from bastion.stats.analyze import analyze

    env = experiment_gateway
    arms = [{"name": "a", "n": 2000, "sum": 200}, {"name": "b", "n": 2000, "sum": 250}]
    summary = {"metric": "binomial", "arms": arms}
    answer = await env.api("POST", "/analyze", json=summary, who="acme-viewer")
    assert answer.status_code == 200, answer.text
    assert answer.json() == analyze(summary)
    sized = await env.api("POST", "/sample-size", json={"baseline": 0.1, "mde": 0.02}, who="acme-viewer")
    assert sized.json()["per_arm"] == 3841 and sized.json()["method"] == "pooled"
    assert (await env.api("POST", "/analyze", json=summary, who="acme-service")).status_code == 403
    for path, body, message in (
        ("/analyze", {"metric": "binomial", "arms": [{"name": "a", "n": 10, "sum": 20}]}, "arms"),
        ("/sample-size", {"baseline": 0.1}, "mde is required"),
        ("/sample-size", {"baseline": 0.1, "mde": 0.02, "method": "exact"}, "method must be one of"),
        ("/sample-size", [1, 2], "JSON object"),
        ("/sample-size", {"baseline": 0.1, "mde": 0.02, "alpha": 5e-324}, "no sample size"),  # z is infinite
        ("/sample-size", {"baseline": 5e-324, "mde": -3.78e16, "sd": 1.2e308, "sequential": True}, "no sample size"),
    ):
        bad = await env.api("POST", path, json=body)
        assert bad.status_code == 400 and message in bad.json()["error"]["message"], bad.text
