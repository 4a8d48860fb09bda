"""Graceful shut-down: SIGTERM lets requests already in flight finish, streaming included."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.gateway.helpers import USER_MESSAGES
from tests.support.fake_upstream import SLOW_STREAM_CHUNKS, FakeUpstream, answer_text
from tests.support.gateway import GatewayProcess, gateway_config, write_config
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration


def _in_thread(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_sigterm_lets_in_flight_requests_finish(fake: FakeUpstream, tmp_path: Path) -> None:
    config = gateway_config(fake.base_url, tmp_path / "data", local=False)
    config["server"]["graceful_shutdown_s"] = 30
    path = write_config(tmp_path / "bastion.yaml", config)
    fake.script("m-slow", ["ok:1.5"])
    fake.script("m-slow-stream", ["slow_stream"])
    with GatewayProcess(path, tmp_path / "gateway.log") as gateway:
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="k", max_retries=0, timeout=60)

        def complete() -> str | None:
            return client.chat.completions.create(model="m-slow", messages=USER_MESSAGES).choices[0].message.content

        def stream() -> list[str]:
            chunks = client.chat.completions.create(model="m-slow-stream", messages=USER_MESSAGES, stream=True)
            return [c.choices[0].delta.content or "" for c in chunks if c.choices]

        complete_thread, completed = _in_thread(complete)
        stream_thread, streamed = _in_thread(stream)
        wait_until(lambda: fake.requests("m-slow") and fake.requests("m-slow-stream"), 20, what="both calls upstream")
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGTERM)
        complete_thread.join(60)
        stream_thread.join(60)
        try:
            assert "error" not in completed, completed.get("error")
            assert completed["value"] == answer_text("m-slow")
            assert "error" not in streamed, streamed.get("error")
            # The output guard may merge deltas; the text is what must arrive whole.
            assert "".join(streamed["value"]) == "".join(f"tick{i} " for i in range(SLOW_STREAM_CHUNKS))
            assert gateway.process.wait(timeout=30) in (0, -signal.SIGTERM)
            assert "Application shutdown complete" in gateway.log_tail()
        except BaseException:
            print(gateway.log_tail())
            raise
