# loadtest/docgen: the figures of README.md and docs/*.md, written from the
# committed reports (docs/results) instead of copied by hand.
#
# A page marks each generated figure or table as a region,
#
#   inline:  ... short requests fell to <!-- fig:NAME -->199<!-- /fig:NAME --> req/s ...
#   block:   <!-- fig:NAME -->          (the marker alone on its line)
#            | a | table |
#            <!-- /fig:NAME -->
#
# regions.py finds and checks the regions and replaces their contents;
# reports.py reads the reports (cached, every miss named by path and key);
# figures.py (inline figures) and tables.py (block tables) are the NAMEs;
# lint.py finds measured figures left outside any region.
#
#   python -m loadtest.docgen            rewrite README.md and docs/*.md in place
#   python -m loadtest.docgen --check    change nothing; exit 1 naming what is stale
