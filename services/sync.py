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
    while lab.accepting:
        if client := lab.accept(listener):
            fib_handler(lab, client)  # nobody else is served until it returns


def fib_handler(
    lab: Lab,
    client: socket.socket,
    compute: Callable[[int], int] = fib,
    pass_turn: Callable[[], object] | None = None,
) -> None:
    with lab.connection(client) as conn:
        while not conn.closed:
            for index, request in enumerate(conn.receive(conn.recv(client))):  # until the deadline
                if index and pass_turn and conn.turn_due(index):  # gevent: let others run
                    pass_turn()
                client.sendall(conn.reply(request, compute))  # fib(n) runs here
