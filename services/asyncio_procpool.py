# services/asyncio_procpool.py
#
# asyncio with the talk's remedy: `await loop.run_in_executor(pool, fib, n)`
# hands fib() to a process pool, and the event loop keeps serving everybody
# else meanwhile. The handler is the `asyncio` variant's, given this step.

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import Executor
from functools import partial

from services import asyncio as asyncio_variant
from services.core.fib import fib
from services.core.pools import ProcessPool
from services.core.runtime import Lab


def serve(lab: Lab, listener: socket.socket) -> None:
    pool = lab.traced(ProcessPool(lab.settings.workers))
    asyncio_variant.serve(lab, listener, handler=fib_handler(pool))


def fib_handler(pool: Executor) -> asyncio_variant.Handler:
    """The asyncio handler, with fib computed in `pool`."""

    def fib_in_pool(n: int) -> asyncio.Future[int]:
        return asyncio.get_running_loop().run_in_executor(pool, fib, n)

    return partial(asyncio_variant.fib_handler, compute=fib_in_pool)
