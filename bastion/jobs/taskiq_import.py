"""taskiq, imported without aiohttp.

``import taskiq`` imports every middleware it ships, and its admin-panel middleware imports
aiohttp (about 150 ms and several MB per process), which nothing else in a gateway of remote
models loads (the providers use their own HTTP client; aiohttp is only for upstreams behind an
HTTP proxy). Bastion never uses that middleware: unless aiohttp is loaded already, a stand-in
module takes its place before taskiq is imported. Every taskiq name Bastion uses comes from here.
"""

from __future__ import annotations

import sys
import types
from typing import Any

_ADMIN_MIDDLEWARE = "taskiq.middlewares.taskiq_admin_middleware"


class _AdminMiddlewareUnavailable:
    """Stands in for ``TaskiqAdminMiddleware``, which Bastion does not use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("taskiq's admin middleware is not available in Bastion")


if "aiohttp" not in sys.modules and _ADMIN_MIDDLEWARE not in sys.modules and "taskiq" not in sys.modules:
    _stand_in = types.ModuleType(_ADMIN_MIDDLEWARE, "Stand-in: taskiq's admin middleware needs aiohttp.")
    _stand_in.TaskiqAdminMiddleware = _AdminMiddlewareUnavailable  # type: ignore[attr-defined]
    sys.modules[_ADMIN_MIDDLEWARE] = _stand_in

from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask  # noqa: E402
from taskiq.acks import AcknowledgeType  # noqa: E402
from taskiq.message import BrokerMessage  # noqa: E402
from taskiq.receiver import Receiver  # noqa: E402

__all__ = ["AcknowledgeType", "AsyncBroker", "AsyncTaskiqDecoratedTask", "BrokerMessage", "Receiver"]
