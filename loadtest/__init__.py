# loadtest: everything that puts load on the variants and reads what they did.
#
#   locustfile.py  the file Locust loads: `locust -f loadtest/locustfile.py`
#   swarm/         the Locust side: a line-protocol client, targets (a variant
#                  name or tcp://HOST:PORT), the users, the scenario shapes and
#                  the microsecond exporter on the master
#   talk/          the talk's own clients (perf1, perf2) and the figures it
#                  reported, which the report sets beside the lab's
#   toolbox/       what compare/ and capacity/ share: the machine's CPU (the
#                  noisy flag), the variants under test and their /metrics, the
#                  options, figures as text, the baseline comparison's model
#   compare/       the comparison pipeline: the command (`python -m
#                  loadtest.compare`), the Locust engine it drives per run, the
#                  summary.json schema, the verdict rules and the report
#                  (tables and plots)
#   capacity/      capacity and latency curves (`python -m loadtest.capacity`)
