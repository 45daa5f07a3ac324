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

from services.core.fib import fib
from services.core.runtime import RECV_SIZE, Connection, Lab

Handler = Callable[[Connection, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def serve(lab: Lab, listener: socket.socket, handler: Handler | None = None) -> None:
    asyncio.run(fib_server(lab, listener, handler or fib_handler))


async def fib_server(lab: Lab, listener: socket.socket, handler: Handler) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lab.stop)

    async def client_connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        with lab.connection(sock, write=writer.write, close=writer.close) as conn:
            await handler(conn, reader, writer)

    server = await asyncio.start_server(client_connected, sock=listener)
    lab.on_stop(stopped.set)
    lab.on_stop(server.close)
    await stopped.wait()
    while lab.open_connections and loop.time() < lab.drain_deadline:
        await asyncio.sleep(0.05)  # each handler answers what it has read, then sees EOF


async def fib_handler(
    conn: Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    while not conn.closed:
        async with asyncio.timeout_at(conn.deadline):
            data = await reader.read(RECV_SIZE)
        for request in conn.receive(data):
            writer.write(conn.reply(request, fib))  # fib(n) blocks the event loop
            await writer.drain()
