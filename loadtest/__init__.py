# loadtest: everything that puts load on the variants and reads what they did.
#
#   locustfile.py  the file Locust loads: `locust -f loadtest/locustfile.py`
#   swarm/         the Locust side: a line-protocol client, targets (a variant
#                  name or tcp://HOST:PORT), the users, the scenario shapes and
#                  the microsecond exporter on the master
#   talk/          the talk's own clients (perf1, perf2) and the figures it
#                  reported, which the report sets beside the lab's
#   compare/       the comparison pipeline: the runner (`python -m
#                  loadtest.compare`), the Locust engine it drives per run, the
#                  summary.json schema, the verdict rules and the report
#                  (tables and plots)
