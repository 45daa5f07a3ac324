# services/asyncio_tothread.py
#
# Beyond the talk: today's spelling of `coro-threadpool`. The `asyncio`
# handler, but fib goes through `await asyncio.to_thread(fib, n)`: the loop
# lives, yet fib in a thread of the same process holds the one GIL, and the
# loop thread must win it back for every select, recv and send.

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from services import asyncio as asyncio_variant
from services.core.fib import fib
from services.core.runtime import Lab


def serve(lab: Lab, listener: socket.socket) -> None:
    # fib itself, unless a timeline records it on the thread that runs it:
    # asyncio's default executor must be a ThreadPoolExecutor, so lab.traced
    # (a wrapper) cannot stand in for it.
    fib_timed = lab.timed(fib)

    async def fib_in_thread(n: int) -> int:
        return await asyncio.to_thread(fib_timed, n)

    def new_loop() -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        # to_thread's pool: the lab's size, as coro-threadpool's (asyncio's
        # own default, CPUs + 4, would only add threads queueing for the GIL).
        loop.set_default_executor(Threads(lab.settings.workers, thread_name_prefix="asyncio"))
        return loop

    handler = partial(asyncio_variant.fib_handler, compute=fib_in_thread)
    asyncio_variant.serve(lab, listener, handler=handler, loop_factory=new_loop)


class Threads(ThreadPoolExecutor):
    """asyncio's default executor. The runner shuts it down on its way out,
    and would wait there for a fib(45) the drain abandoned: it does not wait,
    and os._exit ends that thread (services/__main__.py)."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)
