"""The router: model alias -> deployment, with retries, back-off, fallbacks and circuit breakers.

Retry policy, in order of precedence:
- an error that is the caller's fault (invalid request, 400/413/422 from upstream) is raised at
  once: no retry, no fallback, no breaker penalty;
- retryable failures (connection errors, timeouts, 429, 5xx) are retried up to
  ``router.retries`` times within the alias, preferring a deployment that has not failed yet;
  the wait before a retry is exponential back-off with full jitter, and at least the upstream's
  ``Retry-After`` when the same deployment is tried again;
- when an alias is exhausted (or all its breakers are open) the fallback aliases are tried in
  order; when nothing is left the last error is raised, its message naming every deployment
  tried and what each answered (bounded in length; the messages are already scrubbed);
- a stream is only retried until its first chunk has arrived: once bytes went to the client a
  failure is reported in the stream, never silently replayed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from bastion.config.settings import RouterSettings
from bastion.errors import BastionError, ModelNotFound, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from bastion.observability.metrics import FALLBACKS, RETRIES
from bastion.providers import fanout
from bastion.providers.base import ChatRequest, ChatResponse, ChunkStream, EmbeddingResponse
from bastion.routing.strategies import make_strategy
from bastion.routing.target import ModelGroup, Target
from bastion.routing.trace import Attempt, RouteTrace

log = structlog.get_logger("bastion.routing")
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
#: The longest a stream's processing keeps the event loop before letting other requests run.
LOOP_TURN_S = 0.005
#: Bounds of a failure summary after several attempts: each attempt's answer, and the whole.
MAX_ATTEMPT_CHARS = 160
MAX_SUMMARY_CHARS = 1200


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Router:
    def __init__(
        self,
        groups: dict[str, ModelGroup],
        settings: RouterSettings,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        #: Every name a client may use (canonical names and aliases) -> its group.
        self.groups = groups
        self.settings = settings
        self._sleep = sleep
        self._rng = rng or random.Random()
        # One random source for picking and for jitter, so a seeded router is reproducible.
        self.strategy = make_strategy(settings.strategy, self._rng)
        self._deployments = {target.id: target.deployment for target in self.targets()}

    # -- lookup -------------------------------------------------------------------------------

    def group(self, name: str, kind: str = "chat") -> ModelGroup:
        group = self.groups.get(name)
        if group is None:
            raise ModelNotFound(f"The model {name!r} does not exist or you do not have access to it.", param="model")
        if group.kind != kind:
            raise ModelNotFound(f"The model {name!r} is not a {kind} model.", param="model")
        return group

    def unique_groups(self) -> list[ModelGroup]:
        seen: dict[int, ModelGroup] = {}
        for group in self.groups.values():
            seen.setdefault(id(group), group)
        return list(seen.values())

    def targets(self) -> list[Target]:
        return [t for g in self.unique_groups() for t in g.targets]

    async def start(self) -> None:
        await asyncio.gather(*(t.provider.start() for t in self.targets()))

    async def stop(self) -> None:
        await asyncio.gather(*(t.provider.aclose() for t in self.targets()), return_exceptions=True)

    # -- public calls ---------------------------------------------------------------------------

    async def chat(self, request: ChatRequest, model: str, trace: RouteTrace) -> ChatResponse:
        async def call(target: Target) -> ChatResponse:
            return await fanout.chat(target.provider, target.provider.admit(request))

        result, target = await self._run(model, "chat", trace, call)
        self._finish(target, trace, ok=True)
        return result

    async def embed(
        self, inputs: list[str], model: str, request_id: str, trace: RouteTrace, dimensions: int | None = None
    ) -> EmbeddingResponse:
        async def call(target: Target) -> EmbeddingResponse:
            return await target.provider.embed(inputs, request_id, dimensions)

        result, target = await self._run(model, "embedding", trace, call)
        self._finish(target, trace, ok=True)
        return result

    async def count_tokens(self, request: ChatRequest, model: str) -> int | None:
        """The prompt tokens of ``request`` from the first deployment of ``model`` whose circuit is
        closed, if its provider counts exactly (the local model, an Anthropic upstream); None
        otherwise. No retries or fallbacks: a count is cheap to estimate instead."""
        group = self.group(model)
        target = next((t for t in group.targets if t.breaker.allows()), None)
        if target is None:
            return None
        return await target.provider.count_tokens(request)

    async def stream(self, request: ChatRequest, model: str, trace: RouteTrace) -> ChunkStream:
        """Open a stream and return it once its first chunk has arrived (so failures before the
        first byte can still be retried and reported with a proper HTTP status)."""

        async def call(target: Target) -> tuple[dict[str, Any], ChunkStream]:
            chunks = fanout.stream(target.provider, target.provider.admit(request))
            try:
                first = await chunks.__anext__()
            except StopAsyncIteration:
                raise UpstreamError(f"upstream {target.id} sent an empty stream") from None
            except BaseException:
                await chunks.aclose()
                raise
            return first, chunks

        (first, chunks), target = await self._run(model, "chat", trace, call)
        return self._relay(first, chunks, target, trace)

    # -- internals ------------------------------------------------------------------------------

    async def _relay(
        self,
        first: dict[str, Any],
        chunks: ChunkStream,
        target: Target,
        trace: RouteTrace,
    ) -> ChunkStream:
        ok = False
        clock = time.perf_counter
        try:
            yield first
            turn_ends = clock() + LOOP_TURN_S
            async for chunk in chunks:
                yield chunk
                # Chunks the upstream sent together are read from a buffer, and every stage
                # downstream handles each without ever waiting: the event loop would not get
                # control back until the burst was through. Give it back every few milliseconds.
                if clock() > turn_ends:
                    await asyncio.sleep(0)
                    turn_ends = clock() + LOOP_TURN_S
            ok = True
        except BastionError as exc:
            trace.attempts[-1].outcome = "error"
            trace.attempts[-1].error = exc.message
            raise
        except Exception as exc:
            log.exception("stream_failed", deployment=target.id)
            trace.attempts[-1].outcome = "error"
            trace.attempts[-1].error = exc.__class__.__name__
            raise UpstreamError(f"upstream {target.id} stream failed", retryable=False) from None
        finally:
            await chunks.aclose()
            self._finish(target, trace, ok=ok)

    def _finish(self, target: Target, trace: RouteTrace, *, ok: bool) -> None:
        target.end()
        if ok:
            target.breaker.record_success()
        elif trace.attempts and trace.attempts[-1].outcome == "error":
            target.breaker.record_failure()
        else:
            target.breaker.record_neutral()

    def _pick(self, group: ModelGroup, failed: set[Target]) -> Target | None:
        open_now = [t for t in group.targets if t.breaker.allows()]
        fresh = [t for t in open_now if t not in failed]
        candidates = fresh or open_now
        if not candidates:
            return None
        target = self.strategy.choose(candidates)
        return target if target.breaker.acquire() else None

    def _backoff(self, retry_number: int) -> float:
        ceiling = min(self.settings.backoff_max_s, self.settings.backoff_base_s * (2 ** (retry_number - 1)))
        return self._rng.uniform(0.0, ceiling)

    async def _run(
        self,
        model: str,
        kind: str,
        trace: RouteTrace,
        call: Callable[[Target], Awaitable[T]],
    ) -> tuple[T, Target]:
        """Run ``call`` on a deployment of ``model``, then of its fallbacks in order, until one
        succeeds; the last error when none is left.

        On success the target is returned still counted in flight; the caller ends it.
        """
        first_group = self.group(model, kind)
        chain = [first_group.name, *self.settings.fallbacks.get(first_group.name, [])]
        last_error: BastionError | None = None
        first_attempt = len(trace.attempts)
        untried: list[str] = []  # aliases whose breakers were all open
        for position, alias in enumerate(chain):
            group = first_group if position == 0 else self.group(alias, kind)
            if position:
                FALLBACKS.labels(from_model=first_group.name, to_model=group.name).inc()
            attempts_before = len(trace.attempts)
            outcome = await self._try_group(group, trace, call, last_error)
            if not isinstance(outcome, BastionError):
                return outcome
            if len(trace.attempts) == attempts_before:
                untried.append(group.name)
            last_error = outcome
        assert last_error is not None
        raise self._summarised(last_error, trace.attempts[first_attempt:], untried)

    def _summarised(self, error: BastionError, attempts: list[Attempt], untried: list[str]) -> BastionError:
        """``error`` (the last one, whose status and headers the client gets) with a message that
        names every deployment tried and what each answered, when there was more than one."""
        failed = [a for a in attempts if a.outcome == "error"]
        if len(failed) + len(untried) <= 1:
            return error
        parts = []
        for attempt in failed:
            deployment = self._deployments.get(attempt.deployment)
            where = (
                f"{attempt.deployment} ({deployment.provider} {deployment.model})" if deployment else attempt.deployment
            )
            answer = (attempt.error or f"status {attempt.status}").removeprefix(f"upstream {attempt.deployment} ")
            parts.append(f"{where}: {_clip(answer, MAX_ATTEMPT_CHARS)}")
        parts += [f"{alias}: not tried (circuit open)" for alias in untried]
        summary = f"all {len(failed)} attempts failed: " + "; ".join(parts)
        error.message = _clip(summary, MAX_SUMMARY_CHARS)
        error.args = (error.message,)
        return error

    async def _try_group(
        self,
        group: ModelGroup,
        trace: RouteTrace,
        call: Callable[[Target], Awaitable[T]],
        last_error: BastionError | None,
    ) -> tuple[T, Target] | BastionError:
        """Up to ``retries + 1`` attempts on the deployments of one alias: the result, or the error
        that ended the alias (retries spent, breakers open, a Retry-After too long to wait)."""
        failed: set[Target] = set()
        previous: Target | None = None
        for attempt_number in range(self.settings.retries + 1):
            target = self._pick(group, failed)
            if target is None:
                if last_error is None or not isinstance(last_error, UpstreamError):
                    # Tell the client when the first breaker lets a trial through (Retry-After).
                    wait = min(t.breaker.seconds_until_trial() for t in group.targets)
                    last_error = UpstreamUnavailable(
                        f"no deployment of {group.name!r} is available right now (circuit open)",
                        retry_after_s=wait or None,
                    )
                break
            if attempt_number:
                delay = self._retry_delay(attempt_number, target, previous, last_error)
                if delay is None:
                    target.breaker.record_neutral()
                    break
                if delay:
                    await self._wait(delay, target, trace)
            result = await self._attempt(target, group, trace, call)
            if not isinstance(result, BastionError):
                return result, target
            last_error = result
            failed.add(target)
            previous = target
            reason = str(result.upstream_status or result.code) if isinstance(result, UpstreamError) else "error"
            RETRIES.labels(deployment=target.id, reason=reason).inc()
        assert last_error is not None
        return last_error

    async def _wait(self, delay: float, target: Target, trace: RouteTrace) -> None:
        started = time.perf_counter()
        try:
            await self._sleep(delay)
        except BaseException:
            # Cancelled while waiting (the client left): give back the half-open trial slot
            # _pick reserved, or the breaker stays stuck.
            target.breaker.record_neutral()
            raise
        trace.upstream_s += time.perf_counter() - started

    def _retry_delay(
        self, retry_number: int, target: Target, previous: Target | None, error: BastionError | None
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up on this alias."""
        delay = self._backoff(retry_number)
        retry_after = getattr(error, "retry_after_s", None)
        if retry_after is not None and target is previous:
            if retry_after > self.settings.max_retry_after_s:
                return None
            delay = max(delay, retry_after)
        return delay

    async def _attempt(
        self,
        target: Target,
        group: ModelGroup,
        trace: RouteTrace,
        call: Callable[[Target], Awaitable[T]],
    ) -> T | BastionError:
        """One call on one deployment. Returns the error if it is retryable; raises otherwise."""
        target.begin()
        started = time.perf_counter()
        attempt = Attempt(deployment=target.id, outcome="ok", duration_s=0.0)
        trace.attempts.append(attempt)
        trace.alias, trace.deployment, trace.upstream_model = group.name, target.id, target.deployment.model
        try:
            result = await call(target)
        except BaseException as exc:
            target.end()
            failure = _classify(exc, target)
            if failure is None:  # cancelled: the client went away, nothing is known about the deployment
                attempt.outcome = "cancelled"
                attempt.duration_s = time.perf_counter() - started
                trace.upstream_s += attempt.duration_s
                target.breaker.record_neutral()
                raise
            error, unhealthy, retry = failure
            self._record_error(attempt, error, started, trace)
            if unhealthy:
                target.breaker.record_failure()
            else:
                target.breaker.record_neutral()
            if retry:
                return error
            if error is exc:
                raise
            raise error from None
        attempt.duration_s = time.perf_counter() - started
        trace.upstream_s += attempt.duration_s
        return result

    @staticmethod
    def _record_error(attempt: Attempt, exc: BastionError, started: float, trace: RouteTrace) -> None:
        attempt.outcome = "error"
        attempt.status = getattr(exc, "upstream_status", None) or exc.status
        attempt.error = exc.message
        attempt.duration_s = time.perf_counter() - started
        trace.upstream_s += attempt.duration_s


def _classify(exc: BaseException, target: Target) -> tuple[BastionError, bool, bool] | None:
    """What a failed call means: (the error to report, whether it counts against the deployment's
    health, whether another attempt may succeed); None when the call was cancelled."""
    if isinstance(exc, UpstreamError):
        return exc, True, exc.retryable
    if isinstance(exc, TimeoutError):
        # A provider's cap on the whole call (asyncio.wait_for) ran out: an upstream timeout,
        # worth a retry, not a provider bug.
        return UpstreamTimeout(f"upstream {target.id} did not answer in time"), True, True
    if isinstance(exc, BastionError):
        return exc, False, False  # the caller's fault: says nothing about the deployment's health
    if isinstance(exc, Exception):
        # A provider bug, not an upstream condition: report it as a bad gateway, never a 500.
        log.exception("provider_failed", deployment=target.id)
        return (
            UpstreamError(f"upstream {target.id} failed unexpectedly ({exc.__class__.__name__})", retryable=False),
            True,
            False,
        )
    return None
