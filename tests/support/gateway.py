"""Run the real gateway (``bastion serve``) as a subprocess for the integration tests, and the
configuration it runs with: every model alias the gateway tests use points at the fake upstream.

Tests are isolated from each other by model name: circuit breakers and scripts are per upstream
model, so each behaviour under test has an alias of its own (``m-retry``, ``m-breaker``, ...).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

BASTION_BIN = Path(sys.executable).with_name("bastion")

# Router knobs the tests rely on (and assert against).
RETRIES = 2
FAILURE_THRESHOLD = 3
COOLDOWN_S = 1.0
MAX_BODY_BYTES = 64 * 1024
TIMEOUT_READ_S = 0.5

#: alias -> extra deployment settings, for aliases served by the fake's OpenAI API. The alias is
#: also the upstream model name, so the fake's per-model scripts line up with aliases.
OPENAI_FAKE_MODELS: dict[str, dict[str, Any]] = {
    "fake-ok": {},
    "m-retry": {},
    "m-retry-after": {},
    "m-400": {},
    "m-429": {},
    "m-429-sdk": {},
    "m-429-anthropic": {},
    "m-stream-fail": {},
    "m-fallback-a": {},
    "m-fallback-b": {},
    "m-breaker": {},
    "m-breaker-metrics": {},
    "m-cut": {},
    "m-timeout": {"timeouts": {"read_s": TIMEOUT_READ_S, "connect_s": 2.0}},
    "m-total-timeout": {"timeouts": {"total_s": TIMEOUT_READ_S}},
    "m-malformed": {},
    "m-malformed-anthropic": {},
    "m-slow": {},
    "m-slow-stream": {},
    "m-no-usage": {},
    "m-metrics": {},
}
#: Aliases served by the fake's Anthropic Messages API (through Bastion's Anthropic provider).
ANTHROPIC_FAKE_MODELS: dict[str, dict[str, Any]] = {
    "a-ok": {},
    "a-retry": {},
    "a-cut": {},
    "a-slow-stream": {},
    "a-400": {},
}
FAKE_EMBEDDING_MODEL = "fake-embed"
FALLBACKS = {"m-fallback-a": ["m-fallback-b"]}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _deployment(provider: str, model: str, api_base: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"provider": provider, "model": model, "id": model, "api_base": api_base, "api_key": "test-key", **extra}


def gateway_config(
    fake_base_url: str,
    data_dir: Path,
    *,
    local: bool = True,
    anthropic: bool = True,
) -> dict[str, Any]:
    """The Bastion config the gateway tests run against (Bastion's own YAML shape)."""
    models: list[dict[str, Any]] = [
        {"name": name, "deployments": [_deployment("openai", name, fake_base_url + "/v1", extra)]}
        for name, extra in OPENAI_FAKE_MODELS.items()
    ]
    models.append(
        {
            "name": FAKE_EMBEDDING_MODEL,
            "kind": "embedding",
            "deployments": [_deployment("openai", FAKE_EMBEDDING_MODEL, fake_base_url + "/v1", {})],
        }
    )
    if anthropic:
        models += [
            {"name": name, "deployments": [_deployment("anthropic", name, fake_base_url, extra)]}
            for name, extra in ANTHROPIC_FAKE_MODELS.items()
        ]
    return {
        "server": {"host": "127.0.0.1", "max_body_bytes": MAX_BODY_BYTES, "graceful_shutdown_s": 5},
        "models": models,
        "router": {
            "retries": RETRIES,
            # Small back-off keeps the suite fast; Retry-After still forces a full 1 s wait.
            "backoff_base_s": 0.05,
            "backoff_max_s": 0.2,
            "fallbacks": FALLBACKS,
            "breaker": {"failure_threshold": FAILURE_THRESHOLD, "cooldown_s": COOLDOWN_S},
        },
        "local": {"enabled": local, "embeddings_enabled": local},
        # The gateway core is under test: identity, limits and budgets have suites of their own
        # and would otherwise need keys and prices for every fake model.
        "auth": {"enabled": False},
        "limits": {"enabled": False},
        "budgets": {"enabled": False},
        "logging": {"level": "info"},
        "data_dir": str(data_dir),
    }


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


class GatewayProcess:
    """``bastion serve`` in a subprocess, its output captured to ``log_path``."""

    def __init__(
        self,
        config_path: Path,
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.port = port or free_port()
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> GatewayProcess:
        # Keep BASTION_* settings of the developer's shell out of the tests' gateway.
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(BASTION_BIN), "serve", "--config", str(self.config_path), "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.config_path.parent,
            )
        self._wait_healthy(timeout_s)
        return self

    def _wait_healthy(self, timeout_s: float) -> None:
        """Poll /healthz (bounded) until it answers 200; fail with the log if the server dies."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"bastion serve exited with {self.process.returncode} before it was healthy:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.url + "/healthz").status_code == 200:
                        return
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"bastion serve was not healthy within {timeout_s} s:\n{self.log_tail()}")

    def warm_up(self, timeout_s: float = 300.0) -> None:
        """Load the embedded models now (one small call each) and wait for them.

        The test config lists models of its own, so the embedded ones load on their first
        request; loading competes for the CPU and the GIL, which would make the first tests'
        timings (overhead, Retry-After) noisy if it happened during them.
        """
        calls = [
            ("/v1/embeddings", {"model": "local/minilm", "input": "warm up"}),
            (
                "/v1/chat/completions",
                {"model": "local/smollm2", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]},
            ),
        ]
        with httpx.Client(base_url=self.url, timeout=timeout_s) as client:
            for path, body in calls:
                response = client.post(path, json=body)
                if response.status_code != 200:
                    raise RuntimeError(f"warm-up {path} -> {response.status_code} {response.text}\n{self.log_tail()}")

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM (graceful shut-down), then SIGKILL if it has not exited in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode

    def log_tail(self, lines: int = 200) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
