# tests/repo/test_no_registry_hosts.py
#
# No file of the repository names a package registry's or a mirror's host:
# the machines that build and run the lab reach those through their own
# configuration (apt's sources, pip's index, Docker's registry mirrors), and
# a host written here would bypass it. deploy/k8s/install-kustomize.sh reads
# the Debian mirror from apt; images are named without a registry host.
# The patterns are regexes so that this file does not name the hosts either.

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import ROOT, unavailable

HOSTS = re.compile(
    r"""(?<![\w.-])(?:
        deb\.debian\.org | security\.debian\.org | snapshot\.debian\.org | ftp\.[\w.]*debian\.org
      | archive\.ubuntu\.com | security\.ubuntu\.com | dl-cdn\.alpinelinux\.org
      | pypi\.org | pypi\.python\.org | files\.pythonhosted\.org
      | registry-1\.docker\.io | index\.docker\.io | hub\.docker\.com | docker\.io/
      | download\.docker\.com | ghcr\.io | quay\.io | (?:[\w-]+\.)?gcr\.io | registry\.k8s\.io
      | registry\.npmjs\.org | proxy\.golang\.org | deb\.nodesource\.com
    )""",
    re.VERBOSE | re.IGNORECASE,
)


def repository_files() -> list[str]:
    """Tracked files and the new ones about to be (not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, timeout=60,
    )  # fmt: skip
    if listed.returncode:
        unavailable("a git checkout", listed.stderr.decode(errors="replace").strip())
    return [name for name in listed.stdout.decode().split("\0") if name]


def test_no_file_names_a_registry_or_mirror_host() -> None:
    found = []
    for name in repository_files():
        path = ROOT / name
        if not path.is_file():
            continue  # listed by git, deleted in the working tree
        text = path.read_bytes().decode(errors="replace")
        found += [f"{name}: {m[0]}" for m in HOSTS.finditer(text)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("MIRROR=${DEBIAN_MIRROR:-http://" + "deb.debian" + ".org/debian}", True),
        ("--index-url https://" + "pypi" + ".org/simple", True),
        ("image: " + "ghcr" + ".io/grafana/grafana", True),
        ("apt-get install docker" + ".io", False),  # Debian's package, not a host
        ("registry.example.com/lab/fiblab-services:1.0", False),
        ("prom/prometheus:v3.13.0", False),
    ],
)
def test_the_check_sees_a_host(text: str, named: bool) -> None:
    assert bool(HOSTS.search(text)) is named
