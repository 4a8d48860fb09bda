"""Job kinds and their handlers: filled by the composition root (and by the modules named in
``jobs.handler_modules``), read by the workers. A process only claims jobs of kinds it knows."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bastion.jobs.model import MAX_KIND

if TYPE_CHECKING:
    from bastion.jobs.context import JobContext

#: A handler: runs one attempt of a job; what it returns (JSON-able) is the job's ``result``.
Handler = Callable[["JobContext"], Coroutine[Any, Any, Any]]


@dataclass(frozen=True, slots=True)
class JobKind:
    name: str
    handler: Handler
    #: Attempts before the job fails; None: ``jobs.max_attempts``.
    max_attempts: int | None = None


class JobRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, JobKind] = {}

    def register(self, name: str, handler: Handler, *, max_attempts: int | None = None) -> None:
        if not name or len(name) > MAX_KIND:
            raise ValueError(f"a job kind is 1 to {MAX_KIND} characters: {name!r}")
        if name in self._kinds:
            raise ValueError(f"job kind {name!r} is registered twice")
        if not inspect.iscoroutinefunction(handler):
            raise ValueError(f"the handler of job kind {name!r} must be an async function")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._kinds[name] = JobKind(name, handler, max_attempts)

    def get(self, name: str) -> JobKind | None:
        return self._kinds.get(name)

    def kinds(self) -> list[str]:
        return sorted(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def load_modules(self, modules: list[str]) -> None:
        """Import each module and call its ``register(registry)``."""
        for name in modules:
            module = importlib.import_module(name)
            register = getattr(module, "register", None)
            if not callable(register):
                raise ValueError(f"jobs.handler_modules: {name} has no register(registry) function")
            register(self)
