"""Failures of the embedded models reach callers as their kind, not the library's text (which may
hold file paths and internals; it goes to the log), and a JSON-schema complaint is bounded."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import InvalidRequest, UpstreamError, UpstreamUnavailable
from bastion.local.chat_engine import ChatEngine, GenerationRequest, _Job, _Slot
from bastion.local.embedder import Embedder
from bastion.local.embedder import _Job as _EmbeddingJob
from bastion.local.prompt import SCHEMA_REASON_CHARS, grammar_for
from tests.local.conftest import needs_llama

SECRET_DETAIL = "/srv/models/private-7Qp2Vx9LmA4kR8sT.gguf"


def test_a_generation_failure_is_reported_by_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = ChatEngine(None)
    delivered: list[Any] = []

    def generate(*_args: Any) -> None:
        raise RuntimeError(f"llama_decode failed reading {SECRET_DETAIL}")

    monkeypatch.setattr(engine, "_generate", generate)
    monkeypatch.setattr(engine, "_end", lambda *_args: None)
    # No model: the slot and the job are never read by the failing generation.
    slot = _Slot(0, llm=None, vocab=None)
    job = _Job([], max_tokens=1, stop=[], grammar=None, request=GenerationRequest([]), dropped=0)
    engine._work(slot, job, delivered.append, threading.Event())
    (outcome,) = delivered
    assert isinstance(outcome, UpstreamError) and outcome.retryable is False
    assert outcome.message == "local model failed (RuntimeError)"


@needs_llama
def test_a_model_that_fails_to_load_is_reported_by_kind(tmp_path: Path) -> None:
    broken = tmp_path / "private-7Qp2Vx9LmA4kR8sT.gguf"
    broken.write_bytes(b"not a gguf file")
    engine = ChatEngine(broken, threads=1)
    with pytest.raises(UpstreamUnavailable) as caught:
        engine.load()
    assert caught.value.message == "local chat model failed to load (ValueError)"
    assert str(tmp_path) not in caught.value.message


async def test_an_embedding_failure_is_reported_by_kind() -> None:
    class BrokenModel:
        def encode(self, *_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError(f"cannot map {SECRET_DETAIL}")

    embedder = Embedder(None)
    embedder._model = BrokenModel()
    loop = asyncio.get_running_loop()
    job = _EmbeddingJob(["hello"], loop, loop.create_future())
    embedder._run([job])
    with pytest.raises(UpstreamError) as caught:
        await asyncio.wait_for(job.future, 5)
    assert caught.value.message == "local embedding failed (RuntimeError)"


@needs_llama
def test_a_json_schema_complaint_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from llama_cpp.llama_grammar import LlamaGrammar

    def refuse(schema: str, verbose: bool = False) -> Any:
        raise ValueError("Unrecognized schema: " + schema * 50)

    monkeypatch.setattr(LlamaGrammar, "from_json_schema", staticmethod(refuse))
    schema = {"type": "object", "properties": {"x": {"type": "string", "description": "d" * 500}}}
    with pytest.raises(InvalidRequest) as caught:
        grammar_for({"type": "json_schema", "json_schema": {"name": "n", "schema": schema}})
    message = caught.value.message
    assert message.startswith("the local model cannot enforce this JSON schema: Unrecognized schema: {")
    assert len(message) <= len("the local model cannot enforce this JSON schema: ") + SCHEMA_REASON_CHARS
