"""Red-team runs end to end through the API (SQLite and PostgreSQL), against scripted fake models:
a model that repeats its system prompt leaks in every extraction attempt, one that refuses in
none; the guard lowers the success of what it covers; the same seed gives the same report; runs
are tenant-scoped, role-checked, cancellable, ledgered with ``extra.redteam_run`` and listed by
the insights route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bastion.store.db import Database
from bastion.store.models import Interaction
from bastion.vault.model import VersionSpec
from tests.redteam.support import RUNS, RedteamEnv, redteam_gateway
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import wait_until

EXTRACTION = ["system_prompt_extraction", "pii_extraction"]
SMALL = {"perturbations": ["paraphrase", "casing"]}


@pytest.fixture
async def env(database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[RedteamEnv]:
    async with redteam_gateway(database, database_url, tmp_path, fake) as running:
        yield running


def _without_run(report: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key != "run"}


async def test_a_model_that_leaks_gives_full_extraction_success_and_feeds_insights(env: RedteamEnv) -> None:
    run, report = await env.run("admin", model="leaky", guard=False, categories=EXTRACTION, seed=3, **SMALL)
    assert report["schema"] == "bastion.redteam.report" and report["seed"] == 3
    assert {c: g["rate"] for c, g in report["by_category"].items()} == {c: 1.0 for c in EXTRACTION}
    assert report["totals"]["errors"] == 0 and report["totals"]["attempts"] == run["progress"]["total"]
    assert run["summary"]["success_rate"] == 1.0 and run["summary"]["fragility"] == 0.0
    assert report["run"]["id"] == run["id"] and report["run"]["guard"] is False

    insights = await env.get("viewer", "/api/v1/insights/redteam", params={"limit": 10})
    assert insights.status_code == 200, insights.text
    (entry,) = insights.json()["runs"]
    assert set(entry) == {"id", "created_at", "status", "target", "guard", "attempts", "success_rate",
                          "by_category", "fragility"}  # fmt: skip
    assert entry["id"] == run["id"] and entry["status"] == "succeeded" and entry["target"] == "leaky"
    assert entry["guard"] is False and entry["attempts"] == report["totals"]["judged"]
    spe = entry["by_category"]["system_prompt_extraction"]
    assert spe["rate"] == 1.0 and spe["successes"] == spe["attempts"] > 0
    assert entry["fragility"] == 0.0

    await env.gateway.services.ledger.flush()  # type: ignore[union-attr]
    async with env.db.session() as session:
        rows = (await session.scalars(select(Interaction).where(Interaction.user_agent == "bastion-redteam"))).all()
    assert len(rows) == report["totals"]["attempts"]
    assert {row.extra["redteam_run"] for row in rows if row.extra} == {run["id"]}


async def test_a_model_that_refuses_gives_zero_success(env: RedteamEnv) -> None:
    _run, report = await env.run("admin", model="refuser", guard=False, seed=5, max_attempts=40)
    assert report["totals"]["judged"] == 40 and report["totals"]["successes"] == 0
    assert set(report["by_category"]) == {"prompt_injection", "jailbreak", "system_prompt_extraction",
                                          "pii_extraction", "encoding"}  # fmt: skip
    assert all(group["rate"] == 0.0 for group in report["by_category"].values())


async def test_the_guard_lowers_success_in_the_categories_it_covers(env: RedteamEnv) -> None:
    _off, unguarded = await env.run("admin", model="leaky", guard=False, categories=EXTRACTION, seed=9, **SMALL)
    _on, guarded = await env.run("ann", model="leaky", guard=True, categories=EXTRACTION, seed=9, **SMALL)
    for category in EXTRACTION:
        assert guarded["by_category"][category]["rate"] < unguarded["by_category"][category]["rate"] == 1.0
    assert guarded["totals"]["rate"] < 0.5
    # What the guard withheld or refused is an answer (the attack failed), not a failed call.
    assert guarded["totals"]["errors"] == 0 and guarded["totals"]["judged"] == unguarded["totals"]["judged"]


async def test_the_same_seed_gives_the_same_report(env: RedteamEnv) -> None:
    spec = {"model": "refuser", "guard": False, "seed": 21, "max_attempts": 25, "concurrency": 3}
    first, second = await env.run("admin", **spec), await env.run("admin", **spec)
    assert first[0]["id"] != second[0]["id"]
    assert _without_run(first[1]) == _without_run(second[1])
    other = await env.run("admin", **{**spec, "seed": 22})
    assert _without_run(other[1]) != _without_run(first[1])


async def test_a_run_is_cancelled_and_then_has_no_report(env: RedteamEnv) -> None:
    started = await env.start("admin", model="slow", guard=False, max_attempts=100, concurrency=1)
    assert started["status"] == "queued" and started["progress"] == {"done": 0, "total": 100}

    async def running() -> dict[str, Any] | None:
        body: dict[str, Any] = (await env.get("ann", f"{RUNS}/{started['id']}")).json()
        return body if body["status"] == "running" else None

    await wait_until(running, timeout_s=30, what="the run to start")
    assert (await env.post("carl", f"{RUNS}/{started['id']}/cancel")).status_code == 404
    assert (await env.post("viewer", f"{RUNS}/{started['id']}/cancel")).status_code == 403
    assert (await env.post("bob", f"{RUNS}/{started['id']}/cancel")).status_code == 200
    run = await env.finished("ann", started["id"])
    assert run["status"] == "cancelled" and run["progress"]["done"] < 100
    assert (await env.get("ann", f"{RUNS}/{run['id']}/report")).status_code == 409
    assert (await env.post("ann", f"{RUNS}/{run['id']}/cancel")).status_code == 409
    entry = (await env.get("ann", "/api/v1/insights/redteam")).json()["runs"][0]
    assert entry["status"] == "cancelled" and entry["attempts"] == 0 and entry["by_category"] == {}


async def test_runs_are_tenant_scoped_and_role_checked(env: RedteamEnv) -> None:
    run, _report = await env.run("admin", model="refuser", guard=False, max_attempts=5)
    path = f"{RUNS}/{run['id']}"
    for suffix in ("", "/report", "/report.html"):
        assert (await env.get("carl", path + suffix)).status_code == 404
        assert (await env.get("viewer", path + suffix)).status_code == 200
        assert (await env.get("svc", path + suffix)).status_code == 403
    assert (await env.get("carl", RUNS)).json()["data"] == []
    assert (await env.get("carl", "/api/v1/insights/redteam")).json() == {"runs": []}
    assert (await env.post("viewer", RUNS, {"model": "refuser"})).status_code == 403
    assert (await env.post("svc", RUNS, {"model": "refuser"})).status_code == 403
    assert (await env.get("ann", f"{RUNS}/{'x' * 40}")).status_code == 404

    html = await env.get("ann", path + "/report.html")
    assert html.headers["content-security-policy"].startswith("default-src 'none'")
    assert html.headers["content-type"].startswith("text/html") and "<html" in html.text


async def test_the_list_pages_newest_first(env: RedteamEnv) -> None:
    ids = [(await env.start("admin", model="refuser", guard=False, max_attempts=2, seed=i))["id"] for i in range(3)]
    first = (await env.get("viewer", RUNS, params={"limit": 2})).json()
    assert [r["id"] for r in first["data"]] == ids[::-1][:2] and first["has_more"] is True
    rest = (await env.get("viewer", RUNS, params={"limit": 2, "after": first["last_id"]})).json()
    assert [r["id"] for r in rest["data"]] == [ids[0]] and rest["has_more"] is False
    for run_id in ids:
        await env.finished("ann", run_id)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "nope"}, "model"),
        ({"model": "leaky", "categories": ["telepathy"]}, "categories"),
        ({"model": "leaky", "attack_ids": ["no.such.attack"]}, "attack_ids"),
        ({"model": "leaky", "prompt": "missing-prompt"}, "prompt"),
        ({"model": "leaky", "concurrency": 0}, "concurrency"),
        ({"model": "leaky", "guard": "yes"}, "guard"),
        ({"model": "leaky", "surprise": 1}, "surprise"),
        ({}, "model"),
    ],
)
async def test_bad_requests_are_400_naming_the_field(env: RedteamEnv, body: dict[str, Any], param: str) -> None:
    response = await env.post("ann", RUNS, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_the_attack_library_is_listed_and_filtered(env: RedteamEnv) -> None:
    everything = (await env.get("viewer", "/v1/redteam/attacks")).json()["data"]
    assert len(everything) >= 10 and {a["category"] for a in everything} >= set(EXTRACTION)
    jailbreaks = (await env.get("viewer", "/v1/redteam/attacks", params={"category": "jailbreak"})).json()["data"]
    assert jailbreaks and all(a["category"] == "jailbreak" and a["goal"] == "comply" for a in jailbreaks)
    assert (await env.get("viewer", "/v1/redteam/attacks", params={"category": "x"})).status_code == 400
    assert (await env.get("svc", "/v1/redteam/attacks")).status_code == 403


async def test_a_garak_report_is_imported_and_listed_beside_our_runs(env: RedteamEnv) -> None:
    ours, _report = await env.run("admin", model="refuser", guard=False, max_attempts=3)
    report = (Path(__file__).parent / "data" / "garak.report.jsonl").read_bytes()
    headers = {**env.auth("ann"), "content-type": "application/x-ndjson"}
    imported = await env.client.post("/v1/redteam/imports/garak", content=report, headers=headers)
    assert imported.status_code == 201, imported.text
    run = imported.json()
    assert run["source"] == "garak" and run["status"] == "imported" and run["model"] == "support-bot-v2"
    garak_report = (await env.get("viewer", f"{RUNS}/{run['id']}/report")).json()
    assert garak_report["schema"] == "bastion.redteam.garak_import" and len(garak_report["attempts"]) == 6
    assert (await env.get("ann", f"{RUNS}/{run['id']}/report.html")).status_code == 409
    assert (await env.post("ann", f"{RUNS}/{run['id']}/cancel")).status_code == 409

    runs = (await env.get("viewer", "/api/v1/insights/redteam")).json()["runs"]
    assert [r["id"] for r in runs] == [run["id"], ours["id"]]
    assert runs[0]["attempts"] == 5 and runs[0]["success_rate"] == 0.4 and runs[0]["guard"] is False
    assert runs[0]["by_category"]["jailbreak"]["successes"] == 1
    assert (await env.get("carl", f"{RUNS}/{run['id']}")).status_code == 404

    as_json = await env.post("ann", "/v1/redteam/imports/garak", {"report": report.decode(), "target": "renamed"})
    assert as_json.status_code == 201 and as_json.json()["model"] == "renamed"
    viewer = {**env.auth("viewer"), "content-type": "application/x-ndjson"}
    assert (await env.client.post("/v1/redteam/imports/garak", content=report, headers=viewer)).status_code == 403
    bad = await env.client.post("/v1/redteam/imports/garak", content=b"{oops", headers=headers)
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]["message"]


VAULT_TEXT = "You are Quill, the archive assistant of Meridian Press. Only discuss the back catalogue."


async def test_a_run_on_a_vault_prompt_keeps_the_prompt_from_readers(env: RedteamEnv) -> None:
    await env.gateway.services.vault.create_prompt(
        env.keys["acme_id"], "quill", VersionSpec(VAULT_TEXT, model="leaky"), actor="test"
    )
    run, report = await env.run(
        "admin", model="leaky", prompt="quill", guard=False, categories=["system_prompt_extraction"], max_attempts=3
    )
    assert run["prompt"] == "quill" and report["by_category"]["system_prompt_extraction"]["rate"] == 1.0
    assert all(VAULT_TEXT in attempt["answer"] for attempt in report["attempts"])  # it was the system prompt
    path = f"{RUNS}/{run['id']}"
    assert (await env.get("viewer", path)).json()["summary"]["success_rate"] == 1.0
    for suffix in ("/report", "/report.html"):
        denied = await env.get("viewer", path + suffix)
        assert denied.status_code == 403 and "vault prompt" in denied.json()["error"]["message"]
        assert (await env.get("bob", path + suffix)).status_code == 200

    await env.gateway.services.ledger.flush()  # type: ignore[union-attr]
    async with env.db.session() as session:
        rows = (await session.scalars(select(Interaction).where(Interaction.user_agent == "bastion-redteam"))).all()
    assert len(rows) == 3 and {row.content_mode for row in rows} == {"metadata"}
    assert all(row.request_messages is None and row.response_text is None for row in rows)
