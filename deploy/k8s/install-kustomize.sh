#!/bin/sh
# deploy/k8s/install-kustomize.sh: Debian's kustomize, for the manifest tests
# (tests/repo/test_k8s.py); run as root by `make kustomize`.
#
# Debian ships kustomize from trixie (13) on. On an older release (bookworm
# has none) the package is taken from trixie's archive, checked as apt would:
# the release file's signature against Debian's archive keyring, then the
# SHA-256 of the package index and of the package. Its only dependency is
# libc6 >= 2.34, which bookworm's 2.36 meets.
set -eu

if apt-get install -y -qq --no-install-recommends kustomize >/dev/null 2>&1; then
    exit 0
fi

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
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
