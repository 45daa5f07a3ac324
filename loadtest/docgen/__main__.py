# python -m loadtest.docgen: the pages' generated regions, from the committed reports.
import sys

from loadtest.docgen.cli import main

sys.exit(main())
