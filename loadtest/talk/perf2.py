# loadtest/talk/perf2.py
#
# Requests per second: the talk's perf2 client. One connection asks fib(1) in
# a tight loop while a monitor thread prints the rate every second. Start a
# long request beside it (perf1, or `nc` with 40) to watch the convoy: the
# rate of `threads` collapses, that of a *-procpool variant does not.
#
#   python -m loadtest.talk.perf2 [--host 127.0.0.1] [--port 25002] [--duration 30]
#
# Unlike the talk's client, requests end with "\n" (docs/design.md §2) and the run is
# bounded by --duration.

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence

from loadtest.talk.perf1 import ErrorReply, connect, connection_arguments, positive, run


class Counter:
    """Requests done so far. Only the load loop writes it; the monitor reads."""

    def __init__(self) -> None:
        self.done = 0


def monitor(counter: Counter, stop: threading.Event) -> None:
    """Print the requests of each past second, as the talk's monitor does."""
    last_count, last_time = 0, time.monotonic()
    while not stop.wait(max(0.0, last_time + 1.0 - time.monotonic())):
        now, count = time.monotonic(), counter.done
        print(f"{round((count - last_count) / (now - last_time))} reqs/sec", flush=True)
        last_count, last_time = count, now


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.talk.perf2",
        description="Ask fib(1) in a tight loop on one connection; print req/s every second.",
    )
    connection_arguments(parser)
    parser.add_argument(
        "--duration", type=positive(float), default=30.0, help="stop after this many seconds [30]"
    )
    args = parser.parse_args(argv)

    client = connect("perf2", args.host, args.port, args.timeout)
    counter = Counter()
    stop = threading.Event()
    reporter = threading.Thread(target=monitor, args=(counter, stop), daemon=True)
    start = time.monotonic()
    end = start + args.duration
    status = 0
    reporter.start()
    try:
        while time.monotonic() < end:
            client.ask(b"1\n")
            counter.done += 1
    except ErrorReply as error:
        print(f"perf2: the server answered: {error.line}", file=sys.stderr)
        status = 1
    except OSError as error:
        reason = "no reply in time" if isinstance(error, TimeoutError) else error
        print(f"perf2: {reason}, after {counter.done} requests", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 130
    finally:
        stop.set()
        reporter.join()
        client.close()
    elapsed = time.monotonic() - start
    rate = counter.done / elapsed if elapsed > 0 else 0.0
    print(
        f"perf2: {counter.done} requests in {elapsed:.1f} s, {rate:.0f} req/s on average",
        file=sys.stderr,
    )
    return status


if __name__ == "__main__":
    run(main)
