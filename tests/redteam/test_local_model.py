"""A real red-team run against the embedded local model: a handful of attempts with few tokens
each completes, and both reports (JSON and HTML) come out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema_rs
import pytest

from bastion.redteam.scoring import report_json_schema
from bastion.store.db import Database
from tests.redteam.support import RUNS, RedteamEnv, redteam_gateway
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.local_model("chat")
LOCAL = "local/smollm2"


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    """SQLite only: the model is under test here, not the database (and it is slow)."""
    return sqlite_database_url


@pytest.fixture
async def env(database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream) -> AsyncIterator[RedteamEnv]:
    local = {"name": LOCAL, "deployments": [{"provider": "local", "model": "smollm2", "id": "local-smollm2"}]}
    async with redteam_gateway(
        database,
        database_url,
        tmp_path,
        fake,
        [local],
        local={"enabled": True, "embeddings_enabled": False, "n_ctx": 1024},
    ) as running:
        yield running


async def test_a_small_run_against_the_local_model_produces_both_reports(env: RedteamEnv) -> None:
    run, report = await env.run(
        "admin", model=LOCAL, guard=False, seed=1, max_attempts=4, max_tokens=12, concurrency=1,
        categories=["system_prompt_extraction", "prompt_injection"], perturbations=[],
    )  # fmt: skip
    assert report["totals"]["attempts"] == 4 and report["totals"]["judged"] == 4
    assert all(isinstance(attempt["answer"], str) for attempt in report["attempts"])
    jsonschema_rs.validator_for(report_json_schema()).validate(report)
    html = await env.get("ann", f"{RUNS}/{run['id']}/report.html")
    assert html.status_code == 200 and "<html" in html.text
