"""With ``otel.enabled`` false (the default), the gateway loads none of the export: a subprocess
builds the composition root, serves one chat request and reports what it imported.

redis-py imports OpenTelemetry on its own when the SDK is installed (``redis.observability``), so
the check is that Bastion adds no OpenTelemetry module to what ``import redis`` loaded (none of the
tracing SDK, no OTLP exporter) and that Bastion's own export modules stay unloaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import asyncio, json, sys
from pathlib import Path

import redis, redis.asyncio  # may import OpenTelemetry by itself: the baseline

baseline = {name for name in sys.modules if name.startswith("opentelemetry")}
OURS = ("bastion.observability.otel", "bastion.observability.otel_agents")

from tests.observability.fake_router import FakeRouter
from tests.support.harness import make_settings, running_gateway


async def main() -> dict:
    db, data = sys.argv[1], sys.argv[2]
    settings = make_settings(f"sqlite:///{db}", Path(data), auth={"enabled": False}, guard={"enabled": False}, models=[
        {"name": "gpt-4o", "deployments": [{"provider": "openai", "model": "gpt-4o-2024-08-06", "id": "gpt4o-east"}]},
    ])
    router = FakeRouter()

    def use_fake_router(gateway):
        gateway.pipeline.router = router

    async with running_gateway(settings, before_start=use_fake_router) as env:
        response = await env.client.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
        )
        otel_service = env.gateway.services.otel
        stage_names = [stage.name for stage in env.gateway.pipeline.stages]
    loaded = {name for name in sys.modules if name.startswith("opentelemetry")}
    return {
        "status": response.status_code,
        "otel_service": otel_service is not None,
        "stages": stage_names,
        "added": sorted(loaded - baseline),
        "tracing_sdk": sorted(n for n in loaded if n.startswith(("opentelemetry.sdk.trace", "opentelemetry.exporter"))),
        "ours": sorted(n for n in sys.modules if n in OURS),
        "mapping": "bastion.observability.genai" in sys.modules,
    }


print(json.dumps(asyncio.run(main())))
"""


@pytest.mark.integration
def test_with_the_export_off_no_opentelemetry_module_is_imported(tmp_path: Path, sqlite_template: Path) -> None:
    db = tmp_path / "bastion.db"
    shutil.copyfile(sqlite_template, db)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(db), str(tmp_path / "data")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == 200
    assert report["otel_service"] is False and "otel" not in report["stages"]
    assert report["added"] == []
    assert report["tracing_sdk"] == []
    assert report["ours"] == []
    assert report["mapping"]  # the plain-data half is imported (the gateway's types): it imports no OpenTelemetry
