"""The newcomer's path, as the README tells it, from a fresh directory: create a key, call the
gateway, read the ledger; and each trap on that path answering with a clear message instead.

Everything runs as the newcomer would: ``bastion`` subprocesses started in a new directory, no
``BASTION_*`` variables, no ``--data-dir``. The only departure from the README's defaults is the
model: the embedded one is off (too slow to load here), a fake upstream stands in for it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from typer.testing import CliRunner

from bastion.cli.main import app as cli
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import BASTION_BIN, GatewayProcess, free_port, write_config
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

README_EXAMPLE = {
    "models": [
        {
            "name": "gpt-4o",
            "deployments": [
                {"provider": "openai", "model": "gpt-4o", "api_key": "env:OPENAI_API_KEY", "weight": 2},
                {"provider": "openai", "model": "gpt-4o", "api_base": "https://p/v1", "api_key": "env:BACKUP_KEY"},
            ],
        },
        {
            "name": "claude",
            "deployments": [
                {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_key": "env:ANTHROPIC_API_KEY"}
            ],
        },
    ],
    "router": {"fallbacks": {"gpt-4o": ["claude"]}},
    "local": {"enabled": False},
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_") and not k.endswith("_API_KEY")}
    env.pop("BACKUP_KEY", None)
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def bastion(cwd: Path, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BASTION_BIN), *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout_s
    )


def _fresh_dir(tmp_path: Path, name: str, fake: FakeUpstream) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    deployment = {"provider": "openai", "model": "fake-ok", "api_base": fake.openai_base, "api_key": "x"}
    write_config(
        directory / "bastion.yaml",
        {"models": [{"name": "my-model", "deployments": [deployment]}], "local": {"enabled": False}},
    )
    return directory


def _assert_one_clear_line(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


def test_the_readme_commands_in_order_from_a_fresh_directory(fake: FakeUpstream, tmp_path: Path) -> None:
    home = _fresh_dir(tmp_path, "project", fake)

    # 1. A key. It says where it was stored and how to send it.
    created = bastion(home, "keys", "create", "--role", "admin", "--tenant", "default", "--name", "my-app")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("bst_")
    assert f"{home / 'data'}" in created.stderr
    assert "Authorization: Bearer <key>" in created.stderr and "x-api-key: <key>" in created.stderr

    # 2. The gateway, from the same directory: it says where its state lives.
    with GatewayProcess(home / "bastion.yaml", tmp_path / "serve.log", env=_env()) as gateway:
        assert f"data: {home / 'data'} (SQLite, journal, master key)" in gateway.log_tail()

        # 3. A call with the key, as the README shows it.
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        answer = client.chat.completions.create(model="my-model", messages=[{"role": "user", "content": "Hi"}])
        assert answer.choices[0].message.content

        # Every /v1 call needs a key, and saying so is the answer.
        hello = {"model": "my-model", "messages": [{"role": "user", "content": "Hi"}]}
        anonymous = httpx.post(gateway.url + "/v1/chat/completions", json=hello)
        assert anonymous.status_code == 401 and "Authorization: Bearer" in anonymous.json()["error"]["message"]

        # 4. The ledger, from the terminal: the call is there.
        def ledger_rows() -> list[dict[str, Any]]:
            listed = bastion(home, "ledger", "list", "--tenant", "default")
            assert listed.returncode == 0, listed.stderr
            return [json.loads(line) for line in listed.stdout.splitlines()]

        rows = wait_until(ledger_rows, timeout_s=10, interval_s=0.2, what="the call in `bastion ledger list`")
        assert rows[0]["model"] == "my-model" and rows[0]["status"] == 200
        shown = bastion(home, "ledger", "show", rows[0]["id"], "--tenant", "default")
        assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == rows[0]["id"]

        # Trap: a key created from another directory lands in another data directory. The refusal
        # says so, and --data-dir makes a key the gateway knows from anywhere.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        stray = bastion(elsewhere, "keys", "create", "--tenant", "default").stdout.strip()
        refused = httpx.post(
            gateway.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {stray}"},
            json=hello,
        )
        assert refused.status_code == 401
        assert "another directory" in refused.json()["error"]["message"]
        assert "--data-dir" in refused.json()["error"]["message"]
        good = bastion(elsewhere, "keys", "create", "--tenant", "default", "--data-dir", str(home / "data"))
        accepted = httpx.post(
            gateway.url + "/v1/chat/completions",
            headers={"x-api-key": good.stdout.strip()},
            json=hello,
        )
        assert accepted.status_code == 200, accepted.text


def test_unset_environment_references_are_named_by_check_config_and_serve(tmp_path: Path) -> None:
    write_config(tmp_path / "bastion.yaml", README_EXAMPLE)
    checked = bastion(tmp_path, "check-config")
    _assert_one_clear_line(checked)
    for named in ("models[0].deployments[0].api_key: OPENAI_API_KEY", "BACKUP_KEY", "ANTHROPIC_API_KEY"):
        assert named in checked.stderr
    served = bastion(tmp_path, "serve", "--port", str(free_port()))
    _assert_one_clear_line(served)
    assert "OPENAI_API_KEY" in served.stderr and "serving on" not in served.stderr


def test_start_up_failures_are_one_line_with_exit_status_2(tmp_path: Path) -> None:
    write_config(tmp_path / "bastion.yaml", {"local": {"enabled": False}})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = bastion(tmp_path, "serve", "--port", str(port))
    _assert_one_clear_line(in_use)
    assert f"cannot listen on 127.0.0.1:{port}" in in_use.stderr

    # A database that cannot be reached fails inside the worker's start-up: still one line.
    write_config(
        tmp_path / "bastion.yaml",
        {"local": {"enabled": False}, "database_url": "postgresql://nobody@127.0.0.1:1/none", "auto_migrate": True},
    )
    unreachable = bastion(tmp_path, "serve", "--port", str(free_port()))
    _assert_one_clear_line(unreachable)
    assert "bastion: start-up failed: " in unreachable.stderr


def test_a_litellm_config_lists_what_it_ignores(tmp_path: Path) -> None:
    write_config(
        tmp_path / "litellm.yaml",
        {
            "model_list": [
                {"model_name": "m", "litellm_params": {"model": "openai/m", "api_key": "k", "drop_params": True}}
            ],
            "litellm_settings": {"num_retries": 1, "success_callback": ["langfuse"]},
            "general_settings": {"master_key": "sk-1234", "database_url": "postgresql://x"},
        },
    )
    checked = bastion(tmp_path, "check-config", "--config", "litellm.yaml")
    assert checked.returncode == 0, checked.stderr
    warnings = [line for line in checked.stderr.splitlines() if line.startswith("warning: ")]
    assert [w.split(":")[1].strip() for w in warnings] == [
        "model_list[0].litellm_params.drop_params",
        "litellm_settings.success_callback",
        "general_settings.database_url",
    ]
    assert "master_key" not in checked.stderr  # honoured: an admin credential


@pytest.mark.parametrize("command", [["serve"], ["keys", "create"], ["ledger", "list"], ["vault", "status"]])
def test_every_command_takes_the_data_directory(command: list[str]) -> None:
    shown = CliRunner().invoke(cli, [*command, "--help"], env={"COLUMNS": "200"}).output
    assert "--data-dir" in shown and "./data of the current directory" in shown


def test_version_and_serve_defaults() -> None:
    version = CliRunner().invoke(cli, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("bastion ")
    shown = CliRunner().invoke(cli, ["serve", "--help"], env={"COLUMNS": "200"}).output
    for default in ("server.host, 127.0.0.1", "server.port, 8080", "server.workers, 1"):
        assert default in shown
