"""The red-team routes' part of the OpenAPI walk (tests/gateway/test_openapi.py): every operation
called once as the document describes it, its answer checked against the document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.gateway.openapi_support import Running, Walk
from tests.sessions.support import eventually

GARAK = Path(__file__).parent / "data" / "garak.report.jsonl"


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
    await call("GET", "/v1/redteam/attacks", query="?category=jailbreak")
    ndjson = {"content-type": "application/x-ndjson"}
    await call("POST", "/v1/redteam/imports/garak", content=GARAK.read_bytes(), headers=ndjson)
    longer = {**example["createRedteamRun"], "max_attempts": 60, "concurrency": 1}
    second = (await call("POST", runs, json=longer)).json()
    await call("POST", one + "/cancel", run_id=second["id"])
    await call("GET", "/api/v1/insights/redteam", query="?limit=5")
