# python -m loadtest.profile: flame graphs of one variant during the convoy (cli.py).
import sys

from loadtest.profile.cli import main

sys.exit(main())
