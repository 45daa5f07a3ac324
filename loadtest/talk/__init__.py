# loadtest/talk: what the 2015 talk itself brought. perf1.py (seconds per long
# request) and perf2.py (short requests per second, printed each second) are
# its two clients (`python -m loadtest.talk.perf1`, `python -m
# loadtest.talk.perf2`); figures.py holds the numbers it reported, with where
# in the talk, which the comparison report sets beside the lab's.
