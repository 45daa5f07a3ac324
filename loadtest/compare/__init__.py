# loadtest/compare: the comparison pipeline, `python -m loadtest.compare`.
# cli.py is the command (options, plan, targets); runner.py starts or finds
# each variant, drives engine.py (Locust as a library, one process per run)
# through every scenario, scrapes the server's /metrics around each run;
# summary.py is summary.json's schema and the figures read from it;
# verdicts.py judges the talk's behaviours; report/ turns a summary into
# summary.md and plots. What it shares with loadtest.capacity is in
# loadtest.toolbox.
