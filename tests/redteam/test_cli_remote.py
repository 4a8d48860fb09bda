"""``bastion redteam run --url``: the command runs against a gateway served on a port (the suite's
gateway under uvicorn, in this event loop; the command in a thread), with the key in
``BASTION_API_KEY``; model-only runs stay the admin's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.store.db import Database
from tests.redteam.support import RedteamEnv, redteam_gateway
from tests.redteam.test_cli import _last_json
from tests.support.fake_upstream import FakeUpstream

PORTS = range(18500, 18600)


def _socket() -> socket.socket:
    for port in PORTS:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(16)
        return sock
    raise RuntimeError("no free port in 18500-18599")


@contextlib.asynccontextmanager
async def served(env: RedteamEnv) -> AsyncIterator[str]:
    sock = _socket()
    server = uvicorn.Server(uvicorn.Config(env.app, lifespan="off", log_level="warning"))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                await task
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def env(database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[RedteamEnv]:
    async with redteam_gateway(database, database_url, tmp_path, fake) as running:
        yield running


async def _cli(key: str, *args: str) -> Any:
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, list(args), env={"BASTION_API_KEY": key})


async def test_a_remote_run_writes_both_reports_into_the_directory(env: RedteamEnv, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["redteam", "run", "--model", "leaky", "--mode", "model", "--categories", "system_prompt_extraction"]
    args += ["--max-attempts", "3", "--seed", "4", "--out", str(out)]
    async with served(env) as url:
        done = await _cli(env.keys["admin"], *args, "--url", url)
        assert done.exit_code == 0, done.output
        run = _last_json(done.stdout)
        assert run["status"] == "succeeded" and run["guard"] is False and run["summary"]["success_rate"] == 1.0
        assert "progress 3/3" in done.output
        report = json.loads((out / "report.json").read_text())
        assert report["run"]["id"] == run["id"] and report["totals"]["attempts"] == 3
        assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
        stored = (await env.get("ann", f"/v1/redteam/runs/{run['id']}")).json()
        assert stored["status"] == "succeeded" and stored["spec"]["categories"] == ["system_prompt_extraction"]

        denied = await _cli(env.keys["ann"], *args, "--url", url)
        assert denied.exit_code == 1 and "admin role" in denied.output and "Traceback" not in denied.output
        no_key = await _cli("", *args, "--url", url)
        assert no_key.exit_code == 1 and "BASTION_API_KEY" in no_key.output
    gone = await _cli(env.keys["admin"], *args, "--url", url)
    assert gone.exit_code == 1 and "cannot reach" in gone.output
