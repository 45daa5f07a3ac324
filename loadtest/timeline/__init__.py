# loadtest/timeline: the convoy drawn from a real run (docs/design.md §6.6).
