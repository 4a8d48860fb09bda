"""Kept-alive connections to one origin, the request a provider sends, and the response it reads.

``HTTPClient`` is what a provider holds: one origin (scheme, host, port), the static part of
every request head built once (request line, Host, the provider's headers, ``Content-Length: ``)
so that a request costs one bytes-format and one ``write``. Its ``Pool`` hands out idle
connections most-recently-used first (warm, and the old ones age out), opens new ones when none
is idle, and caps the connections in use when the deployment sets ``max_concurrency``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import zlib
from collections import deque
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, urlsplit

from bastion.providers.transport.connection import (
    ConnectError,
    Connection,
    InvalidResponse,
    StaleConnection,
)

#: Idle connections older than this are closed instead of reused (servers drop them anyway).
KEEPALIVE_S: Final = 60.0
#: Idle connections kept per origin when no connection limit is set.
DEFAULT_MAX_IDLE: Final = 64

_default_ssl_context: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    """The system trust store (``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured), built once: loading
    the CA bundle takes milliseconds."""
    global _default_ssl_context
    if _default_ssl_context is None:
        context = ssl.create_default_context()
        context.set_alpn_protocols(["http/1.1"])
        _default_ssl_context = context
    return _default_ssl_context


class Origin:
    """Where requests go, parsed once from a base URL such as ``https://api.openai.com/v1``."""

    __slots__ = ("base_path", "host", "host_header", "port", "scheme")

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        default_port = 443 if parts.scheme == "https" else 80
        self.port = parts.port or default_port
        name = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = name if self.port == default_port else f"{name}:{self.port}"
        self.base_path = parts.path.rstrip("/")

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host_header}"


class Response:
    """An upstream answer whose head has arrived; the body is read with ``read``/``read_chunk``.

    Exactly one of ``read`` (to the end), ``release`` or ``close`` ends it: ``release`` pools the
    connection if the body was read to its end (or soon will be), ``close`` drops it, which is how
    an abandoned stream tells the upstream to stop generating.
    """

    __slots__ = ("_conn", "_decoder", "_ended", "headers", "status")

    def __init__(self, conn: Connection) -> None:
        self._conn: Connection | None = conn
        self._ended = False
        self.status = conn.status
        self.headers = conn.headers
        encoding = self.headers.get("content-encoding")
        # We ask for identity; a server that compresses anyway is decoded rather than refused.
        self._decoder = _decoder_for(encoding) if encoding and encoding != "identity" else None

    async def read(self) -> bytes:
        """The whole body (content-length, chunked or until close), then the connection is pooled."""
        conn = self._connection()
        try:
            body = await conn.read_all()
        except BaseException:
            self.close()
            raise
        self._ended = True
        self.release()
        if self._decoder is not None:
            body = self._decode(body, final=True)
        return body

    async def read_chunk(self) -> bytes:
        """Whatever body bytes have arrived (waiting for some), ``b""`` once the body ended (and the
        connection is then released)."""
        conn = self._conn
        if conn is None:
            if self._ended:
                return b""
            raise RuntimeError("response already closed")
        while True:
            try:
                data = await conn.read_chunk()
            except BaseException:
                self.close()
                raise
            if not data:
                tail = self._decode(b"", final=True) if self._decoder is not None else b""
                self._ended = True
                self.release()  # the body ended: the connection is ready for the next request
                return tail
            if self._decoder is None:
                return data
            data = self._decode(data, final=False)
            if data:
                return data

    def __aiter__(self) -> Response:
        return self

    async def __anext__(self) -> bytes:
        data = await self.read_chunk()
        if not data:
            raise StopAsyncIteration
        return data

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finish(reusable=True)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finish(reusable=False)

    def _connection(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("response already released")
        return self._conn

    def _decode(self, data: bytes, final: bool) -> bytes:
        assert self._decoder is not None
        try:
            out = self._decoder.decompress(data)
            if final:
                out += self._decoder.flush()
        except zlib.error as exc:
            self.close()
            raise InvalidResponse(f"undecodable compressed body: {exc}") from None
        return out


def _decoder_for(encoding: str) -> zlib._Decompress:
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(32 + zlib.MAX_WBITS)  # zlib-wrapped (the standard) or gzip
    raise InvalidResponse(f"unsupported content-encoding {encoding!r} (identity was asked for)")


class Pool:
    """Connections to one origin: an idle stack, a count of those in use and its optional limit."""

    def __init__(
        self,
        origin: Origin,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        limit: int = 0,
        max_idle: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.origin = origin
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.limit = limit
        self.max_idle = max_idle if max_idle is not None else (limit or DEFAULT_MAX_IDLE)
        self.ssl_context = ssl_context
        self.connection_class = Connection  # a subclass in tests
        self.in_use = 0
        self.opened = 0  # connections ever opened (tests and metrics)
        self._idle: deque[Connection] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def request(self, payload: bytes) -> Response:
        """Send ``payload`` (a whole request) and return once the response head has arrived."""
        if self.limit and self.in_use >= self.limit:
            await self._wait_for_slot()
        self.in_use += 1
        fresh_only = False
        while True:
            conn = None if fresh_only else self._pop_idle()
            reused = conn is not None
            if conn is None:
                try:
                    conn = await self._connect()
                except BaseException:
                    self._free_slot()
                    raise
            try:
                conn.send(payload, reused)
                await conn.wait_head()
                return Response(conn)
            except StaleConnection:
                # The server closed the kept-alive connection as we reused it, and not a byte of an
                # answer came back: resend once, on a new connection.
                self.in_use += 1  # hold a slot for the retry before the dead connection frees its own
                conn.finish(reusable=False)
                fresh_only = True
                continue
            except BaseException:
                conn.finish(reusable=False)
                raise

    def _pop_idle(self) -> Connection | None:
        idle = self._idle
        if not idle:
            return None
        now = idle[-1].loop.time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_S:
                return conn
            conn.close()
        return None

    async def _connect(self) -> Connection:
        if self._closed:
            raise ConnectError("client closed")
        loop = asyncio.get_running_loop()
        origin = self.origin
        secure = origin.scheme == "https"
        context = (self.ssl_context or default_ssl_context()) if secure else None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: self.connection_class(self, loop, self.read_timeout),
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if secure else None,
                )
        except TimeoutError:
            raise TimeoutError(f"connecting to {origin.url} took over {self.connect_timeout:g} s") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise ConnectError(f"cannot connect to {origin.url}: {exc.__class__.__name__}: {exc}") from exc
        self.opened += 1
        return conn

    # -- called by connections ----------------------------------------------------------------

    def checkin(self, conn: Connection) -> None:
        """``conn`` finished a request cleanly: keep it for the next one."""
        self._free_slot()
        if self._closed:
            conn.close()
            return
        conn.idle_since = conn.loop.time()
        idle = self._idle
        idle.append(conn)
        while len(idle) > self.max_idle:
            idle.popleft().close()
        # Age out the least recently used: a busy pool reuses the newest, so old ones only linger.
        while idle and conn.idle_since - idle[0].idle_since >= KEEPALIVE_S:
            idle.popleft().close()

    def checkout_done(self, conn: Connection) -> None:
        """``conn`` was dropped while in use."""
        self._free_slot()

    def idle_lost(self, conn: Connection) -> None:
        """The server closed an idle connection: forget it."""
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)

    # -- the connection limit -----------------------------------------------------------------

    async def _wait_for_slot(self) -> None:
        loop = asyncio.get_running_loop()
        while self.in_use >= self.limit:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken but cancelled: pass the free slot on
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise

    def _free_slot(self) -> None:
        self.in_use -= 1
        if self._waiters:
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()


class HTTPClient:
    """POSTs to one upstream origin over pooled kept-alive HTTP/1.1 (or HTTPS) connections."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        limit: int = 0,
        max_idle: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.origin = Origin(base_url)
        self.pool = Pool(
            self.origin,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            limit=limit,
            max_idle=max_idle,
            ssl_context=ssl_context,
        )
        self._header_block = _header_block(self.origin.host_header, headers)
        self._heads: dict[str, bytes] = {}

    async def post(self, path: str, body: bytes) -> Response:
        """POST ``body`` to the base path + ``path``; returns once the response head arrived."""
        head = self._heads.get(path)
        if head is None:
            head = self._heads[path] = self._build_head(path)
        return await self.pool.request(b"%b%d\r\n\r\n%b" % (head, len(body), body))

    def _build_head(self, path: str) -> bytes:
        target = quote(self.origin.base_path + path, safe="/%:@!$&'()*+,;=-._~?")
        return b"POST %b HTTP/1.1\r\n%bContent-Length: " % (target.encode("ascii"), self._header_block)

    async def aclose(self) -> None:
        self.pool.close()


def _header_block(host: str, headers: Mapping[str, str]) -> bytes:
    """``Name: value\\r\\n`` lines sent with every request, validated once."""
    lines = {"host": f"Host: {host}", "accept-encoding": "Accept-Encoding: identity"}
    for name, value in headers.items():
        key = name.lower()
        if key in ("content-length", "transfer-encoding", "connection"):
            continue  # framing is ours to decide
        if any(c in name for c in ":\r\n") or "\r" in value or "\n" in value or not name:
            raise ValueError(f"invalid HTTP header {name!r}")
        lines[key] = f"{name}: {value}"
    return "".join(line + "\r\n" for line in lines.values()).encode("latin-1")
