# services/threads_procpool.py
#
# The talk's remedy for the GIL: the same thread per client, but fib() runs in
# a pool of processes, each with its own GIL. The handler thread just waits
# for the result. Short requests now pay for pickling and a round trip to a
# worker (a lower baseline), but a long request no longer starves them.

from __future__ import annotations

import socket

from services import threads
from services.core.fib import fib
from services.core.pools import ProcessPool
from services.core.runtime import Lab


def serve(lab: Lab, listener: socket.socket) -> None:
    pool = lab.traced(ProcessPool(lab.settings.workers))
    threads.serve(lab, listener, compute=lambda n: pool.submit(fib, n).result())
