# services/trio.py
#
# Beyond the talk: structured concurrency. One trio task per connection in a
# nursery, fib inline: like `asyncio`, a long request stops trio's one run
# loop and every client with it. (`import trio` below is the library: this
# module is `services.trio`, as `services.asyncio` is not asyncio.)

from __future__ import annotations

import socket
import time

import trio

from services.core.fib import fib
from services.core.runtime import RECV_SIZE, Connection, Lab

# How often a drain looks for readers with nothing left to read (asyncio's).
DRAIN_CHECK = 0.05


class MonotonicClock(trio.abc.Clock):
    """trio's clock as time.monotonic(), the clock of the lab's deadlines
    (trio's own adds a random offset to catch code that mixes clocks)."""

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return time.monotonic()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return deadline - time.monotonic()


def serve(lab: Lab, listener: socket.socket) -> None:
    trio.run(fib_server, lab, listener, clock=MonotonicClock())


async def fib_server(lab: Lab, listener: socket.socket) -> None:
    listener.setblocking(False)
    reading: dict[Connection, trio.CancelScope] = {}  # connections waiting for bytes
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as accepting:
            # The lab's SIGTERM handler runs between any two bytecodes;
            # run_sync_soon is safe to call from there.
            token = trio.lowlevel.current_trio_token()
            lab.on_stop(lambda: token.run_sync_soon(accepting.cancel))
            while not lab.stopping.is_set():
                await trio.lowlevel.wait_readable(listener)
                if client := lab.accept(listener):  # ERR busy past the cap: the Connection
                    nursery.start_soon(fib_handler, lab, client, reading)
        for client in lab.backlog():  # established before the stop: served like the others
            nursery.start_soon(fib_handler, lab, client, reading)
        # Draining: a reader that has read all it may ends as at its deadline.
        with trio.move_on_at(lab.drain_deadline):
            while lab.open_connections:
                for conn, scope in reading.items():
                    if conn.drained:
                        scope.cancel()
                await trio.sleep(DRAIN_CHECK)
        nursery.cancel_scope.cancel()  # past the drain deadline: abandon the rest


async def fib_handler(
    lab: Lab, client: socket.socket, reading: dict[Connection, trio.CancelScope]
) -> None:
    sock = trio.socket.from_stdlib_socket(client)  # the same socket, non-blocking
    with lab.connection(client, write=client.send, close=sock.close) as conn:
        while not conn.closed:
            data = await receive(conn, sock, reading)
            for request in conn.receive(data):
                await send(conn, sock, conn.reply(request, fib))  # fib(n) blocks the run loop


async def receive(
    conn: Connection, sock: trio.socket.SocketType, reading: dict[Connection, trio.CancelScope]
) -> bytes:
    """The next bytes (b"" at EOF); TimeoutError at the line's deadline, or
    when a drain finds nothing left that this connection may read."""
    try:
        with trio.CancelScope(deadline=conn.deadline) as reading[conn]:
            return await sock.recv(RECV_SIZE)
        raise TimeoutError
    finally:
        del reading[conn]


async def send(conn: Connection, sock: trio.socket.SocketType, reply: bytes) -> None:
    """All of `reply`, waiting while the kernel's buffer is full, until the
    line's deadline (docs/design.md §2: the client must take its replies)."""
    with trio.move_on_at(conn.deadline):
        while reply:
            reply = reply[await sock.send(reply) :]
        return
    raise TimeoutError
