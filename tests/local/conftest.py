"""Fixtures for the embedded-model tests. Models are loaded once per session (the chat model takes
~0.3 s, the embedder several seconds for torch) and the tests skip if the local extra is missing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from bastion.config.settings import LocalModelSettings
from bastion.local import minilm_model_dir, module_available, smollm2_gguf_path
from bastion.local.chat_engine import ChatEngine
from bastion.local.embedder import Embedder, get_embedder

#: Marked ``local_model`` and skipped when the model is not installed (tests/support/markers.py).
needs_llama = pytest.mark.local_model("chat")
needs_embedder = pytest.mark.local_model("embedder")

#: A prompt SmolLM2 answers at length (used where a long generation is needed).
LONG_PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to fly."}]
SHORT_PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


def make_engine(**kwargs: int) -> ChatEngine:
    options = {"n_ctx": 1024, "max_concurrency": 1, "max_queue": 8, "default_max_tokens": 32} | kwargs
    engine = ChatEngine(smollm2_gguf_path(), **options)
    engine.load()
    return engine


@pytest.fixture(scope="session")
def engine() -> Iterator[ChatEngine]:
    """One slot, a queue of 8, a 1024-token window: shared by the tests that don't tune limits."""
    if not module_available("llama_cpp") or smollm2_gguf_path() is None:
        pytest.skip("the local extra is not installed")
    engine = make_engine()
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    if not module_available("sentence_transformers") or minilm_model_dir() is None:
        pytest.skip("the local extra is not installed")
    embedder = get_embedder(LocalModelSettings())  # the process-wide one the provider tests use too
    embedder.load()
    return embedder


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Await a condition set by another thread or task: a bounded poll, not a fixed sleep."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)
