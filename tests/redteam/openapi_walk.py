"""The red-team routes' part of the OpenAPI walk (tests/gateway/test_openapi.py): every operation
called once as the document describes it, its answer checked against the document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.gateway.openapi_support import Running, Walk
from tests.sessions.support import eventually

GARAK = Path(__file__).parent / "data" / "garak.report.jsonl"


def _finished(gw: Running, run_id: str) -> Any:
    async def finished() -> bool:
        answer = await gw.client.get(f"/v1/redteam/runs/{run_id}", headers=gw.admin)
        return bool(answer.json()["status"] in ("succeeded", "failed", "cancelled"))

    return finished


async def walk_redteam(gw: Running, call: Walk, example: dict[str, Any]) -> None:
    runs, one = "/v1/redteam/runs", "/v1/redteam/runs/{run_id}"
    run = (await call("POST", runs, json=example["createRedteamRun"])).json()

    async def finished() -> bool:
        answer = await gw.client.get(f"{runs}/{run['id']}", headers=gw.admin)
        return bool(answer.json()["status"] == "succeeded")

    await eventually(finished, what="the red-team run")
    await call("GET", runs, query="?limit=5")
    await call("GET", one, run_id=run["id"])
    await call("GET", one + "/report", run_id=run["id"])
    await call("GET", one + "/report.html", run_id=run["id"])
    events = await call("GET", one + "/events", run_id=run["id"])
    assert "event: done" in events.text, events.text
    seed = "/api/v1/red-team"
    started = (await call("POST", seed + "/start", json=example["startRedTeam"])).json()
    await call("GET", seed + "/status", query=f"?run_id={run['id']}")
    await call("GET", seed + "/results", query=f"?run_id={run['id']}")
    assert started["guard"] is True
    await call("GET", "/v1/redteam/attacks", query="?category=jailbreak")
    ndjson = {"content-type": "application/x-ndjson"}
    await call("POST", "/v1/redteam/imports/garak", content=GARAK.read_bytes(), headers=ndjson)
    longer = {**example["createRedteamRun"], "max_attempts": 60, "concurrency": 1}
    second = (await call("POST", runs, json=longer)).json()
    await call("POST", one + "/cancel", run_id=second["id"])
    await eventually(_finished(gw, started["id"]), what="the red-team run started by its seed name")
    await call("GET", "/api/v1/insights/redteam", query="?limit=5")
