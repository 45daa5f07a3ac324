# loadtest/switchinterval: the switch-interval sweep, `python -m
# loadtest.switchinterval` (docs/design.md §6.7): the convoy at several
# switch intervals, judged against the law of docs/design.md §3.2. It stands
# on the comparison (loadtest.compare: its runner, its convoy runs, summary
# checks, verdicts and tables) and loadtest.toolbox; nothing imports it.
#
#   cli.py      the command: options, the sweep, summary.json, the report
#   sweep.py    each interval: every variant's server started with it, then
#               the comparison runner's convoy on it
#   summary.py  summary.json's schema, checked on load; the figures per
#               variant per interval and the law's prediction
#   verdict.py  the rule `switch-interval law` judged over the sweep
#   report.py   report.md (python -m loadtest.switchinterval.report redraws it)
#   plots.py    switch-interval.png
