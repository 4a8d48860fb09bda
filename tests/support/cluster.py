"""Several real ``bastion serve`` processes sharing one PostgreSQL database and one Redis: the
multi-process deployment, for tests of what must hold across processes (limits, budgets,
revocation, the ledger).

    cluster = start_cluster(config, tmp_path, processes=2, database_url=pg_database_url,
                            redis_url=REDIS_URL)
    try:
        key = cluster.create_key("t1", rpm=100)           # through the real CLI
        ... requests to cluster.urls[0], cluster.urls[1] ...
    finally:
        cluster.stop()

or the ``gateway_cluster`` fixture (a factory; everything it started is stopped after the test).
Each process gets its own data directory (its ledger journal is its own); the database and Redis
come from ``BASTION_DATABASE_URL`` / ``BASTION_REDIS_URL``, as in production. With
``database_url=None`` (one SQLite file in the work directory) and ``redis_url=None`` the same
helper runs the single-process, in-memory deployment.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.support.gateway import BASTION_BIN, GatewayProcess, write_config


@dataclass
class Cluster:
    config_path: Path
    processes: list[GatewayProcess]
    #: Environment every process (and every CLI call) runs with: database and Redis URLs.
    env: dict[str, str] = field(default_factory=dict)

    @property
    def urls(self) -> list[str]:
        return [process.url for process in self.processes]

    def cli(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``bastion <args> --config <the cluster's config>`` against the shared storage."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        env.update(self.env)
        # The first process's data directory: without Redis, the CLI's access changes reach a
        # gateway through the auth epoch file there.
        env["BASTION_DATA_DIR"] = self.processes[0].extra_env["BASTION_DATA_DIR"]
        return subprocess.run(
            [str(BASTION_BIN), *args, "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.config_path.parent,
            timeout=timeout_s,
            check=False,
        )

    def create_key(self, tenant: str, role: str = "service", **options: Any) -> dict[str, Any]:
        """A new API key through ``bastion keys create`` (options: rpm, tpm, daily_usd, monthly_usd,
        max_request_usd, name, user, expires_in). Returns its JSON view, the secret under "key"."""
        args = ["keys", "create", "--tenant", tenant, "--role", role, "--json"]
        for name, value in options.items():
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        result = self.cli(*args)
        if result.returncode != 0:
            raise RuntimeError(f"bastion keys create failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        key: dict[str, Any] = json.loads(result.stdout)
        return key

    def log_tails(self, lines: int = 80) -> str:
        return "\n".join(f"--- {p.url} ({p.log_path})\n{p.log_tail(lines)}" for p in self.processes)

    def stop(self) -> None:
        with ThreadPoolExecutor(max_workers=max(1, len(self.processes))) as pool:
            list(pool.map(lambda process: process.stop(), self.processes))


def start_cluster(
    config: dict[str, Any],
    workdir: Path,
    *,
    processes: int = 2,
    database_url: str | None = None,
    redis_url: str | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 120.0,
) -> Cluster:
    """Start ``processes`` gateways with ``config`` (Bastion's YAML shape) and wait until each
    answers /healthz. On failure, whatever started is stopped and the error carries the logs."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = write_config(workdir / "bastion.yaml", config)
    shared: dict[str, str] = dict(env or {})
    # Without PostgreSQL: one SQLite file that the processes and the CLI share (migrated at start).
    shared["BASTION_DATABASE_URL"] = database_url or f"sqlite:///{workdir / 'bastion.db'}"
    if redis_url:
        shared["BASTION_REDIS_URL"] = redis_url
    members = [
        GatewayProcess(
            config_path,
            workdir / f"gateway-{i}.log",
            env={**shared, "BASTION_DATA_DIR": str(workdir / f"data-{i}")},
        )
        for i in range(processes)
    ]
    cluster = Cluster(config_path, members, shared)
    errors: list[BaseException] = []

    def start(process: GatewayProcess) -> None:
        try:
            process.start(timeout_s)
        except BaseException as exc:  # collected, so every process gets its chance to start
            errors.append(exc)

    with ThreadPoolExecutor(max_workers=processes) as pool:
        list(pool.map(start, members))
    if errors:
        cluster.stop()
        raise RuntimeError(f"cluster did not start: {errors[0]}")
    return cluster


class ClusterFactory(Protocol):
    def __call__(
        self,
        config: dict[str, Any],
        *,
        processes: int = 2,
        database_url: str | None = None,
        redis_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Cluster: ...


@pytest.fixture
def gateway_cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """A factory of clusters; each one it starts is stopped when the test ends."""
    started: list[Cluster] = []

    def make(
        config: dict[str, Any],
        *,
        processes: int = 2,
        database_url: str | None = None,
        redis_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Cluster:
        cluster = start_cluster(
            config,
            tmp_path / f"cluster-{len(started)}",
            processes=processes,
            database_url=database_url,
            redis_url=redis_url,
            env=env,
        )
        started.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in started:
            cluster.stop()
