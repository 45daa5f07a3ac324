# loadtest/toolbox/errors.py
#
# The one error the runners stop on: each command catches it, prints its
# message after the command's name and exits 2.

from __future__ import annotations


class LabError(Exception):
    """A setting, a target or a step that makes a run impossible."""
