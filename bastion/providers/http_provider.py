"""``HTTPProvider``: what every provider that calls an HTTP API shares, so each one declares only
what differs (its default base URL, where its key goes, its payloads and answers).

Shared: the API key (configured, ``env:`` references resolved, or the vendor's environment
variable, but only for the vendor's own host), the fixed headers, the pooled client's start and
close, POST with error answers mapped, reading and parsing the body, the total-time cap on
complete answers, and the error mapping (``upstream_errors``), whose scrubber knows this
deployment's credentials so that no error message or log line can quote them.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlsplit

import orjson

from bastion.config.secret_refs import resolve_secret
from bastion.errors import UpstreamError
from bastion.providers.base import Deployment, Provider
from bastion.providers.http import TRANSPORT_ERRORS, UpstreamClient, UpstreamResponse, make_client, transport_error
from bastion.providers.scrub import CredentialScrubber
from bastion.providers.upstream_errors import UpstreamErrors

T = TypeVar("T")

#: Configured header names whose values are credentials (``api-key`` for Azure, ...).
_CREDENTIAL_HEADER = re.compile(r"(?i)authorization|.*(?:key|token|secret|password|credential|cookie).*")


class HTTPProvider(Provider):
    """Base of the providers that POST JSON to an HTTP API. Subclasses set the class attributes
    and implement ``chat`` / ``stream_chat`` (and ``embed``) with ``post``, ``read_json`` and
    ``close_stream``."""

    #: The vendor's API, used when the deployment names no ``api_base``.
    default_api_base: ClassVar[str]
    #: The environment variable holding the vendor's key; read only for ``default_api_base``.
    key_env: ClassVar[str | None] = None

    def __init__(self, deployment: Deployment) -> None:
        super().__init__(deployment)
        settings = deployment.settings
        self.api_base = self.normalise_api_base((settings.api_base or self.default_api_base).rstrip("/"))
        key = resolve_secret(settings.api_key, f"deployment {deployment.id}.api_key")
        if key is None and self.key_env and self.api_base == self.default_api_base:
            # The environment key is the vendor's: never send it to some other configured host.
            key = os.environ.get(self.key_env)
        self.headers: dict[str, str] = {"content-type": "application/json", **self.fixed_headers(), **settings.headers}
        if key:
            self.headers.update(self.auth_headers(key))
        self.label = f"upstream {deployment.id}"
        self.errors = UpstreamErrors(self.label, CredentialScrubber(self._credentials(key)))
        self._client: UpstreamClient | None = None

    # -- what subclasses declare ---------------------------------------------------------------

    def normalise_api_base(self, base: str) -> str:
        """The configured base URL as the provider's paths expect it (no trailing slash)."""
        return base

    def fixed_headers(self) -> dict[str, str]:
        """Headers every call carries besides the key (API versions)."""
        return {}

    def auth_headers(self, key: str) -> dict[str, str]:
        """Where the key goes."""
        return {"authorization": f"Bearer {key}"}

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        limit = self.deployment.settings.max_concurrency or 0
        self._client = make_client(self.api_base, self.headers, self.deployment.timeouts, limit=limit)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> UpstreamClient:
        if self._client is None:
            raise RuntimeError("provider used before start()")
        return self._client

    # -- calls ----------------------------------------------------------------------------------

    async def within_total_timeout(self, call: Awaitable[T]) -> T:
        """``call`` capped by ``timeouts.total_s`` when set (complete answers; streams have none)."""
        total = self.deployment.timeouts.total_s
        return await (asyncio.wait_for(call, total) if total else call)

    async def post(self, path: str, payload: bytes) -> UpstreamResponse:
        """POST and return a 2xx/3xx response; an error answer is read and raised, mapped."""
        try:
            response = await self.client.post(path, payload)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.label) from None
        if response.status >= 400:
            try:
                body = await response.read()
            except TRANSPORT_ERRORS:
                body = b""
            finally:
                response.close()  # no-op once read() released it; drops it if the read failed
            raise self.errors.for_status(response.status, response.headers, body)
        return response

    async def read_body(self, response: UpstreamResponse) -> bytes:
        try:
            return await response.read()
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.label) from None
        finally:
            response.close()  # no-op once read() released it

    async def read_json(self, response: UpstreamResponse) -> dict[str, Any]:
        """The whole body as a JSON object."""
        body = await self.read_body(response)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"{self.label} sent malformed JSON") from None
        if not isinstance(data, dict):
            raise UpstreamError(f"{self.label} sent JSON that is not an object")
        return data

    def close_stream(self, response: UpstreamResponse, finished: bool) -> None:
        """A finished stream's connection goes back to the pool; an unfinished one is dropped,
        which is how the upstream learns to stop generating."""
        if finished:
            response.release()
        else:
            response.close()

    # -- credentials ----------------------------------------------------------------------------

    def _credentials(self, key: str | None) -> list[str]:
        """What this deployment must never let an error message quote: its key, credential-named
        header values and anything secret in its base URL (a password, query parameters)."""
        found = [key] if key else []
        found += [value for name, value in self.headers.items() if _CREDENTIAL_HEADER.fullmatch(name)]
        parts = urlsplit(self.api_base)
        if parts.password:
            found.append(parts.password)
        found += [value for _name, value in parse_qsl(parts.query)]
        return found
