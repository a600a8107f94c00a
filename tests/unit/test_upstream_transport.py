"""The gateway's pool of connections to the services (chassis.http.UpstreamTransport), against a real
uvicorn server and against raw sockets that answer the way some servers do: keep-alive and its end,
bodies by length, in chunks and up to the end of the connection, timeouts, refusals, malformed answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from chassis.embedded_broker import free_port
from chassis.http import UpstreamTransport


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "length": len(body),
            "headers": {k: v for k, v in request.headers.items() if k.startswith("x-")},
            "port": request.client.port if request.client else None,
        },
        headers={"x-answer": "yes"},
    )


async def big(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(64):
            yield bytes([65 + i % 26]) * 65536

    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("s", "2")))
    return Response("late")


async def empty(request: Request) -> Response:
    return Response(status_code=204)


APP = Starlette(
    routes=[
        Route("/echo/{rest:path}", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/big", big),
        Route("/slow", slow),
        Route("/empty", empty, methods=["DELETE"]),
    ]
)


@contextlib.asynccontextmanager
async def service(keep_alive_seconds: int = 5) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(APP, port=port, log_level="warning", timeout_keep_alive=keep_alive_seconds)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def raw_server(
    answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


def client(**limits: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(1.0, connect=1.0), mounts={"http://": UpstreamTransport(**limits)})


async def test_requests_and_answers_pass_unchanged_and_connections_are_reused() -> None:
    async with service() as base, client() as c:
        first = await c.post(f"{base}/echo/a b/ä?x=1&x=2&y", content=b"{}" * 100, headers={"x-one": "1"})
        assert first.status_code == 200 and first.headers["x-answer"] == "yes"
        seen = first.json()
        assert seen["method"] == "POST" and seen["length"] == 200 and seen["headers"] == {"x-one": "1"}
        assert seen["path"] == "/echo/a b/ä" and seen["query"] == "x=1&x=2&y"
        ports = {(await c.get(f"{base}/echo/again")).json()["port"] for _ in range(5)}
        assert ports == {seen["port"]}, "one connection, kept alive and reused"
        assert (await c.delete(f"{base}/empty")).status_code == 204
        assert (await c.put(f"{base}/echo/x", content=b"")).json()["length"] == 0


async def test_a_connection_the_service_closed_is_not_reused() -> None:
    async with service(keep_alive_seconds=1) as base, client() as c:
        port = (await c.get(f"{base}/echo/1")).json()["port"]
        await asyncio.sleep(1.5)  # the server closes the idle connection
        again = await c.get(f"{base}/echo/2")
        assert again.status_code == 200 and again.json()["port"] != port


async def test_large_answers_stream_through_in_order() -> None:
    async with service() as base, client() as c:
        async with c.stream("GET", f"{base}/big") as reply:
            received = b"".join([chunk async for chunk in reply.aiter_raw()])
        assert len(received) == 64 * 65536
        assert received[:1] == b"A" and received[-1:] == bytes([65 + 63 % 26])
        assert (await c.get(f"{base}/echo/after")).status_code == 200


async def test_an_answer_left_half_read_closes_its_connection() -> None:
    async with service() as base, client(max_connections=1) as c:
        async with c.stream("GET", f"{base}/big") as reply:
            await reply.aiter_raw().__anext__()
        # the only slot is free again, on a new connection
        assert (await c.get(f"{base}/echo/next")).status_code == 200


async def test_a_streamed_request_body_is_sent_in_chunks() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"abc", b"", b"defg"):
            yield part

    async with service() as base, client() as c:
        assert (await c.post(f"{base}/echo/s", content=parts())).json()["length"] == 7


async def test_more_requests_than_connections_wait_their_turn() -> None:
    async with service() as base, client(max_connections=2) as c:
        replies = await asyncio.gather(*(c.get(f"{base}/slow?s=0.1") for _ in range(6)))
        assert [r.text for r in replies] == ["late"] * 6


async def test_a_slow_service_is_a_read_timeout_and_a_missing_one_a_connect_error() -> None:
    async with service() as base, client() as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get(f"{base}/slow?s=1.5")  # past the client's 1 s; the server's shutdown waits for the rest
        assert (await c.get(f"{base}/echo/fine")).status_code == 200
    async with client() as c:
        with pytest.raises(httpx.ConnectError):
            await c.get(f"http://127.0.0.1:{free_port()}/")


async def test_a_body_delimited_by_the_end_of_the_connection_is_read_to_its_end() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async with raw_server(answer) as base, client() as c:
        reply = await c.get(f"{base}/")
        assert reply.status_code == 200 and reply.text == "all of it"


async def test_a_malformed_or_missing_answer_is_a_protocol_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await writer.drain()
        writer.close()

    for answer in (garbage, hang_up, cut_short):
        async with raw_server(answer) as base, client() as c:
            with pytest.raises(httpx.RemoteProtocolError):
                await c.get(f"{base}/")


async def test_headers_that_would_split_the_request_are_refused() -> None:
    async with service() as base, client() as c:
        request = httpx.Request("GET", f"{base}/echo/x", headers=[(b"x-evil", b"a\r\nx-injected: 1")])
        with pytest.raises(httpx.LocalProtocolError):
            await c.send(request)


async def test_only_plain_http() -> None:
    transport = UpstreamTransport()
    with pytest.raises(httpx.UnsupportedProtocol):
        await transport.handle_async_request(httpx.Request("GET", "https://example.org/"))
