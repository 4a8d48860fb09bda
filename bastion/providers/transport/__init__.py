"""A lean HTTP/1.1 client for the providers' upstream calls (asyncio ``Protocol`` + httptools).

Why not aiohttp on this path: every proxied call pays for the client once, and aiohttp's general
machinery (``ClientSession._request``, ``ClientRequest``, ``StreamWriter``, the payload registry,
cookie and header handling, ``StreamReader``) cost about 200 µs of Python per upstream call, a
fifth of the gateway's CPU on the streaming path. A provider only ever POSTs a body it already
holds as bytes to one origin with fixed headers, so the request head is built once, a request is
one write, and httptools (C) parses and de-chunks the answer. aiohttp stays for what this client
does not do: HTTP proxies (see ``bastion.providers.http.make_client``).
"""

from bastion.providers.transport.connection import (
    ConnectError,
    ConnectionLost,
    InvalidResponse,
    StaleConnection,
    TransportError,
    TruncatedResponse,
)
from bastion.providers.transport.pool import HTTPClient, Origin, Pool, Response, default_ssl_context

__all__ = [
    "ConnectError",
    "ConnectionLost",
    "HTTPClient",
    "InvalidResponse",
    "Origin",
    "Pool",
    "Response",
    "StaleConnection",
    "TransportError",
    "TruncatedResponse",
    "default_ssl_context",
]
