"""HTTP plumbing shared by services and the gateway: size limits, security headers, the pool for forwarding."""

from __future__ import annotations

import asyncio
import collections
import functools
import ssl
from collections.abc import AsyncIterator
from typing import Any, cast

import certifi
import httptools
import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.errors import problem_response

#: What to do when a server's certificate is not trusted (the message of the log line that says so).
UNTRUSTED_CERTIFICATE_HINT = (
    "if the city's own CA issued that certificate, give the CA's certificate (PEM) in HTTP_SSL_CAFILE "
    "(deploy/README.md, section 14)"
)


@functools.lru_cache(maxsize=4)
def tls_context(extra_cafile: str | None) -> ssl.SSLContext:
    """What every outbound HTTPS client of the platform trusts: the public CAs httpx trusts by default (certifi),
    plus the CA of ``HTTP_SSL_CAFILE`` when set (the city's own, which issued its Keycloak's certificate). Host
    names are verified either way. Kept per file: loading the public CAs costs milliseconds, too much per call."""
    context = ssl.create_default_context(cafile=certifi.where())
    if extra_cafile:
        context.load_verify_locations(cafile=extra_cafile)
    return context


def untrusted_certificate(exc: BaseException) -> bool:
    """Whether a failed connection (httpx's, urllib's inside PyJWT) failed on the server's certificate."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        reason = getattr(current, "reason", None)  # urllib's URLError keeps the ssl error here
        if isinstance(reason, BaseException) and id(reason) not in seen:
            current = reason
            continue
        current = current.__cause__ or current.__context__
    return False


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server stops at the declared length
            return
        # No declared length (chunked): read up to the limit before the app sees anything.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(message, receive), send)
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay({"type": "http.request", "body": bytes(body)}, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413, f"The request body is larger than {self.max_bytes} bytes.", kind="body-too-large"
        )
        await response(scope, receive, send)


def _replay(first: Message, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    h for h in SECURITY_HEADERS if h[0] not in names
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


# --- forwarding to the services: a lean HTTP/1.1 connection pool for httpx -----------------------------------


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps none and sends none."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


class CookielessClient(httpx.AsyncClient):
    """httpx's client without its cookie jar. The gateway's one client calls the services (and the identity provider)
    for every caller at once: a cookie that one answer sets must never go along with another caller's request. Not
    reading every answer's headers for cookies also saved 3% of the gateway's CPU per forwarded request."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = _NoCookies()


class UpstreamTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 connections to plain-``http`` upstreams (the services), for the gateway's httpx client.

    httpcore's pool re-examines every pooled connection on each request and on each response's close (a
    ``poll(2)`` and a ``getpeername(2)`` per connection, and a scan of all connections per queued request):
    with the few dozen connections a loaded gateway holds, that was most of its CPU per forwarded request.
    Here each connection is an asyncio protocol that learns at once when the service closes it, idle
    connections wait in a stack per origin, and a request takes the most recently used one. Responses
    are parsed with httptools (uvicorn's parser). Failures are httpx's own exceptions (``ConnectError``,
    ``ConnectTimeout``, ``ReadTimeout``, ``PoolTimeout``, ``RemoteProtocolError``...), so callers handle
    them as before. Mount it for ``http://`` only: it speaks no TLS. ``max_connections`` bounds the requests in
    flight (a request waits for a free one up to the pool timeout), ``max_keepalive_connections`` the idle
    connections kept; the services close idle ones after their keep-alive timeout, which is noticed at once.
    """

    def __init__(
        self,
        *,
        max_connections: int = 200,
        max_keepalive_connections: int = 100,
    ) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_keepalive_connections
        self._idle: dict[tuple[bytes, int], list[_UpstreamConnection]] = {}
        self._idle_count = 0
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.raw_scheme != b"http":
            raise httpx.UnsupportedProtocol(f"only http:// upstreams, not {request.url.scheme}://")
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no free upstream connection", request=request) from exc
        connection: _UpstreamConnection | None = None
        try:
            origin = (request.url.raw_host, request.url.port or 80)
            connection = self._idle_connection(origin) or await self._connect(origin, timeouts.get("connect"), request)
            head = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
            for name, value in request.headers.raw:
                if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name or b":" in name:
                    raise httpx.LocalProtocolError(f"header {name!r} cannot be sent", request=request)
                head.append(b"%s: %s\r\n" % (name, value))
            head.append(b"\r\n")
            chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
            await connection.send(b"".join(head), request.stream, chunked, timeouts.get("write"), request)
            status, reason, headers = await connection.response_head(timeouts.get("read"), request)
        except BaseException:
            if connection is not None:
                connection.close()
            self._slots.release()
            raise
        stream = _UpstreamBody(self, origin, connection, timeouts.get("read"), request)
        return httpx.Response(
            status, headers=headers, stream=stream, extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason}
        )

    def _idle_connection(self, origin: tuple[bytes, int]) -> _UpstreamConnection | None:
        stack = self._idle.get(origin)
        while stack:
            connection = stack.pop()
            self._idle_count -= 1
            if connection.usable:
                return connection
            connection.close()
        return None

    async def _connect(
        self, origin: tuple[bytes, int], within: float | None, request: httpx.Request
    ) -> _UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                _, connection = await loop.create_connection(_UpstreamConnection, origin[0].decode("ascii"), origin[1])
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"no connection to {request.url.host} in time", request=request) from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        return connection

    def _finished(self, origin: tuple[bytes, int], connection: _UpstreamConnection, reusable: bool) -> None:
        self._slots.release()
        if reusable and connection.usable and not self._closed and self._idle_count < self._max_idle:
            self._idle.setdefault(origin, []).append(connection)
            self._idle_count += 1
        else:
            connection.close()

    async def aclose(self) -> None:
        self._closed = True
        for stack in self._idle.values():
            for connection in stack:
                connection.close()
        self._idle.clear()
        self._idle_count = 0


class _UpstreamBody(httpx.AsyncByteStream):
    def __init__(
        self,
        pool: UpstreamTransport,
        origin: tuple[bytes, int],
        connection: _UpstreamConnection,
        within: float | None,
        request: httpx.Request,
    ) -> None:
        self._pool = pool
        self._origin = origin
        self._connection: _UpstreamConnection | None = connection
        self._within = within
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while self._connection is not None:
                chunk = await self._connection.body_chunk(self._within, self._request)
                if not chunk:
                    return
                yield chunk
        finally:
            if self._connection is not None and not self._connection.complete:
                # Abandoned halfway (a failure, or a client that went away while a response streamed to it):
                # give the slot back at once, whether or not anyone closes the response.
                self._release()

    async def aclose(self) -> None:
        self._release()

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Reused only when the whole response was read: what is left of another would be read as the next.
            self._pool._finished(self._origin, connection, reusable=connection.complete and connection.keep_alive)


#: Buffered response bytes above which the connection stops reading until the caller has taken them.
_HIGH_WATER = 256 * 1024


class _UpstreamConnection(asyncio.Protocol):
    """One connection; one request at a time (no pipelining)."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._lost = False
        self._failure: Exception | None = None
        self._writable: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head: asyncio.Future[int] = self._loop.create_future()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._waiting: asyncio.Future[None] | None = None
        self._length_known = False
        self.complete = False
        self.keep_alive = False

    @property
    def usable(self) -> bool:
        """Idle and still open: the service has not closed it (or sent anything unasked) since the last response."""
        return not self._lost and self._failure is None and self._transport is not None

    def close(self) -> None:
        self._lost = True
        if self._transport is not None:
            self._transport.close()

    async def send(
        self,
        head: bytes,
        body: httpx.AsyncByteStream | Any,
        chunked: bool,
        within: float | None,
        request: httpx.Request,
    ) -> None:
        self._reset()
        assert self._transport is not None
        self._transport.write(head)
        async for chunk in body:
            if chunked:
                if chunk:
                    self._transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                self._transport.write(chunk)
            await self._drain(within, request)
        if chunked:
            self._transport.write(b"0\r\n\r\n")
        await self._drain(within, request)

    async def _drain(self, within: float | None, request: httpx.Request) -> None:
        if self._failure is not None:
            raise self._failure
        if self._writable is None:
            return
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(self._writable)
        except TimeoutError as exc:
            raise httpx.WriteTimeout("the service did not take the request in time", request=request) from exc

    async def response_head(
        self, within: float | None, request: httpx.Request
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        try:
            async with asyncio.timeout(within):
                status = await asyncio.shield(self._head)
        except TimeoutError as exc:
            raise httpx.ReadTimeout("the service did not answer in time", request=request) from exc
        return status, self._reason, self._headers

    async def body_chunk(self, within: float | None, request: httpx.Request) -> bytes:
        """The next piece of the body; b"" at its end."""
        while not self._chunks:
            if self.complete:
                return b""
            if self._failure is not None:
                raise self._failure
            self._waiting = self._loop.create_future()
            try:
                async with asyncio.timeout(within):
                    await self._waiting
            except TimeoutError as exc:
                raise httpx.ReadTimeout("the service stopped sending its answer", request=request) from exc
            finally:
                self._waiting = None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered < _HIGH_WATER // 2 and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return chunk

    def _wake(self) -> None:
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(None)

    def _fail(self, failure: Exception) -> None:
        if self._failure is None:
            self._failure = failure
        if not self._head.done():
            self._head.set_exception(failure)
            self._head.exception()  # retrieved: nobody may be waiting for it any more
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._wake()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is one in all but its class

    def data_received(self, data: bytes) -> None:
        if self.complete:  # bytes nobody asked for: the connection's state is unknown, so it is not reused
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed answer from the service: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        if self._head.done() and not self.complete and not self._length_known and self._failure is None:
            self.complete = True  # a body delimited by the end of the connection
            self._wake()
        self._lost = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._transport = None
        if not self.complete:
            self._fail(httpx.RemoteProtocolError("the service closed the connection without a complete answer"))

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # httptools callbacks

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (none is asked for): the real one follows
            self._headers = []
            self._reason = b""
            return
        self.keep_alive = self._parser.should_keep_alive()
        self._length_known = any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self._headers
        ) or status in (204, 304)
        if not self._head.done():
            self._head.set_result(status)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._head.done():
            self.complete = True
            self._wake()
