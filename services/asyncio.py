# services/asyncio.py
#
# Where the talk points: the same generator-task idea, grown into the standard
# library. `async def` handlers on asyncio streams, one event loop, no threads.
# Like `coro`, fib() runs inline, so a long request stops every client.

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import cast

from services.core.fib import fib
from services.core.runtime import RECV_SIZE, Connection, Lab

Handler = Callable[[Connection, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
# fib's value awaited away from the loop (a process or interpreter pool, a
# thread: asyncio-procpool, asyncio-interppool, asyncio-tothread); None: inline.
Compute = Callable[[int], Awaitable[int]]


def serve(
    lab: Lab,
    listener: socket.socket,
    handler: Handler | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:  # asyncio.run, any loop
        runner.run(fib_server(lab, listener, handler or fib_handler))


async def fib_server(lab: Lab, listener: socket.socket, handler: Handler) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lab.stop)
    inputs: dict[Connection, tuple[asyncio.StreamReader, asyncio.Transport]] = {}
    backlog_tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references

    async def client_connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        transport = cast(asyncio.Transport, writer.transport)
        # Any reply the kernel did not take makes send() wait, as sendall
        # does: thousands of 2-byte replies queued as objects would cost
        # far more memory than their bytes say.
        transport.set_write_buffer_limits(high=0)
        with lab.connection(sock, write=writer.write, close=transport.abort) as conn:
            inputs[conn] = (reader, transport)
            try:
                await handler(conn, reader, writer)
            finally:
                del inputs[conn]

    # limit: the reader stops the transport reading past 2 x 8 KiB read ahead
    # of the handler (a line is at most FIB_MAX_LINE bytes anyway).
    server = await asyncio.start_server(
        client_connected, sock=listener, limit=8192, backlog=lab.settings.backlog
    )
    lab.accepts_on(listener)
    lab.on_stop(stopped.set)
    lab.on_stop(server.close)
    await stopped.wait()
    for client in lab.backlog():  # established before the stop: served like the others
        reader, writer = await asyncio.open_connection(sock=client, limit=8192)
        backlog_tasks.add(asyncio.create_task(client_connected(reader, writer)))
    while lab.open_connections and loop.time() < lab.drain_deadline:
        for conn, (reader, transport) in inputs.items():
            if conn.drained:  # it has read all it may: its reader sees end of stream
                transport.pause_reading()
                reader.feed_eof()
        await asyncio.sleep(0.05)


async def send(conn: Connection, writer: asyncio.StreamWriter, reply: bytes) -> None:
    """Write a reply; if the kernel's buffer for it is full, wait (reading no
    new line) until the client has read enough of it, or until the deadline.

    The deadline is armed only when there is something to wait for. A timer
    per reply is a loop timer that outlives its `with`: a cancelled handle
    stays in asyncio's heap (uvloop: its libuv timer awaits its close
    callback) until the loop's next turn, and a handler whose replies the
    kernel takes never gives it one: 10 clients pipelining `1\\n` held about
    450,000 of them, +98 MiB (docs/design.md §2)."""
    writer.write(reply)
    if not writer.transport.get_write_buffer_size():  # the kernel took it all
        await writer.drain()  # returns at once; raises if the connection is lost
        return
    async with asyncio.timeout_at(conn.deadline):
        await writer.drain()


async def fib_handler(
    conn: Connection,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    compute: Compute | None = None,
) -> None:
    while not conn.closed:
        async with asyncio.timeout_at(conn.deadline):
            data = await reader.read(RECV_SIZE)
        for index, request in enumerate(conn.receive(data)):
            if index and conn.turn_due(index):  # the loop serves others between one client's lines
                await asyncio.sleep(0)
            if compute is None:
                reply = conn.reply(request, fib)  # fib(n) blocks the event loop
            else:
                if request.n is not None:  # a valid line: the loop serves others meanwhile
                    request.future = asyncio.ensure_future(compute(request.n))
                    await asyncio.wait([request.future])  # its result, or its failure
                reply = conn.reply(request)
            await send(conn, writer, reply)
