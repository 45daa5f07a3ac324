# services/threads.py
#
# The talk's one-line change: a thread per client. Clients are now served
# concurrently, but fib() runs under the GIL: two long requests take twice as
# long as one, and a long request starves the short ones (the convoy effect).

from __future__ import annotations

import socket
from collections.abc import Callable
from threading import Thread

from services.core.fib import fib
from services.core.runtime import Lab
from services.sync import fib_handler


def serve(lab: Lab, listener: socket.socket, compute: Callable[[int], int] = fib) -> None:
    while lab.accepting:
        if client := lab.accept(listener):
            Thread(target=fib_handler, args=(lab, client, compute), daemon=True).start()
