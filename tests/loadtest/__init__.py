# tests/loadtest: the load generator (Locust users, shapes, exporter, engine),
# the talk's perf clients and the comparison report.
