#!/bin/sh
# deploy/k8s/install-kustomize.sh: Debian's kustomize, for the manifest tests
# (tests/repo/test_k8s.py); run as root by `make kustomize`.
#
# Debian ships kustomize from trixie (13) on. On an older release (bookworm
# has none) the package is taken from trixie's archive, checked as apt would:
# the release file's signature against Debian's archive keyring, then the
# SHA-256 of the package index and of the package. Its only dependency is
# libc6 >= 2.34, which bookworm's 2.36 meets. The archive is the Debian
# mirror this machine's apt already uses; DEBIAN_MIRROR overrides it.
set -eu

if apt-get install -y -qq --no-install-recommends kustomize >/dev/null 2>&1; then
    exit 0
fi

# The Debian mirror apt uses: the archive whose Release file says Origin and
# Label Debian (not Debian-Security), as apt itself parsed the sources, one-line
# or deb822 (apt-get indextargets knows them once `apt-get update` has run);
# else the first URIs: of a deb822 source, or the first `deb` line of
# sources.list, that is not the security archive.
apt_mirror() {
    found=$(apt-get indextargets --format '$(REPO_URI)' \
        'Origin: Debian' 'Label: Debian' 'Identifier: Packages' 2>/dev/null | head -n 1)
    if [ -z "$found" ]; then
        found=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
            | awk 'tolower($1) == "uris:" && $2 !~ /security/ {print $2; exit}')
    fi
    if [ -z "$found" ]; then
        found=$(sed 's/\[[^]]*\]//' /etc/apt/sources.list 2>/dev/null \
            | awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}')
    fi
    echo "${found%/}"
}

MIRROR=${DEBIAN_MIRROR:-$(apt_mirror)}
[ -n "$MIRROR" ] || {
    echo "install-kustomize: no Debian mirror in /etc/apt's sources: set DEBIAN_MIRROR" >&2
    exit 1
}
SUITE=trixie
ARCH=$(dpkg --print-architecture)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
INDEX=main/binary-$ARCH/Packages.gz
command -v curl >/dev/null || apt-get install -y -qq --no-install-recommends curl >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "install-kustomize: $*" >&2; exit 1; }
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

curl -fsSL "$MIRROR/dists/$SUITE/InRelease" -o "$work/InRelease" \
    || fail "cannot fetch $MIRROR/dists/$SUITE/InRelease"
gpgv --keyring "$KEYRING" --output "$work/Release" "$work/InRelease" 2>/dev/null \
    || fail "$SUITE's InRelease is not signed by a key in $KEYRING"

index_sum=$(awk -v f="$INDEX" '/^SHA256:/ {s=1; next} /^[^ ]/ {s=0} s && $3 == f {print $1}' "$work/Release")
[ -n "$index_sum" ] || fail "$SUITE's Release lists no $INDEX"
curl -fsSL "$MIRROR/dists/$SUITE/$INDEX" -o "$work/Packages.gz" || fail "cannot fetch $INDEX"
[ "$(sha256_of "$work/Packages.gz")" = "$index_sum" ] || fail "$INDEX does not match its SHA-256"

gzip -dc "$work/Packages.gz" | awk '
    /^Package: / {p = ($2 == "kustomize")}
    p && /^(Filename|SHA256): / {print}
    p && /^$/ {exit}' > "$work/kustomize"
filename=$(sed -n 's/^Filename: //p' "$work/kustomize")
deb_sum=$(sed -n 's/^SHA256: //p' "$work/kustomize")
[ -n "$filename" ] && [ -n "$deb_sum" ] || fail "$SUITE's index has no kustomize package"
curl -fsSL "$MIRROR/$filename" -o "$work/kustomize.deb" || fail "cannot fetch $filename"
[ "$(sha256_of "$work/kustomize.deb")" = "$deb_sum" ] || fail "$filename does not match its SHA-256"
dpkg -i "$work/kustomize.deb" >/dev/null
echo "installed $(basename "$filename") from Debian $SUITE"
