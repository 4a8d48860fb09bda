"""Model-only runs are the admin's, a run's progress over server-sent events, seed 004's routes
under ``/api/v1/red-team`` and guard effectiveness between a guard-on and a model-only run (API,
SQLite and PostgreSQL, scripted fake models)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.redteam.effectiveness import guard_effectiveness
from bastion.store.db import Database
from tests.redteam.support import RUNS, RedteamEnv, redteam_gateway
from tests.support.fake_upstream import FakeUpstream

EXTRACTION = ["system_prompt_extraction", "pii_extraction"]
SEED = "/api/v1/red-team"


@pytest.fixture
async def env(database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[RedteamEnv]:
    async with redteam_gateway(database, database_url, tmp_path, fake) as running:
        yield running


def events_of(text: str) -> list[tuple[int | None, str, Any]]:
    """(id, event, data) of each event of a server-sent-events body (comments left out)."""
    out: list[tuple[int | None, str, Any]] = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            event_id = int(fields["id"]) if "id" in fields else None
            out.append((event_id, fields["event"], json.loads(fields["data"])))
    return out


async def resume(env: RedteamEnv, path: str, last_id: str) -> httpx.Response:
    return await env.client.get(path, headers={**env.auth("ann"), "last-event-id": last_id})


async def test_a_model_only_run_needs_the_admin_role(env: RedteamEnv) -> None:
    for body in ({"model": "refuser", "guard": False}, {"model": "refuser", "mode": "model"}):
        denied = await env.post("ann", RUNS, body)
        assert denied.status_code == 403, denied.text
        assert "admin role" in denied.json()["error"]["message"]
        assert (await env.post("ann", SEED + "/start", body)).status_code == 403
    through = await env.start("ann", model="refuser", mode="gateway", max_attempts=1)
    assert through["guard"] is True
    bypassed = await env.start("admin", model="refuser", mode="model", max_attempts=1)
    assert bypassed["guard"] is False and bypassed["spec"]["guard"] is False
    for body, param in (
        ({"model": "refuser", "mode": "both"}, "mode"),
        ({"model": "refuser", "mode": "model", "guard": True}, "mode"),
    ):
        bad = await env.post("admin", RUNS, body)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param, bad.text
    for run in (through, bypassed):
        await env.finished("ann", run["id"])


async def test_progress_streams_as_server_sent_events_until_the_run_ends(env: RedteamEnv) -> None:
    # The slow model answers in 0.3 s, one attempt at a time: the stream sees the run advance.
    started = await env.start(
        "admin",
        model="slow",
        mode="model",
        categories=["system_prompt_extraction"],
        perturbations=[],
        max_attempts=3,
        concurrency=1,
    )
    path = f"{RUNS}/{started['id']}/events"
    streamed = await env.get("viewer", path)
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    events = events_of(streamed.text)
    progress = [(event_id, data) for event_id, kind, data in events if kind == "progress"]
    assert [kind for _, kind, _ in events][-1] == "done" and len(progress) >= 2
    ids = [event_id or 0 for event_id, _ in progress]
    assert ids == sorted(set(ids)) and ids[-1] == 3
    assert all(data["total"] == 3 and data["done"] == event_id for event_id, data in progress)
    # "ok" leaks nothing: three judged attempts, no success.
    assert progress[-1][1]["by_category"] == {"system_prompt_extraction": {"attempts": 3, "successes": 0}}
    done = events[-1][2]
    assert done["id"] == started["id"] and done["status"] == "succeeded" and done["summary"]["attempts"] == 3

    # Resuming after the last progress event: only the end; after an earlier one: the rest.
    resumed = events_of((await resume(env, path, "3")).text)
    assert [kind for _, kind, _ in resumed] == ["done"]
    earlier = events_of((await resume(env, path, "1")).text)
    assert [(event_id, kind) for event_id, kind, _ in earlier] == [(3, "progress"), (None, "done")]
    bad = await resume(env, path, "x")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "Last-Event-ID"
    assert (await env.get("carl", path)).status_code == 404
    assert (await env.get("svc", path)).status_code == 403


async def test_a_leaking_model_counts_its_successes_while_streaming(env: RedteamEnv) -> None:
    run, report = await env.run("admin", model="leaky", guard=False, categories=EXTRACTION, seed=3, perturbations=[])
    events = events_of((await env.get("ann", f"{RUNS}/{run['id']}/events")).text)
    (_, kind, last), (_, end, summary) = events[-2:]
    assert kind == "progress" and end == "done"
    assert last["by_category"] == {
        category: {"attempts": group["trials"], "successes": group["trials"]}
        for category, group in report["by_category"].items()
    }
    assert summary["summary"] == run["summary"]


async def test_the_seed_routes_are_aliases_of_the_runs_api(env: RedteamEnv) -> None:
    # Model only, so that every attempt reaches the slow model (about a second in all).
    started = await env.post(
        "admin", SEED + "/start", {"model": "slow", "mode": "model", "max_attempts": 3, "concurrency": 1}
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    status = await env.get("viewer", SEED + "/status", params={"run_id": run_id})
    assert status.status_code == 200 and status.json()["id"] == run_id and status.json()["progress"]["total"] == 3
    early = await env.get("ann", SEED + "/results", params={"run_id": run_id})
    assert early.status_code == 409, early.text  # the slow model takes about a second
    run = await env.finished("ann", run_id)
    assert run["status"] == "succeeded"
    results = await env.get("ann", SEED + "/results", params={"run_id": run_id})
    assert results.status_code == 200
    assert results.json() == (await env.get("ann", f"{RUNS}/{run_id}/report")).json()
    assert (await env.get("ann", SEED + "/status")).json()["error"]["param"] == "run_id"
    assert (await env.get("carl", SEED + "/status", params={"run_id": run_id})).status_code == 404
    assert (await env.get("carl", SEED + "/results", params={"run_id": run_id})).status_code == 404
    assert (await env.post("viewer", SEED + "/start", {"model": "slow"})).status_code == 403
    assert (await env.get("svc", SEED + "/status", params={"run_id": run_id})).status_code == 403


def test_guard_effectiveness_is_the_rate_without_minus_with() -> None:
    without = {"success_rate": 0.75, "by_category": {"jailbreak": {"rate": 0.5}, "encoding": {"rate": 1.0},
                                                      "pii_extraction": {"rate": 0.25}}}  # fmt: skip
    with_guard = {"success_rate": 0.25, "by_category": {"jailbreak": {"rate": 0.5}, "encoding": {"rate": 0.0},
                                                         "pii_extraction": {"rate": 0.5}}}  # fmt: skip
    assert guard_effectiveness(without, with_guard, model_run="m", gateway_run="g") == {
        "model_run": "m",
        "gateway_run": "g",
        "overall": 0.5,
        "by_category": {"encoding": 1.0, "jailbreak": 0.0, "pii_extraction": -0.25},
    }


async def test_the_later_run_of_a_pair_carries_guard_effectiveness(env: RedteamEnv) -> None:
    spec: dict[str, Any] = {"model": "leaky", "categories": EXTRACTION, "seed": 9, "perturbations": ["casing"]}
    off, off_report = await env.run("admin", mode="model", **spec)
    assert "guard_effectiveness" not in off["summary"] and "guard_effectiveness" not in off_report
    other_seed, _ = await env.run("ann", mode="gateway", **{**spec, "seed": 10})
    assert "guard_effectiveness" not in other_seed["summary"]  # not the same attempts
    on, on_report = await env.run("ann", mode="gateway", **spec)
    effectiveness = on["summary"]["guard_effectiveness"]
    assert on_report["guard_effectiveness"] == effectiveness
    assert effectiveness["model_run"] == off["id"] and effectiveness["gateway_run"] == on["id"]
    # By hand: the leaky model leaks every time without the guard (rate 1), the guard stops some.
    assert off["summary"]["success_rate"] == 1.0 and on["summary"]["success_rate"] < 1.0
    assert effectiveness["overall"] == round(1.0 - on["summary"]["success_rate"], 6) > 0
    assert effectiveness["by_category"] == {
        category: round(1.0 - on["summary"]["by_category"][category]["rate"], 6) for category in EXTRACTION
    }
