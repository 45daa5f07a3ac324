# tests/bench: programs that print figures (make bench-*), not tests; what
# they share.
import subprocess

from tests.conftest import ROOT


def this_commit() -> str:
    """HEAD, and whether tracked files differ from it: what a bench report
    must say of the code that made it."""

    def git(*args: str) -> str:
        run = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return run.stdout.strip()

    changed = " with uncommitted changes" if git("status", "--porcelain", "-uno") else ""
    return (git("rev-parse", "--short", "HEAD") or "unknown") + changed
