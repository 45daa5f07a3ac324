# services/asyncio_interppool.py
#
# Beyond the talk: `asyncio-procpool` with subinterpreters for processes.
# `await loop.run_in_executor(pool, fib, n)` hands fib() to an interpreter
# with its own GIL (CPython 3.14), and the event loop serves everyone else.

from __future__ import annotations

import socket

from services import asyncio as asyncio_variant
from services.asyncio_procpool import fib_handler
from services.core.pools import interpreter_pool
from services.core.runtime import Lab


def serve(lab: Lab, listener: socket.socket) -> None:
    pool = lab.traced(interpreter_pool(lab.settings.workers))
    asyncio_variant.serve(lab, listener, handler=fib_handler(pool))
