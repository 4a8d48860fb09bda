"""Assignment across real gateway processes: two ``bastion serve`` on one database (SQLite or
PostgreSQL, migrated beforehand), the
experiment defined and started through the CLI; every user gets the same variant from both
processes, and the variant ``bastion.stats.assignment`` computes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.experiments.model import HEADER
from bastion.stats.assignment import assign
from bastion.store.db import Database
from tests.support.cluster import ClusterFactory, gateway_cluster  # noqa: F401
from tests.support.fake_upstream import FakeUpstream

MODEL = "fake-ok"


def _config(fake: FakeUpstream) -> dict[str, Any]:
    deployment = {"provider": "openai", "model": MODEL, "id": MODEL, "api_base": fake.openai_base, "api_key": "x"}
    return {
        "server": {"host": "127.0.0.1", "graceful_shutdown_s": 2},
        "models": [{"name": MODEL, "deployments": [deployment]}],
        "local": {"enabled": False, "embeddings_enabled": False},
        "auth": {"enabled": False},  # anonymous calls belong to the default tenant
        "limits": {"enabled": False},
        "budgets": {"enabled": False},
        "logging": {"level": "info"},
    }


@pytest.mark.integration
def test_two_processes_assign_alike(
    gateway_cluster: ClusterFactory,  # noqa: F811
    fake: FakeUpstream,
    tmp_path: Path,
    database: Database,
    database_url: str,
) -> None:
    cluster = gateway_cluster(_config(fake), processes=2, database_url=database_url)
    spec = tmp_path / "experiment.json"
    spec.write_text(json.dumps({
        "name": "three-way", "target": {"model": MODEL}, "seed": "three-way-seed",
        "variants": [{"name": "a"}, {"name": "b", "params": {"temperature": 0.3}}, {"name": "c"}],
        "weights": [0.2, 0.3, 0.5], "coverage": 0.9, "unit": "user",
    }))  # fmt: skip
    created = cluster.cli("experiments", "create", str(spec), "--tenant", "default", "--start")
    assert created.returncode == 0, created.stdout + created.stderr
    assert json.loads(created.stdout)["status"] == "running"
    names = ["a", "b", "c"]
    seen = set()
    with httpx.Client(timeout=30) as http:
        for i in range(40):
            user = f"person-{i}@example.com"
            body = {"model": MODEL, "user": user, "messages": [{"role": "user", "content": "hi"}]}
            answers = [http.post(f"{url}/v1/chat/completions", json=body) for url in cluster.urls]
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            index = assign("three-way-seed", user, 3, weights=[0.2, 0.3, 0.5], coverage=0.9)
            expected = f"three-way={names[index]}" if index >= 0 else None
            assert [a.headers.get(HEADER) for a in answers] == [expected, expected], user
            seen.add(expected)
    assert {"three-way=a", "three-way=b", "three-way=c"} <= seen
