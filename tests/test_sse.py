"""The SSE response the MCP transports write: its start held until its first write."""

from __future__ import annotations

import anyio
import pytest
from starlette.types import Message

from service import sse

pytestmark = [pytest.mark.in_process, pytest.mark.anyio]


class Recorder:
    """An ASGI `send` that keeps what it was given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    def bodies(self) -> list[bytes]:
        return [message["body"] for message in self.messages if message["type"] == "http.response.body"]


async def test_the_start_and_the_first_bytes_go_out_with_the_first_write() -> None:
    send = Recorder()
    stream = sse.Stream(send, [(b"mcp-session-id", b"s")], first=b"id: 0\r\n\r\n")
    assert not stream.started
    assert send.messages == []
    await stream.write(b"data: a\r\n\r\n")
    await stream.write(b"data: b\r\n\r\n", more=False)
    start, *_ = send.messages
    assert start["type"] == "http.response.start"
    assert (b"mcp-session-id", b"s") in start["headers"]
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    assert send.bodies() == [b"id: 0\r\n\r\ndata: a\r\n\r\n", b"data: b\r\n\r\n"]
    assert [message.get("more_body") for message in send.messages[1:]] == [True, False]


async def test_flush_starts_a_response_once() -> None:
    send = Recorder()
    stream = sse.Stream(send, first=b"id: 0\r\n\r\n")
    await stream.flush()
    await stream.flush()
    assert stream.started
    assert [message["type"] for message in send.messages] == ["http.response.start", "http.response.body"]
    assert send.bodies() == [b"id: 0\r\n\r\n"]


async def test_a_response_waiting_for_its_first_message_starts_within_the_opening_window() -> None:
    send = Recorder()
    stream = sse.Stream(send, first=b"id: 0\r\n\r\n")
    writer, queue = anyio.create_memory_object_stream[str](1)
    with writer, queue:
        with anyio.fail_after(1):
            async with anyio.create_task_group() as tasks:

                async def late() -> None:
                    await anyio.sleep(sse.OPENING_WINDOW * 3)
                    assert stream.started
                    assert send.bodies() == [b"id: 0\r\n\r\n"]
                    await writer.send("m")

                tasks.start_soon(late)
                assert await sse.next_message(queue, stream, ping_interval=60) == "m"
    assert send.bodies() == [b"id: 0\r\n\r\n"]


async def test_a_started_stream_pings_while_idle() -> None:
    send = Recorder()
    stream = sse.Stream(send)
    await stream.flush()
    writer, queue = anyio.create_memory_object_stream[str](1)
    with writer, queue:
        async with anyio.create_task_group() as tasks:

            async def late() -> None:
                await anyio.sleep(0.25)
                await writer.send("m")

            tasks.start_soon(late)
            assert await sse.next_message(queue, stream, ping_interval=0.1) == "m"
    assert send.messages[0]["type"] == "http.response.start"
    assert send.bodies()
    assert set(send.bodies()) == {sse.PING}
