"""The aiohttp client, kept for upstreams reached through an HTTP proxy (``trust_env``).

The lean transport does not speak to proxies; aiohttp does. It is imported only when a proxy
applies to some deployment (``providers.http.make_client``): everywhere else it would only cost
memory (about 8 MB with its dependencies) and start-up time. Its exceptions are translated into
the transport's (``TransportError`` and its kinds), so callers handle one family of errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import aiohttp
import orjson

from bastion.config.settings import TimeoutSettings
from bastion.providers.transport import ConnectionLost, InvalidResponse, TruncatedResponse


@contextlib.contextmanager
def _transport_errors() -> Iterator[None]:
    """aiohttp's errors as the transport's; OSError and TimeoutError kinds pass as they are."""
    try:
        yield
    except (OSError, TimeoutError):
        raise
    except aiohttp.ClientPayloadError as exc:
        raise TruncatedResponse(str(exc)) from exc
    except aiohttp.ClientResponseError as exc:
        raise InvalidResponse(exc.message) from exc
    except aiohttp.ClientError as exc:
        raise ConnectionLost(f"{exc.__class__.__name__}: {exc}") from exc


def new_session(timeouts: TimeoutSettings, limit: int = 0, trust_env: bool = False) -> aiohttp.ClientSession:
    """A pooled, kept-alive aiohttp session for one upstream."""
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=60, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect_s, sock_read=timeouts.read_s)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        json_serialize=lambda obj: orjson.dumps(obj).decode(),
        skip_auto_headers=("User-Agent",),
        auto_decompress=True,
        trust_env=trust_env,
    )


class AiohttpResponse:
    """``aiohttp.ClientResponse`` behind the ``UpstreamResponse`` interface."""

    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = {name.lower(): value for name, value in response.headers.items()}

    async def read(self) -> bytes:
        try:
            with _transport_errors():
                return await self._response.read()
        finally:
            self._response.release()

    async def read_chunk(self) -> bytes:
        with _transport_errors():
            return await self._response.content.readany()

    def release(self) -> None:
        self._response.release()

    def close(self) -> None:
        self._response.close()


class AiohttpClient:
    """The ``UpstreamClient`` for one deployment behind a proxy (read from the environment)."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeouts: TimeoutSettings, limit: int = 0) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers)
        self._session = new_session(timeouts, limit=limit, trust_env=True)

    async def post(self, path: str, body: bytes) -> AiohttpResponse:
        with _transport_errors():
            response = await self._session.post(self.base_url + path, data=body, headers=self.headers)
        return AiohttpResponse(response)

    async def aclose(self) -> None:
        await self._session.close()
