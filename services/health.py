# services/health.py
"""The container health check: one real request on the line protocol.

It sends fib(10) to the server at --host and --port ($FIB_PORT, else 25000)
and waits at most --timeout seconds for the reply: healthy only when the
reply is right (55). Exit status 0 when healthy; 1, with what went wrong on
stderr, when the server does not answer, answers too late or answers wrong.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys


def check(host: str, port: int, timeout: float) -> str | None:
    """None when the server answers fib(10) correctly, else what went wrong."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"10\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(64)
                if not chunk:
                    break
                reply += chunk
    except OSError as error:
        return f"{host}:{port}: {error}"
    return None if reply == b"55\n" else f"{host}:{port}: fib(10) answered {reply!r}"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m services.health",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # its paragraphs as written
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FIB_PORT", "25000")))
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    problem = check(args.host, args.port, args.timeout)
    if problem:
        sys.exit(f"unhealthy: {problem}")


if __name__ == "__main__":
    main()
