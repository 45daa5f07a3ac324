# tests/services/test_asyncio_send.py
#
# services/asyncio.py's send(): a reply the kernel takes at once arms no loop
# timer (a timer per reply lingers until the loop's next turn, which a handler
# whose replies all go out never gives it: docs/design.md §2); a reply it
# cannot take still waits under the line's deadline.

from __future__ import annotations

import asyncio
import socket
import time
import types
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import pytest
import uvloop

from services import asyncio as asyncio_variant
from services.core.runtime import Connection

TIMERS: Counter[str] = Counter()  # loop.call_at calls, by loop class


class CountingLoop(asyncio.SelectorEventLoop):
    def call_at(  # type: ignore[override]  # counts, then does as its loop does
        self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        TIMERS[type(self).__name__] += 1
        return super().call_at(when, callback, *args, context=context)


class CountingUVLoop(uvloop.Loop):
    def call_at(  # type: ignore[override]  # counts, then does as its loop does
        self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        TIMERS[type(self).__name__] += 1
        return super().call_at(when, callback, *args, context=context)


async def _sends(loop_type: type) -> tuple[int, float]:
    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.create_connection(listener.getsockname())
    sock, _ = listener.accept()
    listener.close()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _reader, writer = await asyncio.open_connection(sock=sock)
    writer.transport.set_write_buffer_limits(high=0)  # as client_connected does
    # send() reads only the deadline of the connection
    conn = cast(Connection, types.SimpleNamespace(deadline=time.monotonic() + 60))
    before = TIMERS[loop_type.__name__]
    for _ in range(1000):  # 2 KB: loopback takes them all at once
        await asyncio_variant.send(conn, writer, b"1\n")
    armed = TIMERS[loop_type.__name__] - before
    writer.write(b"x" * (8 << 20))  # more than the kernel takes: the next send waits
    conn.deadline = time.monotonic() + 0.3
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio_variant.send(conn, writer, b"1\n")
    waited = time.monotonic() - started
    writer.transport.abort()
    peer.close()
    return armed, waited


@pytest.mark.parametrize("loop_type", [CountingLoop, CountingUVLoop], ids=["asyncio", "uvloop"])
def test_a_reply_the_kernel_takes_arms_no_timer(loop_type: type):
    with asyncio.Runner(loop_factory=loop_type) as runner:
        armed, waited = runner.run(_sends(loop_type))
    assert armed == 0, f"{armed} loop timers for 1,000 replies sent at once"  # before: 1000
    assert 0.25 < waited < 2.0  # the deadline still bounds a send that must wait
