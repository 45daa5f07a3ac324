# loadtest/swarm: the Locust side of the lab, what `locust -f
# loadtest/locustfile.py` runs. client.py speaks the line protocol over one
# blocking socket (gevent-friendly); targets.py turns a variant name or
# tcp://HOST:PORT into an address; users.py holds the Locust users (ShortUser,
# LongUser) and the --fib-* options; shapes.py the scenarios (short, long,
# convoy) as LoadTestShapes; recording.py every reply's time and the figures
# made of them; hooks.py what the lab adds to Locust through its events (the
# Host check, the start log, the convoy figures); bucketing.py the
# response-time buckets of Locust's own statistics (sub-millisecond keys);
# exporter.py the master's Prometheus endpoint with microsecond client-side
# latency.
