# loadtest/compare: the comparison pipeline, `python -m loadtest.compare`.
# runner.py starts or finds each variant, drives engine.py (Locust as a
# library, one process per run) through every scenario, scrapes the server's
# /metrics around each run and writes summary.json; summary.py is that file's
# schema and the figures read from it; verdicts.py judges the talk's
# behaviours; report/ turns a summary into summary.md and plots.
