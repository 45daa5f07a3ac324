# loadtest/locustfile.py
#
# What `locust -f loadtest/locustfile.py` loads: the lab's users and
# scenario shapes, its `--fib-*` options, and the client-side exporter.
#
#   locust -f loadtest/locustfile.py --class-picker        web UI on :8089: type the
#        variant in Host, pick user classes or a scenario shape, start
#   locust -f loadtest/locustfile.py --headless -u 1 -t 10s --host coro
#   locust -f loadtest/locustfile.py --headless --host coro --fib-scenario convoy
#   locust -f loadtest/locustfile.py --fib-help             every option, the lab's too
#
# The target is Locust's Host: `tcp://HOST:PORT`, or a variant name, bare or
# as tcp://VARIANT, at its address from FIB_TARGETS (local | compose | a
# map); with no Host, --fib-target (and --fib-address). A bad Host stops a
# headless run with exit code 1 and fails the web UI's start with a message
# naming it; the log says at each start which variant and address are
# loaded. A convoy run (local runner) ends by logging the short-request rate
# before, during and after the long client, and the long request's time.
# Those hooks live in loadtest/swarm/hooks.py; this file only hands Locust
# the users, the shapes and the hooks, and makes Locust's own statistics keep
# sub-millisecond times (loadtest/swarm/bucketing.py: every process that
# loads this file, workers and --processes children too).

from __future__ import annotations

from locust import events

from loadtest.swarm import bucketing
from loadtest.swarm.hooks import on_init, on_parser
from loadtest.swarm.shapes import ConvoyScenario, LongScenario, ShortScenario
from loadtest.swarm.users import LongUser, ShortUser

# What Locust finds here: the users (the class picker) and the scenario shapes.
__all__ = ["ConvoyScenario", "LongScenario", "LongUser", "ShortScenario", "ShortUser"]

events.init_command_line_parser.add_listener(on_parser)  # type: ignore[no-untyped-call]
events.init.add_listener(on_init)  # type: ignore[no-untyped-call]
bucketing.install()  # fib(1)'s ~0.05 ms would be 0 in Locust's table and --csv
