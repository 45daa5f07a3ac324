# services/asyncio_procpool.py
#
# asyncio with the talk's remedy: `await loop.run_in_executor(pool, fib, n)`
# hands fib() to a process pool, and the event loop keeps serving everybody
# else meanwhile.

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import Executor
from functools import partial

from services import asyncio as asyncio_variant
from services.core.fib import fib
from services.core.pools import ProcessPool
from services.core.runtime import RECV_SIZE, Connection, Lab


def serve(lab: Lab, listener: socket.socket) -> None:
    pool = lab.traced(ProcessPool(lab.settings.workers))
    asyncio_variant.serve(lab, listener, handler=partial(fib_handler, pool))


async def fib_handler(
    pool: Executor, conn: Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    loop = asyncio.get_running_loop()
    while not conn.closed:
        async with asyncio.timeout_at(conn.deadline):
            data = await reader.read(RECV_SIZE)
        for index, request in enumerate(conn.receive(data)):
            if index and conn.turn_due(index):  # an error line awaits nothing: let others run
                await asyncio.sleep(0)
            if request.n is not None:  # a valid line: fib goes to the pool
                request.future = loop.run_in_executor(pool, fib, request.n)
                await asyncio.wait([request.future])  # its result, or its failure
            await asyncio_variant.send(conn, writer, conn.reply(request))
