# tests/services/core/test_runtime.py
#
# The runtime's own promises, on real sockets and real kernel limits: accept()
# out of descriptors, the open-file budget, the graceful close.

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time

from services.core.linger import Lingerer
from services.core.runtime import bytes_received
from tests.conftest import ROOT

# Run in a child: it lowers its own open-file limit, which pytest must keep.
OUT_OF_DESCRIPTORS = textwrap.dedent(
    """
    import os, resource, socket, sys, time
    from services.core.runtime import Lab
    from services.core.settings import Settings

    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    lab = Lab(Settings("coro", metrics=False))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)  # an event loop's listener
    client = socket.create_connection(listener.getsockname(), timeout=5)
    hogs = []
    while True:
        try:
            hogs.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            break
    started = time.monotonic()
    accepted = lab.accept(listener)
    print("accepted", accepted, "took", round(time.monotonic() - started, 3))
    print("client read", client.recv(200))
    """
)


def test_out_of_descriptors_the_client_is_told_busy_and_accept_does_not_sleep():
    result = subprocess.run(
        [sys.executable, "-c", OUT_OF_DESCRIPTORS],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    accepted, client = result.stdout.splitlines()
    assert accepted.startswith("accepted None took "), accepted
    took = float(accepted.rsplit(" ", 1)[1])
    print(f"\naccept() out of descriptors took {took * 1000:.1f} ms")
    assert took < 0.1, "an event loop's accept must not sleep"
    assert client.startswith("client read b'ERR busy "), client
    assert "out of file descriptors" in result.stderr


def test_bytes_received_counts_what_the_kernel_took_read_or_not():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        served, _ = listener.accept()
        with client, served:
            client.sendall(b"x" * 1000)
            time.sleep(0.05)
            assert bytes_received(served) == 1000
            served.recv(300)
            client.sendall(b"y" * 77)
            time.sleep(0.05)
            assert bytes_received(served) == 1077


def test_lingering_close_delivers_replies_then_eof_although_input_is_unread():
    lingerer = Lingerer(2.0)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        served, _ = listener.accept()
        client.sendall(b"unread input " * 1000)
        time.sleep(0.05)
        served.sendall(b"reply\n" * 100)
        closed: list[bool] = []
        lingerer.close(served, lambda: closed.append(True))
        client.sendall(b"more input after the close " * 1000)  # no reset
        data = b""
        while chunk := client.recv(65536):
            data += chunk
        assert data == b"reply\n" * 100
        client.close()
        deadline = time.monotonic() + 5
        while not closed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert closed == [True], "closed once the client closed, well before 2 s"
        assert lingerer.lingering == 0


def test_lingering_close_gives_up_on_a_client_that_never_closes():
    lingerer = Lingerer(0.5)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        served, _ = listener.accept()
        closed: list[float] = []
        started = time.monotonic()
        lingerer.close(served, lambda: closed.append(time.monotonic() - started))
        with client:
            deadline = time.monotonic() + 5
            while not closed and time.monotonic() < deadline:
                client.send(b"x" * 100)
                time.sleep(0.02)
        assert closed, "never closed"
        assert 0.4 < closed[0] < 3, closed
