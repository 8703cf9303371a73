"""kube.Api's own HTTP/1.1 request connections: framing, keep-alive, gzip, and connections that break."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable

import pytest

from discovery import kube

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
CONFIGMAPS = kube.Resource("", "v1", "configmaps", "ConfigMap")


async def _no_token() -> str | None:
    return None


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return head[0], headers, body


def _run(reply: Reply, scenario: Callable[[kube.Api], Awaitable[None]]) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reply(reader, writer)
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        api = kube.Api(
            host=f"http://127.0.0.1:{port}",
            ssl_context=None,
            auth=_no_token,
            retry=kube.RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.002),
        )
        try:
            await scenario(api)
        finally:
            await api.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def test_answers_framed_by_length_chunks_or_the_connection_end_and_gzipped_ones_all_read_whole() -> None:
    body = json.dumps({"metadata": {"name": "x", "labels": {"k": "v" * 3000}}}).encode()
    connections: list[int] = []

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        for framing in ("length", "chunked", "gzip"):
            line, headers, _ = await _read_request(reader)
            assert line.startswith("GET /api/v1/namespaces/a/configmaps/x HTTP/1.1"), line
            if framing == "length":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            elif framing == "chunked":
                chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:]))
                writer.write(
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                for index in range(0, len(chunks), 1000):  # in pieces, as the network may deliver them
                    writer.write(chunks[index : index + 1000])
                    await writer.drain()
                writer.write(b"0\r\nTrailer: x\r\n\r\n")
            else:
                assert "gzip" in headers["accept-encoding"]
                packed = gzip.compress(body)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\n" + packed
                )
                await writer.drain()
                writer.close()
                return
            await writer.drain()

    async def scenario(api: kube.Api) -> None:
        for _ in range(3):
            assert await api.get(CONFIGMAPS, "x", namespace="a") == json.loads(body)

    _run(reply, scenario)
    assert len(connections) == 1  # kept alive across the first three answers


def test_an_idle_connection_the_server_closed_is_replaced_for_a_read_without_a_retry() -> None:
    served: list[str] = []

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, _, _ = await _read_request(reader)
        served.append(line.split(" ")[0])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()  # no Connection: close header; the client learns it from the closed socket

    async def scenario(api: kube.Api) -> None:
        assert await api.get(CONFIGMAPS, "x", namespace="a") == {}
        # Whether or not the close has arrived by now, the read goes through on a new connection.
        assert await api.get(CONFIGMAPS, "x", namespace="a") == {}
        created = await api.create(CONFIGMAPS, {"metadata": {"name": "y"}}, namespace="a")
        assert created == {}

    _run(reply, scenario)
    assert served == ["GET", "GET", "POST"]


def test_a_connection_closed_before_the_answer_is_a_retried_503_named_server_disconnected() -> None:
    attempts: list[int] = []

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        attempts.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")  # cut short
        await writer.drain()
        writer.close()

    async def scenario(api: kube.Api) -> None:
        with pytest.raises(kube.ApiError) as raised:
            await api.patch(CONFIGMAPS, "x", {"data": {}}, namespace="a")
        assert raised.value.status == 503
        assert "ServerDisconnectedError" in raised.value.message

    _run(reply, scenario)
    assert len(attempts) == 2  # the retry policy's two attempts


def test_an_error_answer_carries_its_status_body_and_retry_after() -> None:
    status = {"kind": "Status", "reason": "TooManyRequests", "message": "slow down", "code": 429}

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            data = json.dumps(status).encode()
            writer.write(
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: %d\r\n\r\n" % len(data)
                + data
            )
            await writer.drain()

    async def scenario(api: kube.Api) -> None:
        with pytest.raises(kube.ApiError) as raised:
            await api.get(CONFIGMAPS, "x", namespace="a")
        assert (raised.value.status, raised.value.reason, raised.value.retry_after) == (
            429,
            "TooManyRequests",
            0.0,
        )

    _run(reply, scenario)


def test_a_cancelled_request_leaves_no_connection_for_the_next_one() -> None:
    lines: list[str] = []
    first_seen = asyncio.Event()

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, _, _ = await _read_request(reader)
        lines.append(line)
        if len(lines) == 1:
            first_seen.set()
            await reader.read()  # never answers; the client goes away
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    async def scenario(api: kube.Api) -> None:
        slow = asyncio.create_task(api.get(CONFIGMAPS, "slow", namespace="a"))
        await first_seen.wait()
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert await api.get(CONFIGMAPS, "x", namespace="a") == {}

    _run(reply, scenario)
    assert [line.split(" ")[1] for line in lines] == [
        "/api/v1/namespaces/a/configmaps/slow",
        "/api/v1/namespaces/a/configmaps/x",
    ]


def test_ping_is_true_only_when_version_answers_200() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
    ]
    paths: list[str] = []

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers:
            line, _, _ = await _read_request(reader)
            paths.append(line.split(" ")[1])
            writer.write(answers.pop(0))
            await writer.drain()

    async def scenario(api: kube.Api) -> None:
        assert await api.ping() is True
        assert await api.ping() is False

    _run(reply, scenario)
    assert paths == ["/version", "/version"]

    async def nothing_listening() -> bool:
        api = kube.Api(host="http://127.0.0.1:9", ssl_context=None, auth=_no_token)
        try:
            return await api.ping()
        finally:
            await api.close()

    assert asyncio.run(nothing_listening()) is False
