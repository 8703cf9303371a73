"""Informer caches and watch streams: compact storage, relist differences, nothing pinned between events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from discovery import informer, kube

PODS = kube.Resource("", "v1", "pods", "Pod")


@contextlib.asynccontextmanager
async def running(*watchers: informer.Informer) -> AsyncIterator[None]:
    """The informers' loops run in tasks for the block, cancelled and awaited after it (also on failure)."""
    tasks = [asyncio.create_task(watcher.run()) for watcher in watchers]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=10))


def pod(name: str, version: str, **extra: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns", "resourceVersion": version, "managedFields": [{"big": 1}]}
    return {"metadata": meta, **extra}


class ScriptedApi:
    """Each `list` answers the next listing (the last one repeats); each `watch` plays the next script."""

    def __init__(self, listings: list[list[dict[str, Any]]], scripts: list[list[kube.WatchEvent]]) -> None:
        self.listings = listings
        self.scripts = scripts
        self.lists = 0

    async def list(self, res: kube.Resource, **_: Any) -> tuple[list[dict[str, Any]], str]:
        objects = self.listings[min(self.lists, len(self.listings) - 1)]
        self.lists += 1
        return [dict(obj, metadata=dict(obj["metadata"])) for obj in objects], "10"

    async def watch(self, res: kube.Resource, **_: Any) -> AsyncIterator[kube.WatchEvent]:
        if not self.scripts:
            await asyncio.Event().wait()
        for event in self.scripts.pop(0):
            if event.type == "ERROR":  # type: ignore[comparison-overlap]
                raise kube.WatchExpired("pods")
            yield event


async def until(check: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + 5
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


def test_a_compact_cache_answers_fresh_decoded_copies_without_managed_fields() -> None:
    async def scenario() -> None:
        api = ScriptedApi([[pod("a", "1", spec={"x": [1, 2]})]], [])
        seen: list[tuple[str, str]] = []
        watcher = informer.Informer(
            api,  # type: ignore[arg-type]
            PODS,
            namespace="ns",
            handler=lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
            compact=True,
        )
        async with running(watcher):
            await watcher.synced.wait()
            first = watcher.get("a")
            assert first == {
                "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "1"},
                "spec": {"x": [1, 2]},
            }
            first["spec"]["x"].append(3)  # a caller's change never reaches the cache
            assert watcher.get("a") == {
                "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "1"},
                "spec": {"x": [1, 2]},
            }
            assert isinstance(watcher._cache[("ns", "a")], bytes)
            assert watcher.keys() == [("ns", "a")]
            assert [obj["metadata"]["name"] for obj in watcher.items()] == ["a"]
            assert seen == [("ADDED", "a")]

    run(scenario)


@pytest.mark.parametrize("compact", [False, True], ids=["plain cache", "compact cache"])
def test_watch_events_and_a_relist_after_expiry_keep_the_cache_and_the_handler_in_step(compact: bool) -> None:
    async def scenario() -> None:
        api = ScriptedApi(
            [[pod("a", "1"), pod("b", "2")], [pod("a", "12"), pod("d", "15")]],
            [
                [
                    kube.WatchEvent("ADDED", pod("c", "11")),
                    kube.WatchEvent("MODIFIED", pod("a", "12")),
                    kube.WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "13"}}),
                    kube.WatchEvent("DELETED", pod("b", "14")),
                    kube.WatchEvent("ERROR", {}),  # type: ignore[arg-type]  # scripted 410: list again
                ]
            ],
        )
        seen: list[tuple[str, str]] = []
        watcher = informer.Informer(
            api,  # type: ignore[arg-type]
            PODS,
            namespace="ns",
            handler=lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
            compact=compact,
        )
        async with running(watcher):
            await watcher.synced.wait()
            await until(lambda: api.lists == 2 and len(seen) >= 7)
            assert seen == [
                ("ADDED", "a"),
                ("ADDED", "b"),
                ("ADDED", "c"),
                ("MODIFIED", "a"),
                ("DELETED", "b"),
                ("DELETED", "c"),  # gone while the watch was down
                ("ADDED", "d"),
            ]
            assert sorted(watcher.keys()) == [("ns", "a"), ("ns", "d")]
            found = watcher.get("a")
            assert found is not None and found["metadata"]["resourceVersion"] == "12"

    run(scenario)


class OneShotServer:
    """A one-shot HTTP server: reads a request, writes `answer` in `pieces` writes, then keeps the
    connection open until `done` is set (a watch that idles) and closes it."""

    def __init__(self, answer: bytes, *, pieces: int = 1, end: bytes = b"") -> None:
        self.answer = answer
        self.end = end  # written once `done` is set (the last chunk of a chunked answer)
        self.pieces = pieces
        self.done = asyncio.Event()
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.done.set()
        assert self.server is not None
        self.server.close()
        await asyncio.wait_for(self.closed.wait(), 5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            step = max(1, len(self.answer) // self.pieces)
            for start in range(0, len(self.answer), step):
                writer.write(self.answer[start : start + step])
                await writer.drain()
                await asyncio.sleep(0.01)
            await self.done.wait()
            writer.write(self.end)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            self.closed.set()


def chunked(*parts: bytes) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + body


async def no_auth() -> None:
    return None


def test_a_waiting_watch_holds_no_reference_to_the_objects_it_already_delivered() -> None:
    async def scenario() -> None:
        # Two events across chunks (one line split in two), an empty line, then the stream idles.
        answer = chunked(
            b'{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"1"},"spec":{}}}\n{"type":"MOD',
            b'IFIED","object":{"metadata":{"name":"a","resourceVersion":"2"},"spec":{}}}\n\n',
        )
        server = OneShotServer(answer, pieces=7, end=b"0\r\n\r\n")
        async with server as host:
            api = kube.Api(host=host, ssl_context=None, auth=no_auth)
            stream = api.watch(PODS, namespace="ns")
            first = await stream.__anext__()
            assert (first.type, first.object["metadata"]["resourceVersion"]) == ("ADDED", "1")
            second = await stream.__anext__()
            assert (second.type, second.object["metadata"]["resourceVersion"]) == ("MODIFIED", "2")
            body = second.object
            del first, second
            waiting = asyncio.create_task(stream.__anext__())
            await asyncio.sleep(0.05)  # the stream now waits for more data
            assert not waiting.done()
            assert sys.getrefcount(body) == 2, "the suspended watch still references the delivered object"
            server.done.set()  # the server ends the stream
            with pytest.raises(StopAsyncIteration):
                await waiting
            await api.close()

    run(scenario)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"HTTP/1.1 410 Gone\r\nContent-Length: 2\r\n\r\n{}", kube.WatchExpired),
        (
            b'HTTP/1.1 403 Forbidden\r\nContent-Length: 37\r\n\r\n{"reason":"Forbidden","message":"no"}',
            kube.ApiError,
        ),
        (chunked(b'{"type":"ERROR","object":{"kind":"Status","code":410}}\n'), kube.WatchExpired),
        (
            chunked(b'{"type":"ERROR","object":{"kind":"Status","code":500,"reason":"InternalError"}}\n'),
            kube.ApiError,
        ),
    ],
    ids=["410 answer", "403 answer with a Status", "410 in the stream", "500 in the stream"],
)
def test_watch_failures_become_watch_expired_or_api_errors(answer: bytes, expected: type[Exception]) -> None:
    async def scenario() -> None:
        server = OneShotServer(answer)
        server.done.set()
        async with server as host:
            api = kube.Api(host=host, ssl_context=None, auth=no_auth)
            with pytest.raises(expected) as caught:
                async for _ in api.watch(PODS, namespace="ns"):
                    pass
            if isinstance(caught.value, kube.ApiError) and caught.value.status == 403:
                assert (caught.value.reason, caught.value.message) == ("Forbidden", "no")
            await api.close()

    run(scenario)


@pytest.mark.parametrize(
    "line",
    [
        b'{"kind":"Status"}',
        b"[1, 2]",
        b'{"type":"ADDED"}',
        b'{"type":"ADDED","object":"text"}',
        b"{not json",
        b'{"type":"SOMETHING","object":{}}',
    ],
    ids=["no type", "not an object", "no object", "object not a mapping", "not JSON", "unknown type"],
)
def test_a_line_that_is_not_a_watch_event_is_a_value_error(line: bytes) -> None:
    # ValueError is what the informer treats as a broken stream: it backs off and resumes.
    async def scenario() -> None:
        server = OneShotServer(chunked(line + b"\n"))
        server.done.set()
        async with server as host:
            api = kube.Api(host=host, ssl_context=None, auth=no_auth)
            with pytest.raises(ValueError):
                async for _ in api.watch(PODS, namespace="ns"):
                    pass
            await api.close()

    run(scenario)


def test_a_handler_that_fails_does_not_end_the_watch_and_the_cache_is_listed_again() -> None:
    async def scenario() -> None:
        api = ScriptedApi(
            [[pod("a", "1")], [pod("a", "1"), pod("b", "2")]],
            [[kube.WatchEvent("ADDED", pod("b", "2"))], [kube.WatchEvent("ADDED", pod("c", "3"))]],
        )
        seen: list[str] = []

        def handler(kind: str, obj: dict[str, Any]) -> None:
            name = obj["metadata"]["name"]
            seen.append(name)
            if name == "b" and seen.count("b") == 1:
                raise RuntimeError("a bug in a handler")

        watcher = informer.Informer(api, PODS, namespace="ns", handler=handler, max_backoff=0.01)  # type: ignore[arg-type]
        async with running(watcher):
            await until(lambda: "c" in seen)
            assert api.lists == 2, "the cache is listed again after the failure"
            assert sorted(watcher.keys()) == [("ns", "a"), ("ns", "b"), ("ns", "c")]

    run(scenario)


def test_a_refused_connection_is_a_retryable_api_error() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        api = kube.Api(host=f"http://127.0.0.1:{port}", ssl_context=None, auth=no_auth)
        try:
            with pytest.raises(kube.ApiError) as caught:
                async for _ in api.watch(PODS):
                    pass
            assert caught.value.status == 503

        finally:
            await api.close()

    run(scenario)


def test_a_stream_cut_mid_answer_ends_after_the_events_that_arrived() -> None:
    # The informer resumes from the last resourceVersion it saw, so nothing is lost; an error here would
    # put it into backoff on every dropped connection.
    async def scenario() -> None:
        server = OneShotServer(chunked(b'{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n'))
        server.done.set()  # closes without the last chunk
        async with server as host:
            api = kube.Api(host=host, ssl_context=None, auth=no_auth)
            seen = [event.type async for event in api.watch(PODS, namespace="ns")]
            assert seen == ["ADDED"]
            await api.close()

    run(scenario)


def test_watches_on_event_loops_in_different_threads_never_mix_their_bytes() -> None:
    # Discovery and the operator each run their own event loop when hosted in one process (the demo, the
    # tests); a receive buffer shared between loops let one connection's bytes land in another's stream.
    events, streams = 3000, 8

    def answer(stream: int) -> bytes:
        lines = [
            b'{"type":"ADDED","object":{"metadata":{"name":"s%d-%d","pad":"%s"}}}\n'
            % (stream, n, b"x" * (n % 997))
            for n in range(events)
        ]
        return chunked(*lines)

    def one_loop(results: list[list[str]]) -> None:
        async def scenario() -> None:
            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                request = await reader.readuntil(b"\r\n\r\n")
                stream = int(request.split(b"/namespaces/ns", 1)[1].split(b"/", 1)[0])
                writer.write(answer(stream) + b"0\r\n\r\n")
                await writer.drain()
                writer.close()

            server = await asyncio.start_server(serve, "127.0.0.1", 0)
            api = kube.Api(
                host=f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", ssl_context=None, auth=no_auth
            )

            async def names(stream: int) -> list[str]:
                return [
                    event.object["metadata"]["name"]
                    async for event in api.watch(PODS, namespace=f"ns{stream}")
                ]

            results.extend(await asyncio.gather(*(names(stream) for stream in range(streams))))
            await api.close()
            server.close()

        asyncio.run(asyncio.wait_for(scenario(), timeout=30))

    for _ in range(5):
        outcomes: list[list[list[str]]] = [[], []]
        threads = [threading.Thread(target=one_loop, args=(outcome,)) for outcome in outcomes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for outcome in outcomes:
            assert outcome == [[f"s{stream}-{n}" for n in range(events)] for stream in range(streams)]


def test_a_watch_cancelled_as_its_connection_is_made_is_cancelled() -> None:
    # Before Python 3.12 `asyncio.wait_for` returns the result of an inner step that completes in the same
    # turn as the cancel, swallowing it: a stopping process then went on watching forever.
    async def scenario() -> None:
        server = OneShotServer(chunked(b'{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n'))
        async with server as host:
            api = kube.Api(host=host, ssl_context=None, auth=no_auth)
            loop = asyncio.get_running_loop()
            connect = loop.create_connection
            watching: asyncio.Task[list[str]] | None = None

            async def connect_then_cancel(*args: Any, **kwargs: Any) -> Any:
                made = await connect(*args, **kwargs)
                assert watching is not None
                loop.call_soon(watching.cancel)  # lands in the same turn the connection is handed back
                return made

            async def follow() -> list[str]:
                return [event.type async for event in api.watch(PODS, namespace="ns")]

            loop.create_connection = connect_then_cancel  # type: ignore[method-assign]
            watching = asyncio.create_task(follow())
            done, _ = await asyncio.wait([watching], timeout=2)
            assert done and watching.cancelled(), "the cancel was swallowed: the watch goes on"
            await api.close()

    run(scenario)


def test_an_insignificant_modification_updates_the_cache_without_calling_the_handler() -> None:
    async def scenario() -> None:
        api = ScriptedApi(
            [[pod("a", "1", spec={"v": 1})], [pod("a", "5", spec={"v": 3})]],
            [
                [
                    kube.WatchEvent("MODIFIED", pod("a", "2", spec={"v": 1}, status={"x": 1})),  # status only
                    kube.WatchEvent("MODIFIED", pod("a", "3", spec={"v": 2})),
                    kube.WatchEvent("ERROR", {}),  # type: ignore[arg-type]  # scripted 410: list again
                ]
            ],
        )
        seen: list[tuple[str, str]] = []
        watcher = informer.Informer(
            api,  # type: ignore[arg-type]
            PODS,
            namespace="ns",
            handler=lambda kind, obj: seen.append((kind, obj["metadata"]["resourceVersion"])),
            significant=lambda old, new: old.get("spec") != new.get("spec"),
            compact=True,
        )
        async with running(watcher):
            await until(lambda: api.lists == 2 and len(seen) >= 3)
            assert seen == [("ADDED", "1"), ("MODIFIED", "3"), ("MODIFIED", "5")]
            found = watcher.get("a")
            assert found is not None and found["metadata"]["resourceVersion"] == "5"

    run(scenario)


def test_a_compact_cache_primes_compression_with_the_first_object_of_its_kind() -> None:
    # Thousands of objects of one kind repeat each other's keys and values: priming the compressor with
    # one of them keeps each entry a fraction of its plain-zlib size, and every entry reads back exactly.
    def server(n: int) -> dict[str, Any]:
        labels = {
            "app.kubernetes.io/managed-by": "toolhive-operator",
            "toolhive": "true",
            "toolhive-name": f"s{n}",
        }
        meta = {"name": f"s{n}", "namespace": f"team-{n}", "resourceVersion": str(n), "labels": labels}
        return {"metadata": meta, "spec": {"image": "ghcr.io/example/fetch:1.0", "transport": "stdio"}}

    async def scenario() -> None:
        kind = kube.Resource("example.dev", "v1", f"widgets{len(informer._CODECS)}", "Widget")
        caches = []
        for namespace in ("team-1", "team-2"):
            api = ScriptedApi([[server(n) for n in range(1, 30) if f"team-{n}" == namespace]], [])
            caches.append(
                informer.Informer(api, kind, namespace=namespace, handler=lambda *_: None, compact=True)
            )  # type: ignore[arg-type]
        async with running(*caches):
            for cache in caches:
                await cache.synced.wait()
            assert caches[0]._codec is caches[1]._codec, "one dictionary per kind"
            stored = caches[1]._cache[("team-2", "s2")]
            assert caches[1].get("s2") == server(2)
            plain = zlib.compress(json.dumps(server(2), separators=(",", ":")).encode(), 1)
            assert len(stored) * 2 < len(plain), (len(stored), len(plain))

    run(scenario)
