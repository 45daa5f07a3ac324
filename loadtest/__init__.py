# loadtest: the lab's load generator (DESIGN §5-6). Locust users speaking the
# line protocol, scenario shapes and the client-side exporter
# (`locust -f loadtest/locustfile.py`), the engine the comparison runner
# drives (`python -m loadtest.engine`), the talk's perf1/perf2 clients and
# the comparison report.
