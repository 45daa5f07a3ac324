# loadtest/toolbox: what the comparison runner (loadtest.compare) and the
# capacity runner (loadtest.capacity) share, below both of them:
#
#   errors.py         LabError: a setting, a target or a step that makes a run impossible
#   machine.py        the CPU other processes used (the noisy flag), CPU lists for pinning
#   servers.py        the variants under test: started, found, checked, their /metrics read
#   options.py        the options both commands take: variant sets, comma lists, pinning
#   formats.py        figures as text: number formats and the marks († loadgen-bound, ‡ noisy)
#   spread.py         a figure over repeats: its median and its min–max
#   plots.py          what both reports' plots share: variant colours, log axes
#   baseline.py       a run against a baseline: the side-by-side model, judged and written
#   capacity_side.py  a capacity run's summary as one side of that comparison
