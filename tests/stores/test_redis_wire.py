"""The Redis store's own connection (`RespWire`) against a real redis-server: replies in order, errors in
place, batches pipelined from concurrent tasks, and a connection that recovers from a restart, a lost
connection, a cancellation and a wrong password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from redis.exceptions import ResponseError

from harness.redis import redis_server
from service.cluster.redis_server import INSTALL_HINT, RedisServer, redis_server_binary
from service.stores.redis.wire import RespWire, pack
from tests.support import unavailable

pytestmark = [pytest.mark.anyio, pytest.mark.in_process]


@pytest.fixture(params=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Both event loops the service runs on: uvicorn picks uvloop where it is installed, and its transports
    are not `asyncio.Transport` subclasses."""
    return "asyncio", {"use_uvloop": request.param == "uvloop"}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own: it gets restarted, or a password."""
    if redis_server_binary() is None:
        unavailable(INSTALL_HINT)
    with redis_server(tmp_path) as server:
        yield server


def wire(server: RedisServer, db: int = 0) -> RespWire:
    found = RespWire.for_url(f"redis://127.0.0.1:{server.port}/{db}")
    assert found is not None
    return found


def test_commands_are_packed_as_bulk_strings() -> None:
    packed = pack([("SET", "k", b"v\r\n", 12), ("PING",)])
    assert packed == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$2\r\n12\r\n*1\r\n$4\r\nPING\r\n"
    assert pack([("ECHO", "é")]) == b"*2\r\n$4\r\nECHO\r\n$2\r\n\xc3\xa9\r\n"  # lengths in bytes


def test_urls_it_does_not_serve_are_left_to_redis_py() -> None:
    assert RespWire.for_url("rediss://127.0.0.1:6380/0") is None
    assert RespWire.for_url("unix:///run/redis.sock") is None
    assert RespWire.for_url("redis://127.0.0.1") is not None


async def test_replies_come_in_order_with_errors_in_place(redis: RedisServer) -> None:
    connection = wire(redis)
    try:
        replies = await connection.send(
            [("SET", "wire:order", "1"), ("INCR", "wire:order"), ("HGET", "wire:order", "x"), ("GET", "wire:order")]
        )
        assert replies[:2] == [b"OK", 2]
        assert isinstance(replies[2], ResponseError)
        assert "WRONGTYPE" in str(replies[2])
        assert replies[3] == b"2"
        assert await connection.send([]) == []
        big = b"x" * 300_000  # replies longer than one read
        assert await connection.send([("SET", "wire:big", big), ("GET", "wire:big")]) == [b"OK", big]
    finally:
        await connection.aclose()


async def test_a_cancelled_round_trip_leaves_no_reply_behind(redis: RedisServer) -> None:
    connection = wire(redis)
    try:
        with anyio.move_on_after(0.2) as scope:
            await connection.send([("BLPOP", "wire:nothing", 1)])
        assert scope.cancelled_caught
        # The connection stays: the PING queues behind the BLPOP, whose reply (nil, a second later) is read
        # and dropped, not taken for the PING's.
        assert await connection.send([("PING",)]) == [b"PONG"]
    finally:
        await connection.aclose()


async def test_concurrent_batches_each_get_their_own_replies(redis: RedisServer) -> None:
    connection = wire(redis)
    got: dict[int, list[object]] = {}

    async def echo(index: int) -> None:
        got[index] = await connection.send([("ECHO", f"a{index}"), ("ECHO", f"b{index}")])

    try:
        async with anyio.create_task_group() as tasks:
            for index in range(50):
                tasks.start_soon(echo, index)
        assert got == {index: [f"a{index}".encode(), f"b{index}".encode()] for index in range(50)}
    finally:
        await connection.aclose()


async def test_a_connection_lost_mid_flight_fails_every_pending_batch(own_redis: RedisServer) -> None:
    connection = wire(own_redis)
    try:
        assert await connection.send([("PING",)]) == [b"PONG"]
        failed: list[BaseException] = []

        async def blocked() -> None:
            try:
                await connection.send([("BLPOP", "wire:never", 0)])
            except ConnectionError as exc:
                failed.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                for _ in range(3):
                    tasks.start_soon(blocked)
                await anyio.sleep(0.2)  # all three written and waiting
                own_redis.stop()
        assert len(failed) == 3
        own_redis.start()
        assert await connection.send([("PING",)]) == [b"PONG"]
    finally:
        await connection.aclose()


async def test_a_restarted_redis_is_reconnected(own_redis: RedisServer) -> None:
    connection = wire(own_redis)
    try:
        assert await connection.send([("SET", "wire:restart", "before")]) == [b"OK"]
        own_redis.stop()
        with pytest.raises(ConnectionError):
            await connection.send([("PING",)])
        with pytest.raises(ConnectionError):  # nobody listens: a clear error, not a hang
            await connection.send([("PING",)])
        own_redis.start()
        assert await connection.send([("PING",)]) == [b"PONG"]
    finally:
        await connection.aclose()


async def test_password_and_database_come_from_the_url(own_redis: RedisServer) -> None:
    own_redis.command("CONFIG", "SET", "requirepass", "s3cret")
    base = f"127.0.0.1:{own_redis.port}"
    for url in (f"redis://:s3cret@{base}/3", f"redis://default:s3cret@{base}/3"):
        connection = RespWire.for_url(url)
        assert connection is not None
        try:
            assert await connection.send([("SET", "wire:db", url)]) == [b"OK"]
            assert await connection.send([("GET", "wire:db")]) == [url.encode()]
        finally:
            await connection.aclose()
    other = RespWire.for_url(f"redis://:s3cret@{base}/0")
    assert other is not None
    try:
        assert await other.send([("GET", "wire:db")]) == [None]  # another database
    finally:
        await other.aclose()
    refused = RespWire.for_url(f"redis://:wrong@{base}/0")
    assert refused is not None
    with pytest.raises(ResponseError):
        await refused.send([("PING",)])
    await refused.aclose()
