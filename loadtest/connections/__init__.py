# loadtest/connections: what a connection costs, `python -m loadtest.connections`
# (`make connections`, docs/design.md §6.10): per variant, and Redis beside
# them, the memory, threads and descriptors of N idle connections, a fresh
# client's latency while they are held and how fast they are admitted; N
# slow clients' p99 and the server's CPU; and fairness, a fresh client
# beside one that pipelines 64 KiB of `1\n`, before and after a setting.
# It stands on loadtest.toolbox (servers, machine, formats, plots) and the
# capacity run's Redis anchor; nothing imports it.
#
#   cli.py       the command: options, the run, report.json, the report
#   tree.py      a server's process tree from /proc: RSS, threads, descriptors, CPU
#   clients.py   the client side: N idle connections opened in a row, a fresh
#                client's latency, the line protocols of a variant and of Redis
#   slow.py      N slow clients in an open loop from one selectors thread
#   fairness.py  a pipelining client and a fresh client beside it
#   runner.py    each variant (and Redis): the server started, every part measured
#   summary.py   report.json's figures: slopes, spreads, §3.3's predictions judged
#   report.py    report.md (python -m loadtest.connections.report DIR redraws it)
#   plots.py     memory.png, p99.png, fairness.png
