# The talk's first server: one client at a time, fib inline. Start of docs/exercises.md.
import contextlib
import socket
import sys


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)  # fib(0) = 0, fib(1) = fib(2) = 1


def fib_handler(client):
    # A vanished client (OSError) or 5,000 digits (ValueError) close this connection only.
    with client, client.makefile("rb") as lines, contextlib.suppress(OSError, ValueError):
        for line in lines:  # one request per line, pipelined or in pieces
            if not line.endswith(b"\n") or not line.strip().isdigit() or int(line) > 45:
                return  # unfinished at EOF, or not an n in 0..45: close (step 1: ERR)
            client.sendall(b"%d\n" % fib(int(line)))


def fib_server(port):
    sock = socket.create_server(("127.0.0.1", port), backlog=1024)  # the talk: 5 (too few)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    while True:
        client, addr = sock.accept()
        print("connection", addr, flush=True)
        fib_handler(client)  # step 2: a thread per client


if __name__ == "__main__":
    fib_server(int(sys.argv[1]) if len(sys.argv) > 1 else 25000)
