# services/sync.py
#
# The talk's starting point: one client at a time. While a client is
# connected, the next one waits in the listen backlog, unanswered, until the
# first one leaves.
#
# `fib_handler` is the talk's handler, with the protocol core doing framing,
# parsing and errors. The threaded variants run this same handler.

from __future__ import annotations

import socket
from collections.abc import Callable

from services.core.fib import fib
from services.core.runtime import Lab


def serve(lab: Lab, listener: socket.socket) -> None:
    while not lab.stopping.is_set():
        if client := lab.accept(listener):
            fib_handler(lab, client)  # nobody else is served until it returns


def fib_handler(lab: Lab, client: socket.socket, compute: Callable[[int], int] = fib) -> None:
    with lab.connection(client) as conn:
        while not conn.closed:
            for request in conn.receive(conn.recv(client)):  # client.recv, until the deadline
                client.sendall(conn.reply(request, compute))  # fib(n) runs here
